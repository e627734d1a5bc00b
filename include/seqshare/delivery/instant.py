"""The sequencing instant of a snapshot, and whether it is known well enough to decide who receives the run.

An override, a LIMS start and an instrument timestamp (with its zone, or read in the instrument's zone) are
exact. Older instruments write only the day, and a run id only holds a date: the run started at some
instant of a window. The snapshot is the same at every instant of the window unless a share that decides a
delivery changed strictly inside it, so the rule (:func:`settle`) is:

- no such change: the answer is certain; the snapshot is frozen at the window's start, and the plan says so;
- a change: nothing is sent; the run stops naming the change(s) and asks for a ``sequencing_time`` override.

Pure: plain values in, plain values out; the service (`services.runs`) loads the history and calls it.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from seqshare.delivery.snapshot import GroupShare, SnapshotSource
from seqshare.errors import InvalidInput
from seqshare.rules import GroupKind

MAX_NAMED_CHANGES = 5  # an error line names at most this many changes


class Precision(enum.StrEnum):
    """How precisely the snapshot instant is known."""

    EXACT = "exact"  # an override, the LIMS, or an instrument timestamp with its zone
    LOCAL = "local"  # an instrument-local timestamp read in the configured zone
    DAY = "day"  # a date only (the instrument's files or the run id): certain only if no change that day


@dataclass(frozen=True)
class SequencingInstant:
    """The snapshot instant, where it came from (`source`), how precisely it is known, and a note for people.

    `latest` is set when only a window is known: the run started at some instant from `instant` to
    `latest` (both included)."""

    instant: datetime
    source: SnapshotSource
    precision: Precision
    note: str
    latest: datetime | None = None

    @property
    def is_window(self) -> bool:
        return self.latest is not None and self.latest > self.instant


@dataclass(frozen=True)
class ShareChange:
    """A grant or revocation of a project's share with a group."""

    project: str
    group: str
    granted: bool
    at: datetime

    def describe(self) -> str:
        verb = "granted" if self.granted else "revoked"
        return f"project {self.project!r}: {self.group} {verb} at {self.at.isoformat()}"


def changes_within(
    earliest: datetime,
    latest: datetime,
    histories: Mapping[str, Iterable[GroupShare]],
    *,
    always_entitled: Collection[tuple[str, str]] = (),
) -> tuple[ShareChange, ...]:
    """The share changes that make the snapshot differ between two instants of [earliest, latest].

    Which changes matter, and why:
    - only those strictly after `earliest` and at or before `latest`: a change at `earliest` itself applies
      to every instant of the window (shares are [granted_at, revoked_at)), one after `latest` to none;
    - only external groups' shares (their kind as the snapshot rule reads it): internal groups are never
      copied to, so their shares cannot change a delivery;
    - not the share of an owner's group that receives the project as owner ((project, group) in
      `always_entitled`): it receives at every instant, whatever its shares. An owner switched off (for
      itself or the installation) is an ordinary group here: its changes matter.
    Any other grant or revocation inside the window changes the set of groups entitled at some instants of
    it and not at others, so it makes the answer depend on the hour, unless it is undone at the same instant
    (revoked and granted again at one instant): a group's changes count only if its share at some instant of
    the window differs from its share at `earliest`.
    """
    by_group: dict[tuple[str, str], list[GroupShare]] = {}
    for project, history in histories.items():
        for share in history:
            if share.kind is GroupKind.EXTERNAL and (project, share.group) not in always_entitled:
                by_group.setdefault((project, share.group), []).append(share)
    found: list[ShareChange] = []
    for (project, group), shares in by_group.items():
        inside = [
            ShareChange(project, group, granted, at)
            for share in shares
            for granted, at in ((True, share.granted_at), (False, share.revoked_at))
            if at is not None and earliest < at <= latest
        ]
        at_start = any(s.contains(earliest) for s in shares)
        if any(any(s.contains(c.at) for s in shares) != at_start for c in inside):
            found.extend(inside)
    return tuple(sorted(found, key=lambda c: (c.at, c.project, c.group.casefold(), c.granted)))


def settle(
    run_id: str,
    when: SequencingInstant,
    histories: Mapping[str, Iterable[GroupShare]],
    *,
    always_entitled: Collection[tuple[str, str]] = (),
) -> SequencingInstant:
    """`when` as a single instant the snapshot can be taken at, or InvalidInput if the groups depend on when
    within its window the run really started (one line naming the changes; nothing has been sent)."""
    if not when.is_window or when.latest is None:
        return when
    changes = changes_within(when.instant, when.latest, histories, always_entitled=always_entitled)
    if changes:
        named = "; ".join(c.describe() for c in changes[:MAX_NAMED_CHANGES])
        more = f"; and {len(changes) - MAX_NAMED_CHANGES} more" if len(changes) > MAX_NAMED_CHANGES else ""
        raise InvalidInput(
            f"run {run_id}: the sequencing time is not known precisely enough ({when.note}) and sharing "
            f"of this run's projects changed within it ({named}{more}), so who receives the run depends "
            "on the exact time; nothing was sent. Trigger it with a sequencing_time override "
            "(ISO 8601 with a time zone)"
        )
    return replace(
        when,
        note=f"{when.note}; certain: no share of this run's projects changed within it, "
        f"so the snapshot is the same at every instant of it and is taken at its start",
    )
