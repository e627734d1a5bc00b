"""The download API's file rules without a database: which file is opened, when a file counts as changed,
its md5, the Range header, and which files an older plan lists."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from seqshare.delivery.plan import DeliveryPlan, GroupPlan, PlannedFile, SourceFile
from seqshare.delivery.snapshot import SnapshotSource
from seqshare.errors import NotFound
from seqshare.services import files, run_files
from seqshare.web.files import byte_range

RUN = "260301_A01535_0001_BTESTRUN01"


def run_file(root: Path, source: str, *, resolved: bool = True) -> files.RunFile:
    path = root / source
    return files.RunFile(
        run_id=RUN,
        run_key=1,
        pool="SLX-1",
        pool_id=1,
        project="P",
        source=source,
        size=path.stat().st_size,
        resolved=str(path.resolve()) if resolved else None,
        run_folder=str(root),
        output_dir="BCLConvert",
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / RUN
    (folder / "BCLConvert" / "SLX-1").mkdir(parents=True)
    (folder / "BCLConvert" / "SLX-1" / "a.fastq.gz").write_bytes(b"A" * 5000)
    (tmp_path / "outside.txt").write_bytes(b"secret")
    return folder


def test_a_planned_file_opens_and_its_version_names_device_inode_size_mtime_and_ctime(root: Path) -> None:
    f = run_file(root, "BCLConvert/SLX-1/a.fastq.gz")
    with files.opened(f) as handle:
        st = os.stat(root / f.source)
        assert handle.version.tag == "-".join(
            f"{n:x}" for n in (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        )
        assert handle.read(4990) == b"A" * 10
        assert handle.changed() is None
        assert files.compute_md5(handle) == hashlib.md5(b"A" * 5000).hexdigest()


@pytest.mark.parametrize("with_resolved", [True, False])  # a plan from before `resolved` was kept, too
def test_a_planned_file_re_pointed_out_of_the_run_folder_is_no_such_file(
    root: Path, with_resolved: bool
) -> None:
    f = run_file(root, "BCLConvert/SLX-1/a.fastq.gz", resolved=with_resolved)
    path = root / f.source
    path.unlink()
    path.symlink_to(root.parent / "outside.txt")
    with pytest.raises(NotFound, match=f"^no such file: '{RUN}/SLX-1/a.fastq.gz'$"):
        files.open_file(f)


def test_a_pool_folder_re_pointed_to_a_folder_with_the_same_names_is_no_such_file(root: Path) -> None:
    f = run_file(root, "BCLConvert/SLX-1/a.fastq.gz")
    elsewhere = root.parent / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "a.fastq.gz").write_bytes(b"A" * 5000)  # same name, same size: another file all the same
    pool_dir = root / "BCLConvert" / "SLX-1"
    pool_dir.rename(root.parent / "moved")
    pool_dir.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(NotFound):
        files.open_file(f)


def test_a_folder_swapped_in_for_the_file_is_no_such_file(root: Path) -> None:
    f = run_file(root, "BCLConvert/SLX-1/a.fastq.gz")
    path = root / f.source
    path.unlink()
    path.mkdir()
    with pytest.raises(NotFound):
        files.open_file(f)


def test_a_write_a_replacement_and_a_removal_each_count_as_a_change(root: Path) -> None:
    f = run_file(root, "BCLConvert/SLX-1/a.fastq.gz")
    path = root / f.source
    with files.opened(f) as handle:
        with path.open("ab") as out:
            out.write(b"more")
        assert (handle.changed() or "").startswith("modified")
    with files.opened(run_file(root, f.source)) as handle:
        other = root / "new"
        other.write_bytes(b"B" * 5004)
        os.replace(other, path)
        assert handle.changed() == "replaced by another file"
    with files.opened(run_file(root, f.source)) as handle:
        path.unlink()
        assert (handle.changed() or "").startswith("removed")


def test_an_md5_read_while_the_file_changes_is_refused(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = run_file(root, "BCLConvert/SLX-1/a.fastq.gz")
    real = files.OpenFile.read

    def read_and_touch(self: files.OpenFile, offset: int, size: int = files.CHUNK) -> bytes:
        os.utime(root / f.source, ns=(0, 1))  # as a rewrite would: the file's times move
        return real(self, offset, size)

    monkeypatch.setattr(files.OpenFile, "read", read_and_touch)
    with files.opened(f) as handle, pytest.raises(files.FileChanged, match=r"^file changed on the server: "):
        files.compute_md5(handle)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 100, None),
        ("bytes=0-", 100, (0, 100)),
        ("bytes=40-", 100, (40, 100)),
        ("bytes=99-", 100, (99, 100)),
        ("bytes=10-19", 100, (10, 20)),
        ("bytes=90-500", 100, (90, 100)),
        ("bytes=-10", 100, (90, 100)),
        ("bytes=-500", 100, (0, 100)),
        ("bytes=0-1,5-9", 100, None),  # several ranges: ignored (RFC 9110 allows it), the whole file
        ("lines=1-2", 100, None),
        ("bytes=5-2", 100, None),  # invalid: ignored
        ("bytes=-", 100, None),
    ],
)
def test_a_range_header_gives_the_bytes_asked_for(
    header: str | None, size: int, expected: tuple | None
) -> None:
    assert byte_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=500-", 100), ("bytes=0-", 0), ("bytes=-0", 100)]
)
def test_a_range_past_the_end_is_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(ValueError):  # noqa: PT011  (the route answers 416 for it)
        byte_range(header, size)


def test_an_older_plan_lists_the_files_of_its_delivered_pools() -> None:
    planned = PlannedFile("SLX-1", "BCLConvert/SLX-1/a.fastq.gz", "extco/r/SLX-1/a.fastq.gz", 5, None)
    plan = DeliveryPlan(
        run_id=RUN,
        run_folder="/runs/r",
        instant=datetime(2026, 3, 1, tzinfo=UTC),
        source=SnapshotSource.LIMS,
        pools=(),
        groups=(GroupPlan("Ext Co", "extco", (planned,)), GroupPlan("Ext Two", "exttwo", (planned,))),
    )
    assert run_files._plan_files(plan) == [SourceFile("SLX-1", "BCLConvert/SLX-1/a.fastq.gz", 5, None)]
    every = SourceFile("SLX-2", "BCLConvert/SLX-2/b.fastq.gz", 7, "/runs/r/BCLConvert/SLX-2/b.fastq.gz")
    newer = DeliveryPlan(**{**plan.__dict__, "files": (every,)})
    assert run_files._plan_files(newer) == [every]
