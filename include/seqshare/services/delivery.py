"""Deliver one group's share of a run: the files, then a checksum manifest per pool and a README.

Each file is recorded in the ledger as soon as it is verified (its own transaction), so an interrupted
delivery resumes where it stopped: files already delivered and verified are skipped, partial ones restart.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from seqshare.delivery.plan import (
    MANIFEST,
    README,
    DeliveryPlan,
    GroupPlan,
    PlannedFile,
    manifest_text,
    readme_text,
)
from seqshare.errors import InvalidInput
from seqshare.services import leases, lookup
from seqshare.services import ledger as ledger_service
from seqshare.transfer import CopyResult, Remote
from seqshare.transfer.paths import split_parent
from seqshare.transfer.send import FileToSend, put_text, send_files

_TAG = re.compile(r"[0-9a-f]{8}")


@dataclass(frozen=True)
class GroupReport:
    run_id: str
    group: str
    files: int
    sent: int
    skipped: int
    bytes_sent: int
    seconds: float
    destination: str

    @property
    def mb_per_s(self) -> float:
        return self.bytes_sent / 1e6 / self.seconds if self.seconds else 0.0

    def describe(self) -> str:
        return (
            f"{self.group}: {self.files} files in {self.destination}/ "
            f"({self.sent} sent, {self.skipped} already there), "
            f"{self.bytes_sent / 1e6:,.1f} MB in {self.seconds:.1f} s ({self.mb_per_s:,.0f} MB/s)"
        )


def source_areas(plan: DeliveryPlan) -> tuple[Path, Path | None]:
    """The run folder and the demultiplexed output the plan was read from (None for plans frozen before
    the output folder was kept), resolved: the only places a planned file may be read from."""
    root = Path(plan.run_folder).resolve()
    if plan.output_dir is None:
        return root, None
    return root, (root / plan.output_dir).resolve()


def check_own_file(local: Path, planned_file: PlannedFile, areas: tuple[Path, Path | None]) -> Path:
    """Item 3's rule, again at delivery time: the file read as a pool's must still be that pool's own file.

    The folder was read (and its links judged) when the plan was frozen, but a link, a folder or the output
    folder itself can be re-pointed since. Plans keep the file each source resolved to when frozen: the
    source must resolve to exactly that file still. Older plans lack it: there the resolved file must lie
    in the run folder or its output folder and end in the same folders and name as planned (`<pool>/<name>`
    under the output folder). Returns the resolved path, which is what is read.
    """
    target = local.resolve()
    if planned_file.resolved is not None:
        if str(target) != planned_file.resolved:
            raise InvalidInput(
                f"{local}: now resolves to {target}, not to {planned_file.resolved} as when the plan was "
                "frozen; nothing more is sent"
            )
        return target
    root, output = areas
    source = planned_file.source
    if not (target.is_relative_to(root) or (output is not None and target.is_relative_to(output))):
        raise InvalidInput(f"{local}: now points outside the run folder, to {target}; nothing more is sent")
    planned = Path(source) if Path(source).is_absolute() else root / source
    base = output if output is not None and planned.is_relative_to(output) else None
    depth = len(planned.relative_to(base).parts) if base is not None else 1
    if target.parts[-depth:] != planned.parts[-depth:]:
        raise InvalidInput(
            f"{local}: now resolves to {target}, not to this pool's file "
            f"({'/'.join(planned.parts[-depth:])}); nothing more is sent"
        )
    return target


def files_to_send(plan: DeliveryPlan, group: str, delivered: dict[str, str]) -> list[FileToSend]:
    """The group's files, checked against the run folder as it is now (it must not have changed): each
    still the pool's own file (`check_own_file`), one file per name, and the size planned."""
    out = []
    areas = source_areas(plan)
    seen: dict[tuple[int, int], str] = {}
    for f in plan.group(group).files:
        local = Path(plan.run_folder) / f.source
        target = check_own_file(local, f, areas)
        try:
            stat = target.stat()
        except OSError as exc:
            raise InvalidInput(
                f"{local}: missing from the run folder ({exc.strerror}); nothing more is sent"
            ) from None
        other = seen.setdefault((stat.st_dev, stat.st_ino), f.source)
        if other != f.source:
            raise InvalidInput(f"{local}: now the same file as {other}; nothing more is sent")
        size = stat.st_size
        if size != f.size:
            raise InvalidInput(
                f"{local}: {size} bytes now, {f.size} when the plan was frozen; the run folder "
                "changed after planning, nothing more is sent"
            )
        out.append(
            FileToSend(
                local_path=target,  # the file judged, not a path that could be re-pointed again
                remote_path=f.remote_path,
                size=f.size,
                delivered_md5=delivered.get(f.remote_path),
            )
        )
    return out


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _stale_partial(name: str, planned: set[str], tag: str) -> bool:
    """`.<planned name>.partial` (older releases) or `.<planned name>.<tag>.partial` of another writer."""
    if not (name.startswith(".") and name.endswith(".partial")):
        return False
    middle = name[1 : -len(".partial")]
    base, _, other = middle.rpartition(".")
    return middle in planned or (base in planned and other != tag and _TAG.fullmatch(other) is not None)


