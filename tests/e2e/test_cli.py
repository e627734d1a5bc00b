"""The installed `seqshare` command, run as a person or a script would, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import databases

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lims.yaml"
SEQSHARE = shutil.which("seqshare", path=str(Path(sys.executable).parent)) or "seqshare"
PROJECT = "Liver eQTL"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield databases.scratch_sqlite(tmp_path)
    else:
        with databases.scratch_postgres() as url:
            yield url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def imported_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database with the example LIMS export imported, shared by the tests that only read or get refused."""
    if request.param == "sqlite":
        url = databases.scratch_sqlite(tmp_path_factory.mktemp("cli"))
        ok(url, "db", "upgrade")
        ok(url, "lims", "import", str(EXAMPLE))
        yield url
    else:
        with databases.scratch_postgres() as url:
            ok(url, "db", "upgrade")
            ok(url, "lims", "import", str(EXAMPLE))
            yield url


def seqshare(db_url: str, *args: str, **more_env: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SEQSHARE_DATABASE_URL": db_url, **more_env}
    env.pop("SEQSHARE_DEBUG", None)
    return subprocess.run([SEQSHARE, *args], capture_output=True, text=True, env=env, timeout=60, check=False)


def ok(db_url: str, *args: str) -> str:
    result = seqshare(db_url, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def as_json(db_url: str, *args: str):
    return json.loads(ok(db_url, *args, "--json"))


def test_the_sharing_flow_end_to_end(db_url: str) -> None:
    ok(db_url, "db", "upgrade")
    imported = as_json(db_url, "lims", "import", str(EXAMPLE))
    assert imported["counts"]["projects"] == {"created": 3, "updated": 0, "unchanged": 0}
    again = as_json(db_url, "lims", "import", str(EXAMPLE))
    assert all(c["created"] == c["updated"] == 0 for c in again["counts"].values())

    change = as_json(
        db_url, "share", "set", PROJECT, "Acme Therapeutics", "Bioinformatics Core", "--as", "mtaylor"
    )
    assert change["after"] == ["Acme Therapeutics", "Bioinformatics Core"]
    assert change["changed"] is True

    shown = as_json(db_url, "share", "show", PROJECT)
    assert [g["name"] for g in shown["project"]["shared_with"]] == [
        "Acme Therapeutics",
        "Bioinformatics Core",
    ]
    assert shown["project"]["pools"] == ["SLX-10001"]
    granted_at = shown["history"][0]["granted_at"]

    assert as_json(db_url, "share", "at", PROJECT, "2020-01-01T00:00:00Z")["groups"] == []
    at_grant = as_json(db_url, "share", "at", PROJECT, granted_at)["groups"]
    assert [g["name"] for g in at_grant] == ["Acme Therapeutics", "Bioinformatics Core"]

    listed = as_json(db_url, "share", "list", "--as", "dodom")
    assert [p["name"] for p in listed] == ["Liver eQTL", "Mouse Atlas"]

    cleared = as_json(db_url, "share", "clear", PROJECT, "--as", "dodom")
    assert cleared["after"] == []
    # The snapshot at the grant still shows the groups: revoking later does not rewrite the past.
    assert len(as_json(db_url, "share", "at", PROJECT, granted_at)["groups"]) == 2

    events = as_json(db_url, "audit", "--project", PROJECT)
    assert [(e["actor"], e["action"], e["before"], e["after"]) for e in events] == [
        ("mtaylor", "share.set", [], ["Acme Therapeutics", "Bioinformatics Core"]),
        ("dodom", "share.clear", ["Acme Therapeutics", "Bioinformatics Core"], []),
    ]
    human = ok(db_url, "share", "show", PROJECT)
    assert "shared with: (not shared)" in human


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["share", "show", "No Such Project"], "unknown project 'No Such Project'"),
        (["share", "set", PROJECT, "Northgate University", "--as", "ajones"], "may not change the sharing"),
        (
            ["share", "set", "Acme CRISPR screen", "Northgate University", "--as", "ajones"],
            "may share only with internal groups",
        ),
        (["share", "set", PROJECT, "Nowhere", "--as", "dodom"], "unknown group 'Nowhere'"),
        (["share", "at", PROJECT, "yesterday"], "instant 'yesterday' is not ISO 8601"),
        (["share", "at", PROJECT, "2026-03-01T09:30:00"], "has no time zone"),
        (["lims", "import", "/nonexistent/lims.yaml"], "no such file"),
    ],
)
def test_errors_are_one_clear_line_and_a_nonzero_exit(
    imported_url: str, args: list[str], message: str
) -> None:
    result = seqshare(imported_url, *args)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_an_unmigrated_database_says_how_to_fix_it(db_url: str) -> None:
    result = seqshare(db_url, "share", "show", PROJECT)
    assert result.returncode == 1
    assert "run `seqshare db upgrade`" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    result = seqshare("postgresql+psycopg://nobody@127.0.0.1:1/none", "share", "show", PROJECT)
    assert result.returncode == 1
    assert result.stderr.startswith("error: database:")
    assert result.stderr.count("\n") == 1


