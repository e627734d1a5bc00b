"""The purge rules on plain values: what expires, what stays, what is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from seqshare.purge.plan import LedgerFile, PurgeReason, Refusal, RemoteEntry, plan_purge

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
TTL = timedelta(days=30)
S = timedelta(seconds=1)


def plan(entries, ledger=()):
    return plan_purge(group="Ext Co", group_dir="extco", entries=entries, ledger=ledger, now=NOW, ttl=TTL)


def f(path: str, age: timedelta, size: int = 10) -> RemoteEntry:
    return RemoteEntry(path, size, NOW - age)


def d(path: str) -> RemoteEntry:
    return RemoteEntry(path, 0, NOW, is_dir=True)


def test_a_delivered_file_goes_30_days_and_1_second_after_delivery_and_not_an_hour_before() -> None:
    entries = [d("extco/R"), f("extco/R/old", TTL + S), f("extco/R/young", TTL - timedelta(hours=1))]
    ledger = [LedgerFile(1, "extco/R/old", NOW - S), LedgerFile(2, "extco/R/young", NOW + timedelta(hours=1))]
    p = plan(entries, ledger)
    assert [(x.path, x.reason, x.ledger_id) for x in p.deletions] == [("extco/R/old", PurgeReason.EXPIRED, 1)]
    assert p.kept_files == 1
    assert p.oldest_kept == NOW - (TTL - timedelta(hours=1))
    assert p.dirs == ()  # extco/R still holds a file


def test_untracked_files_go_by_modification_time_and_new_ones_stay_with_a_warning() -> None:
    p = plan([f("extco/legacy/x", TTL + S), f("extco/fresh", timedelta(days=1))])
    assert [(x.path, x.reason) for x in p.deletions] == [("extco/legacy/x", PurgeReason.UNTRACKED)]
    assert p.untracked_kept == ("extco/fresh",)


def test_our_own_manifests_are_not_reported_as_lost_by_the_ledger() -> None:
    p = plan([f("extco/R/README.txt", timedelta(days=1)), f("extco/R/P/md5sums.txt", timedelta(days=1))])
    assert p.untracked_kept == ()


def test_nothing_newer_than_the_ttl_is_deleted_even_if_the_ledger_says_expired() -> None:
    p = plan([f("extco/R/f", timedelta(days=2))], [LedgerFile(1, "extco/R/f", NOW - timedelta(days=1))])
    assert p.deletions == ()
    assert p.refused == (("extco/R/f", Refusal.NEWER),)


def test_symlinks_are_refused_and_ledger_paths_outside_the_group_are_refused() -> None:
    link = RemoteEntry("extco/link", 5, NOW - 2 * TTL, is_symlink=True)
    ledger = [LedgerFile(7, "extco/../exttwo/victim", NOW - TTL), LedgerFile(8, "exttwo/victim", NOW - TTL)]
    p = plan([link], ledger)
    assert p.deletions == ()
    assert set(p.refused) == {
        ("extco/link", Refusal.SYMLINK),
        ("extco/../exttwo/victim", Refusal.OUTSIDE),
        ("exttwo/victim", Refusal.OUTSIDE),
    }
    assert p.gone == ()


def test_expired_ledger_files_already_gone_are_listed_to_be_marked() -> None:
    assert plan([], [LedgerFile(3, "extco/R/f", NOW - S)]).gone == (3,)


def test_folders_emptied_by_the_purge_are_removed_deepest_first_never_the_group_dir() -> None:
    entries = [
        d("extco"),
        d("extco/R"),
        d("extco/R/P"),
        f("extco/R/P/a", TTL + S),
        d("extco/S"),
        f("extco/S/keep", S),
    ]
    p = plan(entries)
    assert p.dirs == ("extco/R/P", "extco/R")


def test_an_expired_ledger_file_behind_a_symlinked_folder_is_refused_not_marked_gone() -> None:
    link = RemoteEntry("extco/R", 5, NOW - 2 * TTL, is_symlink=True)  # not entered by the walk
    p = plan([link], [LedgerFile(3, "extco/R/P/f", NOW - S), LedgerFile(4, "extco/S/f", NOW - S)])
    assert p.gone == (4,)
    assert ("extco/R/P/f", Refusal.SYMLINK_IN_PATH) in p.refused


def test_another_groups_live_delivery_in_this_directory_is_kept_and_reported() -> None:
    p = plan_purge(
        group="Ext Two",
        group_dir="extco",
        entries=[f("extco/R/P/theirs", 2 * TTL), f("extco/R/P/nobodys", 2 * TTL)],
        ledger=[],
        now=NOW,
        ttl=TTL,
        others_delivered=frozenset({"extco/R/P/theirs"}),
    )
    assert [x.path for x in p.deletions] == ["extco/R/P/nobodys"]
    assert p.refused == (("extco/R/P/theirs", Refusal.OTHER_GROUP),)
    assert p.dirs == ()


def test_the_directory_of_a_ledger_row_is_what_comes_before_its_run_and_pool() -> None:
    from seqshare.purge.plan import delivery_directory

    assert delivery_directory("ext/co/RUN/SLX-1/f.fastq.gz", "RUN", "SLX-1") == "ext/co"
    assert delivery_directory("extco/RUN/SLX-1/f.fastq.gz", "RUN", "SLX-1") == "extco"
    assert delivery_directory("RUN/SLX-1/f.fastq.gz", "RUN", "SLX-1") is None  # no directory at all
    assert delivery_directory("extco/OTHER/SLX-1/f", "RUN", "SLX-1") is None
    assert delivery_directory("extco/../x/RUN/SLX-1/f", "RUN", "SLX-1") is None
    assert delivery_directory("extco//RUN/SLX-1/f", "RUN", "SLX-1") is None  # not normalised
