"""The distributed mode, proven without Docker (issue 11): CeleryExecutor, real processes, one machine.

Airflow's scheduler, dag-processor, api-server and Celery workers run as separate processes against
PostgreSQL (throwaway databases for Airflow's metadata and seqshare's) and a Redis this test starts; the
SFTP server is a real OpenSSH sshd. A run folder dropped into the watched root is picked up by
`scan_run_folders`; `distribute_run`'s transfer tasks go to their own Celery queue. While a file is being
written on the server (its `.partial` exists), the worker is SIGKILLed with every process below it, like a
lost machine; the scheduler notices the silent task (short heartbeat timeout), Airflow retries it on a
second worker, and the retry takes over the lease its lost try left. The run ends green with every file
byte-identical, no `.partial` left, no file or ledger row twice, and logs that say what happened.

About two and a half minutes on 2 busy cores, most of it Airflow's processes starting and the retry delay.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import select

from seqshare.db.engine import make_sessions
from seqshare.db.models import DeliveryLease
from seqshare.services import ledger
from tests import databases
from tests.airflow_env import DAGS, REPO
from tests.distributed.cluster import AIRFLOW, Cluster, free_port, redis_server
from tests.runs import EXPECTED, FTP_DIRS, POOLS, RUN_ID, build_run, load_scenario
from tests.sshd import SshdServer, start_sshd, stop_sshd

pytestmark = pytest.mark.slow

TRANSFER_QUEUE = "seqshare-transfer"
DISTRIBUTE = "distribute_run"
SCAN = "scan_run_folders"
DAG_RUN = f"run__{RUN_ID}"
FILE_SIZE = 24 * 1024 * 1024  # big enough to catch a file mid-flight
START_BOUND_S = 300  # bounds on waiting (a loaded 2-core machine), never assertions on speed
RUN_BOUND_S = 420


def tree(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*")) if p.is_file()}


def partials(root: Path) -> list[str]:
    return [str(p) for p in root.rglob(".*.partial")]


def airflow_env(
    home: Path, *, airflow_db: str, app_db: str, broker: str, api_port: int, **extra: str
) -> dict:
    """One environment for every process, as a deployment shares one airflow.cfg."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SEQSHARE_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API_AUTH__JWT_SECRET": "seqshare-celery-test-" + "j" * 64,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db,
            # Airflow would derive postgresql+asyncpg (not in the lock): psycopg 3 serves both.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": airflow_db.replace(
                "+psycopg:", "+psycopg_async:", 1
            ),
            "AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS": "False",
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{airflow_db}",
            # A lost worker's task stops heartbeating: failed (then retried) after 20 s, looked for every 2 s.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "90",  # a message the dead worker had prefetched
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "SEQSHARE_DATABASE_URL": app_db,
            "SEQSHARE_TRANSFER_QUEUE": TRANSFER_QUEUE,
            "PYTHONPATH": os.pathsep.join([str(REPO / "include"), str(REPO)]),
            **extra,
        }
    )
    return env


@pytest.fixture
def sshd(tmp_path) -> Iterator[SshdServer]:
    server = start_sshd(tmp_path / "sshd")
    try:
        yield server
    finally:
        stop_sshd(server)


