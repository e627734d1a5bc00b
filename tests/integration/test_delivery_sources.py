"""At delivery time a planned file must still be its pool's own file, read from the run folder or its output.

The run folder is judged when the plan is frozen (links, the output folder), but deliveries run later and
are re-run by ops days later: a link re-pointed since then must not send another pool's data, and an output
kept outside the run folder (SEQSHARE_OUTPUT_ROOT) must still be delivered.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from seqshare.errors import InvalidInput
from seqshare.runfolder import read_run_folder
from seqshare.services import runs
from seqshare.services.delivery import deliver_group
from seqshare.transfer import LocalRemote
from tests.runs import POOLS, RUN_ID, build_run, load_scenario

NOW = datetime(2026, 3, 5, tzinfo=UTC)


def _freeze(sessions: sessionmaker[Session], run_path: Path):
    folder = read_run_folder(run_path)
    with sessions.begin() as s:
        load_scenario(s)
        runs.register_run(s, folder)
        return runs.freeze_snapshot(s, folder, override=None, actor="airflow:test", now=NOW)


def _deliver(sessions, plan, group: str, target: Path):
    return deliver_group(
        plan,
        group,
        connect=lambda: LocalRemote(target),
        sessions=sessions,
        delivered_at=NOW,
        log=lambda _: None,
    )


def test_a_file_relinked_to_another_pools_file_after_freezing_is_not_sent(sessions, tmp_path) -> None:
    built = build_run(tmp_path / "runs", POOLS)
    plan = _freeze(sessions, built.path)
    victim = built.files["SLX-1"][0]  # Ext Co receives SLX-1; SLX-3 goes to Special only
    other = built.files["SLX-3"][0]
    other.write_bytes(os.urandom(victim.stat().st_size))  # same size: the size check cannot tell
    victim.unlink()
    victim.symlink_to(os.path.relpath(other, victim.parent))
    target = tmp_path / "ftp"
    target.mkdir()

    with pytest.raises(InvalidInput, match=r"now resolves to .*SLX-3/S4_S4_L001_R1_001\.fastq\.gz, not to"):
        _deliver(sessions, plan, "Ext Co", target)
    assert list(target.rglob("*.fastq.gz")) == []


def test_a_pool_folder_swapped_for_a_link_to_another_pools_folder_is_not_sent(sessions, tmp_path) -> None:
    built = build_run(tmp_path / "runs", {"SLX-1": ["S1"], "SLX-3": ["S1x"]})
    plan = _freeze(sessions, built.path)
    out = built.path / "BCLConvert"
    for src, dst in zip(sorted((out / "SLX-1").iterdir()), sorted((out / "SLX-3").iterdir()), strict=True):
        dst.rename(dst.with_name(src.name))  # SLX-3's files under SLX-1's names...
        os.truncate(dst.with_name(src.name), src.stat().st_size)  # ...and sizes
    shutil.rmtree(out / "SLX-1")
    (out / "SLX-1").symlink_to("SLX-3")
    target = tmp_path / "ftp"
    target.mkdir()

    with pytest.raises(InvalidInput, match=r"now resolves to .*SLX-3/S1_S1_L001_R1_001\.fastq\.gz, not to"):
        _deliver(sessions, plan, "Ext Co", target)
    assert list(target.rglob("*.fastq.gz")) == []


def test_an_output_kept_outside_the_run_folder_is_delivered(sessions, tmp_path, monkeypatch) -> None:
    built = build_run(tmp_path / "runs", POOLS)
    demux = tmp_path / "demux"
    demux.mkdir()
    (built.path / "BCLConvert").rename(demux / RUN_ID)
    monkeypatch.setenv("SEQSHARE_OUTPUT_ROOT", str(demux))
    plan = _freeze(sessions, built.path)
    assert plan.output_dir == str(demux / RUN_ID)
    target = tmp_path / "ftp"
    target.mkdir()

    report = _deliver(sessions, plan, "Ext Co", target)

    assert report.sent == len(plan.group("Ext Co").files) > 0
    for f in plan.group("Ext Co").files:
        assert (target / f.remote_path).read_bytes() == Path(f.source).read_bytes()


def test_a_delivery_racing_a_lims_import_that_moves_its_directory_sends_nothing_there(
    sessions, tmp_path
) -> None:
    """The import locks the group and is not yet committed when the delivery starts: the delivery must wait
    for it and then see the new directory (before the fix it read the old one unlocked and sent into it,
    a directory the same import could hand to another group)."""
    import threading

    from tests.world import WORLD, load_world

    built = build_run(tmp_path / "runs", POOLS)
    plan = _freeze(sessions, built.path)
    target = tmp_path / "ftp"
    target.mkdir()
    moved = [{**g, "ftp_dir": "extco-new"} if g["name"] == "Ext Co" else g for g in WORLD["groups"]]
    outcome: dict[str, object] = {}

    def deliver() -> None:
        try:
            outcome["report"] = _deliver(sessions, plan, "Ext Co", target)
        except Exception as exc:
            outcome["error"] = exc

    with sessions.begin() as s:
        load_world(s, {"groups": moved})  # the import runs, not yet committed
        delivery = threading.Thread(target=deliver)
        delivery.start()
        delivery.join(timeout=3)  # the delivery gets as far as it can while the import is open
    delivery.join(timeout=60)

    assert not delivery.is_alive()
    assert isinstance(outcome.get("error"), InvalidInput), outcome
    assert "its FTP directory is now 'extco-new'" in str(outcome["error"])
    assert list(target.rglob("*.fastq.gz")) == []


def test_an_output_folder_switched_to_another_copy_with_the_same_names_is_not_sent(
    sessions, tmp_path
) -> None:
    """`BCLConvert` re-pointed to a re-run's output (same names, same sizes, other reads) after freezing."""
    built = build_run(tmp_path / "runs", POOLS)
    plan = _freeze(sessions, built.path)
    out = built.path / "BCLConvert"
    rerun = built.path / "BCLConvert_rerun"
    shutil.copytree(out, rerun)
    for f in rerun.rglob("*.fastq.gz"):
        f.write_bytes(os.urandom(f.stat().st_size))
    shutil.rmtree(out)
    out.symlink_to(rerun.name)
    target = tmp_path / "ftp"
    target.mkdir()

    with pytest.raises(
        InvalidInput, match=r"now resolves to .*BCLConvert_rerun/SLX-1/.*, not to .*BCLConvert/"
    ):
        _deliver(sessions, plan, "Ext Co", target)
    assert list(target.rglob("*.fastq.gz")) == []


def test_a_plan_frozen_before_files_kept_their_resolved_path_still_refuses_another_pools_file(
    sessions, tmp_path
) -> None:
    from dataclasses import replace

    built = build_run(tmp_path / "runs", POOLS)
    frozen = _freeze(sessions, built.path)
    plan = replace(  # as an older plan reads back: no resolved paths
        frozen,
        groups=tuple(
            replace(g, files=tuple(replace(f, resolved=None) for f in g.files)) for g in frozen.groups
        ),
    )
    victim, other = built.files["SLX-1"][0], built.files["SLX-3"][0]
    other.write_bytes(os.urandom(victim.stat().st_size))
    victim.unlink()
    victim.symlink_to(os.path.relpath(other, victim.parent))
    target = tmp_path / "ftp"
    target.mkdir()

    with pytest.raises(InvalidInput, match=r"not to this pool's file \(SLX-1/S1_S1_L001_R1_001\.fastq\.gz\)"):
        _deliver(sessions, plan, "Ext Co", target)
