"""The snapshot rule and the delivery plan on plain values: who gets which files, and why not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from seqshare.delivery.plan import DeliveryPlan, SourceFile, manifest_text, plan_deliveries
from seqshare.delivery.snapshot import GroupShare, SnapshotSource, WithheldReason, snapshot_pool, snapshot_run
from seqshare.errors import InvalidInput
from seqshare.rules import GroupKind

SEQ = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
DAY = timedelta(days=1)
EXT, INT = GroupKind.EXTERNAL, GroupKind.INTERNAL


def test_groups_shared_at_sequencing_receive_and_the_others_are_withheld_with_the_reason() -> None:
    history = [
        GroupShare("Before Co", EXT, SEQ - DAY, None),  # granted before: receives
        GroupShare("Revoked After Co", EXT, SEQ - DAY, SEQ + DAY),  # revoked after sequencing: still receives
        GroupShare("After Co", EXT, SEQ + DAY, None),  # granted after: nothing
        GroupShare("Gone Co", EXT, SEQ - 2 * DAY, SEQ - DAY),  # revoked before: nothing
        GroupShare("Int Lab", INT, SEQ - DAY, None),  # internal: no copy
    ]
    pool = snapshot_pool("SLX-1", "P", history, SEQ)
    assert pool.groups == ("Before Co", "Revoked After Co")
    assert [(w.group, w.reason, w.at) for w in pool.withheld] == [
        ("After Co", WithheldReason.SHARED_AFTER, SEQ + DAY),
        ("Gone Co", WithheldReason.REVOKED_BEFORE, SEQ - DAY),
        ("Int Lab", WithheldReason.INTERNAL, None),
    ]


def test_a_group_granted_at_the_very_instant_of_sequencing_receives() -> None:
    assert snapshot_pool("SLX-1", "P", [GroupShare("X", EXT, SEQ, None)], SEQ).groups == ("X",)


def test_a_group_revoked_then_regranted_after_sequencing_is_withheld_as_shared_after() -> None:
    history = [GroupShare("X", EXT, SEQ - 2 * DAY, SEQ - DAY), GroupShare("X", EXT, SEQ + DAY, None)]
    pool = snapshot_pool("SLX-1", "P", history, SEQ)
    assert pool.groups == ()
    assert [(w.reason, w.at) for w in pool.withheld] == [(WithheldReason.SHARED_AFTER, SEQ + DAY)]


def _plan(snapshot, files, dirs=None) -> DeliveryPlan:
    return plan_deliveries(
        run_id="RUN1",
        run_folder="/runs/RUN1",
        instant=SEQ,
        source=SnapshotSource.LIMS,
        snapshot=snapshot,
        files=files,
        group_dirs=dirs or {"A Co": "a", "B Co": "b/sub"},
    )


FILES = [
    SourceFile("SLX-1", "fastq/P1/s1_S1_L001_R1_001.fastq.gz", 10),
    SourceFile("SLX-1", "fastq/P1/s1_S1_L001_R2_001.fastq.gz", 11),
    SourceFile("SLX-2", "fastq/P2/s2_S2_L001_R1_001.fastq.gz", 12),
]


def test_each_group_gets_exactly_its_pools_files_under_group_run_pool() -> None:
    snapshot = snapshot_run(
        {"SLX-1": "P1", "SLX-2": "P2"},
        {
            "P1": [GroupShare("A Co", EXT, SEQ - DAY, None), GroupShare("B Co", EXT, SEQ - DAY, None)],
            "P2": [GroupShare("B Co", EXT, SEQ - DAY, None)],
        },
        SEQ,
    )
    plan = _plan(snapshot, FILES)
    assert {g.group: [f.remote_path for f in g.files] for g in plan.groups} == {
        "A Co": ["a/RUN1/SLX-1/s1_S1_L001_R1_001.fastq.gz", "a/RUN1/SLX-1/s1_S1_L001_R2_001.fastq.gz"],
        "B Co": [
            "b/sub/RUN1/SLX-1/s1_S1_L001_R1_001.fastq.gz",
            "b/sub/RUN1/SLX-1/s1_S1_L001_R2_001.fastq.gz",
            "b/sub/RUN1/SLX-2/s2_S2_L001_R1_001.fastq.gz",
        ],
    }
    assert plan.group("B Co").bytes == 33


def test_a_run_with_no_external_share_plans_nothing_and_says_so() -> None:
    snapshot = snapshot_run({"SLX-1": "P1"}, {"P1": [GroupShare("Int Lab", INT, SEQ - DAY, None)]}, SEQ)
    plan = _plan(snapshot, FILES)
    assert plan.groups == ()
    assert "nothing to deliver" in plan.render()
    assert "Int Lab: internal group" in plan.render()


def test_the_plan_survives_a_round_trip_through_json() -> None:
    snapshot = snapshot_run(
        {"SLX-1": "P1"},
        {"P1": [GroupShare("A Co", EXT, SEQ - DAY, None), GroupShare("B Co", EXT, SEQ + DAY, None)]},
        SEQ,
    )
    plan = _plan(snapshot, FILES)
    assert DeliveryPlan.from_dict(plan.to_dict()) == plan


def test_two_files_of_one_pool_with_the_same_name_are_refused() -> None:
    snapshot = snapshot_run({"SLX-1": "P1"}, {"P1": [GroupShare("A Co", EXT, SEQ - DAY, None)]}, SEQ)
    clash = [SourceFile("SLX-1", "x/a_R1.fastq.gz", 1), SourceFile("SLX-1", "y/a_R1.fastq.gz", 1)]
    with pytest.raises(InvalidInput, match=r"two files named a_R1\.fastq\.gz"):
        _plan(snapshot, clash)


def test_the_manifest_is_md5sum_check_format_sorted_by_name() -> None:
    snapshot = snapshot_run({"SLX-1": "P1"}, {"P1": [GroupShare("A Co", EXT, SEQ - DAY, None)]}, SEQ)
    files = _plan(snapshot, FILES).group("A Co").files
    md5s = {f.remote_path: c * 32 for f, c in zip(files, "ab", strict=True)}
    assert manifest_text(files, md5s) == (
        f"{'a' * 32}  s1_S1_L001_R1_001.fastq.gz\n{'b' * 32}  s1_S1_L001_R2_001.fastq.gz\n"
    )
