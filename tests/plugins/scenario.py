"""A frozen run with deliveries in the ledger, for the Deliveries view's tests (in-process and in Airflow).

The delivery scenario of `tests.runs`, with HTML in a group's and a project's name (to prove escaping),
frozen by the scanned DAG run `run__<run id>`; Ext Co has two files delivered and one purged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from seqshare.db.models import Delivery, DeliveryState, Group, Project
from seqshare.runfolder import read_run_folder
from seqshare.scanner import dag_run_id_for
from seqshare.services import ledger, runs
from tests.runs import POOLS, RUN_ID, build_run, load_scenario

EVIL_GROUP = '<script>alert("group")</script>'  # renames Ext Two (external)
EVIL_PROJECT = "<b>Int</b> & <i>Project</i>"  # renames Int Project (SLX-1, SLX-2)
SCANNED_DAG_RUN = dag_run_id_for(RUN_ID)
FROZEN_AT = datetime(2026, 3, 5, 8, 0, tzinfo=UTC)
DELIVERED_AT = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)
PURGED_AT = DELIVERED_AT + timedelta(days=31)


@dataclass(frozen=True)
class FrozenRun:
    run_folder: Path
    delivered: tuple[str, ...]  # remote paths in the ledger, delivered
    purged: str  # remote path in the ledger, purged
    md5: str


def freeze_with_deliveries(sessions: sessionmaker[Session], parent: Path) -> FrozenRun:
    path = build_run(parent, POOLS).path
    with sessions.begin() as s:
        load_scenario(s)
        s.scalars(select(Group).where(Group.name == "Ext Two")).one().name = EVIL_GROUP
        s.scalars(select(Project).where(Project.name == "Int Project")).one().name = EVIL_PROJECT
    folder = read_run_folder(path)
    with sessions.begin() as s:
        runs.register_run(s, folder)
        plan = runs.freeze_snapshot(
            s, folder, override=None, actor=f"airflow:{SCANNED_DAG_RUN}", now=FROZEN_AT
        )
    files = plan.group("Ext Co").files[:3]
    md5 = "0123456789abcdef0123456789abcdef"
    with sessions.begin() as s:
        for f in files:
            ledger.record_delivery(
                s,
                run_id=RUN_ID,
                group="Ext Co",
                pool=f.pool,
                remote_path=f.remote_path,
                size=f.size,
                md5=md5,
                delivered_at=DELIVERED_AT,
            )
        purged = s.scalars(select(Delivery).where(Delivery.remote_path == files[2].remote_path)).one()
        purged.state, purged.purged_at, purged.purged_by = DeliveryState.PURGED, PURGED_AT, "test"
    return FrozenRun(path.resolve(), tuple(f.remote_path for f in files[:2]), files[2].remote_path, md5)