def test_purge_through_the_cli_dry_run_first(tmp_path: Path, sshd_server, sftp_root, monkeypatch) -> None:
    url = databases.scratch_sqlite(tmp_path)
    ok(url, "db", "upgrade")
    ok(url, "lims", "import", str(EXAMPLE))
    old = sftp_root / "acme" / "old_system" / "legacy.txt"
    old.parent.mkdir(parents=True)
    old.write_text("left by an older system")
    sixty_days_ago = time.time() - 60 * 86400
    os.utime(old, (sixty_days_ago, sixty_days_ago))
    monkeypatch.setenv("AIRFLOW_CONN_SEQSHARE_SFTP", json.dumps(sshd_server.connection(sftp_root)))

    dry = as_json(url, "purge", "--dry-run")
    acme = next(g for g in dry["groups"] if g["group"] == "Acme Therapeutics")
    assert (acme["files"], acme["untracked_purged"], acme["dry_run"]) == (1, 1, True)
    assert old.exists()

    done = as_json(url, "purge", "--group", "Acme Therapeutics")
    assert [g["group"] for g in done["groups"]] == ["Acme Therapeutics"]
    assert not old.exists()
    assert not old.parent.exists()  # the folder it left empty is removed

    refused = seqshare(url, "purge", "--group", "Odom Lab")
    assert refused.returncode == 1
    assert refused.stderr == (
        "error: no FTP directory to purge for 'Odom Lab' (not an external group, and no delivered files)\n"
    )


def test_run_plan_previews_a_run_folder_without_writing_anything(tmp_path: Path) -> None:
    import yaml

    from tests.runs import RUN_ID, build_run
    from tests.world import WORLD

    url = databases.scratch_sqlite(tmp_path)
    world = tmp_path / "world.yaml"
    world.write_text(yaml.safe_dump(WORLD))
    ok(url, "db", "upgrade")
    ok(url, "lims", "import", str(world))
    ok(url, "share", "set", "Int Project", "Ext Co", "Other Lab", "--as", "owner")
    run = build_run(tmp_path / "runs", {"SLX-1": ["S1"], "SLX-3": ["S2"]}).path

    preview = as_json(url, "run", "plan", str(run), "--sequencing-time", "2099-01-01T00:00:00Z")
    assert preview["frozen"] is False
    assert [(g["group"], len(g["files"])) for g in preview["plan"]["groups"]] == [("Ext Co", 4)]
    human = ok(url, "run", "plan", str(run), "--sequencing-time", "2099-01-01T00:00:00Z")
    assert "withheld from Other Lab: internal group" in human

    # the preview reads the folder as the DAG does: instrument times in the configured zone
    bad_zone = seqshare(url, "run", "plan", str(run), SEQSHARE_INSTRUMENT_TZ="Mars/Olympus_Mons")
    assert bad_zone.returncode == 1
    assert "SEQSHARE_INSTRUMENT_TZ='Mars/Olympus_Mons' is not a time zone" in bad_zone.stderr

    nothing_written = seqshare(url, "run", "plan", RUN_ID)
    assert nothing_written.returncode == 1
    assert "has no frozen plan" in nothing_written.stderr
    mistyped = seqshare(url, "run", "plan", str(run) + "-typo")
    assert (mistyped.returncode, mistyped.stderr) == (1, f"error: '{run}-typo': no such run folder\n")
    unknown = seqshare(url, "run", "ledger", RUN_ID)  # the preview registered nothing either
    assert unknown.stderr == f"error: unknown run '{RUN_ID}'\n"
    not_a_run = seqshare(url, "run", "unlock", RUN_ID, "Ext Co")
    assert (not_a_run.returncode, not_a_run.stderr) == (1, f"error: unknown run '{RUN_ID}'\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["share", "show", PROJECT, "--bogus"], "error: seqshare share show: No such option: --bogus"),
        (["share", "set", PROJECT], "error: seqshare share set: Missing argument 'groups'."),
        (
            ["share", "at", PROJECT, "2026-03-01T09:30:00Z", "--jsn"],
            "error: seqshare share at: No such option: --jsn (Possible options: --json)",
        ),
        (["no-such-command"], "error: seqshare: No such command 'no-such-command'."),
    ],
)
def test_usage_errors_are_bad_input_one_line_and_exit_1(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """Exit 2 is the README's code for a bug; a mistyped command is the user's (Click's default is 2)."""
    result = seqshare(databases.scratch_sqlite(tmp_path), *args)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(message)
    assert result.stderr.rstrip().endswith("--help`)")


def test_a_command_alone_prints_its_help_and_exits_1_having_done_nothing(tmp_path: Path) -> None:
    result = seqshare(databases.scratch_sqlite(tmp_path), "share")
    assert result.returncode == 1
    assert "Set Sharing" in result.stdout + result.stderr
    assert seqshare(databases.scratch_sqlite(tmp_path), "share", "--help").returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["share", "show", "Liver\x1b[2JeQTL"], r"project 'Liver\x1b[2JeQTL': a name cannot hold a control"),
        (
            ["share", "set", PROJECT, "Acme\nTherapeutics", "--as", "dodom"],
            r"group 'Acme\nTherapeutics': a name cannot hold",
        ),
        (["share", "list", "--as", "do\tdom"], r"user 'do\tdom': a name cannot hold a control character"),
        (["run", "ledger", "run\x7f1"], r"run 'run\x7f1': a name cannot hold a control character"),
        # a byte that is not UTF-8 reaches Python as a lone surrogate, which no database driver can encode
        (["share", "show", os.fsdecode(b"Liver\xffeQTL")], "a name cannot hold an undecodable byte"),
    ],
)
def test_names_that_are_not_text_are_bad_input_on_every_backend(
    imported_url: str, args: list[str], message: str
) -> None:
    result = seqshare(imported_url, *args)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ")
    assert message in result.stderr


