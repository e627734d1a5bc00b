"""Benchmark `seqshare download` against `curl` fetching the same URLs from the same server in the same run.

Run:  .venv/bin/python bench/download.py [--quick] [--repeats N] [--parallel N]

The real API (`seqshare serve`, uvicorn) on 127.0.0.1 with a SQLite database, files and destinations in
/dev/shm (RAM: the disk is not measured), incompressible data. Cases: one large file (1 GiB; 256 MiB with
--quick) and 200 small files (5 MiB each; 1 MiB with --quick). Every repeat runs both tools on both cases,
alternating which goes first; medians reported, min–max in brackets. 1 MB/s = 10^6 bytes/s.

- seqshare: the whole command as a user runs it (process start, the listing, md5 of every file checked
  against the server's, fsync, rename), `--parallel N`, output to a pipe (JSON lines).
- curl: the same URLs with the same `Authorization` header (from a file, not argv), `-f`, no md5; for the
  many files `--parallel --parallel-max N` (the same concurrency).
- Client CPU: `RUSAGE_CHILDREN` around each run (the one child reaped in between). Server CPU: utime +
  stime of the `seqshare serve` process from /proc/<pid>/stat around each run. The server's md5s are
  computed by a warm-up download before anything is timed (they are computed once per file version).
Not part of the test suite. Cleans /dev/shm after itself.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seqshare.db.engine import make_sessions  # noqa: E402
from tests.databases import migrated_engine, scratch_sqlite  # noqa: E402
from tests.web.servers import free_port  # noqa: E402
from tests.web.world import load_api_world, write_run_folder  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
TICK = os.sysconf("SC_CLK_TCK")
SEQSHARE = shutil.which("seqshare", path=str(Path(sys.executable).parent)) or "seqshare"
LARGE = "BIG_S9_L001_R1_001.fastq.gz"
USER = "other"  # a member of an internal group the project is shared with


@dataclass
class Sample:
    seconds: float
    client_cpu: float
    server_cpu: float


@dataclass
class Row:
    case: str
    tool: str
    total: int  # bytes per run
    samples: list[Sample] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(s, attr) for s in self.samples)

    @property
    def mbs(self) -> float:
        return self.total / self.median("seconds") / 1e6

    def mbs_range(self) -> str:
        rates = sorted(self.total / s.seconds / 1e6 for s in self.samples)
        return f"{rates[0]:.0f}–{rates[-1]:.0f}"

    def per_gib(self, attr: str) -> float:
        return self.median(attr) / (self.total / GiB)


def fill(path: Path, size: int) -> None:
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, 16 * MiB))
            out.write(block)
            left -= len(block)


def build_world(tmp: Path, large: int, count: int, small: int) -> tuple[str, str, list[str]]:
    """The API's test world with SLX-1's run folder holding the large file and the small ones; returns
    (database URL, the user's token, the small files' names)."""
    url = scratch_sqlite(tmp)
    engine = migrated_engine(url)
    names = [f"SMALL{i:04d}_S1_L001_R1_001.fastq.gz" for i in range(count)]
    sessions = make_sessions(engine)
    with sessions.begin() as session:
        tokens = load_api_world(session, now=datetime.now(UTC))
        files = write_run_folder(session, tmp / "runs", sparse={LARGE: large, **dict.fromkeys(names, small)})
    engine.dispose()
    for name in [LARGE, *names]:
        fill(files[f"SLX-1/{name}"], large if name == LARGE else small)
    return url, tokens.by_user[USER], names


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], env: dict[str, str], server_pid: int) -> Sample:
    client, server = children_cpu(), cpu_of(server_pid)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({done.returncode}): {done.stderr.strip()}")
    return Sample(seconds, children_cpu() - client, cpu_of(server_pid) - server)


def check(dest: Path, names: list[str], size: int) -> None:
    for name in names:
        path = next(dest.rglob(name), None)
        if path is None or path.stat().st_size != size:
            raise SystemExit(f"bench: {name} missing or of the wrong size under {dest}")
    if any(p.name.endswith(".partial") for p in dest.rglob("*")):
        raise SystemExit(f"bench: a .partial left under {dest}")


def md5_alone(path: Path) -> float:
    """CPU seconds per GiB of hashlib md5 over the file, 1 MiB reads (what verification alone costs)."""
    started = time.process_time()
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while block := f.read(MiB):
            digest.update(block)
    return (time.process_time() - started) / (path.stat().st_size / GiB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 MiB + 200 × 1 MiB, 3 repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    large, small, count = (256 * MiB, MiB, 200) if args.quick else (GiB, 5 * MiB, 200)
    repeats = args.repeats or (3 if args.quick else 5)
    if not shutil.which("curl"):
        raise SystemExit("bench: needs curl")
    tmp = Path(f"/dev/shm/seqshare-bench-download-{os.getpid()}")
    tmp.mkdir()
    load_before = os.getloadavg()
    server = None
    try:
        db_url, token, names = build_world(tmp, large, count, small)
        port = free_port()
        server_env = {**os.environ, "SEQSHARE_DATABASE_URL": db_url}
        server = subprocess.Popen(
            [SEQSHARE, "serve", "--port", str(port)],
            env=server_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise SystemExit("bench: seqshare serve did not start")
        rows = run_all(tmp, base, token, names, large, small, repeats, args.parallel, server.pid)
        report(rows, args, large, small, count, repeats, load_before, tmp / "runs")
        if args.json:
            args.json.write_text(
                json.dumps(
                    [r.__dict__ | {"samples": [s.__dict__ for s in r.samples]} for r in rows], indent=2
                )
            )
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def run_all(
    tmp: Path,
    base: str,
    token: str,
    names: list[str],
    large: int,
    small: int,
    repeats: int,
    parallel: int,
    server_pid: int,
) -> list[Row]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEQSHARE_")}
    env |= {"SEQSHARE_URL": base, "SEQSHARE_TOKEN": token, "XDG_CONFIG_HOME": str(tmp / "no-config")}
    header = tmp / "auth-header"
    header.write_text(f"Authorization: Bearer {token}\n")
    header.chmod(0o600)
    listing = httpx.get(
        f"{base}/api/v1/downloads",
        params={"target": "SLX-1"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    ).json()["files"]
    url_of = {f["path"].rsplit("/", 1)[1]: base + f["url"] for f in listing}

    def seqshare(pattern: str, dest: Path) -> list[str]:
        return [
            SEQSHARE,
            "download",
            "SLX-1",
            "--glob",
            pattern,
            "--dest",
            str(dest),
            "--parallel",
            str(parallel),
            "--json",
        ]

    def curl(chosen: list[str], dest: Path) -> list[str]:
        config = tmp / "curl.cfg"
        config.write_text("".join(f'url = "{url_of[n]}"\noutput = "{dest / n}"\n' for n in chosen))
        more = ["--parallel", "--parallel-max", str(parallel)] if len(chosen) > 1 else []
        return ["curl", "-sS", "-f", "--create-dirs", "-H", f"@{header}", *more, "-K", str(config)]

    # warm-up: the server computes and stores every md5 once, as it would for the first user
    warm = tmp / "warm"
    subprocess.run(seqshare("*", warm), env=env, check=True, stdout=subprocess.DEVNULL)
    shutil.rmtree(warm)

    cases = {"large": ([LARGE], LARGE, large), "many": (names, "SMALL*", small)}
    rows = {(c, t): Row(c, t, len(cases[c][0]) * cases[c][2]) for c in cases for t in ("seqshare", "curl")}
    for i in range(repeats):
        for case, (chosen, pattern, size) in cases.items():
            order = ["seqshare", "curl"] if (i + (case == "many")) % 2 == 0 else ["curl", "seqshare"]
            for tool in order:
                dest = tmp / f"dest-{tool}"
                command = seqshare(pattern, dest) if tool == "seqshare" else curl(chosen, dest)
                sample = timed(command, env, server_pid)
                check(dest, chosen, size)
                shutil.rmtree(dest)
                rows[(case, tool)].samples.append(sample)
                rate = rows[(case, tool)].total / sample.seconds / 1e6
                print(
                    f"  repeat {i + 1} {case:5} {tool:8} {rate:7.0f} MB/s  client {sample.client_cpu:.2f} s"
                    f"  server {sample.server_cpu:.2f} s",
                    flush=True,
                )
    return list(rows.values())


def startup_cost(env: dict[str, str]) -> tuple[float, float]:
    """Median wall and CPU seconds of `seqshare download --help`: what every run pays before any request."""
    samples = []
    for _ in range(5):
        before, started = children_cpu(), time.perf_counter()
        subprocess.run([SEQSHARE, "download", "--help"], env=env, stdout=subprocess.DEVNULL, check=True)
        samples.append((time.perf_counter() - started, children_cpu() - before))
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def report(
    rows: list[Row],
    args: argparse.Namespace,
    large: int,
    small: int,
    count: int,
    repeats: int,
    load_before: tuple[float, float, float],
    runs: Path,
) -> None:
    load_after = os.getloadavg()
    md5 = md5_alone(next(runs.rglob(LARGE)))
    print()
    curl = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout.split()[1]
    command = " ".join([".venv/bin/python", "bench/download.py", *sys.argv[1:]])
    print(f"`{command}` on {os.cpu_count()} CPUs, Python {platform.python_version()}, curl {curl}")
    wall, cpu = startup_cost(dict(os.environ))
    print(f"seqshare download's start (--help): {wall:.2f} s wall, {cpu:.2f} CPU s")
    print(
        f"load average before {load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f}, "
        f"after {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f}; repeats {repeats}, "
        f"--parallel {args.parallel}; md5 alone: {md5:.2f} CPU s per GiB"
    )
    for case, title in (("large", f"one {large // MiB} MiB file"), ("many", f"{count} × {small // MiB} MiB")):
        print(f"\n### {title}\n")
        print("| tool | MB/s median (min–max) | client CPU s per GiB | server CPU s per GiB | total |")
        print("|---|---|---|---|---|")
        pair = {r.tool: r for r in rows if r.case == case}
        for tool, row in pair.items():
            c, s = row.per_gib("client_cpu"), row.per_gib("server_cpu")
            print(f"| {tool} | {row.mbs:.0f} ({row.mbs_range()}) | {c:.2f} | {s:.2f} | {c + s:.2f} |")
        ratio = pair["seqshare"].mbs / pair["curl"].mbs
        target = 0.9 if case == "large" else 1.0
        verdict = "met" if ratio >= target else "NOT met"
        print(f"\nseqshare / curl = **{ratio:.2f}×** (target ≥ {target}×: {verdict})")
        if case == "large":
            most = GiB / md5 / 1e6
            print(
                f"- md5 is sequential: one core hashes at most {most:.0f} MB/s here, so seqshare cannot pass "
                f"{most:.0f} MB/s = {most / pair['curl'].mbs:.2f}× this run's curl whatever else it does"
            )
        cores = os.cpu_count() or 1
        for tool, row in pair.items():
            cpu = row.per_gib("client_cpu") + row.per_gib("server_cpu")
            ceiling = cores / cpu * GiB / 1e6
            print(
                f"- the CPU ceiling for {tool}: {cpu:.2f} CPU s per GiB (client + server) on {cores} cores → "
                f"at most {ceiling:.0f} MB/s with both cores busy all the time; measured {row.mbs:.0f} MB/s"
            )


if __name__ == "__main__":
    main()
