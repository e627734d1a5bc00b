"""Benchmark seqshare's SFTP delivery (`send_files`) against OpenSSH sftp, rsync and rclone.

Run:  .venv/bin/python bench/transfer.py [--quick] [--repeats N]

One throwaway loopback sshd (the start code of tests/sshd.py, plus `Ciphers aes128-gcm@openssh.com` so every
client negotiates the same cipher), source and destination in /dev/shm (RAM: the disk is not measured),
methods interleaved in every repeat, medians reported. 1 MB/s = 10^6 bytes/s. Client CPU % is CPU seconds
(user + system) of the client side divided by wall time: `getrusage(RUSAGE_SELF)` for seqshare (all its
threads) and `getrusage(RUSAGE_CHILDREN)` for the peers (md5sum, sftp + its ssh, rsync + its ssh, rclone).
The sshd side is not counted. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from seqshare import localsftp  # noqa: E402
from seqshare.transfer import FileToSend, send_files  # noqa: E402
from seqshare.transfer.send import DEFAULT_PARALLEL  # noqa: E402
from seqshare.transfer.sftp import SftpConfig, SftpRemote  # noqa: E402

CIPHER = "aes128-gcm@openssh.com"
MiB = 1024 * 1024


# -- server ---------------------------------------------------------------------------------------------
def start_server(tmp: Path) -> localsftp.LocalSftpServer:
    """tests/sshd.py's server, with the cipher pinned server-side (rclone 1.60 has no cipher option)."""
    return localsftp.start(tmp, extra_config=f"Ciphers {CIPHER}\n")


@dataclass
class Peer:
    """Command-line options shared by the OpenSSH-based peers."""

    server: localsftp.LocalSftpServer
    known_hosts: Path

    @property
    def ssh_options(self) -> list[str]:
        return [
            "-c",
            CIPHER,
            "-i",
            str(self.server.client_key_path),
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
        ]

    @property
    def target(self) -> str:
        return f"{self.server.username}@{self.server.host}"

    def sftp(self, batch: str, tmp: Path) -> None:
        batch_file = tmp / "batch.txt"
        batch_file.write_text(batch)
        run(["sftp", *self.ssh_options, "-P", str(self.server.port), "-b", str(batch_file), self.target])

    def rsync(self, source_dir: Path, dest_dir: Path) -> None:
        ssh = " ".join(["ssh", "-p", str(self.server.port), *self.ssh_options])
        run(["rsync", "-aW", "-e", ssh, f"{source_dir}/", f"{self.target}:{dest_dir}/"])

    def rclone(self, source_dir: Path, dest_dir: Path) -> None:
        env = {
            **os.environ,
            "RCLONE_CONFIG": str(self.known_hosts.parent / "rclone.conf"),  # empty: all settings below
            "RCLONE_CONFIG_BENCH_TYPE": "sftp",
            "RCLONE_CONFIG_BENCH_HOST": self.server.host,
            "RCLONE_CONFIG_BENCH_PORT": str(self.server.port),
            "RCLONE_CONFIG_BENCH_USER": self.server.username,
            "RCLONE_CONFIG_BENCH_KEY_FILE": str(self.server.client_key_path),
            "RCLONE_CONFIG_BENCH_KNOWN_HOSTS_FILE": str(self.known_hosts),  # host key checked
        }
        run(
            [
                "rclone",
                "copy",
                "--sftp-disable-hashcheck",  # its fastest mode (with it: an md5sum on the server per file)
                "--sftp-chunk-size",
                "252Ki",  # OpenSSH accepts 255 KiB requests (default 32 KiB is slower)
                "--transfers",
                "4",
                str(source_dir),
                f"bench:{dest_dir}",
            ],
            env=env,
        )


def run(command: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, capture_output=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{command[0]} failed ({result.returncode}): {result.stderr.decode(errors='replace')[-2000:]}"
        )


# -- data -----------------------------------------------------------------------------------------------
def write_random(path: Path, size: int, seed: int) -> str:
    """Incompressible bytes (one random MiB, each copy prefixed with its index); returns the md5."""
    block = random.Random(seed).randbytes(MiB)
    md5 = hashlib.md5()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        for index, offset in enumerate(range(0, size, MiB)):
            piece = (index.to_bytes(8, "big") + block)[: min(MiB, size - offset)]
            out.write(piece)
            md5.update(piece)
    return md5.hexdigest()


