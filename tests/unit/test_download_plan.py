"""The download plan: the server's listing checked, --glob, local names, bytes still to fetch, free space."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from seqshare.download.errors import BadAnswer, BadInput, DiskFull, Exit
from seqshare.download.plan import (
    check_space,
    make_plan,
    matches,
    parse_listing,
    safe_path,
    still_to_fetch,
)

RUN = "260301_A01535_0001_BTESTRUN01"


def entry(name: str, size: int = 10, md5: str | None = None, pool: str = "SLX-1") -> dict[str, Any]:
    return {
        "run_id": RUN,
        "pool": pool,
        "path": f"{RUN}/{pool}/{name}",
        "size": size,
        "md5": md5,
        "url": f"/api/v1/files/{RUN}/{pool}/{name}",
    }


def listing(*entries: dict[str, Any]) -> Any:
    return parse_listing({"project": "Int Project", "files": list(entries)})


def test_a_listing_becomes_jobs_under_dest_at_run_pool_name(tmp_path: Path) -> None:
    plan = make_plan(
        listing(entry("a_R1.fastq.gz"), entry("b_R1.fastq.gz", pool="SLX-2")), tmp_path, None, "X"
    )
    assert [j.final for j in plan] == [
        tmp_path / RUN / "SLX-1" / "a_R1.fastq.gz",
        tmp_path / RUN / "SLX-2" / "b_R1.fastq.gz",
    ]
    job = plan[0]
    assert job.partial.name == "a_R1.fastq.gz.partial"
    assert job.etag_file.name == "a_R1.fastq.gz.partial.etag"
    assert job.stamp == tmp_path / RUN / "SLX-1" / ".seqshare" / "a_R1.fastq.gz.verified"


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "../x",
        "a/../../x",
        "a//b",
        "a/./b",
        "",
        "a\\b",
        "a/b\nc",
        "a/x.partial",
        "a/x.partial.etag",
        "a/.seqshare/b",
        42,
        None,
    ],
)
def test_a_server_path_that_could_leave_dest_or_clash_with_our_own_files_is_refused(path: object) -> None:
    with pytest.raises(BadAnswer, match="unusable path"):
        safe_path(path)


def test_a_plain_relative_path_is_kept() -> None:
    assert safe_path(f"{RUN}/SLX-1/S1.fastq.gz") == PurePosixPath(RUN, "SLX-1", "S1.fastq.gz")


@pytest.mark.parametrize(
    "data",
    [
        "<html>proxy login</html>",
        {"files": "x"},
        {"files": [{"path": "a/b", "size": "10", "url": "/u", "run_id": "r", "pool": "p"}]},
        {"files": [{"path": "a/b", "size": True, "url": "/u", "run_id": "r", "pool": "p"}]},
        {"files": [{**entry("a"), "md5": "not-hex"}]},
        {"files": [{**entry("a"), "url": "http://elsewhere.example/x"}]},
        {"files": [entry("a"), entry("a")]},
    ],
)
def test_a_broken_listing_is_a_bad_answer_in_one_line(data: Any) -> None:
    with pytest.raises(BadAnswer) as raised:
        parse_listing(data)
    assert raised.value.exit == Exit.UNREACHABLE and "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("pattern", "hit"),
    [
        ("*_R1_*", True),
        ("*_R2_*", False),
        ("S1_*", True),
        ("SLX-1/*", False),
        (f"{RUN}/SLX-1/*_R1_*", True),
        ("*/SLX-2/*", False),
    ],
)
def test_glob_matches_the_name_or_with_a_slash_the_path(pattern: str, hit: bool) -> None:
    assert matches(PurePosixPath(RUN, "SLX-1", "S1_S1_L001_R1_001.fastq.gz"), pattern) is hit


def test_a_glob_matching_nothing_is_bad_input_but_an_empty_listing_is_not(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"no file of 'SLX-1' matches --glob '\*.bam' \(1 file"):
        make_plan(listing(entry("a.fastq.gz")), tmp_path, "*.bam", "SLX-1")
    assert make_plan(listing(), tmp_path, "*.bam", "SLX-1") == []


def test_bytes_still_to_fetch_count_a_resumable_partial_and_not_a_final_file_of_the_right_size(
    tmp_path: Path,
) -> None:
    done, resumable, orphan, fresh = make_plan(
        listing(entry("done", 100), entry("resumable", 100), entry("orphan", 100), entry("fresh", 100)),
        tmp_path,
        None,
        "X",
    )
    done.final.parent.mkdir(parents=True)
    done.final.write_bytes(b"x" * 100)
    resumable.partial.write_bytes(b"x" * 30)
    resumable.etag_file.write_text('"v1"\n')
    orphan.partial.write_bytes(b"x" * 30)  # no ETag beside it: fetched from zero
    assert [still_to_fetch(j) for j in (done, resumable, orphan, fresh)] == [0, 70, 100, 100]


def test_not_enough_space_is_refused_before_starting(tmp_path: Path) -> None:
    huge = make_plan(listing(entry("huge", 1 << 62)), tmp_path / "new" / "dir", None, "X")
    with pytest.raises(DiskFull, match=r"not enough space in .*still to download") as raised:
        check_space(tmp_path / "new" / "dir", huge)
    assert raised.value.exit == Exit.DISK_FULL
    small = make_plan(listing(entry("small", 10)), tmp_path, None, "X")
    assert check_space(tmp_path, small) == 10
