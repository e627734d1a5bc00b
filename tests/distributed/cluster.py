"""A distributed Airflow on 127.0.0.1 for one test: real processes, no Docker.

Redis (started here on a free port, nothing saved), Airflow's metadata database on the test PostgreSQL,
and `airflow scheduler`, `airflow dag-processor`, `airflow api-server` (the execution API that Celery
workers' tasks talk to) and `airflow celery worker`s with the CeleryExecutor, as a facility would run them
on several machines. Every process runs in its own session with its log in the cluster's folder; `stop()`
kills each one with its whole tree (task processes put themselves in their own process group), and
`logs()` gives the end of every log for a failure message.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from seqshare.localsftp import descendants

AIRFLOW = str(Path(sys.executable).parent / "airflow")
REDIS = "/usr/bin/redis-server"
LOG_TAIL = 3000  # characters of each process's log in a failure message
TASK_LOG_TAIL = 1500  # ... and of each task try's log
T = TypeVar("T")


class ClusterError(AssertionError):
    """Something the test waited for did not happen; the message carries every process's log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kill_tree(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Signal the process, its process group and every descendant (collected first: once the parent is
    dead its children are re-parented and can no longer be found)."""
    pids = descendants(process.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
    for pid in [process.pid, *pids]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


@dataclass
class Cluster:
    home: Path
    env: dict[str, str]
    airflow_db_url: str  # SQLAlchemy URL of Airflow's metadata database (read by the test)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    expected_alive: set[str] = field(default_factory=set)  # a death of one of these fails a wait at once
    _engine: Engine | None = None

    # --- processes -------------------------------------------------------------------------------

    def log_path(self, name: str) -> Path:
        return self.home / f"{name}.log"

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with self.log_path(name).open("ab") as log:
            process = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.processes[name] = process
        self.expected_alive.add(name)
        return process

    def run(self, name: str, argv: list[str], timeout: float = 300) -> str:
        """Run an `airflow` command to its end; its output goes to its log, a failure raises with it."""
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)
        with self.log_path(name).open("a") as log:
            log.write(done.stdout + done.stderr)
        if done.returncode != 0:
            raise ClusterError(f"{' '.join(argv)} exited with {done.returncode}{self.logs()}")
        return done.stdout

    def start_worker(self, name: str, queues: list[str]) -> subprocess.Popen[bytes]:
        return self.start(
            name,
            [
                AIRFLOW,
                *("celery", "worker", "--queues", ",".join(queues), "--concurrency", "2"),
                *("--celery-hostname", f"{name}@%h", "--skip-serve-logs"),
                *("--without-mingle", "--without-gossip"),
            ],
        )

    def kill(self, name: str) -> None:
        """SIGKILL a process with everything below it: a lost machine, nothing cleaned up."""
        process = self.processes[name]
        self.expected_alive.discard(name)
        kill_tree(process, signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                kill_tree(process, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            kill_tree(process, signal.SIGKILL)  # and whatever it left behind
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        if self._engine is not None:
            self._engine.dispose()

    def logs(self) -> str:
        """The end of each process's log, then of each task try's log (what a failure message carries)."""
        parts = []
        for path in sorted(self.home.glob("*.log")):
            content = path.read_text(errors="replace")
            parts.append(f"\n----- {path.name} (last {LOG_TAIL} characters) -----\n{content[-LOG_TAIL:]}")
        tasks = self.home / "airflow" / "logs"
        for path in sorted(tasks.rglob("*.log")) if tasks.is_dir() else []:
            content = path.read_text(errors="replace")
            name = path.relative_to(tasks)
            parts.append(f"\n----- task log {name} (last {TASK_LOG_TAIL}) -----\n{content[-TASK_LOG_TAIL:]}")
        return "".join(parts)

    @contextlib.contextmanager
    def explained(self) -> Iterator[None]:
        """Attach every process's log to a failing assertion raised in the block."""
        try:
            yield
        except ClusterError:
            raise
        except AssertionError as exc:
            raise ClusterError(f"{exc}{self.logs()}") from exc

    # --- Airflow's metadata database, read-only ----------------------------------------------------

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        if self._engine is None:
            self._engine = create_engine(self.airflow_db_url, pool_size=1)
        with self._engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]

    def dag_run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self.query(
            "SELECT state FROM dag_run WHERE dag_id = :dag AND run_id = :run", dag=dag_id, run=run_id
        )
        return rows[0][0] if rows else None

    def task_instances(self, dag_id: str, run_id: str) -> list[tuple[str, int, str | None, int, str]]:
        """(task_id, map_index, state, try_number, queue) of the DAG run's task instances."""
        return self.query(  # type: ignore[return-value]
            "SELECT task_id, map_index, state, try_number, queue FROM task_instance "
            "WHERE dag_id = :dag AND run_id = :run ORDER BY task_id, map_index",
            dag=dag_id,
            run=run_id,
        )

    def task_logs(self, dag_id: str, run_id: str, task_id: str) -> dict[str, str]:
        """{path relative to the logs folder: text} of every try of the task (mapped or not)."""
        base = self.home / "airflow" / "logs"
        folder = base / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        return {
            str(p.relative_to(base)): p.read_text(errors="replace") for p in sorted(folder.rglob("*.log"))
        }

    # --- waiting ------------------------------------------------------------------------------------

    def wait_for(self, what: str, check: Callable[[], T | None], timeout: float, every: float = 0.5) -> T:
        """Poll `check` until it returns something truthy; a bound on waiting, not a claim about speed.
        Fails naming `what`, with every log, when the bound passes or a process died."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            dead = [n for n, p in self.processes.items() if p.poll() is not None and n in self.expected_alive]
            if dead:
                raise ClusterError(f"waiting for {what}: {', '.join(dead)} exited{self.logs()}")
            if time.monotonic() > deadline:
                raise ClusterError(f"waiting for {what}: not within {timeout:.0f} s{self.logs()}")
            time.sleep(every)


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A Redis on a free port of 127.0.0.1 that saves nothing; yields its URL; stopped afterwards."""
    if not os.access(REDIS, os.X_OK):
        raise ClusterError(f"{REDIS} is missing: install redis-server (scripts/test does)")
    port = free_port()
    log = (folder / "redis.log").open("wb")
    process = subprocess.Popen(
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise ClusterError(
                    f"redis-server did not answer on port {port}: {(folder / 'redis.log').read_text()}"
                )
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        kill_tree(process, signal.SIGKILL)
        process.wait(timeout=10)
        log.close()