@dataclass
class Dataset:
    big: Path
    big_md5: str
    many_root: Path  # many_root/one/RUN/SLX-k/…  and many_root/three/g{0,1,2}/RUN/SLX-k/… (hard links)
    many_count: int
    many_size: int


def make_data(src: Path, big_size: int, count: int, each: int) -> Dataset:
    big = src / "big" / "big_R1_001.fastq.gz"
    big_md5 = write_random(big, big_size, seed=1)
    many = src / "many"
    for n in range(count):
        relative = Path("RUN_20260301") / f"SLX-{n % 4 + 1}" / f"s{n:03d}_R1_001.fastq.gz"
        one = many / "one" / relative
        write_random(one, each, seed=100 + n)
        three = many / "three" / f"g{n % 3}" / relative
        three.parent.mkdir(parents=True, exist_ok=True)
        os.link(one, three)
    return Dataset(big, big_md5, many, count, each)


def files_under(folder: Path) -> list[FileToSend]:
    return [
        FileToSend(path, str(path.relative_to(folder)), path.stat().st_size)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    ]


def check_delivered(dest: Path, expected_files: int, expected_bytes: int) -> None:
    found = [p for p in dest.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in found)
    partials = [p for p in found if p.name.endswith(".partial")]
    if len(found) != expected_files or total != expected_bytes or partials:
        raise RuntimeError(f"{dest}: {len(found)} files / {total} bytes delivered, expected {expected_files}")


# -- measuring ------------------------------------------------------------------------------------------
@dataclass
class Samples:
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # client CPU seconds
    server_cpu: list[float] = field(default_factory=list)  # sshd CPU seconds (every session of the run)


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def md5_cpu_per_gib(path: Path) -> float:
    """CPU seconds that hashing alone costs per GiB: the share of a verified delivery no peer pays."""
    cpu0 = cpu_seconds(resource.RUSAGE_SELF)
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as source:
        while chunk := source.read(4 * MiB):
            digest.update(chunk)
    return (cpu_seconds(resource.RUSAGE_SELF) - cpu0) * MiB * 1024 / path.stat().st_size


