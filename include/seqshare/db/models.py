"""Typed SQLAlchemy models: the facility's groups, users, projects, pools, samples, runs and shares.

Sharing is history, not a flag: a `Share` row is one interval during which a project was shared with a
group (granted at/by, revoked at/by). The groups a project is shared with at an instant are the rows whose
interval [granted_at, revoked_at) contains it; that is the snapshot deliveries use.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from seqshare.db.types import UTCDateTime
from seqshare.delivery.snapshot import SnapshotSource
from seqshare.rules import GroupKind

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class AuditAction(enum.StrEnum):
    SHARE_SET = "share.set"
    SHARE_CLEAR = "share.clear"
    RUN_SNAPSHOT_OVERRIDE = "run.snapshot_override"


class DeliveryState(enum.StrEnum):
    DELIVERED = "delivered"
    PURGED = "purged"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as the value string with a CHECK constraint: portable and readable in SQL.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda e: [m.value for m in e],
    )


class Group(Base):
    """A research group. External groups receive data on the FTP server, in `ftp_dir`."""

    __tablename__ = "research_group"
    __table_args__ = (
        CheckConstraint("kind = 'external' OR ftp_dir IS NULL", name="ftp_dir_external_only"),
        CheckConstraint("kind = 'external' OR NOT is_special", name="special_is_external"),
        # At most one special group ("Functional Genomics Centre" case).
        Index(
            "uq_research_group_one_special",
            "is_special",
            unique=True,
            sqlite_where=text("is_special"),
            postgresql_where=text("is_special"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[GroupKind] = mapped_column(_enum(GroupKind, "group_kind"))
    ftp_dir: Mapped[str | None] = mapped_column(String(255), unique=True)
    is_special: Mapped[bool] = mapped_column(default=False)
    ttl_days: Mapped[int | None] = mapped_column(Integer)  # delivered files' time to live; None: the default
    # An external group is the service's customer: it receives its own projects' pools on every run, whatever
    # the share history, unless switched off here (or for the installation, `config.owner_receives_own`).
    receives_own_projects: Mapped[bool] = mapped_column(default=True, server_default=true())

    members: Mapped[list[User]] = relationship(back_populates="group")

    def __repr__(self) -> str:
        return f"Group({self.name!r}, {self.kind.value})"


class User(Base):
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    group_id: Mapped[int] = mapped_column(ForeignKey("research_group.id"), index=True)

    group: Mapped[Group] = relationship(back_populates="members")


class Project(Base):
    __tablename__ = "project"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)

    owner: Mapped[User] = relationship()
    pools: Mapped[list[Pool]] = relationship(back_populates="project", order_by="Pool.name")


class Pool(Base):
    """A pool of samples sequenced together, named by its LIMS id (`SLX-12345`)."""

    __tablename__ = "pool"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), index=True)

    project: Mapped[Project] = relationship(back_populates="pools")
    samples: Mapped[list[Sample]] = relationship(back_populates="pool", order_by="Sample.name")


class Sample(Base):
    __tablename__ = "sample"
    __table_args__ = (UniqueConstraint("pool_id", "name", name="uq_sample_pool_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pool.id"))
    name: Mapped[str] = mapped_column(String(200))
    index1: Mapped[str | None] = mapped_column(String(64))
    index2: Mapped[str | None] = mapped_column(String(64))

    pool: Mapped[Pool] = relationship(back_populates="samples")


class Run(Base):
    """An Illumina run; `sequencing_started_at` from the LIMS takes precedence over the instrument's files."""

    __tablename__ = "run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(200), unique=True)
    flowcell: Mapped[str | None] = mapped_column(String(50))
    instrument: Mapped[str | None] = mapped_column(String(50))
    run_folder: Mapped[str | None] = mapped_column(Text)
    sequencing_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    lanes: Mapped[list[RunLane]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="(RunLane.lane, RunLane.pool_id)"
    )


