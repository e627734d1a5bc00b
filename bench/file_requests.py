"""Server CPU per file request of the download API (HEAD, and GET of a small file), on SQLite or PostgreSQL.

Run:  .venv/bin/python bench/file_requests.py [--db sqlite|postgres] [--batches 8] [--batch 50]
      .venv/bin/python bench/file_requests.py --profile [--top 40]

The real server (`seqshare serve`, uvicorn, access log on) on 127.0.0.1 over the API's test world
(tests/web/world.py; SQLite in /dev/shm, or a scratch PostgreSQL database); one httpx client sends requests
one after the other on a kept-alive connection, as a user of a group the project is shared with. The
server's CPU (utime + stime from /proc/<pid>/stat) is read around each batch of requests; the median over
the batches, per request, is reported. A GET is of a 200 KiB file (--kib) whose md5 is stored (a warm-up
request stores it), so it is the per-request cost, not the hashing, that is measured.

--profile runs the same app in this process instead (uvicorn in a thread) under cProfile, one profiler
per thread (the routes' database work runs in AnyIO's worker threads), and prints the top functions by
cumulative and by own time. Not part of the test suite. Cleans /dev/shm after itself.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seqshare.db.engine import make_sessions  # noqa: E402
from tests.databases import migrated_engine, scratch_postgres, scratch_sqlite  # noqa: E402
from tests.web.servers import free_port  # noqa: E402
from tests.web.world import RUN_ID, load_api_world, write_run_folder  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
SEQSHARE = shutil.which("seqshare", path=str(Path(sys.executable).parent)) or "seqshare"
USER = "other"  # a member of an internal group the project is shared with
SMALL = "SMALL_S1_L001_R1_001.fastq.gz"


def build_world(url: str, tmp: Path, size: int) -> str:
    """The API's test world on `url`, with a small file of SLX-1; returns the user's token."""
    engine = migrated_engine(url)
    with make_sessions(engine).begin() as session:
        tokens = load_api_world(session, now=datetime.now(UTC))
        files = write_run_folder(session, tmp / "runs", sparse={SMALL: size})
    engine.dispose()
    files[f"SLX-1/{SMALL}"].write_bytes(os.urandom(size))
    return tokens.by_user[USER]


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


@contextlib.contextmanager
def database(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "postgres":
        with scratch_postgres() as url:
            yield url
    else:
        yield scratch_sqlite(tmp)


@contextlib.contextmanager
def server(url: str) -> Iterator[tuple[str, int]]:
    """`seqshare serve` on `url`: (base URL, pid)."""
    port = free_port()
    env = {**os.environ, "SEQSHARE_DATABASE_URL": url}
    process = subprocess.Popen(
        [SEQSHARE, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise SystemExit("bench: seqshare serve did not start")
        yield base, process.pid
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def send(client: httpx.Client, method: str, url: str, count: int) -> None:
    for _ in range(count):
        answer = client.request(method, url)
        if answer.status_code != 200 or "x-seqshare-md5" not in answer.headers:
            raise SystemExit(f"bench: {method} {url} answered {answer.status_code}: {answer.text[:200]}")


def measure(args: argparse.Namespace, tmp: Path) -> None:
    with database(args.db, tmp) as url:
        token = build_world(url, tmp, args.kib * 1024)
        with server(url) as (base, pid), httpx.Client(headers={"Authorization": f"Bearer {token}"}) as client:
            file_url = f"{base}/api/v1/files/{RUN_ID}/SLX-1/{SMALL}"
            send(client, "GET", file_url, 20)  # warm-up: the md5 stored, connections and caches made
            print(f"server CPU per file request, {args.db}, {args.batches} × {args.batch} requests each:")
            for method in ("HEAD", "GET"):
                per_request = []
                for _ in range(args.batches):
                    before = cpu_of(pid)
                    send(client, method, file_url, args.batch)
                    per_request.append((cpu_of(pid) - before) / args.batch * 1000)
                low, high = min(per_request), max(per_request)
                median = statistics.median(per_request)
                print(f"  {method:4} {median:5.1f} ms median ({low:.1f}–{high:.1f} over the batches)")


def profile(args: argparse.Namespace, tmp: Path) -> None:
    import uvicorn

    from seqshare.web.app import create_app

    url = scratch_sqlite(tmp)
    token = build_world(url, tmp, args.kib * 1024)
    profilers: list[cProfile.Profile] = []

    def per_thread(*_: object) -> None:  # runs first in every new thread: a profiler of its own
        sys.setprofile(None)
        profilers.append(p := cProfile.Profile(time.thread_time))  # CPU, not waiting
        p.enable()

    port = free_port()
    app = create_app(database_url=url)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="info", access_log=True)
    uv = uvicorn.Server(config)
    threading.setprofile(per_thread)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()  # and AnyIO's worker threads, started as needed, get a profiler each too
    base = f"http://127.0.0.1:{port}"
    while not uv.started:
        time.sleep(0.05)
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as client:
        file_url = f"{base}/api/v1/files/{RUN_ID}/SLX-1/{SMALL}"
        send(client, "GET", file_url, 20)
        for p in profilers:
            p.clear()
        started = time.process_time()
        send(client, args.method, file_url, args.requests)
        spent = time.process_time() - started
    uv.should_exit = True
    thread.join(timeout=20)
    threading.setprofile(None)  # type: ignore[arg-type]
    print(f"{len(profilers)} threads profiled")
    stats = pstats.Stats(profilers[0])
    for p in profilers[1:]:
        stats.add(p)
    each = spent / args.requests * 1000
    print(f"{args.requests} {args.method} requests; process CPU (client, profilers) {each:.1f} ms each")
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--kib", type=int, default=200, help="the file's size (GET) in KiB")
    parser.add_argument("--profile", action="store_true", help="profile in process instead (SQLite)")
    parser.add_argument("--method", default="HEAD", help="with --profile: HEAD or GET")
    parser.add_argument("--requests", type=int, default=300, help="with --profile")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    tmp = Path(f"/dev/shm/seqshare-bench-requests-{os.getpid()}")
    tmp.mkdir()
    try:
        (profile if args.profile else measure)(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
