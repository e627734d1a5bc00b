"""Forty `seqshare share set` processes at once, on SQLite and PostgreSQL: the history must stay true.

Each change is a real process running the `seqshare` console entry point (`seqshare.cli.run`) with its own
database connection. A launcher imports the CLI once and forks them, holding all 40 at a barrier until every
one is ready, then releasing them together: this is as hard a race as 40 people pressing the button at once,
and it spares 40 imports of the CLI on CI's two cores.

Then every process must have made its change (a lost race is waited out or retried; a refusal would have
to be one clear line, never a traceback or a raw database error), the share history must agree with the
audit trail at every event (what the snapshot rule reads is what the audit says happened), and no group
may hold two open shares.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from seqshare.db.engine import make_engine, make_sessions
from seqshare.db.models import Project, Share
from seqshare.services import audit
from tests import databases
from tests.e2e.test_cli import SEQSHARE
from tests.world import WORLD

PROJECT = "Int Project"
GROUPS = ["Ext Co", "Ext Two", "Other Lab", "Third Lab"]
ROUNDS = 10
TIME_LIMIT = 120  # seconds for the whole burst; each change takes milliseconds once it has the lock

# Runs one read-only command, then forks one `seqshare` per argument list (stdout and stderr to files),
# releases them together once all are forked, and prints their exit codes as JSON. A child that hangs is
# killed by its alarm.
LAUNCHER = r"""
import contextlib, json, os, signal, sys
import seqshare.cli

jobs, outdir, limit, warm_up = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
    assert seqshare.cli.main(warm_up) == 0  # a read: the ORM set up once, not in each child
gate_r, gate_w = os.pipe()
pids = []
for i, args in enumerate(jobs):
    pid = os.fork()
    if pid == 0:
        os.close(gate_w)
        signal.alarm(limit)
        for fd, name in ((1, "out"), (2, "err")):
            f = os.open(os.path.join(outdir, f"{i}.{name}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(f, fd)
            os.close(f)
        os.read(gate_r, 1)  # blocks until the launcher closes the gate: EOF for every child at once
        sys.argv = ["seqshare", *args]
        try:
            seqshare.cli.run()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 99
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    pids.append(pid)
os.close(gate_r)
os.close(gate_w)
codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
print(json.dumps(codes))
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database holding the test world, through the real CLI."""
    world = tmp_path / "world.yaml"
    world.write_text(yaml.safe_dump(WORLD))

    def prepare(url: str) -> str:
        for args in (["db", "upgrade"], ["lims", "import", str(world)]):
            done = _cli(url, *args)
            assert done.returncode == 0, done.stderr
        return url

    if request.param == "sqlite":
        yield prepare(databases.scratch_sqlite(tmp_path))
    else:
        with databases.scratch_postgres() as url:
            yield prepare(url)


def _env(db_url: str) -> dict[str, str]:
    env = {**os.environ, "SEQSHARE_DATABASE_URL": db_url}
    env.pop("SEQSHARE_DEBUG", None)
    return env


def _cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SEQSHARE, *args], capture_output=True, text=True, env=_env(db_url), timeout=60, check=False
    )


def _burst(db_url: str, jobs: list[list[str]], outdir: Path) -> list[tuple[int, str, str]]:
    """Run the jobs as simultaneous `seqshare` processes; (exit code, stdout, stderr) of each."""
    outdir.mkdir()
    launched = subprocess.run(
        [
            sys.executable,
            "-c",
            LAUNCHER,
            json.dumps(jobs),
            str(outdir),
            str(TIME_LIMIT),
            json.dumps(["share", "show", PROJECT, "--json"]),
        ],
        capture_output=True,
        text=True,
        env=_env(db_url),
        timeout=TIME_LIMIT + 30,
        check=False,
    )
    assert launched.returncode == 0, launched.stderr
    codes = json.loads(launched.stdout)
    return [
        (code, (outdir / f"{i}.out").read_text(), (outdir / f"{i}.err").read_text())
        for i, code in enumerate(codes)
    ]


def test_forty_simultaneous_changes_leave_a_history_that_agrees_with_the_audit(
    db_url: str, tmp_path: Path
) -> None:
    jobs = [
        ["share", "set", PROJECT, group, "--as", "owner", "--json"] for _ in range(ROUNDS) for group in GROUPS
    ]
    results = _burst(db_url, jobs, tmp_path / "burst")

    # Every process made its change or was refused in one clear line: no traceback, no raw database error.
    raw = ("Traceback", "constraint", "IntegrityError", "psycopg", "sqlite3", "history cannot")
    unclear = [
        (code, stderr)
        for code, _, stderr in results
        if code not in (0, 1)
        or (code == 0 and stderr)
        or (code == 1 and not (stderr.startswith("error: ") and stderr.count("\n") == 1))
        or any(r in stderr for r in raw)
    ]
    assert not unclear, sorted({stderr for _, stderr in unclear})
    # And what a person expects: their change went through (the race is waited out or retried).
    assert [stderr for code, _, stderr in results if code] == []
    changed = [m for m in (json.loads(stdout) for _, stdout, _ in results) if m["changed"]]

    engine = make_engine(db_url)
    try:
        with make_sessions(engine).begin() as s:
            events = audit.audit_events(s, project=PROJECT)
            shares = list(
                s.scalars(
                    select(Share)
                    .join(Share.project)
                    .where(Project.name == PROJECT)
                    .options(selectinload(Share.group))
                )
            )
    finally:
        engine.dispose()

    def open_just_after(t: datetime) -> list[str]:
        return sorted(
            s.group.name for s in shares if s.granted_at <= t and (s.revoked_at is None or s.revoked_at > t)
        )

    def open_just_before(t: datetime) -> list[str]:
        return sorted(
            s.group.name for s in shares if s.granted_at < t and (s.revoked_at is None or s.revoked_at >= t)
        )

    # One audit event per change reported, each at its own instant, each taking the state the last one left.
    assert len(events) == len(changed)
    assert sorted(e.after for e in events) == sorted(m["after"] for m in changed)
    assert all(a.at < b.at for a, b in pairwise(events)), "two changes at one instant"
    previous: list[str] = []
    for e in events:
        assert sorted(e.before) == previous, e
        assert open_just_before(e.at) == sorted(e.before), e
        assert open_just_after(e.at) == sorted(e.after), e
        previous = sorted(e.after)

    # No group ever holds two open shares of the project, nor two overlapping intervals.
    for group in GROUPS:
        mine = sorted((s for s in shares if s.group.name == group), key=lambda s: (s.granted_at, s.id))
        assert sum(s.revoked_at is None for s in mine) <= 1, group
        for a, b in pairwise(mine):
            assert a.revoked_at is not None and a.revoked_at <= b.granted_at, group
    assert sorted(s.group.name for s in shares if s.revoked_at is None) == previous