class RunLane(Base):
    """Which pool was sequenced on which lane of which run."""

    __tablename__ = "run_lane"
    __table_args__ = (CheckConstraint("lane >= 1", name="lane_positive"),)

    run_id: Mapped[int] = mapped_column(ForeignKey("run.id"), primary_key=True)
    lane: Mapped[int] = mapped_column(Integer, primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pool.id"), primary_key=True, index=True)

    run: Mapped[Run] = relationship(back_populates="lanes")
    pool: Mapped[Pool] = relationship()


class Share(Base):
    """One interval [granted_at, revoked_at) during which a project was shared with a group."""

    __tablename__ = "share"
    __table_args__ = (
        CheckConstraint("revoked_at IS NULL OR revoked_at >= granted_at", name="revoked_after_granted"),
        Index("ix_share_project_group", "project_id", "group_id"),
        # A project has at most one open share per group: the current state is never ambiguous.
        Index(
            "uq_share_open",
            "project_id",
            "group_id",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    group_id: Mapped[int] = mapped_column(ForeignKey("research_group.id"))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    granted_by_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))

    project: Mapped[Project] = relationship()
    group: Mapped[Group] = relationship()
    granted_by: Mapped[User] = relationship(foreign_keys=[granted_by_id])
    revoked_by: Mapped[User | None] = relationship(foreign_keys=[revoked_by_id])


class AuditEvent(Base):
    """Who changed what, when, from what, to what. Written in the same transaction as the change."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(200))  # a username, or e.g. "airflow:<who>" for ops
    action: Mapped[AuditAction] = mapped_column(_enum(AuditAction, "audit_action"))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("project.id"), index=True)
    before: Mapped[Any] = mapped_column(JSON)
    after: Mapped[Any] = mapped_column(JSON)
    via: Mapped[str] = mapped_column(String(20), default="cli")

    project: Mapped[Project | None] = relationship()


class RunSnapshot(Base):
    """The frozen snapshot of a run: the instant used, where it came from, and the plan derived from it.

    Written once, by the first DAG run of the run folder; every re-run reuses it unchanged.
    """

    __tablename__ = "run_snapshot"

    run_id: Mapped[int] = mapped_column(ForeignKey("run.id"), primary_key=True)
    instant: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[SnapshotSource] = mapped_column(_enum(SnapshotSource, "snapshot_source"))
    frozen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    frozen_by: Mapped[str] = mapped_column(String(200))
    plan: Mapped[Any | None] = mapped_column(JSON)

    run: Mapped[Run] = relationship()
    entries: Mapped[list[SnapshotEntry]] = relationship(cascade="all, delete-orphan")


class SnapshotEntry(Base):
    """An external group entitled to a pool of a run by the frozen snapshot."""

    __tablename__ = "snapshot_entry"

    run_id: Mapped[int] = mapped_column(ForeignKey("run_snapshot.run_id"), primary_key=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("pool.id"), primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("research_group.id"), primary_key=True)

    pool: Mapped[Pool] = relationship()
    group: Mapped[Group] = relationship()


class Delivery(Base):
    """The ledger: one file delivered to one group, verified, until it expires and is purged."""

    __tablename__ = "delivery"
    __table_args__ = (UniqueConstraint("group_id", "remote_path", name="uq_delivery_group_path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id"), index=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("research_group.id"))
    pool_id: Mapped[int] = mapped_column(ForeignKey("pool.id"))
    remote_path: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    md5: Mapped[str] = mapped_column(String(32))
    state: Mapped[DeliveryState] = mapped_column(_enum(DeliveryState, "delivery_state"))
    delivered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    purged_by: Mapped[str | None] = mapped_column(String(200))

    run: Mapped[Run] = relationship()
    group: Mapped[Group] = relationship()
    pool: Mapped[Pool] = relationship()


class DeliveryLease(Base):
    """Who is delivering a run to a group right now: one transfer per (run, group) at a time, so two DAG
    runs of one run folder can never write the same files at once."""

    __tablename__ = "delivery_lease"

    run_id: Mapped[int] = mapped_column(ForeignKey("run.id"), primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("research_group.id"), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiToken(Base):
    """A user's API token for the internal API: only the SHA-256 of the secret is stored (see
    `seqshare.services.tokens`). Revoked or expired, it fails on the very next request."""

    __tablename__ = "api_token"
    __table_args__ = (CheckConstraint("expires_at IS NULL OR expires_at > created_at", name="expires_after"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))  # what it is for, e.g. "pipeline on hpc1"
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(40))  # the secret's first characters, to recognise it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship()


class FileChecksum(Base):
    """The md5 of one version of a run file of a pool, computed once (or taken from the delivery ledger) and
    reused by every download of that version. `version` is the file's `<inode>-<size>-<mtime_ns>` in hex
    (the API's ETag): a file rewritten or replaced gets a new version and a new md5."""

    __tablename__ = "file_checksum"
    __table_args__ = (
        UniqueConstraint("run_id", "pool_id", "path", "version", name="uq_file_checksum_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id"))
    pool_id: Mapped[int] = mapped_column(ForeignKey("pool.id"))
    path: Mapped[str] = mapped_column(String(1024))  # relative to the run folder, as the frozen plan has it
    version: Mapped[str] = mapped_column(String(80))
    size: Mapped[int] = mapped_column(BigInteger)
    md5: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(20))  # "server" (read here) or "ledger" (a delivery's)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FileDownload(Base):
    """One file request of the download API, as it was answered: who, which file, when, the range asked
    for, the bytes sent and whether all of them went. Names are kept as text: the record outlives moves in
    the LIMS, and a refused request names what was asked for, not a row."""

    __tablename__ = "file_download"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    username: Mapped[str] = mapped_column(String(100), index=True)
    group_name: Mapped[str] = mapped_column(String(200))
    project: Mapped[str | None] = mapped_column(String(200), index=True)  # None: no visible pool by that name
    run_id: Mapped[str] = mapped_column(String(200))
    pool: Mapped[str] = mapped_column(String(50))
    path: Mapped[str] = mapped_column(String(1024))  # `<file name>` as requested
    method: Mapped[str] = mapped_column(String(8))
    status: Mapped[int] = mapped_column(Integer)
    range_start: Mapped[int | None] = mapped_column(BigInteger)
    bytes_sent: Mapped[int] = mapped_column(BigInteger, default=0)
    completed: Mapped[bool] = mapped_column(default=False)
