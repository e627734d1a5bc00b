"""Frozen views returned by services: what a page, an API answer or a CLI line shows."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from seqshare.db.models import Group
from seqshare.rules import GroupKind, GroupRef


@dataclass(frozen=True)
class GroupView:
    name: str
    kind: GroupKind
    is_special: bool = False
    ftp_dir: str | None = None

    @classmethod
    def of(cls, g: Group) -> GroupView:
        return cls(name=g.name, kind=g.kind, is_special=g.is_special, ftp_dir=g.ftp_dir)

    @property
    def ref(self) -> GroupRef:
        return GroupRef(self.name, self.kind, self.is_special)


@dataclass(frozen=True)
class ProjectView:
    name: str
    owner: str
    owner_group: str
    shared_with: tuple[GroupView, ...]
    pools: tuple[str, ...]


@dataclass(frozen=True)
class ShareRecord:
    """One interval of the share history."""

    group: str
    granted_at: datetime
    granted_by: str
    revoked_at: datetime | None
    revoked_by: str | None


@dataclass(frozen=True)
class SharingChange:
    """The outcome of Set Sharing / Do Not Share: the groups before and after."""

    project: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    at: datetime

    @property
    def changed(self) -> bool:
        return self.before != self.after

    @property
    def granted(self) -> tuple[str, ...]:
        return tuple(g for g in self.after if g not in self.before)

    @property
    def revoked(self) -> tuple[str, ...]:
        return tuple(g for g in self.before if g not in self.after)


@dataclass(frozen=True)
class AuditView:
    at: datetime
    actor: str
    action: str
    project: str | None
    before: Any
    after: Any
    via: str


def to_jsonable(obj: Any) -> Any:
    """Views as JSON-ready data: datetimes in ISO 8601, enums as their values."""
    if hasattr(obj, "__dataclass_fields__"):
        return to_jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, GroupKind):
        return obj.value
    return obj
