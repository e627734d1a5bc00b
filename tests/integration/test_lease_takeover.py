"""Two live deliveries of one task instance (ADR 8), on SQLite and PostgreSQL, with real files.

Try 1 is paused inside its first upload (its writer's close blocks: a VM pause, SIGSTOP), as a worker that
Airflow gave up on while its task still lives. Its retry (try 2) takes over only a lease that went
unrenewed past LEASE_TAKEOVER_AFTER; once it has, try 1 records nothing and renames nothing into a final
name when it resumes. A try that keeps renewing is never taken over.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import Delivery, DeliveryLease
from seqshare.delivery.plan import DeliveryPlan
from seqshare.runfolder import read_run_folder
from seqshare.services import leases, runs
from seqshare.services.delivery import GroupReport, deliver_group
from seqshare.tasks.distribute import task_instance_holder
from seqshare.transfer import LocalRemote
from tests.runs import POOLS, RUN_ID, build_run, load_scenario

GROUP = "Ext Co"
TASK = task_instance_holder("distribute_run", f"run__{RUN_ID}", "deliver", 0)
WAIT_S = 60  # a bound on waiting for another thread (a loaded machine), never an assertion on speed


class Paused:
    """Blocks the first upload's writer at close (all bytes written, before the size check and rename)."""

    def __init__(self) -> None:
        self.reached, self.resume = threading.Event(), threading.Event()

    def close_hook(self) -> None:
        if not self.reached.is_set():
            self.reached.set()
            assert self.resume.wait(WAIT_S)


