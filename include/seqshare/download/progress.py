"""What a download tells its user while it runs: a Rich progress bar (rate, ETA) for a person at a terminal,
one JSON object per line for a script (stdout not a terminal, or `--json`).

JSON lines, each with an `event`: `plan` (files, bytes, to_fetch), `start` (path, offset, size), `file`
(path, status: done | skipped | changed | failed | not started, bytes received, resumed_from, md5, message),
`note` (message), `summary` (counts per status, bytes, seconds, exit, error). Errors that end the run are
also one line on stderr (the CLI prints them), so a script can read either.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from seqshare.download.fetch import Outcome, Status
from seqshare.download.plan import Job, human_bytes


@dataclass
class Summary:
    outcomes: list[Outcome] = field(default_factory=list)
    error: str | None = None  # the one line of the error that ended the run, if one did
    exit: int = 0
    seconds: float = 0.0

    def counts(self) -> Counter[Status]:
        return Counter(o.status for o in self.outcomes)

    @property
    def received(self) -> int:
        return sum(o.received for o in self.outcomes)


class Events(Protocol):
    """Called by the runner and by each file's fetch (from worker threads)."""

    def planned(self, target: str, project: str, jobs: list[Job], to_fetch: int) -> None: ...
    def started(self, job: Job, offset: int, total: int) -> None: ...
    def advance(self, job: Job, n: int) -> None: ...
    def finished(self, outcome: Outcome) -> None: ...
    def note(self, line: str) -> None: ...
    def close(self, summary: Summary) -> None: ...


def _summary_line(summary: Summary) -> str:
    counts = summary.counts()
    parts = [f"{counts[Status.DONE]} downloaded ({human_bytes(summary.received)} in {summary.seconds:.1f} s)"]
    for status in (Status.SKIPPED, Status.CHANGED, Status.FAILED, Status.NOT_STARTED):
        if counts[status]:
            label = "already here and verified" if status is Status.SKIPPED else str(status)
            parts.append(f"{counts[status]} {label}")
    return ", ".join(parts)


class JsonLines:
    """One JSON object per line on stdout, flushed, for scripts; nothing per chunk."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._out = stream or sys.stdout
        self._lock = threading.Lock()

    def _emit(self, event: str, **data: Any) -> None:
        line = json.dumps({"event": event, **data}, sort_keys=True)
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

    def planned(self, target: str, project: str, jobs: list[Job], to_fetch: int) -> None:
        total = sum(j.remote.size for j in jobs)
        self._emit("plan", target=target, project=project, files=len(jobs), bytes=total, to_fetch=to_fetch)

    def started(self, job: Job, offset: int, total: int) -> None:
        self._emit("start", path=job.shown, offset=offset, size=total)

    def advance(self, job: Job, n: int) -> None:
        pass

    def finished(self, outcome: Outcome) -> None:
        self._emit(
            "file",
            path=outcome.job.shown,
            status=str(outcome.status),
            bytes=outcome.received,
            resumed_from=outcome.resumed_from,
            md5=outcome.md5,
            message=outcome.message,
        )

    def note(self, line: str) -> None:
        self._emit("note", message=line)

    def close(self, summary: Summary) -> None:
        counts = summary.counts()
        self._emit(
            "summary",
            **{str(s).replace(" ", "_"): counts[s] for s in Status},
            bytes=summary.received,
            seconds=round(summary.seconds, 3),
            exit=summary.exit,
            error=summary.error,
        )


class RichBar:
    """A bar for the whole download (bytes, rate, ETA) and one per file in flight; a line per file that
    did not simply arrive."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self._progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(bar_width=None),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._overall: TaskID | None = None
        self._tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()
        self._done_files = 0
        self._files = 0

    def planned(self, target: str, project: str, jobs: list[Job], to_fetch: int) -> None:
        self._files = len(jobs)
        self.console.print(
            f"{target} ({project}): {len(jobs)} file(s), {human_bytes(sum(j.remote.size for j in jobs))}; "
            f"{human_bytes(to_fetch)} to download"
        )
        self._progress.start()
        self._overall = self._progress.add_task(self._overall_text(), total=to_fetch or None)

    def _overall_text(self) -> str:
        return f"[bold]{self._done_files}/{self._files} files"

    def started(self, job: Job, offset: int, total: int) -> None:
        with self._lock:
            name = job.remote.path.name
            self._tasks[job.shown] = self._progress.add_task(f"  {name}", total=total, completed=offset)

    def advance(self, job: Job, n: int) -> None:
        task = self._tasks.get(job.shown)
        if task is not None:
            self._progress.advance(task, n)
        if self._overall is not None:
            self._progress.advance(self._overall, n)

    def finished(self, outcome: Outcome) -> None:
        with self._lock:
            task = self._tasks.pop(outcome.job.shown, None)
            if task is not None:
                self._progress.remove_task(task)
            self._done_files += 1
            if self._overall is not None:
                self._progress.update(self._overall, description=self._overall_text())
        if outcome.status in (Status.CHANGED, Status.FAILED):
            self._progress.console.print(f"[red]{outcome.job.shown}: {outcome.status}: {outcome.message}")

    def note(self, line: str) -> None:
        self._progress.console.print(line)

    def close(self, summary: Summary) -> None:
        self._progress.stop()
        if self._files or summary.outcomes:
            self.console.print(_summary_line(summary))


def now() -> float:
    return time.monotonic()
