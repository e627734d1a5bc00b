"""A whole download: settings, the listing, the plan, the disk-space check, then several files at once.

Files go `parallel` at a time on threads sharing one HTTP client (hashing and writing release the GIL, so
threads are enough). What ends the run for every file (token refused, disk full, server unreachable)
stops the files not yet started and those in flight (their partials stay for the next run). A file
answered 404 is asked about once more through the listing: if the pool or project itself is gone from the
caller's view (a revoke since the listing), the run stops and says so; if only that file is gone, it fails
alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import httpx

from seqshare.download.client import list_files, open_client
from seqshare.download.errors import BadInput, DownloadError, Exit, Interrupted, NotVisible
from seqshare.download.fetch import Outcome, Status, Stopped, fetch
from seqshare.download.plan import Job, check_space, make_plan
from seqshare.download.progress import Events, Summary, now
from seqshare.download.settings import ClientSettings
from seqshare.errors import quote


class AccessEnded(NotVisible):
    """The pool or project was visible at the listing and no longer is (revoked, or unshared)."""


def download(
    settings: ClientSettings,
    *,
    target: str,
    run: str | None,
    pattern: str | None,
    dest: Path,
    parallel: int,
    events: Events,
) -> Summary:
    """Fetch what the listing offers into `dest`; the summary carries the exit code (errors are raised)."""
    if dest.exists() and not dest.is_dir():
        raise BadInput(f"--dest {quote(str(dest))} is not a folder")
    started = now()
    with open_client(settings, parallel) as client:
        listing = list_files(client, target, run)
        jobs = make_plan(listing, dest, pattern, target)
        to_fetch = check_space(dest, jobs)
        events.planned(target, listing.project, jobs, to_fetch)
        summary = run_jobs(
            client, jobs, parallel=parallel, events=events, recheck=lambda: list_files(client, target, run)
        )
    summary.seconds = now() - started
    return summary


def run_jobs(
    client: httpx.Client, jobs: list[Job], *, parallel: int, events: Events, recheck: Callable[[], object]
) -> Summary:
    """Run the jobs; the first error that ended the run, if any, is in the summary (with its exit code)."""
    stop = threading.Event()
    fatal: list[DownloadError] = []
    lock, recheck_lock = threading.Lock(), threading.Lock()

    def end_run(error: DownloadError) -> None:
        with lock:
            if not fatal:
                fatal.append(error)
        stop.set()

    def one(job: Job) -> Outcome:
        if stop.is_set():
            return Outcome(job, Status.NOT_STARTED)
        try:
            outcome = fetch(client, job, events, stop)
        except Stopped:
            return Outcome(job, Status.NOT_STARTED, message="stopped; its partial stays for the next run")
        except NotVisible as missing:
            outcome = _recheck(job, missing, recheck, end_run, recheck_lock)
        except DownloadError as error:
            end_run(error)
            return Outcome(job, Status.NOT_STARTED, message=str(error))
        events.finished(outcome)
        return outcome

    try:
        outcomes = _on_threads(one, jobs, parallel, stop)
    except KeyboardInterrupt:
        raise Interrupted("interrupted: partial files stay; run the same command again to resume") from None
    summary = Summary(outcomes=outcomes)
    counts = summary.counts()
    if fatal:
        summary.error, summary.exit = str(fatal[0]), fatal[0].exit
    elif counts[Status.FAILED] or counts[Status.CHANGED]:
        summary.exit = Exit.FILES_FAILED
    return summary


def _on_threads(
    work: Callable[[Job], Outcome], jobs: list[Job], parallel: int, stop: threading.Event
) -> list[Outcome]:
    """`work` over `jobs` on `parallel` daemon threads; the outcomes in the jobs' order. Daemon threads, so
    Ctrl-C ends the command at once: a thread that is between blocks stops (`stop`), and one still waiting
    for the server's first byte is simply left to the process's exit (its partial is safe as it stands:
    the ETag is written before the first byte, and a name is only ever given by a rename). A bug in a
    thread is raised here."""
    outcomes: list[Outcome | None] = [None] * len(jobs)
    failures: list[BaseException] = []
    queue = iter(enumerate(jobs))
    lock = threading.Lock()

    def worker() -> None:
        while not failures:
            with lock:
                item = next(queue, None)
            if item is None:
                return
            index, job = item
            try:
                outcomes[index] = work(job)
            except BaseException as exc:  # not a DownloadError (`work` maps those): a bug
                failures.append(exc)
                stop.set()

    threads = [
        threading.Thread(target=worker, name=f"seqshare-download-{n}", daemon=True)
        for n in range(min(parallel, len(jobs)))
    ]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:
        stop.set()
        for thread in threads:
            thread.join(timeout=2)  # most stop within a block; the rest are left to exit
        raise
    if failures:
        raise failures[0]
    return [
        o if o is not None else Outcome(j, Status.NOT_STARTED) for o, j in zip(outcomes, jobs, strict=True)
    ]


def _recheck(
    job: Job,
    missing: NotVisible,
    recheck: Callable[[], object],
    end_run: Callable[[DownloadError], None],
    lock: threading.Lock,
) -> Outcome:
    """A 404 for one file: is the whole pool or project gone from view (stop), or only this file?"""
    with lock:
        try:
            recheck()
        except NotVisible as gone:
            ended = AccessEnded(f"access ended during the download ({gone}); files not yet fetched were not")
            end_run(ended)
            return Outcome(job, Status.NOT_STARTED, message=str(ended))
        except DownloadError as error:
            end_run(error)
            return Outcome(job, Status.NOT_STARTED, message=str(error))
    return Outcome(job, Status.FAILED, message=f"no longer on the server ({missing})")
