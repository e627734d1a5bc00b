"""The snapshot rule and the delivery plan on plain values: who gets which files, and why not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from seqshare.delivery.instant import Precision
from seqshare.delivery.plan import DeliveryPlan, SourceFile, manifest_text, plan_deliveries
from seqshare.delivery.snapshot import (
    GroupShare,
    ProjectOwner,
    SnapshotSource,
    WithheldReason,
    snapshot_pool,
    snapshot_run,
)
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


def _plan(snapshot, files, dirs=None, **kwargs) -> DeliveryPlan:
    return plan_deliveries(
        run_id="RUN1",
        run_folder="/runs/RUN1",
        instant=SEQ,
        source=SnapshotSource.LIMS,
        snapshot=snapshot,
        files=files,
        group_dirs=dirs or {"A Co": "a", "B Co": "b/sub", "Acme": "acme"},
        **kwargs,
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


# The owner rule: an external owner's group receives its own project's pools on every run.
ACME = ProjectOwner("Acme", EXT)


def test_an_external_owner_receives_its_own_project_whatever_the_history() -> None:
    history = [GroupShare("A Co", EXT, SEQ - DAY, None)]  # Acme is nowhere in the share history
    pool = snapshot_pool("SLX-1", "Acme CRISPR screen", history, SEQ, ACME)
    assert (pool.groups, pool.owner, pool.withheld) == (("A Co", "Acme"), "Acme", ())
    assert (pool.reason("Acme"), pool.reason("A Co")) == ("owner", "shared")
    revoked = [GroupShare("Acme", EXT, SEQ - 2 * DAY, SEQ - DAY)]  # e.g. shared before it owned it
    assert snapshot_pool("SLX-1", "P", revoked, SEQ, ACME).groups == ("Acme",)


def test_an_internal_owner_gets_no_copy_and_is_not_listed() -> None:
    pool = snapshot_pool("SLX-1", "P", [], SEQ, ProjectOwner("Owner Lab", INT))
    assert (pool.groups, pool.owner, pool.withheld) == ((), None, ())


@pytest.mark.parametrize(
    ("owner", "installation", "reason"),
    [
        (ProjectOwner("Acme", EXT, receives_own=False), True, "owner's group: switched off for this group"),
        (ACME, False, "owner's group: switched off for this installation"),
        (
            ProjectOwner("Acme", EXT, receives_own=False),
            False,
            "owner's group: switched off for this installation",
        ),
    ],
)
def test_a_switched_off_owner_is_withheld_saying_why(owner, installation, reason) -> None:
    history = [GroupShare("Acme", EXT, SEQ - 2 * DAY, SEQ - DAY)]  # its history is not the reason
    pool = snapshot_pool("SLX-1", "P", history, SEQ, owner, owners_receive=installation)
    assert (pool.groups, pool.owner) == ((), None)
    assert [(w.group, w.reason.value) for w in pool.withheld] == [("Acme", reason)]
    assert pool.withheld[0].describe() == f"Acme: {reason}"


def test_a_switched_off_owner_still_receives_what_is_shared_with_it() -> None:
    owner = ProjectOwner("Acme", EXT, receives_own=False)
    pool = snapshot_pool("SLX-1", "P", [GroupShare("Acme", EXT, SEQ - DAY, None)], SEQ, owner)
    assert (pool.groups, pool.owner, pool.withheld) == (("Acme",), None, ())
    assert pool.reason("Acme") == "shared"


def test_the_plan_lists_the_owner_with_its_reason_and_the_instants_precision() -> None:
    snapshot = snapshot_run(
        {"SLX-1": "Acme CRISPR screen", "SLX-2": "P2"},
        {"P2": [GroupShare("B Co", EXT, SEQ - DAY, None)]},
        SEQ,
        {"Acme CRISPR screen": ACME, "P2": ProjectOwner("Acme", EXT)},
    )
    note = "RunInfo.xml Date 260301 is a date only: the day 2026-03-01 in UTC; certain: no share changed"
    plan = _plan(snapshot, FILES, precision=Precision.DAY, instant_note=note)
    assert {g.group: g.pools for g in plan.groups} == {"Acme": ("SLX-1", "SLX-2"), "B Co": ("SLX-2",)}
    text = plan.render()
    assert f"run RUN1: snapshot at {SEQ.isoformat()} (lims, day)" in text
    assert f"  sequencing time: {note}" in text
    assert "delivered to: Acme (owner)\n" in text
    assert "delivered to: Acme (owner), B Co (shared)" in text
    assert DeliveryPlan.from_dict(plan.to_dict()) == plan
    assert DeliveryPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan  # as stored (JSON)


def test_a_plan_frozen_before_the_owner_rule_and_the_precision_still_reads() -> None:
    old = {  # as stored by seqshare before this change: no owner, precision or instant_note
        "run_id": "RUN1",
        "run_folder": "/runs/RUN1",
        "instant": SEQ.isoformat(),
        "source": "instrument",
        "pools": [
            {
                "pool": "SLX-1",
                "project": "P1",
                "groups": ["A Co"],
                "withheld": [
                    {"group": "B Co", "reason": "shared only after sequencing", "at": SEQ.isoformat()}
                ],
            }
        ],
        "groups": [
            {
                "group": "A Co",
                "ftp_dir": "a",
                "files": [{"pool": "SLX-1", "source": "x/a.fastq.gz", "remote_path": "a/RUN1/SLX-1/a",
                           "size": 3}],
            }
        ],
    }  # fmt: skip
    plan = DeliveryPlan.from_dict(old)
    assert (plan.precision, plan.instant_note, plan.pools[0].owner) == (None, None, None)
    assert plan.render().splitlines()[:3] == [
        f"run RUN1: snapshot at {SEQ.isoformat()} (instrument)",
        "  SLX-1 (project P1)",
        "    delivered to: A Co (shared)",
    ]
