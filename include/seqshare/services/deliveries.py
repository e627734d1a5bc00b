"""What ops see of one run's deliveries: the frozen plan joined with the ledger, file by file.

Read-only, for the Deliveries view of a `distribute_run` DAG run (the Airflow plugin). The view knows a DAG
run, not a seqshare run, so `run_of_dag_run` maps one to the other from what the DAG run itself carries.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from seqshare.db.models import Run, RunSnapshot
from seqshare.delivery.plan import DeliveryPlan
from seqshare.scanner import DAG_RUN_PREFIX
from seqshare.services import ledger, lookup
from seqshare.services.ledger import LedgerRow

NOT_DELIVERED = "not delivered"


def run_of_dag_run(session: Session, dag_run_id: str, conf: Mapping[str, Any] | None) -> str | None:
    """The seqshare run id of a `distribute_run` DAG run, or None when seqshare does not know it (yet).

    In order, each a fact rather than a guess:
    1. the snapshot this DAG run froze (`RunSnapshot.frozen_by` is `airflow:<dag run id>`);
    2. the run registered from the run folder in the DAG run's conf (scanned and manual runs both carry
       it; a re-run of a folder frozen by an earlier DAG run is found here);
    3. the run named by a scanned DAG run id, `run__<run id>` (not the hashed `run__…~<digest>` form,
       which cannot be read back).
    """
    frozen = session.scalar(
        select(Run.run_id)
        .join(RunSnapshot, RunSnapshot.run_id == Run.id)
        .where(RunSnapshot.frozen_by == f"airflow:{dag_run_id}")
    )
    if frozen is not None:
        return frozen
    folder = (conf or {}).get("run_folder")
    if isinstance(folder, str) and folder.strip() and "\0" not in folder:
        candidates = {folder, os.path.realpath(folder)}  # registered resolved (read_run_folder)
        found = session.scalars(select(Run.run_id).where(Run.run_folder.in_(candidates))).all()
        if len(found) == 1:
            return found[0]
    if dag_run_id.startswith(DAG_RUN_PREFIX) and "~" not in dag_run_id:
        named = dag_run_id.removeprefix(DAG_RUN_PREFIX)
        if session.scalar(select(Run.id).where(Run.run_id == named)) is not None:
            return named
    return None


@dataclass(frozen=True)
class FileDelivery:
    """One planned file of a group and its ledger state: delivered, purged, or not delivered (yet)."""

    pool: str
    name: str
    remote_path: str
    size: int
    state: str
    md5: str | None = None
    delivered_at: datetime | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class GroupDeliveries:
    group: str
    run_dir: str
    pools: tuple[str, ...]
    files: tuple[FileDelivery, ...]

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)

    def count(self, state: str) -> int:
        return sum(1 for f in self.files if f.state == state)


@dataclass(frozen=True)
class RunDeliveries:
    """A run's frozen plan (None: not frozen yet), each receiving group's files with their ledger state,
    and ledger rows outside the plan (none, unless the plan and the ledger disagree: shown, not hidden)."""

    run_id: str
    run_folder: str | None
    plan: DeliveryPlan | None
    frozen_at: datetime | None
    frozen_by: str | None
    groups: tuple[GroupDeliveries, ...]
    unplanned: tuple[LedgerRow, ...]


def run_deliveries(session: Session, run_id: str) -> RunDeliveries:
    """The plan and the ledger of a known run (an unknown run is `NotFound`)."""
    run = lookup.run(session, run_id)
    frozen = session.get(RunSnapshot, run.id)
    rows = ledger.ledger(session, run_id)
    if frozen is None or frozen.plan is None:  # not frozen yet (or frozen before plans were kept)
        at, by = (frozen.frozen_at, frozen.frozen_by) if frozen else (None, None)
        return RunDeliveries(run_id, run.run_folder, None, at, by, (), tuple(rows))
    plan = DeliveryPlan.from_dict(frozen.plan)
    by_path = {(r.group, r.remote_path): r for r in rows}
    groups = []
    for g in plan.groups:
        files = []
        for f in g.files:
            row = by_path.pop((g.group, f.remote_path), None)
            files.append(
                FileDelivery(
                    pool=f.pool,
                    name=PurePosixPath(f.remote_path).name,
                    remote_path=f.remote_path,
                    size=f.size,
                    state=row.state if row else NOT_DELIVERED,
                    md5=row.md5 if row else None,
                    delivered_at=row.delivered_at if row else None,
                    expires_at=row.expires_at if row else None,
                )
            )
        groups.append(GroupDeliveries(g.group, g.run_dir(plan.run_id), g.pools, tuple(files)))
    return RunDeliveries(
        run_id=run_id,
        run_folder=run.run_folder,
        plan=plan,
        frozen_at=frozen.frozen_at,
        frozen_by=frozen.frozen_by,
        groups=tuple(groups),
        unplanned=tuple(by_path.values()),
    )