def remove_stale_partials(remote: Remote, plan: DeliveryPlan, gp: GroupPlan, tag: str) -> list[str]:
    """Remove the partials other writers left beside this group's files, manifests and README (a lost or
    fenced-out earlier try: their names carry its tag). Called once the lease is held, so their writer
    can no longer rename them (ADR 8). Returns the paths removed."""
    run_dir = gp.run_dir(plan.run_id)
    names: dict[str, set[str]] = {run_dir: {README}}
    for pool in gp.pools:
        names.setdefault(f"{run_dir}/{pool}", set()).add(MANIFEST)
    for f in gp.files:
        parent, name = split_parent(f.remote_path)
        names.setdefault(parent, set()).add(name)
    dirs = sorted(names)
    present = [d for d, e in zip(dirs, remote.stat_many(dirs), strict=True) if e is not None and e.is_dir]
    stale = [
        e.path
        for d, entries in zip(present, remote.list_many(present), strict=True)
        for e in entries
        if e.is_file and _stale_partial(e.name, names[d], tag)
    ]
    for path in stale:
        with contextlib.suppress(FileNotFoundError):
            remote.remove(path)
    return stale


def deliver_group(
    plan: DeliveryPlan,
    group: str,
    *,
    connect: Callable[[], Remote],
    sessions: sessionmaker[Session],
    delivered_at: datetime,
    parallel: int = 2,
    log: Callable[[str], None] = print,
    holder: str | None = None,
    takes_over: str | None = None,
    clock: Callable[[], datetime] = _utcnow,
    renew_every: timedelta = leases.LEASE_RENEW_EVERY,
) -> GroupReport:
    """Send the group's files, record each in the ledger, then write manifests and the README.

    Holds the (run, group) lease throughout: a second delivery of the same run to the same group waits
    (DeliveryBusy, retried by Airflow) instead of writing the same files at the same time. The group's
    directory is compared with the plan's only once the lease is held, reading the group's row with a
    shared lock: a LIMS import that moves the directory locks that row and refuses while a lease exists,
    so either the import sees this lease, or this delivery waits for the import and sees the new directory.
    `holder` prefixes the lease's holder (who is delivering, for ops); `takes_over`: see acquire_lease.

    The lease is renewed every `renew_every` and at every ledger write, which also checks it is still
    held; a delivery that lost it stops with LeaseLost, recording nothing more (ADR 8). Its partials carry
    a tag of its own, so it never renames another writer's bytes; `clock` gives the lease's times (tests).
    """
    started = time.monotonic()
    gp = plan.group(group)
    tag = uuid.uuid4().hex[:8]
    holder = f"{holder or ''}{socket.gethostname()}:{os.getpid()}:{tag}"
    leases.acquire_lease(
        sessions, run_id=plan.run_id, group=group, holder=holder, now=clock(), takes_over=takes_over
    )
    keeper = leases.LeaseKeeper(
        sessions, run_id=plan.run_id, group=group, holder=holder, clock=clock, every=renew_every, log=log
    )
    try:
        with sessions.begin() as s:
            current_dir = lookup.group(s, group, lock=True).ftp_dir
        if current_dir != gp.ftp_dir:  # the LIMS moved the group's directory after the plan was frozen
            raise InvalidInput(
                f"{group}: its FTP directory is now {current_dir!r}, the frozen plan says "
                f"{gp.ftp_dir!r}; nothing is sent (it could be another group's directory now)"
            )
        with keeper:
            report = _send(
                plan,
                gp,
                connect=connect,
                sessions=sessions,
                delivered_at=delivered_at,
                parallel=parallel,
                log=log,
                keeper=keeper,
                tag=tag,
            )
    finally:
        leases.release_lease(sessions, run_id=plan.run_id, group=group, holder=holder)
    return replace(report, seconds=time.monotonic() - started)


