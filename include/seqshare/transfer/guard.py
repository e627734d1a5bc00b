"""One dry-run guard that every mutating remote call passes through.

Destructive actions (remove, rmdir, replace-on-rename) and non-destructive writes (mkdir, upload, rename,
set mtime) both ask the guard first. In dry-run the guard records what would have happened and says no,
so nothing on the server changes; `would_delete` lists the destructive ones for a report.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    REMOVE = "remove"
    RMDIR = "rmdir"
    OVERWRITE = "overwrite"
    MKDIR = "mkdir"
    WRITE = "write"
    RENAME = "rename"
    SET_MTIME = "set_mtime"


DESTRUCTIVE = frozenset({Action.REMOVE, Action.RMDIR, Action.OVERWRITE})


@dataclass(frozen=True)
class PlannedAction:
    action: Action
    path: str


class Guard:
    """`allow(action, path)` → True to proceed; False (and recorded) in dry-run."""

    def __init__(self, *, dry_run: bool = False) -> None:
        self.dry_run = dry_run
        self._lock = threading.Lock()
        self._planned: list[PlannedAction] = []

    def allow(self, action: Action, path: str) -> bool:
        if not self.dry_run:
            return True
        with self._lock:
            self._planned.append(PlannedAction(action, path))
        return False

    @property
    def planned(self) -> list[PlannedAction]:
        with self._lock:
            return list(self._planned)

    @property
    def would_delete(self) -> list[PlannedAction]:
        return [p for p in self.planned if p.action in DESTRUCTIVE]
