"""The internal API's visibility rule, pure: owner's group, or shared now with an internal group."""

from __future__ import annotations

import pytest

from seqshare.rules import GroupKind, GroupRef, may_see

INTERNAL, EXTERNAL = GroupRef("Other Lab", GroupKind.INTERNAL), GroupRef("Ext Co", GroupKind.EXTERNAL)
SPECIAL = GroupRef("FGC", GroupKind.EXTERNAL, is_special=True)


@pytest.mark.parametrize(
    ("caller", "owner", "shared_now", "sees"),
    [
        (INTERNAL, "Other Lab", [], True),  # its own group's project
        (EXTERNAL, "Ext Co", [], True),  # an external group sees its own projects too
        (INTERNAL, "Owner Lab", ["Other Lab"], True),  # shared now with an internal group
        (INTERNAL, "Owner Lab", [], False),  # not shared (or no longer)
        (INTERNAL, "Owner Lab", ["Third Lab"], False),  # shared with another group
        (EXTERNAL, "Owner Lab", ["Ext Co"], False),  # external groups get files on the FTP server, not this
        (SPECIAL, "Owner Lab", ["FGC"], False),  # the special group is external too
    ],
)
def test_who_sees_a_project(caller: GroupRef, owner: str, shared_now: list[str], sees: bool) -> None:
    assert may_see(caller, owner, shared_now) is sees
