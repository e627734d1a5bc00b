"""The catalogue reads a run's files from the plan `services.runs.freeze_snapshot` really writes, on SQLite
and PostgreSQL: every path relative to the run folder, every size as on disk, the md5 once delivered."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import Delivery, DeliveryState, Group, Pool, Run
from seqshare.runfolder import read_run_folder
from seqshare.services import catalog, runs
from tests.runs import POOLS, RUN_ID, build_run, load_scenario

NOW = datetime(2026, 3, 5, tzinfo=UTC)


def test_files_come_from_the_frozen_plan_with_md5s_from_the_ledger(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    built = build_run(tmp_path, POOLS, size=1024)
    folder = read_run_folder(built.path)
    with sessions.begin() as s:
        load_scenario(s)
        runs.register_run(s, folder)
        runs.freeze_snapshot(s, folder, override=None, actor="airflow:test", now=NOW)
        first = built.files["SLX-1"][0]
        run = s.scalar(select(Run).where(Run.run_id == RUN_ID))
        group = s.scalar(select(Group).where(Group.name == "Ext Co"))
        pool = s.scalar(select(Pool).where(Pool.name == "SLX-1"))
        assert run and group and pool
        s.add(
            Delivery(
                run_id=run.id,
                group_id=group.id,
                pool_id=pool.id,
                remote_path=f"extco/{RUN_ID}/SLX-1/{first.name}",
                size=first.stat().st_size,
                md5=hashlib.md5(first.read_bytes()).hexdigest(),
                state=DeliveryState.DELIVERED,
                delivered_at=NOW,
                expires_at=NOW + timedelta(days=30),
            )
        )

    with sessions.begin() as s:
        answer = catalog.project_files(s, username="owner", project="Int Project", now=NOW)
        other = catalog.project_files(s, username="other", project="Other Project", now=NOW)

    assert [(f.run_id, f.pool) for f in answer] == [(RUN_ID, "SLX-1"), (RUN_ID, "SLX-2")]
    for pool_files in answer:
        on_disk = sorted(built.files[pool_files.pool])
        assert pool_files.files is not None
        assert [(f.path, f.size) for f in pool_files.files] == [
            (str(p.relative_to(built.path)), p.stat().st_size) for p in on_disk
        ]
    md5s = {f.path: f.md5 for f in answer[0].files or ()}
    assert md5s[str(first.relative_to(built.path))] == hashlib.md5(first.read_bytes()).hexdigest()
    assert sum(m is not None for m in md5s.values()) == 1
    # SLX-4 goes to no external group (shared only after sequencing): the plan lists its files all the same
    ((pool, files),) = [(f.pool, f.files) for f in other]
    assert pool == "SLX-4" and files is not None
    assert [(f.path, f.size, f.md5) for f in files] == [
        (str(p.relative_to(built.path)), p.stat().st_size, None) for p in sorted(built.files["SLX-4"])
    ]
