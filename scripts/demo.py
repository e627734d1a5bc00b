"""The main job, end to end on the embedded default: a run folder delivered over SFTP by Airflow.

Run by scripts/demo (which sets up the venv first). Everything lives under $SEQSHARE_HOME (./var/demo):
the SQLite application database, an Airflow home with its own SQLite metadata database, a local OpenSSH
sshd on 127.0.0.1 with its own config and keys, the run folder, and the groups' FTP directories.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from seqshare import localsftp
from seqshare.db.engine import make_engine, make_sessions
from seqshare.services import sharing

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RUN_ID = "260301_A01234_0042_BHXYZ2DRX3"
SEQUENCED = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)  # the run's start, as registered in examples/lims.yaml
SAMPLES = {"SLX-10001": ["LIV_01", "LIV_02"], "SLX-10002": ["MA_01"], "SLX-10003": ["CRISPR_A", "CRISPR_B"]}
LANES = {"SLX-10001": 1, "SLX-10002": 1, "SLX-10003": 2}
FASTQ_BYTES = 8 * 1024 * 1024


def step(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def run(*cmd: str | Path, quiet: bool = False) -> None:
    if not quiet:
        print("$ " + " ".join(str(c) for c in cmd), flush=True)
    result = subprocess.run([str(c) for c in cmd], capture_output=quiet, text=True, check=False)
    if result.returncode != 0:
        if quiet:
            print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")
        raise SystemExit(
            f"demo: {cmd[0]} {cmd[1] if len(cmd) > 1 else ''} failed with exit code {result.returncode}"
        )


def capture(*cmd: str | Path) -> str:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=True).stdout


def share_history() -> None:
    """Sharing decided around the sequencing time (services with explicit times, as the page would)."""
    engine = make_engine()
    sessions = make_sessions(engine)
    day = timedelta(days=1)
    with sessions.begin() as s:
        # Liver eQTL: shared before sequencing with an external and an internal group.
        sharing.set_sharing(
            s,
            project="Liver eQTL",
            groups=["Acme Therapeutics", "Bioinformatics Core"],
            actor="dodom",
            now=SEQUENCED - 10 * day,
        )
        # Mouse Atlas: shared with Northgate only after sequencing: nothing of this run for them.
        sharing.set_sharing(
            s,
            project="Mouse Atlas",
            groups=["Northgate University"],
            actor="mtaylor",
            now=SEQUENCED + 4 * day,
        )
        # Acme's screen: shared with the special group before sequencing, revoked after: still delivered.
        sharing.set_sharing(
            s,
            project="Acme CRISPR screen",
            groups=["Functional Genomics Centre", "Odom Lab"],
            actor="ajones",
            now=SEQUENCED - 5 * day,
        )
        sharing.set_sharing(
            s, project="Acme CRISPR screen", groups=["Odom Lab"], actor="ajones", now=SEQUENCED + 2 * day
        )
    engine.dispose()


def build_run_folder(parent: Path) -> Path:
    """The example run's metadata, BCL Convert output with random fastq bytes, and its completion marker."""
    run_dir = parent / RUN_ID
    out = run_dir / "BCLConvert"
    (out / "Reports").mkdir(parents=True)
    for name in ("RunInfo.xml", "RunParameters.xml"):
        shutil.copy(REPO / "examples" / "run" / name, run_dir / name)
    shutil.copy(REPO / "examples" / "run" / "SampleSheet.csv", out / "Reports" / "SampleSheet.csv")
    (out / "Reports" / "fastq_list.csv").write_text("RGID,RGSM,RGLB,Lane,Read1File,Read2File\n")
    number = 0
    for pool, samples in SAMPLES.items():
        (out / pool).mkdir()
        for sample in samples:
            number += 1
            for read in ("R1", "R2"):
                (out / pool / f"{sample}_S{number}_L00{LANES[pool]}_{read}_001.fastq.gz").write_bytes(
                    os.urandom(FASTQ_BYTES)
                )
    for lane in (1, 2):
        (out / f"Undetermined_S0_L00{lane}_R1_001.fastq.gz").write_bytes(os.urandom(1024 * 1024))
    (run_dir / "RTAComplete.txt").write_text(" ")
    return run_dir


