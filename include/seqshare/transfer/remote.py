"""The `Remote` interface (shaped like rclone's `fs.Fs`) and the base class both backends share.

`BaseRemote` does the checks that must never be forgotten, once, for every backend: each public method
checks and resolves its path(s) under the root (`paths.resolve_under`) and every mutating call asks the
dry-run `Guard`. Backends only implement the `_do_*` hooks, which receive absolute, checked paths.
"""

from __future__ import annotations

import errno
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO, Protocol, Self, runtime_checkable

from seqshare.transfer.errors import UnsafePath
from seqshare.transfer.guard import Action, Guard
from seqshare.transfer.paths import check_path, resolve_under


class SymlinkInPath(UnsafePath):
    """A folder on the path is a symlink (or not a folder): nothing is done through it."""


@dataclass(frozen=True)
class Entry:
    """What `stat`/`list` report. Never follows symlinks (lstat): a symlink is reported as one."""

    path: str  # relative to the remote root, "" for the root itself
    size: int
    mtime: datetime  # timezone-aware UTC
    is_dir: bool
    is_symlink: bool

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def is_file(self) -> bool:
        return not self.is_dir and not self.is_symlink


@dataclass(frozen=True)
class RemoveResult:
    """One path of `remove_many`: `error` is None when it was removed (or would be, in dry-run)."""

    path: str
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class Remote(Protocol):
    """A directory tree on some server, addressed by relative POSIX paths."""

    guard: Guard

    def stat(self, path: str) -> Entry | None: ...
    def stat_many(self, paths: Sequence[str]) -> list[Entry | None]: ...
    def check_parents(self, paths: Sequence[str], *, within: str) -> list[Exception | None]: ...
    def list(self, dir: str) -> list[Entry]: ...
    def list_many(self, dirs: Sequence[str]) -> list[list[Entry]]: ...
    def makedirs(self, dir: str) -> None: ...
    def open_write(self, path: str) -> BinaryIO: ...
    def open_update(self, path: str) -> BinaryIO: ...
    def open_read(self, path: str) -> BinaryIO: ...
    def read_bytes(self, path: str) -> bytes: ...
    def rename(self, src: str, dst: str, *, replace: bool = False) -> None: ...
    def remove(self, path: str) -> None: ...
    def remove_many(self, paths: Iterable[str], *, within: str | None = None) -> list[RemoveResult]: ...
    def rmdir(self, path: str) -> None: ...
    def set_mtime(self, path: str, when: datetime) -> None: ...
    def close(self) -> None: ...


def epoch_seconds(when: datetime) -> float:
    if when.tzinfo is None:
        raise ValueError("mtime must be timezone-aware (e.g. datetime.now(UTC))")
    return when.timestamp()


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _first_problem(chain: Sequence[str], found: dict[str, Entry | Exception | None]) -> Exception | None:
    """Why the folders of `chain` (top first) are not all real folders, or None when they are."""
    for folder in chain:
        entry = found[folder]
        if isinstance(entry, Exception):
            return entry
        if entry is None:
            return FileNotFoundError(errno.ENOENT, "folder is gone", folder)
        if entry.is_symlink:
            return SymlinkInPath(f"{folder!r} is a symlink; nothing is done through it")
        if not entry.is_dir:
            return SymlinkInPath(f"{folder!r} is not a folder; nothing is done through it")
    return None