def test_a_nul_in_a_name_is_bad_input_on_every_backend(
    imported_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No process can be given a NUL in its arguments; a caller of `main` can (PostgreSQL refused it raw)."""
    from seqshare import cli

    monkeypatch.setenv("SEQSHARE_DATABASE_URL", imported_url)
    monkeypatch.delenv("SEQSHARE_DEBUG", raising=False)
    assert cli.main(["share", "set", PROJECT, "Acme\x00Therapeutics", "--as", "dodom"]) == 1
    assert cli.main(["share", "at", "Liver\x00eQTL", "2026-03-01T09:30:00Z"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        r"error: group 'Acme\x00Therapeutics': a name cannot hold a control character ('\x00' at position 4)",
        r"error: project 'Liver\x00eQTL': a name cannot hold a control character ('\x00' at position 5)",
    ]


def test_an_error_line_quotes_at_most_200_characters_of_a_name(imported_url: str) -> None:
    result = seqshare(imported_url, "share", "show", "x" * 5000)
    assert result.returncode == 1
    assert result.stderr == f"error: unknown project '{'x' * 199}… (5,000 characters)\n"


def test_a_database_held_by_another_writer_is_one_line_and_nothing_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQLite's write lock held past the busy timeout (30 s; 50 ms here): a lost race, not a raw error."""
    from seqshare import cli
    from seqshare.db import engine as db_engine

    url = databases.scratch_sqlite(tmp_path)
    ok(url, "db", "upgrade")
    ok(url, "lims", "import", str(EXAMPLE))
    monkeypatch.setenv("SEQSHARE_DATABASE_URL", url)
    monkeypatch.delenv("SEQSHARE_DEBUG", raising=False)
    monkeypatch.setattr(db_engine, "BUSY_TIMEOUT_S", 0.05)
    holder = db_engine.make_engine(url)
    with holder.begin():  # BEGIN IMMEDIATE: another writer holds the lock
        assert cli.main(["lims", "import", str(EXAMPLE)]) == 1
        assert cli.main(["share", "set", PROJECT, "Acme Therapeutics", "--as", "mtaylor"]) == 1
    holder.dispose()
    locked = "error: the database stayed locked by another writer for 0.05 s; nothing was changed, try again"
    assert capsys.readouterr().err.splitlines() == [locked, locked]
    assert as_json(url, "share", "show", PROJECT)["history"] == []