def show_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        depth = len(path.relative_to(root).parts) - 1
        size = f"  {path.stat().st_size:>12,} bytes" if path.is_file() else "/"
        print(f"  {'  ' * depth}{path.name}{size}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(seqshare: Path, *args: str) -> Iterator[str]:
    """`seqshare serve` on a free port of 127.0.0.1 for the block's length (its URL); stopped whatever
    happens."""
    import httpx  # locked; only these steps need it

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(seqshare), "serve", *args, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            if server.poll() is not None:
                raise SystemExit(f"demo: seqshare serve exited with code {server.returncode}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise SystemExit("demo: seqshare serve did not answer")
        yield base
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def try_the_page(seqshare: Path, secret: str) -> None:
    """Serve the pages on 127.0.0.1 for a moment and sign in as the README says, so what the demo tells
    people to do is known to work."""
    import httpx

    with (
        serving(seqshare, "--dev") as base,
        httpx.Client(base_url=base, timeout=10, follow_redirects=True) as http,
    ):
        form = http.get("/signin").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
        if csrf is None:
            raise SystemExit("demo: the sign-in page has no form")
        listing = http.post("/signin", data={"token": secret, "csrf_token": csrf.group(1)})
        if listing.status_code != 200 or "Liver eQTL" not in listing.text:
            raise SystemExit(f"demo: signing in to the Data Sharing page failed ({listing.status_code})")
        page = http.get(f"/projects/{quote('Liver eQTL', safe='')}")
        if page.status_code != 200 or "Set Sharing" not in page.text:
            raise SystemExit(f"demo: the project page did not open ({page.status_code})")
    print(f"seqshare serve --dev on {base}: signed in as dodom, listed the projects, opened Liver eQTL")


def try_the_download(home: Path, seqshare: Path, run_dir: Path) -> None:
    """An internal group the project is shared with downloads it, verified; a revoke cuts it off at once."""
    token = json.loads(capture(seqshare, "token", "create", "bcore", "--name", "demo download", "--json"))
    dest = home / "downloads"
    shutil.rmtree(dest, ignore_errors=True)
    with serving(seqshare) as base:
        env = {**os.environ, "SEQSHARE_URL": base, "SEQSHARE_TOKEN": token["secret"]}
        print(f"$ SEQSHARE_URL={base} SEQSHARE_TOKEN=… seqshare download 'Liver eQTL' --dest {dest}")
        got = subprocess.run(
            [str(seqshare), "download", "Liver eQTL", "--dest", str(dest), "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if got.returncode != 0:
            raise SystemExit(f"demo: seqshare download failed ({got.returncode}): {got.stderr.strip()}")
        fetched = sorted(p for p in dest.rglob("*.fastq.gz"))
        for path in fetched:
            if path.read_bytes() != (run_dir / "BCLConvert" / path.parent.name / path.name).read_bytes():
                raise SystemExit(f"demo: {path} differs from the run folder's file")
        print(
            f"bcore (Bioinformatics Core, internal) fetched {len(fetched)} files of Liver eQTL, "
            "md5-verified, byte-identical to the run folder:"
        )
        for path in fetched:
            print(f"  {path.relative_to(dest)}")
        run(seqshare, "share", "set", "Liver eQTL", "Acme Therapeutics", "--as", "dodom")
        again = subprocess.run(
            [str(seqshare), "download", "Liver eQTL", "--dest", str(dest)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if again.returncode != 4:
            raise SystemExit(f"demo: a revoked group could still download (exit {again.returncode})")
        print(f"the next download, at once: exit {again.returncode}: {again.stderr.strip()}")
        run(
            seqshare,
            "share",
            "set",
            "Liver eQTL",
            "Acme Therapeutics",
            "Bioinformatics Core",
            "--as",
            "dodom",
        )


def _json_lists(text: str) -> list[list[object]]:
    decoder = json.JSONDecoder()
    found = []
    for start in (i for i, c in enumerate(text) if c == "["):
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, list):
            found.append(value)
    return found


def delivering_dag_run(airflow: Path) -> str:
    """The id of the demo's first distribute_run DAG run (the one that delivered)."""
    listed = capture(airflow, "dags", "list-runs", "distribute_run", "-o", "json")
    runs = next(  # the JSON list, after any warning Airflow prints first
        (found for found in _json_lists(listed) if all(isinstance(r, dict) and "run_id" in r for r in found)),
        [],
    )
    if not runs:
        raise SystemExit("demo: Airflow lists no distribute_run DAG run")
    return min(runs, key=lambda r: str(r.get("start_date") or r.get("logical_date") or ""))["run_id"]


def show_the_pages(home: Path, seqshare: Path, airflow: Path) -> None:
    """How to open the Data Sharing page (on its own and inside Airflow) and this run's Deliveries view."""
    created = json.loads(
        capture(seqshare, "token", "create", "dodom", "--name", "demo", "--expires", "7d", "--json")
    )
    secret = created["secret"]
    try_the_page(seqshare, secret)
    dag_run = quote(delivering_dag_run(airflow), safe="")
    env = f"SEQSHARE_HOME={shlex.quote(str(home))}"
    airflow_env = (
        f"{env} SEQSHARE_DATABASE_URL=sqlite:///{shlex.quote(str(home / 'seqshare.db'))} "
        f"SEQSHARE_SECRET_KEY=$({BIN / 'python'} -c 'import secrets; print(secrets.token_urlsafe(48))') "
        f"AIRFLOW_HOME={shlex.quote(str(home / 'airflow'))} "
        f"AIRFLOW__CORE__DAGS_FOLDER={shlex.quote(str(REPO / 'dags'))} "
        f"AIRFLOW__CORE__PLUGINS_FOLDER={shlex.quote(str(REPO / 'plugins'))} "
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=ops:viewer"
    )
    print(
        f"""
The Data Sharing page, on its own (a local trial: --dev signs sessions with a key that ends with the process):
  {env} {seqshare} serve --dev
  open http://127.0.0.1:8000/projects and sign in as dodom (Odom Lab) with this token (valid 7 days):
    {secret}
  Liver eQTL's own page: http://127.0.0.1:8000/projects/{quote("Liver eQTL", safe="")}
  another demo user (e.g. ajones, Acme Therapeutics, external): {env} {seqshare} token create ajones

Inside Airflow: the same page at /seqshare, and the Deliveries view of this demo's DAG run:
  {airflow_env} \\
    {airflow} api-server --host 127.0.0.1 --port 8080
  Data Sharing: http://127.0.0.1:8080/seqshare/projects (the same token)
  Deliveries:   http://127.0.0.1:8080/seqshare-ops/deliveries/distribute_run/{dag_run}
                (or the Deliveries tab of http://127.0.0.1:8080/dags/distribute_run/runs/{dag_run})
  Airflow sign-in: ops, password in {home / "airflow" / "simple_auth_manager_passwords.json.generated"}
  (written when the API server first starts)"""
    )


def main() -> None:
    home = Path(os.environ["SEQSHARE_HOME"]).resolve()
    airflow_home = home / "airflow"
    os.environ.update(
        {
            "SEQSHARE_DATABASE_URL": f"sqlite:///{home / 'seqshare.db'}",
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
        }
    )
    seqshare, airflow = BIN / "seqshare", BIN / "airflow"

    step("a local SFTP server: OpenSSH sshd on 127.0.0.1, its own config and keys")
    server = localsftp.start(home / "sshd")
    ftp_root = server.base_dir
    os.environ["AIRFLOW_CONN_SEQSHARE_SFTP"] = json.dumps(server.connection(ftp_root))
    print(
        f"sshd on {server.host}:{server.port}, host key {server.host_key_line.split()[0]} pinned in the "
        f"Airflow connection seqshare_sftp; groups' directories under {ftp_root}"
    )
    try:
        step("the application database (SQLite) and the LIMS export")
        run(seqshare, "db", "upgrade")
        run(seqshare, "lims", "import", REPO / "examples" / "lims.yaml")

        step("the Data Sharing rules, through the CLI (--as applies the page's rules)")
        run(seqshare, "share", "list", "--as", "dodom")
        run(seqshare, "share", "options", "Acme CRISPR screen", "--as", "ajones")
        print("$ seqshare share set 'Acme CRISPR screen' 'Northgate University' --as ajones")
        refused = subprocess.run(
            [str(seqshare), "share", "set", "Acme CRISPR screen", "Northgate University", "--as", "ajones"],
            capture_output=True,
            text=True,
            check=False,
        )
        print(refused.stderr.strip(), f"(exit code {refused.returncode}; nothing changed)")

        step(f"sharing decided around the sequencing of {RUN_ID} ({SEQUENCED:%Y-%m-%d %H:%M} UTC)")
        share_history()
        for project in ("Liver eQTL", "Mouse Atlas", "Acme CRISPR screen"):
            run(seqshare, "share", "show", project)

        step("a completed run folder appears")
        run_dir = build_run_folder(home / "runs")
        print(f"{run_dir}: {sum(1 for _ in run_dir.rglob('*.fastq.gz'))} fastq files")

        step("Airflow: metadata database, the sftp_sessions pool, then distribute_run for the run folder")
        run(airflow, "db", "migrate", quiet=True)
        run(
            airflow,
            "pools",
            "set",
            "sftp_sessions",
            "4",
            "Concurrent SFTP sessions of deliveries",
            quiet=True,
        )
        run(
            airflow,
            "dags",
            "test",
            "distribute_run",
            "-c",
            json.dumps({"run_folder": str(run_dir)}),
            quiet=True,
        )
        print("distribute_run finished: success")

        step("what was planned, delivered and withheld, and why (seqshare run plan)")
        run(seqshare, "run", "plan", RUN_ID)

        step("what landed in each group's directory on the SFTP server")
        show_tree(ftp_root)
        for manifest in sorted(ftp_root.rglob("md5sums.txt")):
            check = subprocess.run(
                ["md5sum", "-c", "md5sums.txt"],
                cwd=manifest.parent,
                capture_output=True,
                text=True,
                check=False,
            )
            verdict = "all files OK" if check.returncode == 0 else "MISMATCH"
            print(f"md5sum -c {manifest.relative_to(ftp_root)}: {verdict}")
            if check.returncode != 0:
                raise SystemExit(check.stdout)

        step("the ledger (30-day time to live)")
        run(seqshare, "run", "ledger", RUN_ID)

        step("running the DAG again delivers nothing twice")
        ledger = capture(seqshare, "run", "ledger", RUN_ID, "--json")
        tree = {p: p.stat().st_mtime_ns for p in ftp_root.rglob("*")}
        conf = json.dumps({"run_folder": str(run_dir)})
        run(airflow, "dags", "test", "distribute_run", "-c", conf, quiet=True)
        if capture(seqshare, "run", "ledger", RUN_ID, "--json") != ledger:
            raise SystemExit("demo: the ledger changed on a re-run")
        if {p: p.stat().st_mtime_ns for p in ftp_root.rglob("*")} != tree:
            raise SystemExit("demo: the SFTP tree changed on a re-run")
        print("second distribute_run: success; ledger and SFTP tree unchanged")

        step("the daily purge, as a dry run: nothing has reached its 30-day time to live yet")
        run(seqshare, "purge", "--dry-run")

        step("an internal group downloads a shared project (seqshare download), and a revoke cuts it off")
        try_the_download(home, seqshare, run_dir)

        step("the Data Sharing page and the Deliveries view, on 127.0.0.1")
        show_the_pages(home, seqshare, airflow)
    finally:
        server.stop()
    print(f"\ndemo state in {home} (SEQSHARE_HOME={home} {seqshare} --help)")


if __name__ == "__main__":
    main()
