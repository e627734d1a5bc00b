"""The sharing rules, in the facility's words, with no database, web or Airflow code.

Every entry point (CLI, page, API, DAG task) reaches these through `seqshare.services`, so one rule is
written once. Each check returns the reason for a refusal (a sentence for a person) or None.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


class GroupKind(enum.StrEnum):
    INTERNAL = "internal"
    EXTERNAL = "external"


@dataclass(frozen=True)
class GroupRef:
    """What the rules need to know of a group."""

    name: str
    kind: GroupKind
    is_special: bool = False


def refusal_to_change(actor_username: str, actor_group: str, owner_group: str, project: str) -> str | None:
    """Only the owner and the members of the owner's group may change a project's sharing."""
    if actor_group != owner_group:
        return (
            f"{actor_username} may not change the sharing of project {project}: "
            f"only members of its owner's group ({owner_group}) may"
        )
    return None


def refusal_to_share(actor_group: GroupRef, owner_group: GroupRef, target: GroupRef) -> str | None:
    """Whether members of `actor_group` may share a project owned by `owner_group` with `target`.

    Internal users may share with any other group; external users only with internal groups and the
    special external group; nobody shares a project with its own group (it has access already).
    """
    if target.name == owner_group.name:
        return f"project is already visible to its own group {target.name}"
    if actor_group.kind is GroupKind.EXTERNAL and target.kind is GroupKind.EXTERNAL and not target.is_special:
        return (
            f"external group {actor_group.name} may share only with internal groups"
            f" (and the special group), not with external group {target.name}"
        )
    return None


def shareable(actor_group: GroupRef, owner_group: GroupRef, groups: Iterable[GroupRef]) -> list[GroupRef]:
    """The groups a member of `actor_group` may offer for a project of `owner_group`, by name."""
    allowed = [g for g in groups if refusal_to_share(actor_group, owner_group, g) is None]
    return sorted(allowed, key=lambda g: g.name.casefold())


@dataclass(frozen=True)
class ShareInterval:
    """A project shared with `group` during [granted_at, revoked_at)."""

    group: str
    granted_at: datetime
    revoked_at: datetime | None


def shared_at(intervals: Iterable[ShareInterval], instant: datetime) -> set[str]:
    """The groups whose interval contains `instant`: granted at or before it, not yet revoked at it."""
    return {
        i.group
        for i in intervals
        if i.granted_at <= instant and (i.revoked_at is None or instant < i.revoked_at)
    }


def may_see(caller_group: GroupRef, owner_group: str, shared_with_now: Iterable[str]) -> bool:
    """Whether a member of `caller_group` sees a project (the internal API's visibility rule).

    The owner's group always does; another group only while the project is shared with it *now* and only
    if it is internal (an external group receives files on the FTP server, per run, not API access).
    `seqshare.services.access` applies the same rule in SQL to page long lists; a test holds them equal.
    """
    if caller_group.name == owner_group:
        return True
    return caller_group.kind is GroupKind.INTERNAL and caller_group.name in set(shared_with_now)
