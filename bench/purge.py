"""Benchmark seqshare's purge of expired files (`purge_group`) against OpenSSH `sftp -b` batch removal.

Run:  .venv/bin/python bench/purge.py [--quick] [--repeats N] [--profile]

One throwaway loopback sshd (`seqshare.localsftp`), the tree in /dev/shm (RAM: the disk is not measured).
The tree: G groups (external, in a scratch SQLite ledger) x R run folders x F files of 1 KiB, every one with a
modification time 60 days ago (TTL 30 days), plus one fresh file per group in `<group>/fresh/` that must
survive. The files are *untracked* (not in the ledger): they are purged by modification time, so the ledger
is only read (one query per group) and `mark_purged` has no ids to write. The tree is recreated before every
measured run (not timed). Methods are interleaved in each repeat (the order alternates), medians reported.

- seqshare: `purge_group` for every group, one after the other, over one SFTP connection (connect included).
  It lists the tree over SFTP (listdir_attr), plans, removes files with pipelined removes and the emptied
  folders with one RMDIR each. Time is split into list / remove / rmdir / the rest (ledger + plan + Python).
- sftp -b: OpenSSH `sftp -b batch` with one `rm <abs path>` line per old file and one `rmdir` per emptied
  folder (deepest first). Its batch is made from the local tree *before* timing: it gets its listing free.

Files/s = old files removed / wall time. Client CPU % = (user + system) CPU seconds / wall: getrusage(SELF)
for seqshare (in-process), getrusage(CHILDREN) for sftp + its ssh. Server CPU % = the sshd session's CPU
(the listener's reaped-children time). After each run the tree is checked: every old file and folder gone,
every fresh file and group folder still there. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import platform
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from stat import S_ISDIR

from paramiko.sftp import CMD_REMOVE

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seqshare import localsftp  # noqa: E402
from seqshare.db.engine import make_sessions  # noqa: E402
from seqshare.lims_schema import LimsExport  # noqa: E402
from seqshare.purge.group import purge_group  # noqa: E402
from seqshare.services.lims import import_export  # noqa: E402
from seqshare.services.purge import external_groups  # noqa: E402
from seqshare.transfer.sftp import SftpRemote  # noqa: E402
from tests.databases import migrated_engine, scratch_sqlite  # noqa: E402

TTL = timedelta(days=30)
OLD = timedelta(days=60)
FILE_SIZE = 1024
GROUPS = 50
CLK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Shape:
    groups: int
    runs: int  # run folders per group
    files: int  # files per run folder

    @property
    def old_files(self) -> int:
        return self.groups * self.runs * self.files


# -- tree -----------------------------------------------------------------------------------------------
def group_dir(i: int) -> str:
    return f"g{i:02d}"


def make_tree(root: Path, shape: Shape) -> tuple[list[str], list[str]]:
    """Create the tree; returns (old file paths, emptied folders deepest first), absolute."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    payload = b"x" * FILE_SIZE
    old = time.time() - OLD.total_seconds()
    files: list[str] = []
    folders: list[str] = []
    for g in range(shape.groups):
        gdir = root / group_dir(g)
        for r in range(shape.runs):
            run = gdir / f"run_{r:04d}"
            run.mkdir(parents=True)
            for f in range(shape.files):
                path = str(run / f"S{f:03d}_R1.fastq.gz")
                with open(path, "wb") as out:
                    out.write(payload)
                os.utime(path, (old, old))
                files.append(path)
            os.utime(run, (old, old))
            folders.append(str(run))
        fresh = gdir / "fresh"
        fresh.mkdir()
        (fresh / "new.fastq.gz").write_bytes(payload)  # mtime now: must survive
    return files, folders


