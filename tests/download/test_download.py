"""`seqshare download` as a scientist runs it, against the real API (`seqshare serve`, uvicorn on
127.0.0.1) on SQLite and PostgreSQL: who gets which bytes, revoke and grant, a killed client resuming, a
corrupt partial, a file replaced mid-download, the token file's permissions, disk space, an absent server.

Where a test must act at an exact moment (between two files, in the middle of one), the client talks to
the server through `gate.Gate`, a relay that calls the test before a request goes on or holds an answer's
bytes until released: no sleeping in the hope that the moment has come.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from seqshare.services import sharing
from tests.download.conftest import BIG, BIG_SIZE, World, download, finish, start
from tests.download.gate import Hold, gate
from tests.web.conftest import bearer
from tests.web.servers import free_port
from tests.web.world import MISSING, NO_ACCESS, PROJECT, RUN_ID

SLX1 = ["S1_S1_L001_R1_001.fastq.gz", "S1_S1_L001_R2_001.fastq.gz", "S2_S2_L001_R1_001.fastq.gz"]


def here(dest: Path, pool: str, name: str) -> Path:
    return dest / RUN_ID / pool / name


def partials(dest: Path) -> list[Path]:
    return sorted(p for p in dest.rglob("*") if p.name.endswith((".partial", ".partial.etag")))


def now() -> datetime:
    return datetime.now(UTC)


def test_a_member_of_a_shared_internal_group_gets_byte_identical_files_and_a_rerun_fetches_nothing(
    server: str, world: World, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    result = download(
        server, world.tokens.by_user["other"], PROJECT, "--dest", str(dest), "--parallel", "3", cwd=tmp_path
    )
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    for key, source in world.files.items():
        pool, name = key.split("/")
        assert here(dest, pool, name).read_bytes() == source.read_bytes(), key
    assert sorted(result.files("done")) == sorted(f"{RUN_ID}/{key}" for key in world.files)
    assert partials(dest) == []
    assert result.summary["exit"] == 0 and result.summary["bytes"] == sum(
        p.stat().st_size for p in world.files.values()
    )
    gets_before = [r for r in world.records() if r.method == "GET"]
    assert all(r.completed for r in gets_before) and len(gets_before) == len(world.files)

    again = download(server, world.tokens.by_user["other"], PROJECT, "--dest", str(dest), cwd=tmp_path)
    assert again.code == 0 and sorted(again.files("skipped")) == sorted(result.files("done"))
    assert [r for r in world.records() if r.method == "GET"] == gets_before  # not one file asked for again


def test_glob_and_run_choose_the_files(server: str, world: World, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    result = download(
        server,
        world.tokens.by_user["owner"],
        "SLX-1",
        "--run",
        RUN_ID,
        "--glob",
        "*_R1_*",
        "--dest",
        str(dest),
        cwd=tmp_path,
    )
    assert result.code == 0, result.stderr
    assert sorted(p.name for p in (dest / RUN_ID / "SLX-1").iterdir() if p.is_file()) == sorted(
        [BIG, SLX1[0], SLX1[2]]
    )
    nothing = download(server, world.tokens.by_user["owner"], "SLX-1", "--glob", "*.bam", cwd=tmp_path)
    assert nothing.code == 1 and nothing.stderr.startswith("error: no file of 'SLX-1' matches --glob '*.bam'")


@pytest.mark.parametrize("target", [PROJECT, "SLX-1"])
def test_no_one_else_gets_anything_or_learns_that_it_exists(
    server: str, world: World, tmp_path: Path, target: str
) -> None:
    missing = MISSING if target == PROJECT else "SLX-9"
    for user in NO_ACCESS:
        dest = tmp_path / user
        hidden = download(server, world.tokens.by_user[user], target, "--dest", str(dest), cwd=tmp_path)
        absent = download(server, world.tokens.by_user[user], missing, "--dest", str(dest), cwd=tmp_path)
        assert hidden.code == absent.code == 4, (user, hidden.stderr)
        assert hidden.stderr == absent.stderr.replace(missing, target), user
        assert hidden.stderr.count("\n") == 1 and "Traceback" not in hidden.stderr
        assert not dest.exists() or list(dest.rglob("*")) == []
        assert world.records(user) == []


def test_a_token_missing_revoked_or_expired_is_refused_in_one_line(
    server: str, world: World, tmp_path: Path
) -> None:
    for token, says in [
        (None, "no token"),
        (world.tokens.revoked, "revoked"),
        (world.tokens.expired, "expired"),
    ]:
        result = download(server, token, "SLX-1", "--dest", str(tmp_path / "d"), cwd=tmp_path)
        assert result.code == 3, result.stderr
        assert says in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "d").exists()


def test_a_revoke_between_two_files_stops_the_second_and_a_grant_makes_the_next_call_succeed(
    server: str, world: World, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    token = world.tokens.by_user["other"]
    file_gets: list[str] = []

    def revoke_before_the_second_file(line: str) -> None:
        if line.startswith("GET /api/v1/files/"):
            file_gets.append(line)
            if len(file_gets) == 2:  # the first file is done (one at a time): take the share away now
                sharing.set_sharing_now(
                    world.sessions, project=PROJECT, groups=["Ext Co"], actor="owner", clock=now
                )

    with gate(server) as relay:
        relay.before = revoke_before_the_second_file
        result = download(
            relay.url, token, "SLX-1", "--glob", "S*_R*", "--parallel", "1", "--dest", str(dest), cwd=tmp_path
        )
    assert result.code == 4, result.stderr
    assert result.stderr == (
        "error: access ended during the download (no such pool or project: 'SLX-1'); files not yet fetched "
        "were not\n"
    )
    (first,) = result.files("done")
    assert [p.name for p in (dest / RUN_ID / "SLX-1").iterdir() if p.is_file()] == [first.rsplit("/")[-1]]
    assert result.summary["not_started"] == 3 and len(file_gets) == 2
    assert [r.status for r in world.records() if r.method == "GET"] == [200, 404]

    shut = download(server, token, "SLX-1", "--dest", str(dest), cwd=tmp_path)
    assert shut.code == 4 and shut.stderr == "error: no such pool or project: 'SLX-1'\n"

    sharing.set_sharing_now(
        world.sessions, project=PROJECT, groups=["Ext Co", "Other Lab"], actor="owner", clock=now
    )
    opened = download(server, token, "SLX-1", "--dest", str(dest), cwd=tmp_path)
    assert opened.code == 0, opened.stderr
    assert opened.files("skipped") == [first] and len(opened.files("done")) == 3
    for name in [BIG, *SLX1]:
        assert here(dest, "SLX-1", name).read_bytes() == world.files[f"SLX-1/{name}"].read_bytes()


def killed_mid_file(server: str, world: World, dest: Path, cwd: Path, after: int) -> int:
    """Start downloading BIG through a relay that holds the answer after `after` bytes, SIGKILL the client
    once its partial has bytes, and return the partial's size."""
    partial = here(dest, "SLX-1", BIG + ".partial")
    with gate(server) as relay:
        relay.hold = Hold(path=BIG, after=after)
        process = start(
            relay.url, world.tokens.by_user["other"], "SLX-1", "--glob", BIG, "--dest", str(dest), cwd=cwd
        )
        try:
            assert relay.hold.reached.wait(timeout=60), "the answer never reached the hold"
            deadline = time.monotonic() + 30
            while (partial.stat().st_size if partial.exists() else 0) < after // 2:
                assert time.monotonic() < deadline, "the client wrote nothing of what it received"
                assert process.poll() is None
                time.sleep(0.01)
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
            finish(process)
    assert process.returncode == -signal.SIGKILL
    assert not here(dest, "SLX-1", BIG).exists()
    return partial.stat().st_size


