"""The snapshot rule, on plain values: which external groups each pool of a run goes to, and why not others.

A pool goes to every external group its project was shared with at the sequencing instant, and to its
owner's group when that group is external: external groups are the sequencing service's customers, entitled
to their own projects on every run whatever the share history (unless switched off for the group or the
installation). Groups that were shared with at some other time, internal groups and a switched-off owner
are listed as withheld with the reason, so the plan explains itself before anything is copied.
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
    OWNER_OFF_GROUP = "owner's group: switched off for this group"
    OWNER_OFF_INSTALLATION = "owner's group: switched off for this installation"


@dataclass(frozen=True)
class ProjectOwner:
    """The group of a project's owner, and its own switch (`Group.receives_own_projects`, from the LIMS)."""

    group: str
    kind: GroupKind
    receives_own: bool = True

    def receives(self, installation: bool) -> bool:
        """Whether the owner's group receives its own project's pools, at any instant."""
        return self.kind is GroupKind.EXTERNAL and self.receives_own and installation

    def withheld_reason(self, installation: bool) -> WithheldReason | None:
        """Why an external owner's group does not receive its own project (None: it does, or is internal)."""
        if self.kind is not GroupKind.EXTERNAL:
            return None
        if not installation:
            return WithheldReason.OWNER_OFF_INSTALLATION
        return None if self.receives_own else WithheldReason.OWNER_OFF_GROUP


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
        if self.at is None or self.reason not in (WithheldReason.SHARED_AFTER, WithheldReason.REVOKED_BEFORE):
            return f"{self.group}: {self.reason.value}"
        verb = "granted" if self.reason is WithheldReason.SHARED_AFTER else "revoked"
        return f"{self.group}: {self.reason.value} ({verb} {self.at:%Y-%m-%d %H:%M:%S %Z})"


@dataclass(frozen=True)
class PoolSnapshot:
    pool: str
    project: str
    groups: tuple[str, ...]  # external groups entitled to the pool's files, by name (the owner's included)
    withheld: tuple[Withheld, ...]
    owner: str | None = None  # the owner's group when it receives the pool as owner (its reason: "owner")

    def reason(self, group: str) -> str:
        """Why an entitled group receives the pool: as the project's owner, or shared at sequencing."""
        return "owner" if group == self.owner else "shared"


def snapshot_pool(
    pool: str,
    project: str,
    history: Iterable[GroupShare],
    instant: datetime,
    owner: ProjectOwner | None = None,
    *,
    owners_receive: bool = True,
) -> PoolSnapshot:
    """Entitled external groups of one pool at `instant`, and every other group of the history with why.

    `owner` is the project's owner's group; `owners_receive` the installation's switch
    (`SEQSHARE_OWNER_RECEIVES_OWN`). An owner that receives is entitled whatever its share history says."""
    by_group: dict[str, list[GroupShare]] = {}
    for share in history:
        by_group.setdefault(share.group, []).append(share)
    as_owner = owner.group if owner is not None and owner.receives(owners_receive) else None
    owner_off = owner.withheld_reason(owners_receive) if owner is not None else None
    entitled: list[str] = [as_owner] if as_owner else []
    withheld: list[Withheld] = []
    for group, shares in by_group.items():
        if group == as_owner:
            continue
        shared_then = any(s.contains(instant) for s in shares)
        if shares[0].kind is GroupKind.INTERNAL:
            withheld.append(Withheld(group, WithheldReason.INTERNAL))
        elif shared_then:
            entitled.append(group)
        elif owner_off is not None and owner is not None and group == owner.group:
            continue  # listed once, below, with the switch that withholds it
        elif later := [s.granted_at for s in shares if s.granted_at > instant]:
            withheld.append(Withheld(group, WithheldReason.SHARED_AFTER, min(later)))
        else:
            revoked = max(s.revoked_at for s in shares if s.revoked_at is not None)
            withheld.append(Withheld(group, WithheldReason.REVOKED_BEFORE, revoked))
    if owner_off is not None and owner is not None and owner.group not in entitled:
        withheld.append(Withheld(owner.group, owner_off))
    return PoolSnapshot(
        pool=pool,
        project=project,
        groups=tuple(sorted(entitled, key=lambda g: (g.casefold(), g))),
        withheld=tuple(sorted(withheld, key=lambda w: (w.group.casefold(), w.group))),
        owner=as_owner,
    )


def snapshot_run(
    pool_projects: Mapping[str, str],
    histories: Mapping[str, Iterable[GroupShare]],
    instant: datetime,
    owners: Mapping[str, ProjectOwner] | None = None,
    *,
    owners_receive: bool = True,
) -> tuple[PoolSnapshot, ...]:
    """The snapshot of every pool on a run (pool → project; project → its share history, its owner)."""
    owners = owners or {}
    return tuple(
        snapshot_pool(
            pool,
            project,
            histories.get(project, ()),
            instant,
            owners.get(project),
            owners_receive=owners_receive,
        )
        for pool, project in sorted(pool_projects.items())
    )
