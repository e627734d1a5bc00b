"""`LocalRemote`: the `Remote` interface over a local directory (tests, mounted FTP roots).

Removes go through folder handles opened from the root without following symlinks (openat with
O_NOFOLLOW, then unlinkat): a folder swapped for a symlink at any moment makes the remove fail, so unlike
SFTP there is no window between a check and the remove.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import stat as stat_module
from collections.abc import Sequence
from typing import BinaryIO

from seqshare.transfer.errors import UnsafePath
from seqshare.transfer.guard import Guard
from seqshare.transfer.remote import BaseRemote, Entry, SymlinkInPath, from_epoch

_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _load_renameat2():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_renameat2 = _load_renameat2()


def _entry(relative: str, st: os.stat_result) -> Entry:
    return Entry(
        path=relative,
        size=st.st_size,
        mtime=from_epoch(st.st_mtime),
        is_dir=stat_module.S_ISDIR(st.st_mode),
        is_symlink=stat_module.S_ISLNK(st.st_mode),
    )


class LocalRemote(BaseRemote):
    def __init__(self, root: str | os.PathLike[str], *, guard: Guard | None = None) -> None:
        root = os.fspath(root)
        if not os.path.isdir(root):
            raise NotADirectoryError(f"local remote root {root!r} is not a directory")
        super().__init__(os.path.realpath(root), guard=guard)

    def _abs(self, path: str) -> str:
        """Lexical check (shared with every backend), then: the parent must not be reached through a
        symlink that leads outside the root."""
        abspath = super()._abs(path)
        parent = os.path.realpath(os.path.dirname(abspath)) if abspath != self.root else self.root
        if parent != self.root and not parent.startswith(self.root + os.sep):
            raise UnsafePath(f"remote path {path!r} leaves the root through a symlink")
        return abspath

    def _do_stat(self, abspath: str, relative: str) -> Entry | None:
        try:
            return _entry(relative, os.lstat(abspath))
        except FileNotFoundError:
            return None

    def _do_list(self, abspath: str, relative: str) -> list[Entry]:
        entries = []
        with os.scandir(abspath) as iterator:
            for item in iterator:
                child = f"{relative}/{item.name}" if relative else item.name
                entries.append(_entry(child, item.stat(follow_symlinks=False)))
        return entries

    def _do_open_read(self, abspath: str) -> BinaryIO:
        fd = os.open(abspath, os.O_RDONLY | os.O_NOFOLLOW)
        return os.fdopen(fd, "rb")

    def _do_open_write(self, abspath: str) -> BinaryIO:
        fd = os.open(abspath, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        return os.fdopen(fd, "wb", buffering=0)

    def _do_open_update(self, abspath: str) -> BinaryIO:
        fd = os.open(abspath, os.O_WRONLY | os.O_NOFOLLOW)  # no O_CREAT, no O_TRUNC
        return os.fdopen(fd, "wb", buffering=0)

    def _do_mkdir(self, abspath: str) -> None:
        os.mkdir(abspath)

    def _do_rename_noreplace(self, src: str, dst: str, dst_relative: str) -> None:
        if _renameat2 is not None:
            result = _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
            if result == 0:
                return
            code = ctypes.get_errno()
            if code == errno.EEXIST:
                raise FileExistsError(code, f"destination {dst_relative!r} exists", dst)
            if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise OSError(code, os.strerror(code), src)
        # Filesystem without RENAME_NOREPLACE: the base class already checked that dst is absent.
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, f"destination {dst_relative!r} exists", dst)
        os.rename(src, dst)

    def _do_rename_replace(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def _do_remove(self, abspath: str) -> None:
        os.unlink(abspath)

    def _do_remove_many(self, abspaths: Sequence[str]) -> list[Exception | None]:
        """unlinkat in folders opened one level at a time from the root with O_NOFOLLOW (each folder once
        per batch): a symlink anywhere below the root fails that path with `SymlinkInPath`."""
        folders: dict[str, int | Exception] = {}
        errors: list[Exception | None] = []
        try:
            for abspath in abspaths:
                parent, name = os.path.split(abspath)
                try:
                    folder = self._open_folder(parent, folders)
                    os.unlink(name, dir_fd=folder)
                    errors.append(None)
                except Exception as exc:
                    errors.append(exc)
        finally:
            for fd in folders.values():
                if isinstance(fd, int):
                    os.close(fd)
        return errors

    def _open_folder(self, abspath: str, opened: dict[str, int | Exception]) -> int:
        """A handle on the folder `abspath` (under the root), reached without following any symlink."""
        known = opened.get(abspath)
        if known is None:
            try:
                if abspath == self.root:
                    known = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
                else:
                    parent, name = os.path.split(abspath)
                    if len(parent) < len(self.root) or not name:
                        raise UnsafePath(f"{abspath!r} is not under the root {self.root!r}")
                    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                    known = os.open(name, flags, dir_fd=self._open_folder(parent, opened))
            except UnsafePath as exc:
                known = exc
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    known = exc
                else:
                    known = SymlinkInPath(f"{abspath!r} is a symlink or not a folder; nothing removed in it")
            opened[abspath] = known
        if isinstance(known, Exception):
            raise known
        return known

    def _do_rmdir(self, abspath: str) -> None:
        os.rmdir(abspath)

    def _do_set_mtime(self, abspath: str, seconds: float) -> None:
        os.utime(abspath, (seconds, seconds), follow_symlinks=False)

    def __repr__(self) -> str:
        return f"LocalRemote({self.root!r})"