class _Writer:
    def __init__(self, inner: BinaryIO, before_close: Callable[[], None]) -> None:
        self._inner, self._before_close = inner, before_close

    def write(self, data: bytes) -> int:
        return self._inner.write(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._inner.seek(offset, whence)

    def close(self) -> None:
        self._before_close()
        self._inner.close()

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Watched(LocalRemote):
    """The FTP root of one delivery's connections: renames are noted; a `Paused` holds the first data
    file's upload, its first rename into a final name (before or after it), or its first read of a file
    already there."""

    def __init__(self, root: Path, renamed: list[str], paused: Paused | None, **hooks: Paused | None) -> None:
        super().__init__(root)
        self._renamed, self._paused = renamed, paused
        self._after_rename, self._reading = hooks.get("after_rename"), hooks.get("reading")
        self._renaming = hooks.get("renaming")

    def open_write(self, path: str) -> BinaryIO:
        out = super().open_write(path)
        if self._paused is not None and ".fastq.gz." in path:
            return _Writer(out, self._paused.close_hook)  # type: ignore[return-value]
        return out

    def open_read(self, path: str) -> BinaryIO:  # a file already there, compared before it is recorded
        if self._reading is not None:
            self._reading.close_hook()
        return super().open_read(path)

    def rename(self, src: str, dst: str, *, replace: bool = False) -> None:
        if self._renaming is not None and dst.endswith(".fastq.gz"):
            self._renaming.close_hook()
        super().rename(src, dst, replace=replace)
        self._renamed.append(dst)
        if self._after_rename is not None and dst.endswith(".fastq.gz"):
            self._after_rename.close_hook()


class Try:
    """One `deliver` try of the task instance, in its own thread, as a worker would run it."""

    def __init__(
        self,
        number: int,
        plan: DeliveryPlan,
        sessions: sessionmaker[Session],
        ftp: Path,
        *,
        paused: Paused | None = None,
        after_rename: Paused | None = None,
        reading: Paused | None = None,
        renaming: Paused | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        renew_every: timedelta = leases.LEASE_RENEW_EVERY,
    ) -> None:
        self.delivered_at = datetime(2026, 3, 5, 12, number, tzinfo=UTC)
        self.renamed: list[str] = []
        self.lines: list[str] = []
        self.outcome: GroupReport | BaseException | None = None
        self._kwargs: dict[str, Any] = {
            "connect": lambda: Watched(
                ftp, self.renamed, paused, after_rename=after_rename, reading=reading, renaming=renaming
            ),
            "sessions": sessions,
            "delivered_at": self.delivered_at,
            "parallel": 1,
            "log": self.lines.append,
            "holder": f"{TASK}{number} on w{number}:",
            "takes_over": TASK,
            "clock": clock,
            "renew_every": renew_every,
        }
        self._plan = plan
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.outcome = deliver_group(self._plan, GROUP, **self._kwargs)
        except BaseException as exc:
            self.outcome = exc

    def start(self) -> Try:
        self._thread.start()
        return self

    def join(self) -> GroupReport | BaseException | None:
        self._thread.join(WAIT_S)
        assert not self._thread.is_alive(), "a delivery did not finish"
        return self.outcome


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"waited {WAIT_S} s for {what}"
        time.sleep(0.01)


@pytest.fixture
def world(sessions, tmp_path) -> tuple[DeliveryPlan, Path, Path]:
    built = build_run(tmp_path / "runs", POOLS, size=64 * 1024)
    folder = read_run_folder(built.path)
    with sessions.begin() as s:
        load_scenario(s)
        runs.register_run(s, folder)
        plan = runs.freeze_snapshot(s, folder, override=None, actor="test", now=datetime.now(UTC))
    ftp = tmp_path / "ftp"
    ftp.mkdir()
    return plan, built.path, ftp


def ledger_rows(sessions) -> list[Delivery]:
    with sessions() as s:
        return list(s.scalars(select(Delivery)))


def test_a_paused_try_taken_over_by_its_retry_records_nothing_and_renames_nothing(sessions, world) -> None:
    plan, run_folder, ftp = world
    first, second = Paused(), Paused()
    try1 = Try(1, plan, sessions, ftp, paused=first).start()
    assert first.reached.wait(WAIT_S)  # try 1 wrote its first file whole, and stalls before the rename
    try:
        # Airflow failed try 1 (no heartbeat) and retries it: the lease has gone unrenewed for an hour.
        later = lambda: datetime.now(UTC) + timedelta(hours=1)  # noqa: E731
        try2 = Try(2, plan, sessions, ftp, paused=second, clock=later).start()
        assert second.reached.wait(WAIT_S)  # try 2 took over and is in the middle of the same file
    finally:
        first.resume.set()
    lost = try1.join()
    second.resume.set()
    report = try2.join()

    assert try1.renamed == []  # never a final name: not try 2's partial, not even its own complete upload
    assert isinstance(lost, leases.LeaseLost), lost
    assert "lost its lease" in str(lost) and "records nothing more" in str(lost)
    assert isinstance(report, GroupReport), report
    files = plan.group(GROUP).files
    assert report.sent == len(files)
    on_server = {str(p.relative_to(ftp)) for p in ftp.rglob("*") if p.is_file()}
    assert {f.remote_path for f in files} <= on_server
    assert not [p for p in on_server if p.endswith(".partial")]
    for f in files:  # byte-identical
        assert (ftp / f.remote_path).read_bytes() == (run_folder / f.source).read_bytes(), f.remote_path
    rows = ledger_rows(sessions)
    assert sorted(r.remote_path for r in rows) == sorted(f.remote_path for f in files)  # once per file
    assert {r.delivered_at for r in rows} == {try2.delivered_at}  # every row is try 2's
    with sessions() as s:
        assert s.scalars(select(DeliveryLease)).all() == []


def test_a_try_whose_renewal_finds_its_lease_taken_stops_before_its_next_upload(sessions, world) -> None:
    plan, _, ftp = world
    first = Paused()
    try1 = Try(1, plan, sessions, ftp, paused=first, renew_every=timedelta(milliseconds=20)).start()
    assert first.reached.wait(WAIT_S)
    try:
        later = lambda: datetime.now(UTC) + timedelta(hours=1)  # noqa: E731
        report = Try(2, plan, sessions, ftp, clock=later).start().join()  # runs to the end meanwhile
        assert isinstance(report, GroupReport), report
        wait_for(lambda: any("stopping the transfers" in line for line in try1.lines), "try 1's renewal")
    finally:
        first.resume.set()
    lost = try1.join()

    assert isinstance(lost, leases.LeaseLost), lost
    assert try1.renamed == []
    assert len(ledger_rows(sessions)) == len(plan.group(GROUP).files)
    assert not [p for p in ftp.rglob("*") if p.name.endswith(".partial")]


def test_a_live_try_that_keeps_renewing_is_not_taken_over_by_its_retry(sessions, world) -> None:
    plan, _, ftp = world
    now = [datetime(2026, 3, 5, 12, 0, tzinfo=UTC)]
    clock = lambda: now[0]  # noqa: E731
    first = Paused()
    try1 = Try(1, plan, sessions, ftp, paused=first, clock=clock, renew_every=timedelta(milliseconds=20))
    try1.start()
    try:
        assert first.reached.wait(WAIT_S)
        now[0] += timedelta(hours=1)  # an hour since try 1 took the lease, but it renews it

        def renewed() -> bool:
            with sessions() as s:
                return s.scalars(select(DeliveryLease.acquired_at)).one() == now[0]

        wait_for(renewed, "try 1 to renew its lease")
        retry = Try(2, plan, sessions, ftp, clock=clock).start().join()
        assert isinstance(retry, leases.DeliveryBusy), retry
        assert "being delivered to Ext Co by distribute_run/" in str(retry)
    finally:
        first.resume.set()
    report = try1.join()

    assert isinstance(report, GroupReport), report
    assert report.sent == len(plan.group(GROUP).files)
    assert {r.delivered_at for r in ledger_rows(sessions)} == {try1.delivered_at}


def test_a_try_taken_over_between_its_rename_and_its_ledger_row_records_nothing(sessions, world) -> None:
    plan, run_folder, ftp = world
    first, second = Paused(), Paused()
    try1 = Try(1, plan, sessions, ftp, after_rename=first).start()
    assert first.reached.wait(WAIT_S)  # its first file has its final name; its ledger row is next
    try:
        later = lambda: datetime.now(UTC) + timedelta(hours=1)  # noqa: E731
        try2 = Try(2, plan, sessions, ftp, reading=second, clock=later).start()
        assert second.reached.wait(WAIT_S)  # try 2 holds the lease, compares that file, records it next
    finally:
        first.resume.set()
    lost = try1.join()
    second.resume.set()
    report = try2.join()

    assert isinstance(lost, leases.LeaseLost), lost  # fenced at its ledger write
    assert len(try1.renamed) == 1  # its first file, before the takeover
    assert isinstance(report, GroupReport), report
    assert report.skipped == 1  # try 2 compared that file's bytes with the source, then recorded it
    rows = ledger_rows(sessions)
    assert sorted(r.remote_path for r in rows) == sorted(f.remote_path for f in plan.group(GROUP).files)
    assert {r.delivered_at for r in rows} == {try2.delivered_at}  # not one row of try 1's
    for f in plan.group(GROUP).files:
        assert (ftp / f.remote_path).read_bytes() == (run_folder / f.source).read_bytes(), f.remote_path


def test_a_try_that_stalls_between_its_last_check_and_its_rename_never_renames_the_retry_s_partial(
    sessions, world
) -> None:
    plan, run_folder, ftp = world
    first, second = Paused(), Paused()
    try1 = Try(1, plan, sessions, ftp, renaming=first).start()
    assert first.reached.wait(WAIT_S)  # its lease was checked a moment ago; the rename is next
    try:
        later = lambda: datetime.now(UTC) + timedelta(hours=1)  # noqa: E731
        try2 = Try(2, plan, sessions, ftp, paused=second, clock=later).start()
        assert second.reached.wait(WAIT_S)  # try 2's partial of the same file is written, not renamed
    finally:
        first.resume.set()
    lost = try1.join()
    second.resume.set()
    report = try2.join()

    assert try1.renamed == []  # its own partial was removed by try 2; try 2's is not its to rename
    assert isinstance(lost, leases.LeaseLost), lost  # at its next file
    assert isinstance(report, GroupReport), report
    assert report.sent == len(plan.group(GROUP).files)
    rows = ledger_rows(sessions)
    assert {r.delivered_at for r in rows} == {try2.delivered_at}
    for f in plan.group(GROUP).files:
        assert (ftp / f.remote_path).read_bytes() == (run_folder / f.source).read_bytes(), f.remote_path