def check_tree(root: Path, shape: Shape) -> str | None:
    """None when every old file/folder is gone and every fresh file and group folder remains."""
    problems = []
    for g in range(shape.groups):
        gdir = root / group_dir(g)
        names = sorted(os.listdir(gdir)) if gdir.is_dir() else None
        if names != ["fresh"]:
            problems.append(f"{gdir}: {names[:5] if names else names}")
        if not (gdir / "fresh" / "new.fastq.gz").is_file():
            problems.append(f"{gdir}/fresh/new.fastq.gz was deleted")
    return "; ".join(problems[:5]) + (f" (+{len(problems) - 5})" if len(problems) > 5 else "") or None


# -- measurement ----------------------------------------------------------------------------------------
def server_cpu(server: localsftp.LocalSftpServer) -> float:
    """CPU seconds of the listener's reaped children (each connection's sshd session)."""
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / CLK  # cutime, cstime


def wait_sessions_gone(server: localsftp.LocalSftpServer, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while server.session_pids() and time.monotonic() < deadline:
        time.sleep(0.02)


@dataclass
class Result:
    method: str
    seconds: float
    files: int
    client_cpu: float
    server_cpu: float
    split: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def rate(self) -> float:
        return self.files / self.seconds


class Timed:
    """Wraps one method of the remote to add its wall time to `split[name]`."""

    def __init__(self, split: dict[str, float], name: str, fn: Callable) -> None:
        self.split, self.name, self.fn = split, name, fn

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.split[self.name] = self.split.get(self.name, 0.0) + time.perf_counter() - start


def run_seqshare(server, data_root: Path, sessions, shape: Shape, profile: cProfile.Profile | None = None):
    config = server.sftp_config(data_root)
    with sessions.begin() as s:
        groups = external_groups(s)[: shape.groups]
    split: dict[str, float] = {}
    lines = 0

    def log(line: str) -> None:
        nonlocal lines
        lines += 1

    cpu0, srv0, t0 = resource.getrusage(resource.RUSAGE_SELF), server_cpu(server), time.perf_counter()
    if profile is not None:
        profile.enable()
    remote = SftpRemote.connect(config)
    split["connect"] = time.perf_counter() - t0
    remote.list_many = Timed(split, "list", remote.list_many)  # type: ignore[method-assign]
    remote.remove_many = Timed(split, "remove", remote.remove_many)  # type: ignore[method-assign]
    remote.rmdir = Timed(split, "rmdir", remote.rmdir)  # type: ignore[method-assign]
    files = folders = 0
    failed: list = []
    try:
        now = datetime.now(UTC)
        for name, ftp_dir in groups:
            _, report = purge_group(
                group=name,
                group_dir=ftp_dir,
                remote=remote,
                sessions=sessions,
                now=now,
                ttl=TTL,
                actor="bench",
                log=log,
            )
            files += report.files
            folders += report.folders_removed
            failed += report.failed + report.refused
    finally:
        remote.close()
        if profile is not None:
            profile.disable()
    seconds = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    wait_sessions_gone(server)
    split["other"] = seconds - sum(split.values())
    error = check_tree(data_root, shape)
    if failed:
        error = f"{len(failed)} failed/refused, e.g. {failed[0]}" + (f"; {error}" if error else "")
    if files != shape.old_files or folders != shape.groups * shape.runs:
        error = f"purged {files} files, {folders} folders" + (f"; {error}" if error else "")
    return Result(
        "seqshare purge_group",
        seconds,
        files,
        (cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime) / seconds,
        (server_cpu(server) - srv0) / seconds,
        split,
        error,
    )


def run_floor(server, data_root: Path, shape: Shape) -> Result:
    """paramiko alone, no seqshare layer: walk with listdir_attr, 1,024 pipelined removes, rmdir per folder.
    The protocol work of purge_group (minus ledger, plan and path checks): its floor on this machine."""
    config = server.sftp_config(data_root)
    split: dict[str, float] = {}
    cpu0, srv0, t0 = resource.getrusage(resource.RUSAGE_SELF), server_cpu(server), time.perf_counter()
    remote = SftpRemote.connect(config)
    client = remote._client
    cutoff = time.time() - TTL.total_seconds()
    removed = 0
    try:
        for g in range(shape.groups):
            t = time.perf_counter()
            files, dirs, pending = [], [], [f"{data_root}/{group_dir(g)}"]
            while pending:
                d = pending.pop()
                for a in client.listdir_attr(d):
                    path = f"{d}/{a.filename}"
                    if S_ISDIR(a.st_mode or 0):
                        dirs.append(path)
                        pending.append(path)
                    elif (a.st_mtime or 0) < cutoff:
                        files.append(path)
            split["list"] = split.get("list", 0.0) + time.perf_counter() - t
            t = time.perf_counter()

            class Owner:
                def __init__(self):
                    self.got = 0

                def _async_response(self, kind, message, number):
                    self.got += 1 if message.get_int() == 0 else 0

            owner, sent = Owner(), 0
            for path in files:
                client._async_request(owner, CMD_REMOVE, path)
                sent += 1
                while sent - owner.got >= 1024:
                    client._read_response()
            while owner.got < sent:
                client._read_response()
            removed += owner.got
            split["remove"] = split.get("remove", 0.0) + time.perf_counter() - t
            t = time.perf_counter()
            for d in sorted(dirs, key=lambda p: -p.count("/")):
                with contextlib.suppress(OSError):
                    client.rmdir(d)
            split["rmdir"] = split.get("rmdir", 0.0) + time.perf_counter() - t
    finally:
        remote.close()
    seconds = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    wait_sessions_gone(server)
    error = check_tree(data_root, shape)
    if removed != shape.old_files:
        error = f"removed {removed}" + (f"; {error}" if error else "")
    return Result(
        "paramiko floor",
        seconds,
        removed,
        (cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime) / seconds,
        (server_cpu(server) - srv0) / seconds,
        split,
        error,
    )


def run_sftp_b(server, known_hosts: Path, batch_file: Path, data_root: Path, shape: Shape) -> Result:
    command = [
        "sftp",
        "-b", str(batch_file),
        "-i", str(server.client_key_path),
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        "-o", "LogLevel=ERROR",
        "-P", str(server.port),
        f"{server.username}@{server.host}",
    ]  # fmt: skip
    cpu0, srv0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), server_cpu(server), time.perf_counter()
    done = subprocess.run(command, capture_output=True, check=False)
    seconds = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wait_sessions_gone(server)
    error = check_tree(data_root, shape)
    if done.returncode != 0:
        error = f"sftp exit {done.returncode}: {done.stderr.decode(errors='replace')[-500:]}"
    return Result(
        "OpenSSH sftp -b",
        seconds,
        shape.old_files,
        (cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime) / seconds,
        (server_cpu(server) - srv0) / seconds,
        error=error,
    )