def test_a_client_killed_mid_file_resumes_without_the_finished_bytes_being_sent_again(
    server: str, world: World, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    kept = killed_mid_file(server, world, dest, tmp_path, after=8 << 20)
    assert 0 < kept < BIG_SIZE

    result = download(
        server, world.tokens.by_user["other"], "SLX-1", "--glob", BIG, "--dest", str(dest), cwd=tmp_path
    )
    assert result.code == 0, result.stderr
    assert here(dest, "SLX-1", BIG).read_bytes() == world.files[f"SLX-1/{BIG}"].read_bytes()
    (done,) = [e for e in result.events if e["event"] == "file"]
    assert (done["resumed_from"], done["bytes"]) == (kept, BIG_SIZE - kept)
    resumed = [r for r in world.records() if r.method == "GET"][-1]
    assert (resumed.status, resumed.range_start, resumed.bytes_sent, resumed.completed) == (
        206,
        kept,
        BIG_SIZE - kept,
        True,
    )
    assert partials(dest) == []


def test_a_file_replaced_since_its_partial_began_is_reported_and_started_over_never_mixed(
    server: str, world: World, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    killed_mid_file(server, world, dest, tmp_path, after=4 << 20)
    source = world.files[f"SLX-1/{BIG}"]
    replacement = os.urandom(BIG_SIZE)
    fresh = source.with_name(".new")
    fresh.write_bytes(replacement)
    os.replace(fresh, source)

    token = world.tokens.by_user["other"]
    changed = download(server, token, "SLX-1", "--glob", BIG, "--dest", str(dest), cwd=tmp_path)
    assert changed.code == 5
    assert changed.files("changed") == [f"{RUN_ID}/SLX-1/{BIG}"]
    assert changed.stderr.count("\n") == 1 and "changed on the server" in changed.stderr
    assert partials(dest) == [] and not here(dest, "SLX-1", BIG).exists()
    assert [r.status for r in world.records() if r.method == "GET"][-1] == 412

    again = download(server, token, "SLX-1", "--glob", BIG, "--dest", str(dest), cwd=tmp_path)
    assert again.code == 0 and here(dest, "SLX-1", BIG).read_bytes() == replacement


def test_a_file_replaced_while_it_is_sent_is_reported_not_mixed(
    server: str, world: World, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    source = world.files[f"SLX-1/{BIG}"]
    replacement = os.urandom(BIG_SIZE)
    with gate(server) as relay:
        relay.hold = Hold(path=BIG, after=2 << 20)
        process = start(
            relay.url,
            world.tokens.by_user["other"],
            "SLX-1",
            "--glob",
            BIG,
            "--dest",
            str(dest),
            cwd=tmp_path,
        )
        assert relay.hold.reached.wait(timeout=60)
        source.write_bytes(replacement)  # in place: the same inode, new bytes
        relay.hold.release.set()
        result = finish(process)
    assert result.code == 5, result.stderr
    assert result.files("changed") == [f"{RUN_ID}/SLX-1/{BIG}"]
    assert "changed on the server during the download" in result.stderr
    assert partials(dest) == [] and not here(dest, "SLX-1", BIG).exists()

    again = download(
        server, world.tokens.by_user["other"], "SLX-1", "--glob", BIG, "--dest", str(dest), cwd=tmp_path
    )
    assert again.code == 0 and here(dest, "SLX-1", BIG).read_bytes() == replacement


def test_a_corrupted_partial_is_found_and_fetched_again_from_zero(
    server: str, world: World, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    token = world.tokens.by_user["other"]
    url = f"/api/v1/files/{RUN_ID}/SLX-1/{BIG}"
    etag = httpx.head(server + url, headers=bearer(token), timeout=60).headers["etag"]
    partial = here(dest, "SLX-1", BIG + ".partial")
    partial.parent.mkdir(parents=True)
    good = world.files[f"SLX-1/{BIG}"].read_bytes()
    partial.write_bytes(good[:1000] + b"X" + good[1001 : 5 << 20])  # one byte flipped on disk
    partial.with_name(BIG + ".partial.etag").write_text(etag)

    result = download(server, token, "SLX-1", "--glob", BIG, "--dest", str(dest), cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert hashlib.md5(here(dest, "SLX-1", BIG).read_bytes()).digest() == hashlib.md5(good).digest()
    (note,) = [e["message"] for e in result.events if e["event"] == "note"]
    assert "md5 mismatch" in note and "again from the start" in note
    gets = [(r.status, r.range_start) for r in world.records() if r.method == "GET"]
    assert gets == [(206, 5 << 20), (200, None)]


def test_a_token_file_others_may_read_is_refused_and_a_private_one_works(
    server: str, world: World, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'url = "{server}"\ntoken = "{world.tokens.by_user["other"]}"\n')
    os.chmod(config, 0o644)
    refused = download(
        server, None, "SLX-2", "--dest", str(tmp_path / "d"), cwd=tmp_path, SEQSHARE_CONFIG=str(config)
    )
    assert refused.code == 3
    assert refused.stderr == (
        f"error: refused: '{config}' holds your token but others may read or change it (mode 0644); "
        f"run `chmod 600 {config}`\n"
    )
    assert world.records() == [] and not (tmp_path / "d").exists()
    os.chmod(config, 0o600)
    works = download(
        server, None, "SLX-2", "--dest", str(tmp_path / "d"), cwd=tmp_path, SEQSHARE_CONFIG=str(config)
    )
    assert works.code == 0, works.stderr
    assert len(works.files("done")) == 1


def test_not_enough_disk_space_is_refused_before_a_byte_is_fetched(
    server: str, world: World, tmp_path: Path
) -> None:
    huge = world.files[f"SLX-1/{BIG}"]
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    with huge.open("r+b") as f:  # the file grows (a hole): its listing says more than the disk has free
        f.truncate(free + (1 << 30))
    result = download(
        server, world.tokens.by_user["other"], "SLX-1", "--dest", str(tmp_path / "d"), cwd=tmp_path
    )
    assert result.code == 6
    assert result.stderr.startswith(f"error: not enough space in '{tmp_path / 'd'}': ")
    assert result.stderr.count("\n") == 1
    assert [r for r in world.records() if r.method == "GET"] == []


def test_a_server_out_of_reach_is_one_line(world: World, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = download(url, world.tokens.by_user["other"], "SLX-1", cwd=tmp_path)
    assert result.code == 7
    assert result.stderr.startswith(f"error: cannot reach the seqshare server at {url}")
    assert result.stderr.count("\n") == 1
