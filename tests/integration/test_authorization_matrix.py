"""Every acting user × target group kind × action gives the outcome the rules say, on SQLite and PostgreSQL.

The expected outcomes are written out as a table (the specification), not recomputed from the rules.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import AuditEvent, Share
from seqshare.errors import SharingRefused
from seqshare.services import sharing
from tests.world import load_world

OK, REFUSED = "ok", "refused"

# project -> owner, a group already shared with (for clear), and the target group of each kind.
PROJECTS = {
    "Int Project": {
        "owner": "owner",
        "pre_shared": "Third Lab",
        "targets": {"internal": "Other Lab", "external": "Ext Two", "special": "Special", "own": "Owner Lab"},
    },
    "Ext Project": {
        "owner": "extowner",
        "pre_shared": "Third Lab",
        "targets": {"internal": "Other Lab", "external": "Ext Two", "special": "Special", "own": "Ext Co"},
    },
}

# (project, acting user's role, acting user) -> outcome per action/target kind.
MATRIX = [
    (
        "Int Project",
        "owner",
        "owner",
        {"internal": OK, "external": OK, "special": OK, "own": REFUSED, "clear": OK},
    ),
    (
        "Int Project",
        "group member",
        "member",
        {"internal": OK, "external": OK, "special": OK, "own": REFUSED, "clear": OK},
    ),
    (
        "Int Project",
        "other internal group",
        "other",
        {"internal": REFUSED, "external": REFUSED, "special": REFUSED, "own": REFUSED, "clear": REFUSED},
    ),
    (
        "Int Project",
        "external group member",
        "exttwo",
        {"internal": REFUSED, "external": REFUSED, "special": REFUSED, "own": REFUSED, "clear": REFUSED},
    ),
    (
        "Ext Project",
        "owner",
        "extowner",
        {"internal": OK, "external": REFUSED, "special": OK, "own": REFUSED, "clear": OK},
    ),
    (
        "Ext Project",
        "group member",
        "extmember",
        {"internal": OK, "external": REFUSED, "special": OK, "own": REFUSED, "clear": OK},
    ),
    (
        "Ext Project",
        "other internal group",
        "other",
        {"internal": REFUSED, "external": REFUSED, "special": REFUSED, "own": REFUSED, "clear": REFUSED},
    ),
    (
        "Ext Project",
        "external group member",
        "exttwo",
        {"internal": REFUSED, "external": REFUSED, "special": REFUSED, "own": REFUSED, "clear": REFUSED},
    ),
]

CASES = [
    pytest.param(project, actor, action, outcome, id=f"{project}-{role}-{action}-{outcome}")
    for project, role, actor, outcomes in MATRIX
    for action, outcome in outcomes.items()
]


def _state(session: Session) -> tuple[list[Any], list[Any]]:
    shares = [
        (s.project_id, s.group_id, s.granted_at, s.granted_by_id, s.revoked_at, s.revoked_by_id)
        for s in session.scalars(select(Share).order_by(Share.id))
    ]
    audit = [
        (e.at, e.actor, e.action, e.project_id, e.before, e.after)
        for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
    ]
    return shares, audit


@pytest.mark.parametrize(("project", "actor", "action", "outcome"), CASES)
def test_authorization_matrix(
    sessions: sessionmaker[Session], t0: datetime, project: str, actor: str, action: str, outcome: str
) -> None:
    spec = PROJECTS[project]
    with sessions.begin() as s:
        load_world(s)
        sharing.set_sharing(s, project=project, groups=[spec["pre_shared"]], actor=spec["owner"], now=t0)
    later = t0 + timedelta(hours=1)

    with sessions.begin() as s:
        before = _state(s)
    with sessions() as s:
        try:
            if action == "clear":
                change = sharing.clear_sharing(s, project=project, actor=actor, now=later)
                expected_after: tuple[str, ...] = ()
            else:
                target = spec["targets"][action]
                change = sharing.set_sharing(s, project=project, groups=[target], actor=actor, now=later)
                expected_after = (target,)
            s.commit()
            got = OK
        except SharingRefused as exc:
            s.rollback()
            got, reason = REFUSED, str(exc)
    with sessions.begin() as s:
        after = _state(s)
        now_groups = tuple(g.name for g in sharing.project_view(s, project).shared_with)

    assert got == outcome
    if outcome == REFUSED:
        assert reason  # a refusal always says why
        assert after == before, "a refused change must leave history and audit untouched"
        assert now_groups == (spec["pre_shared"],)
    else:
        assert change.before == (spec["pre_shared"],) and change.after == expected_after
        assert now_groups == expected_after
        assert len(after[1]) == len(before[1]) + 1  # exactly one audit event
        event = after[1][-1]
        assert (event[0], event[1], event[4], event[5]) == (
            later,
            actor,
            [spec["pre_shared"]],
            list(expected_after),
        )