def _send(
    plan: DeliveryPlan,
    gp: GroupPlan,
    *,
    connect: Callable[[], Remote],
    sessions: sessionmaker[Session],
    delivered_at: datetime,
    parallel: int,
    log: Callable[[str], None],
    keeper: leases.LeaseKeeper,
    tag: str,
) -> GroupReport:
    group = gp.group
    with sessions.begin() as s:
        delivered = ledger_service.delivered_md5s(s, plan.run_id, group)
    todo = files_to_send(plan, group, delivered)
    pool_of = {f.remote_path: f.pool for f in gp.files}
    counts = {"sent": 0, "skipped": 0, "bytes": 0}

    def on_sent(f: FileToSend, result: CopyResult) -> None:
        with sessions.begin() as s:
            keeper.hold(s)  # fencing: no row unless this delivery still holds the lease
            ledger_service.record_delivery(
                s,
                run_id=plan.run_id,
                group=group,
                pool=pool_of[f.remote_path],
                remote_path=f.remote_path,
                size=result.size,
                md5=result.md5,
                delivered_at=delivered_at,
            )
        if result.skipped:
            counts["skipped"] += 1
        else:
            counts["sent"] += 1
            counts["bytes"] += result.size
            log(f"sent {f.remote_path} ({result.size:,} bytes, md5 {result.md5})")

    log(f"{group}: {len(todo)} files for {gp.run_dir(plan.run_id)}/ ({len(delivered)} already in the ledger)")
    remote = connect()
    try:
        stale = remove_stale_partials(remote, plan, gp, tag)
    finally:
        remote.close()
    if stale:
        log(f"removed {len(stale)} partial files an earlier delivery left: {', '.join(stale)}")
    send_files(
        todo,
        connect,
        parallel=parallel,
        mtime=delivered_at,
        on_sent=on_sent,
        partial_tag=tag,
        interrupt=keeper.check,
        before_rename=keeper.renew,
    )

    with sessions.begin() as s:
        keeper.hold(s)
        ledger = {row.remote_path: row for row in ledger_service.ledger(s, plan.run_id) if row.group == group}
        ttl = ledger_service.group_ttl(s, group)
    remote = connect()
    try:
        for pool in gp.pools:
            pool_files = [f for f in gp.files if f.pool == pool]
            manifest = manifest_text(
                pool_files, {f.remote_path: ledger[f.remote_path].md5 for f in pool_files}
            )
            keeper.check()
            put_text(
                remote,
                f"{gp.run_dir(plan.run_id)}/{pool}/{MANIFEST}",
                manifest,
                mtime=delivered_at,
                partial_tag=tag,
            )
        first = min((row.delivered_at for row in ledger.values()), default=delivered_at)
        keeper.check()
        put_text(
            remote,
            f"{gp.run_dir(plan.run_id)}/{README}",
            readme_text(plan, gp, first, first + ttl),
            mtime=delivered_at,
            partial_tag=tag,
        )
    finally:
        remote.close()
    return GroupReport(
        run_id=plan.run_id,
        group=group,
        files=len(gp.files),
        sent=counts["sent"],
        skipped=counts["skipped"],
        bytes_sent=counts["bytes"],
        seconds=0.0,
        destination=gp.run_dir(plan.run_id),
    )