class _NullWriter:
    """What `open_write` and `open_update` return in dry-run: swallows the bytes, writes nothing."""

    def write(self, data: bytes) -> int:
        return len(data)

    def seek(self, offset: int) -> int:
        return offset

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class BaseRemote:
    """Path checks + dry-run guard for every backend. Subclasses implement the `_do_*` hooks."""

    def __init__(self, root: str, *, guard: Guard | None = None) -> None:
        self.root = root.rstrip("/") or "/"
        self.guard = guard if guard is not None else Guard()

    # -- helpers ---------------------------------------------------------------------------------------
    def _abs(self, path: str) -> str:
        return resolve_under(self.root, path)

    # -- read-only -------------------------------------------------------------------------------------
    def stat(self, path: str) -> Entry | None:
        """lstat `path`; None when it does not exist."""
        return self._do_stat(self._abs(path), check_path(path))

    def stat_many(self, paths: Sequence[str]) -> list[Entry | None]:
        """`stat` of each path, in order (SFTP pipelines the requests). Raises the first error other than
        "missing", after every request has settled."""
        results = self._stat_each(paths)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results  # type: ignore[return-value]

    def check_parents(self, paths: Sequence[str], *, within: str) -> list[Exception | None]:
        """For each path, None when every folder from `within` down to the path's parent is a real folder
        (lstat: never followed), else why not: `SymlinkInPath` (a symlink or a file on the way), a
        `FileNotFoundError` (a folder is missing), `UnsafePath` (not under `within`), or the lstat's error.

        Each distinct folder is looked at once, all in one pipelined round trip, so a batch of thousands of
        files under a few dozen folders costs a few dozen lstats. Nothing guarantees the folders stay as
        they were after the answer: see `remove_many`.
        """
        top = check_path(within)
        prefix = top + "/" if top else ""
        chains: dict[str, tuple[str, ...]] = {}  # parent folder → the folders from `within` down to it
        parents: list[str | Exception] = []
        for path in paths:
            try:
                relative = check_path(path)
                if not relative.startswith(prefix) or relative == top:
                    raise UnsafePath(f"{path!r} is not under {within!r}")
            except Exception as exc:
                parents.append(exc)
                continue
            parent = relative.rpartition("/")[0]
            if parent not in chains:
                below = parent[len(prefix) :].split("/") if parent != top else []
                chains[parent] = (top, *(prefix + "/".join(below[: n + 1]) for n in range(len(below))))
            parents.append(parent)
        folders = sorted({folder for chain in chains.values() for folder in chain})
        found = dict(zip(folders, self._stat_each(folders), strict=True))
        problems = {parent: _first_problem(chain, found) for parent, chain in chains.items()}
        return [parent if isinstance(parent, Exception) else problems[parent] for parent in parents]

    def _stat_each(self, paths: Sequence[str]) -> list[Entry | Exception | None]:
        """lstat of each path, in order; a path's error (bad path included) is its result, not raised."""
        results: list[Entry | Exception | None] = []
        todo: list[tuple[int, str, str]] = []
        for path in paths:
            try:
                todo.append((len(results), self._abs(path), check_path(path)))
                results.append(None)
            except Exception as exc:
                results.append(exc)
        if todo:
            answers = self._do_stat_many([a for _, a, _ in todo], [r for _, _, r in todo])
            for (index, _, _), answer in zip(todo, answers, strict=True):
                results[index] = answer
        return results

    def list(self, dir: str = "") -> list[Entry]:
        """Entries of `dir` (not recursive) with attributes, sorted by name, in one listing round trip."""
        relative = check_path(dir)
        entries = self._do_list(self._abs(dir), relative)
        return sorted(entries, key=lambda e: e.path)

    def list_many(self, dirs: Sequence[str]) -> list[list[Entry]]:
        """`list` of each of `dirs`, in order; backends may list them concurrently (SFTP pipelines the
        requests of many folders). Raises the first folder's error, after every listing has settled."""
        relatives = [check_path(d) for d in dirs]
        listed = self._do_list_many([self._abs(d) for d in dirs], relatives)
        for result in listed:
            if isinstance(result, Exception):
                raise result
        return [sorted(entries, key=lambda e: e.path) for entries in listed]  # type: ignore[union-attr]

    def open_read(self, path: str) -> BinaryIO:
        return self._do_open_read(self._abs(path))

    def read_bytes(self, path: str) -> bytes:
        with self.open_read(path) as handle:
            return handle.read()

    # -- mutating --------------------------------------------------------------------------------------
    def makedirs(self, dir: str) -> None:
        """Create `dir` and missing parents; existing directories are fine."""
        relative = check_path(dir)
        if not relative:
            return
        if not self.guard.allow(Action.MKDIR, relative):
            return
        built = []
        for part in relative.split("/"):
            built.append(part)
            current = "/".join(built)
            entry = self.stat(current)
            if entry is None:
                try:
                    self._do_mkdir(self._abs(current))
                except OSError:
                    entry = self.stat(current)  # lost a race with another writer?
                    if entry is None or not entry.is_dir:
                        raise
            elif not entry.is_dir:
                raise NotADirectoryError(f"{current!r} exists and is not a directory")

    def open_write(self, path: str) -> BinaryIO:
        """Create `path` exclusively (fails if it exists — never truncates) and return a writable file."""
        relative = check_path(path)
        if not self.guard.allow(Action.WRITE, relative):
            return _NullWriter()  # type: ignore[return-value]
        return self._do_open_write(self._abs(path))

    def open_update(self, path: str) -> BinaryIO:
        """Open the existing file `path` for writing at any offset (`seek`, then `write`): it is never
        created nor truncated. A second connection writes its share of a split upload through this."""
        relative = check_path(path)
        if not self.guard.allow(Action.WRITE, relative):
            return _NullWriter()  # type: ignore[return-value]
        return self._do_open_update(self._abs(path))

    def rename(self, src: str, dst: str, *, replace: bool = False) -> None:
        """Rename `src` to `dst`. Fails with FileExistsError if `dst` exists unless `replace=True` (then a
        POSIX rename that replaces atomically — an overwrite, so it passes the guard as one)."""
        src_rel, dst_rel = check_path(src), check_path(dst)
        if replace:
            if self.stat(dst_rel) is not None and not self.guard.allow(Action.OVERWRITE, dst_rel):
                return
            if not self.guard.allow(Action.RENAME, dst_rel):
                return
            self._do_rename_replace(self._abs(src_rel), self._abs(dst_rel))
            return
        if not self.guard.allow(Action.RENAME, dst_rel):
            return
        if self.stat(dst_rel) is not None:
            raise FileExistsError(f"cannot rename {src_rel!r} to {dst_rel!r}: destination exists")
        self._do_rename_noreplace(self._abs(src_rel), self._abs(dst_rel), dst_rel)

    def remove(self, path: str) -> None:
        relative = check_path(path)
        if not self.guard.allow(Action.REMOVE, relative):
            return
        self._do_remove(self._abs(path))

    def remove_many(self, paths: Iterable[str], *, within: str | None = None) -> list[RemoveResult]:
        """Remove files; one result per path, in order. Bad paths fail alone; nothing is raised.

        With `within` (a group's directory), the folders of every path, from `within` down, are checked
        by `check_parents` right before the removes are sent, and a path that fails the check is not
        removed: its result is the reason (`SymlinkInPath` for a symlink on the way; `FileNotFoundError`
        when a folder is gone, with no REMOVE sent). This stops a folder swapped for a symlink to another
        group's folder after the purge listed it.

        The window that remains: SFTP has no openat/O_NOFOLLOW for REMOVE, so the server resolves every
        path again when the REMOVE arrives, one round trip after the lstat replies; a writer in the
        group's directory could swap a folder within that round trip. It is closed by the deployment
        (docs/deployment-sftp.md): the groups' accounts are read-only and chrooted, so only the delivery
        account, which never makes a symlink, can change anything under a group's directory. (The local
        backend has no such window: it removes through folder handles that never follow a symlink.)
        """
        paths = list(paths)
        problems: list[Exception | None] = (
            self.check_parents(paths, within=within) if within is not None else [None] * len(paths)
        )
        results: list[RemoveResult | None] = []
        todo: list[tuple[int, str, str]] = []
        for path, problem in zip(paths, problems, strict=True):
            try:
                if problem is not None:
                    raise problem
                relative = check_path(path)
                if not relative:
                    raise IsADirectoryError("refusing to remove the remote root")
            except Exception as exc:
                results.append(RemoveResult(path, exc))
                continue
            if self.guard.allow(Action.REMOVE, relative):
                try:
                    todo.append((len(results), path, self._abs(path)))
                except Exception as exc:  # the local backend: a symlink leading out of the root
                    results.append(RemoveResult(path, exc))
                    continue
                results.append(None)
            else:
                results.append(RemoveResult(path))
        errors = self._do_remove_many([a for _, _, a in todo]) if todo else []
        for (index, path, _), error in zip(todo, errors, strict=True):
            results[index] = RemoveResult(path, error)
        return [r for r in results if r is not None]

    def rmdir(self, path: str) -> None:
        relative = check_path(path)
        if not relative:
            raise IsADirectoryError("refusing to remove the remote root")
        if not self.guard.allow(Action.RMDIR, relative):
            return
        self._do_rmdir(self._abs(path))

    def set_mtime(self, path: str, when: datetime) -> None:
        relative = check_path(path)
        seconds = epoch_seconds(when)
        if not self.guard.allow(Action.SET_MTIME, relative):
            return
        self._do_set_mtime(self._abs(path), seconds)

    # -- lifecycle -------------------------------------------------------------------------------------
    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- backend hooks (absolute, checked paths) -------------------------------------------------------
    def _do_stat(self, abspath: str, relative: str) -> Entry | None:
        raise NotImplementedError

    def _do_stat_many(
        self, abspaths: Sequence[str], relatives: Sequence[str]
    ) -> list[Entry | Exception | None]:
        results: list[Entry | Exception | None] = []
        for abspath, relative in zip(abspaths, relatives, strict=True):
            try:
                results.append(self._do_stat(abspath, relative))
            except Exception as exc:
                results.append(exc)
        return results

    def _do_list(self, abspath: str, relative: str) -> list[Entry]:
        raise NotImplementedError

    def _do_list_many(
        self, abspaths: Sequence[str], relatives: Sequence[str]
    ) -> list[list[Entry] | Exception]:
        results: list[list[Entry] | Exception] = []
        for abspath, relative in zip(abspaths, relatives, strict=True):
            try:
                results.append(self._do_list(abspath, relative))
            except Exception as exc:
                results.append(exc)
        return results

    def _do_open_read(self, abspath: str) -> BinaryIO:
        raise NotImplementedError

    def _do_open_write(self, abspath: str) -> BinaryIO:
        raise NotImplementedError

    def _do_open_update(self, abspath: str) -> BinaryIO:
        raise NotImplementedError

    def _do_mkdir(self, abspath: str) -> None:
        raise NotImplementedError

    def _do_rename_noreplace(self, src: str, dst: str, dst_relative: str) -> None:
        raise NotImplementedError

    def _do_rename_replace(self, src: str, dst: str) -> None:
        raise NotImplementedError

    def _do_remove(self, abspath: str) -> None:
        raise NotImplementedError

    def _do_remove_many(self, abspaths: Sequence[str]) -> list[Exception | None]:
        errors: list[Exception | None] = []
        for abspath in abspaths:
            try:
                self._do_remove(abspath)
                errors.append(None)
            except Exception as exc:
                errors.append(exc)
        return errors

    def _do_rmdir(self, abspath: str) -> None:
        raise NotImplementedError

    def _do_set_mtime(self, abspath: str, seconds: float) -> None:
        raise NotImplementedError