def test_a_celery_worker_lost_mid_transfer_is_retried_elsewhere_and_the_run_completes_exactly_once(
    sshd: SshdServer, tmp_path: Path
) -> None:
    home = tmp_path / "cluster"
    (home / "dags").mkdir(parents=True)
    for dag_file in DAGS.glob("*.py"):  # all but the daily purge, which is not under test here
        if dag_file.name != "purge_expired_deliveries.py":
            shutil.copy(dag_file, home / "dags" / dag_file.name)
    run_root, staging = tmp_path / "runs", tmp_path / "staging"
    run_root.mkdir()
    ftp_root = sshd.base_dir / "ftp"
    ftp_root.mkdir()

    with ExitStack() as stack:
        for big in (staging, run_root, ftp_root):  # ~700 MB of fastq files; the logs stay for a failure
            stack.callback(shutil.rmtree, big, ignore_errors=True)
        app_db = stack.enter_context(databases.scratch_postgres())
        airflow_db = stack.enter_context(databases.scratch_postgres())
        engine = databases.migrated_engine(app_db)
        stack.callback(engine.dispose)
        sessions = make_sessions(engine)
        with sessions.begin() as s:
            load_scenario(s)
        broker = stack.enter_context(redis_server(home))
        api_port = free_port()
        env = airflow_env(
            home,
            airflow_db=airflow_db,
            app_db=app_db,
            broker=broker,
            api_port=api_port,
            SEQSHARE_RUN_ROOTS=str(run_root),
            AIRFLOW_CONN_SEQSHARE_SFTP=json.dumps(sshd.connection(ftp_root)),
        )
        cluster = Cluster(home=home, env=env, airflow_db_url=airflow_db)
        stack.callback(cluster.stop)

        started = time.monotonic()
        cluster.run("migrate", [AIRFLOW, "db", "migrate"])
        cluster.run("pools", [AIRFLOW, "pools", "set", "sftp_sessions", "4", "SFTP sessions"])
        cluster.start("api-server", [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(api_port)])
        cluster.start("scheduler", [AIRFLOW, "scheduler", "--skip-serve-logs"])
        cluster.start("dag-processor", [AIRFLOW, "dag-processor"])
        cluster.start_worker("worker1", ["default", TRANSFER_QUEUE])

        with cluster.explained():
            cluster.wait_for(
                "both DAGs parsed and unpaused",
                lambda: (
                    len(
                        cluster.query(
                            "SELECT dag_id FROM dag WHERE dag_id IN (:a, :b) AND NOT is_paused",
                            a=DISTRIBUTE,
                            b=SCAN,
                        )
                    )
                    == 2
                ),
                START_BOUND_S,
            )
            up = time.monotonic()
            # The instrument and the demultiplexer finish: the folder appears whole in the watched root.
            built = build_run(staging, POOLS, lanes=(1,), size=FILE_SIZE)
            os.rename(built.path, run_root / RUN_ID)
            cluster.run("trigger-scan", [AIRFLOW, "dags", "trigger", SCAN])

            partial = cluster.wait_for(
                "a file being written on the SFTP server",
                lambda: partials(ftp_root) or cluster.dag_run_state(DISTRIBUTE, DAG_RUN) in ("failed",),
                RUN_BOUND_S,
                every=0.02,
            )
            assert partial is not True, "distribute_run failed before any transfer"
            cluster.kill("worker1")  # the machine is gone: worker, its pool, the task processes
            killed_at = time.monotonic()
            running = [
                ti
                for ti in cluster.task_instances(DISTRIBUTE, DAG_RUN)
                if ti[0] == "deliver" and ti[2] == "running"
            ]
            assert running, "no deliver task was running when the worker was killed"
            assert partials(ftp_root), "the kill left no .partial: it did not catch a transfer mid-flight"
            cluster.start_worker("worker2", ["default", TRANSFER_QUEUE])

            state = cluster.wait_for(
                "distribute_run to finish",
                lambda: (
                    cluster.dag_run_state(DISTRIBUTE, DAG_RUN) in ("success", "failed")
                    and cluster.dag_run_state(DISTRIBUTE, DAG_RUN)
                ),
                RUN_BOUND_S,
                every=1,
            )
            print(  # for the record (pytest -s): where the time goes
                f"cluster up {up - started:.0f} s, dropped folder to first .partial {killed_at - up:.0f} s, "
                f"worker killed to the run finished {time.monotonic() - killed_at:.0f} s"
            )
            tis = cluster.task_instances(DISTRIBUTE, DAG_RUN)
            assert state == "success", tis

            # The transfer tasks went to their queue, everything else to the default one.
            assert {(task, queue) for task, _, _, _, queue in tis} == {
                ("register_run", "default"),
                ("freeze_snapshot", "default"),
                ("plan_deliveries", "default"),
                ("deliver", TRANSFER_QUEUE),
                ("record_and_report", "default"),
            }
            delivers = {index: (st, tries) for task, index, st, tries, _ in tis if task == "deliver"}
            assert all(st == "success" for st, _ in delivers.values()), delivers
            killed = {ti[1] for ti in running}
            assert all(delivers[i][1] >= 2 for i in killed), (killed, delivers)  # retried after the loss

            # Every file once, byte-identical, under its final name; manifests check.
            expected = {
                f"{FTP_DIRS[group]}/{RUN_ID}/{pool}/{f.name}": f
                for group, pools in EXPECTED.items()
                for pool in pools
                for f in (run_root / RUN_ID / "BCLConvert" / pool).iterdir()
            }
            remote = tree(ftp_root)
            assert not partials(ftp_root)
            data = {p: q for p, q in remote.items() if p.endswith(".fastq.gz")}
            assert data.keys() == expected.keys()
            for path, source in expected.items():
                assert data[path].read_bytes() == source.read_bytes(), path
            for group, pools in EXPECTED.items():
                for pool in pools:
                    check = subprocess.run(
                        ["md5sum", "-c", "md5sums.txt"],
                        cwd=ftp_root / FTP_DIRS[group] / RUN_ID / pool,
                        capture_output=True,
                        text=True,
                    )
                    assert check.returncode == 0, check.stdout + check.stderr

            # The ledger: one row per delivered file, no lease left behind.
            with sessions.begin() as s:
                rows = ledger.ledger(s, RUN_ID)
                leases = s.scalars(select(DeliveryLease)).all()
            assert sorted(r.remote_path for r in rows) == sorted(expected)
            assert leases == []

            # What ops read: no paramiko chatter in the deliver logs; the report ends with the outcome.
            deliver_logs = cluster.task_logs(DISTRIBUTE, DAG_RUN, "deliver")
            assert deliver_logs
            assert not [p for p, t in deliver_logs.items() if "Connected (version 2.0" in t], (
                deliver_logs.keys()
            )
            (report_log,) = cluster.task_logs(DISTRIBUTE, DAG_RUN, "record_and_report").values()
            outcome = report_log[report_log.index("Outcome per group:") :]
            assert (
                f"ledger: {len(expected)} files, {sum(q.stat().st_size for q in expected.values()):,} bytes"
                in (report_log)
            )
            assert (
                report_log.rfind(f"run {RUN_ID}: snapshot at", 0, report_log.index("Outcome per group:")) >= 0
            )
            for group in EXPECTED:
                assert f"{group}: delivered," in outcome, outcome