def server_cpu_seconds(server: localsftp.LocalSftpServer) -> float:
    """CPU of the sshd sessions that have ended: the listener reaps them, so their time (and that of their
    own children) is in its cutime + cstime. Waits (≤ 5 s) for the sessions of the last run to end."""
    deadline = time.monotonic() + 5
    while server.session_pids() and time.monotonic() < deadline:
        time.sleep(0.02)
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def measure(
    action: Callable[[], None], self_cpu: bool, server: localsftp.LocalSftpServer
) -> tuple[float, float, float]:
    """(wall seconds, client CPU seconds, sshd CPU seconds) of one run."""
    who = resource.RUSAGE_SELF if self_cpu else resource.RUSAGE_CHILDREN
    server0 = server_cpu_seconds(server)
    cpu0, t0 = cpu_seconds(who), time.perf_counter()
    action()
    seconds, cpu = time.perf_counter() - t0, cpu_seconds(who) - cpu0
    return seconds, cpu, server_cpu_seconds(server) - server0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="256 MiB large file, 200 × 1 MiB (default: 1 GiB, 200 × 5 MiB)"
    )
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--shm", default="/dev/shm")
    args = parser.parse_args()
    big_size = (256 if args.quick else 1024) * MiB
    count, each = (200, 1 * MiB) if args.quick else (200, 5 * MiB)
    repeats = args.repeats or 3

    for tool in ("sftp", "md5sum", "rsync", "rclone"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install -y openssh-client coreutils rsync rclone")

    work = Path(tempfile.mkdtemp(prefix="seqshare-bench-", dir=args.shm))
    server = start_server(work / "sshd")
    try:
        known_hosts = work / "known_hosts"
        known_hosts.write_text(f"[{server.host}]:{server.port} {server.host_key_line}\n")
        (work / "rclone.conf").write_text("")
        peer = Peer(server, known_hosts)
        print(
            f"# {machine()}; big file {big_size // MiB} MiB, {count} × {each // MiB} MiB, {repeats} repeats"
        )
        t0 = time.perf_counter()
        data = make_data(work / "src", big_size, count, each)
        print(f"# data written in {time.perf_counter() - t0:.1f} s")
        print(f"# md5 alone (hashlib, 4 MiB reads): {md5_cpu_per_gib(data.big):.2f} CPU s per GiB")
        dest_base = server.base_dir  # /dev/shm/…/sshd/data: the server writes here

        def config(root: Path) -> SftpConfig:
            return replace(server.sftp_config(root), ciphers=(CIPHER,), connect_timeout=30)

        # probe: the cipher really is the same
        with SftpRemote.connect(config(dest_base)) as probe:
            assert probe.cipher == CIPHER, probe.cipher
            print(f"# seqshare cipher {probe.cipher}, write request size {probe.request_size}")

        counter = iter(range(10**9))

        def fresh_dest() -> Path:
            dest = dest_base / f"d{next(counter)}"
            dest.mkdir()
            return dest

        # -- methods: (name, group, self_cpu, fn(dest) -> None) --------------------------------------
        big_files = [FileToSend(data.big, "RUN/big_R1_001.fastq.gz", big_size)]

        def seqshare_big(md5: bool, parallel: int) -> Callable[[Path], None]:
            def go(dest: Path) -> None:
                results = send_files(
                    big_files, lambda: SftpRemote.connect(config(dest)), parallel=parallel, compute_md5=md5
                )
                if md5 and results[0].md5 != data.big_md5:
                    raise RuntimeError("md5 differs")

            return go

        def sftp_big(verify: bool) -> Callable[[Path], None]:
            def go(dest: Path) -> None:
                if verify:
                    out = subprocess.run(["md5sum", str(data.big)], capture_output=True, check=True)
                    if out.stdout.split()[0].decode() != data.big_md5:
                        raise RuntimeError("md5sum differs")
                (dest / "RUN").mkdir()
                peer.sftp(f"put {data.big} {dest}/RUN/big_R1_001.fastq.gz\n", work)

            return go

        def groups(layout: str) -> list[tuple[Path, str]]:
            """(source folder, group name) pairs."""
            base = data.many_root / layout
            return [(base, "")] if layout == "one" else [(base / f"g{g}", f"g{g}") for g in range(3)]

        def seqshare_many(layout: str, parallel: int, md5: bool = True) -> Callable[[Path], None]:
            def go(dest: Path) -> None:
                for source, group in groups(layout):
                    root = dest / group
                    root.mkdir(exist_ok=True)
                    files = files_under(source)
                    send_files(
                        files,
                        lambda root=root: SftpRemote.connect(config(root)),
                        parallel=parallel,
                        compute_md5=md5,
                    )

            return go

        def seqshare_groups_in_parallel(parallel: int) -> Callable[[Path], None]:
            """Each group in its own process at once, as the DAG's mapped `deliver` tasks run them."""

            def go(dest: Path) -> None:
                procs = []
                for source, group in groups("three"):
                    root = dest / group
                    root.mkdir(exist_ok=True)
                    fields = {
                        k: getattr(config(root), k)
                        for k in (
                            "host",
                            "port",
                            "username",
                            "private_key_path",
                            "known_host_key",
                            "root",
                            "ciphers",
                        )
                    }
                    procs.append(
                        subprocess.Popen(
                            [
                                sys.executable,
                                str(ROOT / "bench" / "send_group.py"),
                                json.dumps(fields),
                                str(source),
                                str(parallel),
                            ]
                        )
                    )
                if any(p.wait() != 0 for p in procs):
                    raise SystemExit("a group's delivery process failed")

            return go

        def sftp_groups_in_parallel() -> Callable[[Path], None]:
            def go(dest: Path) -> None:
                procs = []
                for n, (source, group) in enumerate(groups("three")):
                    root = dest / group
                    root.mkdir(exist_ok=True)
                    batch = work / f"batch-{n}.txt"
                    batch.write_text(f"put -r {source}/RUN_20260301 {root}/RUN_20260301\n")
                    procs.append(
                        subprocess.Popen(
                            [
                                "sftp",
                                *peer.ssh_options,
                                "-P",
                                str(server.port),
                                "-b",
                                str(batch),
                                peer.target,
                            ],
                            stdout=subprocess.DEVNULL,
                        )
                    )
                if any(p.wait() != 0 for p in procs):
                    raise SystemExit("an sftp -b process failed")

            return go

        def sftp_many(layout: str) -> Callable[[Path], None]:
            def go(dest: Path) -> None:
                for source, group in groups(layout):
                    root = dest / group
                    root.mkdir(exist_ok=True)
                    peer.sftp(f"put -r {source}/RUN_20260301 {root}/RUN_20260301\n", work)

            return go

        def rsync_many(layout: str) -> Callable[[Path], None]:
            def go(dest: Path) -> None:
                for source, group in groups(layout):
                    root = dest / group
                    root.mkdir(exist_ok=True)
                    peer.rsync(source, root)

            return go

        def rclone_many(layout: str) -> Callable[[Path], None]:
            def go(dest: Path) -> None:
                for source, group in groups(layout):
                    root = dest / group
                    root.mkdir(exist_ok=True)
                    peer.rclone(source, root)

            return go

        big_methods = [
            (
                f"seqshare parallel={DEFAULT_PARALLEL} (split), md5 on",
                True,
                seqshare_big(True, DEFAULT_PARALLEL),
            ),
            ("seqshare parallel=1 (one connection), md5 on", True, seqshare_big(True, 1)),
            ("md5sum then OpenSSH sftp -b", False, sftp_big(True)),
            (
                f"seqshare parallel={DEFAULT_PARALLEL} (split), md5 off",
                True,
                seqshare_big(False, DEFAULT_PARALLEL),
            ),
            ("seqshare parallel=1 (one connection), md5 off", True, seqshare_big(False, 1)),
            ("OpenSSH sftp -b", False, sftp_big(False)),
        ]
        many_methods = {
            layout: [
                ("seqshare parallel=1", True, seqshare_many(layout, 1)),
                ("seqshare parallel=2", True, seqshare_many(layout, 2)),
                ("seqshare parallel=3", True, seqshare_many(layout, 3)),
                (
                    "seqshare parallel=2, md5 off (not a delivery: shows what hashing costs)",
                    True,
                    seqshare_many(layout, 2, md5=False),
                ),
                ("OpenSSH sftp -b (put -r)", False, sftp_many(layout)),
                ("rsync -aW -e ssh", False, rsync_many(layout)),
                ("rclone copy --transfers 4", False, rclone_many(layout)),
            ]
            for layout in ("one", "three")
        }
        many_methods["three"] += [
            ("seqshare groups in parallel processes, parallel=1", False, seqshare_groups_in_parallel(1)),
            ("OpenSSH sftp -b, groups in parallel", False, sftp_groups_in_parallel()),
        ]

        samples: dict[tuple[str, str], Samples] = {}
        plan: list[tuple[str, int, int, str, bool, Callable[[Path], None]]] = [
            ("big", 1, big_size, name, self_cpu, fn) for name, self_cpu, fn in big_methods
        ]
        for layout, methods in many_methods.items():
            plan += [(layout, count, count * each, name, self_cpu, fn) for name, self_cpu, fn in methods]

        for repeat in range(repeats):
            t_rep = time.perf_counter()
            for section, n_files, n_bytes, name, self_cpu, fn in plan:
                dest = fresh_dest()
                seconds, cpu, server_cpu = measure(lambda fn=fn, dest=dest: fn(dest), self_cpu, server)
                check_delivered(dest, n_files, n_bytes)
                shutil.rmtree(dest)
                entry = samples.setdefault((section, name), Samples())
                entry.seconds.append(seconds)
                entry.cpu.append(cpu)
                entry.server_cpu.append(server_cpu)
            print(f"# repeat {repeat + 1}/{repeats} done in {time.perf_counter() - t_rep:.1f} s", flush=True)

        report(samples, big_size, count * each, count, each)
        print(f"# total {time.perf_counter() - t0:.0f} s")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def report(
    samples: dict[tuple[str, str], Samples], big_bytes: int, many_bytes: int, count: int, each: int
) -> None:
    def rate(section: str, name: str) -> float:
        total = big_bytes if section == "big" else many_bytes
        return total / 1e6 / statistics.median(samples[(section, name)].seconds)

    titles = {
        "big": f"one {big_bytes // MiB} MiB file",
        "one": f"{count} × {each // MiB} MiB to one group",
        "three": f"{count} × {each // MiB} MiB to three groups (one connection set per group, in turn)",
    }
    for section in ("big", "one", "three"):
        print(f"\n## {titles[section]}\n")
        print("| method | MB/s median (min–max) | client CPU % | sshd CPU % | CPU s per GiB: client + sshd |")
        print("|---|---|---|---|---|")
        total = big_bytes if section == "big" else many_bytes
        for (sec, name), entry in samples.items():
            if sec != section:
                continue
            rates = [total / 1e6 / s for s in entry.seconds]
            cpu = statistics.median(c / s * 100 for c, s in zip(entry.cpu, entry.seconds, strict=True))
            sshd = statistics.median(
                c / s * 100 for c, s in zip(entry.server_cpu, entry.seconds, strict=True)
            )
            per_gib = MiB * 1024 / total
            client_gib = statistics.median(entry.cpu) * per_gib
            sshd_gib = statistics.median(entry.server_cpu) * per_gib
            print(
                f"| {name} | {rate(sec, name):,.0f} ({min(rates):,.0f}–{max(rates):,.0f}) | {cpu:.0f} "
                f"| {sshd:.0f} | {client_gib:.2f} + {sshd_gib:.2f} = {client_gib + sshd_gib:.2f} |"
            )

    print("\n## ratios (medians)\n")
    for parallel, how in ((DEFAULT_PARALLEL, "split"), (1, "one connection")):
        ours_on = rate("big", f"seqshare parallel={parallel} ({how}), md5 on")
        ours_off = rate("big", f"seqshare parallel={parallel} ({how}), md5 off")
        verified = ours_on / rate("big", "md5sum then OpenSSH sftp -b")
        plain = ours_off / rate("big", "OpenSSH sftp -b")
        print(
            f"- large file, verified: seqshare parallel={parallel} md5 on / (md5sum + sftp) = "
            f"{verified:.2f}× (target ≥ 1.00)"
        )
        print(
            f"- large file, plain: seqshare parallel={parallel} md5 off / sftp = {plain:.2f}× (target ≥ 0.85)"
        )
    for section in ("one", "three"):
        peers = ["OpenSSH sftp -b (put -r)", "rsync -aW -e ssh", "rclone copy --transfers 4"]
        best_peer = max(peers, key=lambda name: rate(section, name))
        for parallel in (1, 2, 3):
            ours = rate(section, f"seqshare parallel={parallel}")
            print(
                f"- {section} group(s): seqshare parallel={parallel} / best peer ({best_peer}) = "
                f"{ours / rate(section, best_peer):.2f}× (target ≥ 1.00)"
            )
    print(f"\n## the CPU ceiling ({os.cpu_count()} cores shared by client and sshd)\n")
    for section in ("one", "three"):
        entry = samples[(section, f"seqshare parallel={DEFAULT_PARALLEL}")]
        cpu_per_byte = (statistics.median(entry.cpu) + statistics.median(entry.server_cpu)) / many_bytes
        ceiling = (os.cpu_count() or 1) / cpu_per_byte / 1e6
        best = max(rate(section, name) for name in peers)
        per_gib = cpu_per_byte * MiB * 1024
        print(
            f"- {section} group(s): seqshare parallel={DEFAULT_PARALLEL} needs {per_gib:.2f} "
            f"CPU s per GiB, so at most {ceiling:,.0f} MB/s with every core busy all the time: "
            f"{ceiling / best:.2f}× the best peer's {best:,.0f} MB/s is the most it could reach here"
        )
    procs = rate("three", "seqshare groups in parallel processes, parallel=1")
    best_in_turn = max(rate("three", name) for name in peers)
    print(
        f"- three groups, seqshare groups in parallel processes (as the DAG runs them) / best peer in turn = "
        f"{procs / best_in_turn:.2f}×; / sftp -b groups in parallel = "
        f"{procs / rate('three', 'OpenSSH sftp -b, groups in parallel'):.2f}×"
    )


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()}: {os.cpu_count()} CPUs ({model}), Python {platform.python_version()}"


if __name__ == "__main__":
    main()