def write_batch(path: Path, files: list[str], folders: list[str]) -> None:
    with open(path, "w") as out:
        out.writelines(f"rm {f}\n" for f in files)
        out.writelines(f"rmdir {d}\n" for d in folders)  # run folders: the deepest emptied level


# -- main -----------------------------------------------------------------------------------------------
def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    import paramiko

    return (
        f"{platform.node()}: nproc {os.cpu_count()}, {model}, load {os.getloadavg()[0]:.2f}; "
        f"Python {platform.python_version()}, paramiko {paramiko.__version__}; {ssh}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20,000 files (10 groups), under 2 minutes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-floor", action="store_true", help="skip the paramiko-only floor")
    parser.add_argument("--profile", action="store_true", help="also one cProfile'd seqshare run")
    args = parser.parse_args()
    shape = Shape(10, 40, 50) if args.quick else Shape(GROUPS, 40, 50)
    shm = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else Path(tempfile.gettempdir())
    base = Path(tempfile.mkdtemp(prefix="purgebench-", dir=shm))
    print(machine())
    print(
        f"tree: {shape.groups} groups x {shape.runs} run folders x {shape.files} files of {FILE_SIZE} B = "
        f"{shape.old_files:,} old files + {shape.groups} fresh; in {base}; {args.repeats} repeats\n"
    )
    server = None
    results: dict[str, list[Result]] = {}
    try:
        server = localsftp.start(base / "sshd")
        data_root = base / "root"
        known_hosts = base / "known_hosts"
        known_hosts.write_text(f"[{server.host}]:{server.port} {server.host_key_line}\n")
        engine = migrated_engine(scratch_sqlite(base))
        sessions = make_sessions(engine)
        with sessions.begin() as s:
            import_export(
                s,
                LimsExport.model_validate(
                    {
                        "groups": [
                            {"name": f"G{i:02d}", "kind": "external", "ftp_dir": group_dir(i)}
                            for i in range(GROUPS)
                        ]
                    }
                ),
            )
        batch_file = base / "batch.txt"
        for repeat in range(args.repeats):
            order = ["seqshare", "sftp"] if repeat % 2 == 0 else ["sftp", "seqshare"]
            if not args.no_floor:
                order.insert(1, "floor")
            for method in order:
                files, folders = make_tree(data_root, shape)
                if method == "seqshare":
                    r = run_seqshare(server, data_root, sessions, shape)
                elif method == "floor":
                    r = run_floor(server, data_root, shape)
                else:
                    write_batch(batch_file, files, folders)
                    r = run_sftp_b(server, known_hosts, batch_file, data_root, shape)
                results.setdefault(r.method, []).append(r)
                split = "  ".join(f"{k} {v:.2f}s" for k, v in r.split.items())
                print(
                    f"[{repeat + 1}] {r.method:22s} {r.files:>8,} files {r.seconds:7.2f} s "
                    f"{r.rate:>9,.0f} files/s"
                    f"  client CPU {r.client_cpu:4.0%}  sshd CPU {r.server_cpu:4.0%}"
                    f"  {'OK' if r.error is None else 'CHECK FAILED: ' + r.error}"
                    + (f"\n      {split}" if split else ""),
                    flush=True,
                )
        print("\nmedians:")
        med = {}
        for method, rs in results.items():
            med[method] = statistics.median(r.rate for r in rs)
            line = (
                f"  {method:22s} {med[method]:>9,.0f} files/s (min {min(r.rate for r in rs):,.0f}, "
                f"max {max(r.rate for r in rs):,.0f})  "
                f"client CPU {statistics.median(r.client_cpu for r in rs):.0%}"
                f"  sshd CPU {statistics.median(r.server_cpu for r in rs):.0%}"
            )
            if rs[0].split:
                keys = rs[0].split.keys()
                line += "\n    " + "  ".join(
                    f"{k} {statistics.median(r.split[k] for r in rs):.2f}s" for k in keys
                )
            if method == "seqshare purge_group":
                lst = statistics.median(r.split["list"] for r in rs)
                rem = statistics.median(r.split["remove"] for r in rs)
                entries = shape.old_files + shape.groups * (shape.runs + 2)
                line += (
                    f"\n    listing alone {entries / lst:,.0f} entries/s; "
                    f"remove_many alone {shape.old_files / rem:,.0f} files/s"
                )
            print(line)
        if "OpenSSH sftp -b" in med:
            print(f"  ratio seqshare / sftp -b: {med['seqshare purge_group'] / med['OpenSSH sftp -b']:.1f}x")
        failed = [r for rs in results.values() for r in rs if r.error]
        if "paramiko floor" in med:
            print(f"  seqshare / paramiko floor: {med['seqshare purge_group'] / med['paramiko floor']:.2f}")
        print(f"  tree checks: {'all passed' if not failed else f'{len(failed)} FAILED'}")
        if args.profile:
            make_tree(data_root, shape)
            profile = cProfile.Profile()
            r = run_seqshare(server, data_root, sessions, shape, profile)
            print(
                f"\nprofiled seqshare run (slower under cProfile): {r.rate:,.0f} files/s, "
                f"check {r.error or 'OK'}"
            )
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(30)
            out.write("\n")
            pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(20)
            print(out.getvalue())
        engine.dispose()
        return 1 if failed else 0
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
