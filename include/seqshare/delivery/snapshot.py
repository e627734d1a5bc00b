"""The snapshot rule, on plain values: which external groups each pool of a run goes to, and why not others.

A pool goes to every external group its project was shared with at the sequencing instant. Groups that
were shared with at some other time, and internal groups, are listed as withheld with the reason, so the
plan explains itself before anything is copied.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from seqshare.rules import GroupKind


class SnapshotSource(enum.StrEnum):
    """Where the sequencing instant came from, in order of precedence."""

    OVERRIDE = "override"  # given by ops when triggering (audited)
    LIMS = "lims"  # the run's start registered in the LIMS
    INSTRUMENT = "instrument"  # the instrument's own files (RunInfo.xml / RunParameters.xml)


class WithheldReason(enum.StrEnum):
    SHARED_AFTER = "shared only after sequencing"
    REVOKED_BEFORE = "revoked before sequencing"
    INTERNAL = "internal group: access through the download tool, no copy"


@dataclass(frozen=True)
class GroupShare:
    """One interval of a project's share history, with what the snapshot needs of the group."""

    group: str
    kind: GroupKind
    granted_at: datetime
    revoked_at: datetime | None

    def contains(self, instant: datetime) -> bool:
        return self.granted_at <= instant and (self.revoked_at is None or instant < self.revoked_at)


@dataclass(frozen=True)
class Withheld:
    group: str
    reason: WithheldReason
    at: datetime | None = None  # the grant or revocation that explains it

    def describe(self) -> str:
        if self.at is None or self.reason is WithheldReason.INTERNAL:
            return f"{self.group}: {self.reason.value}"
        verb = "granted" if self.reason is WithheldReason.SHARED_AFTER else "revoked"
        return f"{self.group}: {self.reason.value} ({verb} {self.at:%Y-%m-%d %H:%M:%S %Z})"


@dataclass(frozen=True)
class PoolSnapshot:
    pool: str
    project: str
    groups: tuple[str, ...]  # external groups entitled to the pool's files, by name
    withheld: tuple[Withheld, ...]


def snapshot_pool(pool: str, project: str, history: Iterable[GroupShare], instant: datetime) -> PoolSnapshot:
    """Entitled external groups of one pool at `instant`, and every other group of the history with why."""
    by_group: dict[str, list[GroupShare]] = {}
    for share in history:
        by_group.setdefault(share.group, []).append(share)
    entitled: list[str] = []
    withheld: list[Withheld] = []
    for group, shares in sorted(by_group.items(), key=lambda kv: kv[0].casefold()):
        shared_then = any(s.contains(instant) for s in shares)
        if shares[0].kind is GroupKind.INTERNAL:
            withheld.append(Withheld(group, WithheldReason.INTERNAL))
        elif shared_then:
            entitled.append(group)
        elif later := [s.granted_at for s in shares if s.granted_at > instant]:
            withheld.append(Withheld(group, WithheldReason.SHARED_AFTER, min(later)))
        else:
            revoked = max(s.revoked_at for s in shares if s.revoked_at is not None)
            withheld.append(Withheld(group, WithheldReason.REVOKED_BEFORE, revoked))
    return PoolSnapshot(pool=pool, project=project, groups=tuple(entitled), withheld=tuple(withheld))


def snapshot_run(
    pool_projects: Mapping[str, str], histories: Mapping[str, Iterable[GroupShare]], instant: datetime
) -> tuple[PoolSnapshot, ...]:
    """The snapshot of every pool on a run (pool → project; project → its share history)."""
    return tuple(
        snapshot_pool(pool, project, histories.get(project, ()), instant)
        for pool, project in sorted(pool_projects.items())
    )
