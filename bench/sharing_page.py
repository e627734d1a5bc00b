"""Benchmark the Data Sharing page's project list for a large group, on SQLite and PostgreSQL.

Run:  .venv/bin/python bench/sharing_page.py [--repeats N] [--backend sqlite|postgresql|both]

Why: the issue asks that the list of a group with 1,000 projects (10 pools each) render in well under a
second with a fixed number of queries whatever the count. A test cannot time it (no timed assertions), so
this measures it, against peers measured in the same run.

One database per backend (SQLite in /dev/shm; PostgreSQL a scratch database on SEQSHARE_TEST_PG_ADMIN_URL,
dropped afterwards) holds three internal groups with 10, 100 and 1,000 projects (5 members each, owners
round-robin), 10 pools per project, 8 of them sequenced on runs (8 lanes each), each project shared now with
an internal and an external group and once, in the past, with another external group (a revoked share).
So every group's list is read from the same tables, only its own size differs.

For each group, through the real app in-process (FastAPI's TestClient, the SSO header from 127.0.0.1 as the
signed-in user: no network, no token hashing), interleaved, medians of N:
- queries: SQL statements per `GET /projects` (SQLAlchemy `before_cursor_execute`), actor look-up included;
  they must be the same at 10, 100 and 1,000 projects, else the bench exits 1;
- page: the whole `GET /projects` (actor, service, Jinja template, response);
- service: `sharing_page.group_projects` alone in a transaction;
- select (peer): the service's three reads (projects with owners, pools, open shares) as plain SQL on the
  same engine, fetched as tuples: the floor of reading these rows.
Reported: page per project, page / select, and page at 1,000 / page at 10 per project. Also the queries of a
project's own page (`GET /projects/<one of 1,000>` vs one of 10). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, event, insert, text

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "include"), str(ROOT)]

from fastapi.testclient import TestClient  # noqa: E402

from seqshare.db.models import Group, Pool, Project, Run, RunLane, Share, User  # noqa: E402
from seqshare.rules import GroupKind  # noqa: E402
from seqshare.services import sharing_page  # noqa: E402
from seqshare.web.app import create_app  # noqa: E402
from tests.databases import migrated_engine, scratch_postgres, scratch_sqlite  # noqa: E402

SIZES = (10, 100, 1000)
POOLS = 10
SEQUENCED = 8  # of each project's pools
MEMBERS = 5
T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
SECRET = "bench-secret-" + "x" * 40
PROXY = "127.0.0.1"

# The peer: the same three reads as the service (projects with owners, pools, open shares), as plain SQL
# fetched as tuples on one connection: no ORM, no objects, no template. The floor of reading these rows.
PEER_SELECTS = (
    """SELECT p.id, p.name, u.username, g.name FROM project p JOIN app_user u ON u.id = p.owner_id
       JOIN research_group g ON g.id = u.group_id WHERE u.group_id = :group_id ORDER BY p.name""",
    """SELECT pool.project_id, pool.name FROM pool WHERE pool.project_id IN
       (SELECT p.id FROM project p JOIN app_user u ON u.id = p.owner_id WHERE u.group_id = :group_id)
       ORDER BY pool.name""",
    """SELECT s.project_id, g.name, g.kind, g.is_special, g.ftp_dir FROM share s
       JOIN research_group g ON g.id = s.group_id WHERE s.revoked_at IS NULL AND s.project_id IN
       (SELECT p.id FROM project p JOIN app_user u ON u.id = p.owner_id WHERE u.group_id = :group_id)""",
)


def load(engine: Engine) -> dict[int, tuple[str, int, str]]:
    """The bench's facility, inserted in bulk; size → (a member's username, the group id, one project)."""
    out: dict[int, tuple[str, int, str]] = {}
    with engine.begin() as conn:
        targets = {}
        for name, kind, ftp in (
            ("Partner Lab", GroupKind.INTERNAL, None),
            ("Acme Ext", GroupKind.EXTERNAL, "acme"),
            ("Old Ext", GroupKind.EXTERNAL, "old"),
        ):
            targets[name] = conn.execute(
                insert(Group).values(name=name, kind=kind, ftp_dir=ftp).returning(Group.id)
            ).scalar_one()
        run_no = 0
        for size in SIZES:
            group_id = conn.execute(
                insert(Group).values(name=f"Lab {size}", kind=GroupKind.INTERNAL).returning(Group.id)
            ).scalar_one()
            users = [
                conn.execute(
                    insert(User)
                    .values(
                        username=f"u{size}_{m}", name=f"User {m}", email=f"u{m}@x.example", group_id=group_id
                    )
                    .returning(User.id)
                ).scalar_one()
                for m in range(MEMBERS)
            ]
            projects = [{"name": f"L{size}-P{i:04}", "owner_id": users[i % MEMBERS]} for i in range(size)]
            project_ids = list(
                conn.execute(
                    insert(Project).returning(Project.id, sort_by_parameter_order=True), projects
                ).scalars()
            )
            pools = [
                {"name": f"SLX-{size}-{i:04}-{k}", "project_id": pid}
                for i, pid in enumerate(project_ids)
                for k in range(POOLS)
            ]
            pool_ids = list(
                conn.execute(insert(Pool).returning(Pool.id, sort_by_parameter_order=True), pools).scalars()
            )
            lanes = []
            for i in range(size):  # 8 lanes per run, one project's sequenced pools per lane
                if i % 8 == 0:
                    run_no += 1
                    run_id = conn.execute(
                        insert(Run)
                        .values(
                            run_id=f"260301_A0_{run_no:04}_BENCH",
                            sequencing_started_at=T0 + timedelta(hours=run_no),
                        )
                        .returning(Run.id)
                    ).scalar_one()
                lanes += [
                    {"run_id": run_id, "lane": i % 8 + 1, "pool_id": pool_ids[i * POOLS + k]}
                    for k in range(SEQUENCED)
                ]
            conn.execute(insert(RunLane), lanes)
            shares = []  # every row names every column: an executemany takes its columns from the first row
            for i, pid in enumerate(project_ids):
                by = users[i % MEMBERS]
                now = {"granted_at": T0, "granted_by_id": by, "revoked_at": None, "revoked_by_id": None}
                before = {
                    "granted_at": T0 - timedelta(days=9),
                    "granted_by_id": by,
                    "revoked_at": T0 - timedelta(days=2),
                    "revoked_by_id": by,
                }
                shares += [
                    {"project_id": pid, "group_id": targets["Partner Lab"], **now},
                    {"project_id": pid, "group_id": targets["Acme Ext"], **now},
                    {"project_id": pid, "group_id": targets["Old Ext"], **before},
                ]
            conn.execute(insert(Share), shares)
            out[size] = (f"u{size}_0", group_id, projects[size // 2]["name"])
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("COMMIT"))
            conn.execute(text("ANALYZE"))
    return out


class Counter:
    """SQL statements sent while `counting`."""

    def __init__(self, engine: Engine) -> None:
        self.n = 0
        self.on = False
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        if self.on:
            self.n += 1

    @contextmanager
    def counting(self) -> Iterator[None]:
        self.n, self.on = 0, True
        try:
            yield
        finally:
            self.on = False


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def bench_backend(url: str, repeats: int) -> dict[str, Any]:
    engine = migrated_engine(url)
    try:
        started = time.perf_counter()
        seeds = load(engine)
        loaded = time.perf_counter() - started
    finally:
        engine.dispose()
    app = create_app(database_url=url, secret=SECRET, sso_header="X-Remote-User", sso_proxies=PROXY)
    sessions = app.state.database.sessions()
    app_engine = sessions.kw["bind"]
    counter = Counter(app_engine)
    client = TestClient(app, follow_redirects=False, client=(PROXY, 50000))

    def page(user: str) -> None:
        answer = client.get("/projects", headers={"X-Remote-User": user})
        assert answer.status_code == 200, answer.text[:300]

    def service(user: str) -> None:
        with sessions.begin() as session:
            sharing_page.group_projects(session, user)

    def select_rows(group_id: int) -> None:
        with app_engine.connect() as conn:
            for sql in PEER_SELECTS:
                conn.execute(text(sql), {"group_id": group_id}).all()

    result: dict[str, Any] = {"loaded_s": loaded, "sizes": {}}
    for size, (user, _, project) in seeds.items():
        page(user)  # warm: connection, template compiled
        answer = client.get("/projects", headers={"X-Remote-User": user})
        assert answer.text.count("Select Project") == size, "the list does not show every project"
        assert answer.text.count("Acme Ext") == size and "Old Ext" not in answer.text, "shares misread"
        with counter.counting():
            page(user)
        list_queries = counter.n
        with counter.counting():
            answer = client.get(f"/projects/{quote(project, safe='')}", headers={"X-Remote-User": user})
            assert answer.status_code == 200
        result["sizes"][size] = {
            "queries": list_queries,
            "project_queries": counter.n,
            "bytes": len(answer.text),
        }
    samples: dict[int, dict[str, list[float]]] = {s: {"page": [], "service": [], "select": []} for s in SIZES}
    for r in range(repeats):
        order = SIZES if r % 2 == 0 else tuple(reversed(SIZES))  # interleaved, alternating
        for size in order:
            user, group_id, _ = seeds[size]
            samples[size]["page"].append(timed(lambda u=user: page(u)))
            samples[size]["service"].append(timed(lambda u=user: service(u)))
            samples[size]["select"].append(timed(lambda g=group_id: select_rows(g)))
    for size in SIZES:
        for what, values in samples[size].items():
            result["sizes"][size][what] = statistics.median(values)
    client.close()
    app.state.database.dispose()
    return result


def report(name: str, res: dict[str, Any]) -> bool:
    sizes = res["sizes"]
    print(f"\n{name}: data loaded in {res['loaded_s']:.1f} s")
    print(
        f"{'projects':>8} {'queries':>7} {'page ms':>8} {'service ms':>10} {'select ms':>9} "
        f"{'page/select':>11} {'page µs/project':>15} {'project page queries':>20}"
    )
    for size in SIZES:
        s = sizes[size]
        print(
            f"{size:>8} {s['queries']:>7} {s['page'] * 1e3:>8.1f} {s['service'] * 1e3:>10.1f} "
            f"{s['select'] * 1e3:>9.2f} {s['page'] / s['select']:>11.1f} {s['page'] / size * 1e6:>15.0f} "
            f"{s['project_queries']:>20}"
        )
    small, big = sizes[SIZES[0]], sizes[SIZES[-1]]
    print(
        f"page at {SIZES[-1]} / page at {SIZES[0]}: {big['page'] / small['page']:.1f}x for "
        f"{SIZES[-1] // SIZES[0]}x the projects; per project "
        f"{big['page'] / SIZES[-1] / (small['page'] / SIZES[0]):.2f}x"
    )
    fixed = (
        len({sizes[s]["queries"] for s in SIZES}) == 1
        and len({sizes[s]["project_queries"] for s in SIZES}) == 1
    )
    print(
        "queries per render: " + ("the same at every size" if fixed else "NOT FIXED: they grow with the size")
    )
    return fixed


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load1 = os.getloadavg()[0]
    return f"{cpu}, {os.cpu_count()} CPUs, load {load1:.1f}, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    print(
        f"bench/sharing_page.py, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()}; "
        f"medians of {args.repeats}"
    )
    ok = True
    if args.backend in ("sqlite", "both"):
        folder = Path(
            tempfile.mkdtemp(
                prefix="seqshare-bench-page-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None
            )
        )
        try:
            ok &= report("SQLite (in /dev/shm)", bench_backend(scratch_sqlite(folder), args.repeats))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    if args.backend in ("postgresql", "both"):
        with scratch_postgres() as url:
            ok &= report("PostgreSQL (127.0.0.1)", bench_backend(url, args.repeats))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
