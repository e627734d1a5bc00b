"""The plan: which of the server's files to fetch, where each goes, and how many bytes are still to come.

Pure but for reading what is already at the destination (sizes of finished and partial files, free space):
the listing the server sent is checked here, so a path from the server can never escape `--dest`.
A file's local names: `<name>` (final, only once verified), `<name>.partial` (bytes so far),
`<name>.partial.etag` (the server's version those bytes belong to), `.seqshare/<name>.verified` (the size,
mtime, inode and md5 of the final file when it was last verified, so it is hashed once, not every run).
"""

from __future__ import annotations

import fnmatch
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from seqshare.download.errors import BadAnswer, BadInput, DiskFull
from seqshare.errors import quote

PARTIAL = ".partial"
ETAG = ".partial.etag"
STAMPS = ".seqshare"
_HEX = set("0123456789abcdef")


@dataclass(frozen=True)
class RemoteFile:
    """One file of the listing (contract: `GET /api/v1/downloads`)."""

    run_id: str
    pool: str
    path: PurePosixPath  # relative, checked: where it goes under --dest
    size: int
    md5: str | None  # null until the server has computed it
    url: str  # the server path to GET


@dataclass(frozen=True)
class Listing:
    project: str
    files: list[RemoteFile]


@dataclass(frozen=True)
class Job:
    """One file to bring to `final`, with its local companions."""

    remote: RemoteFile
    final: Path

    @property
    def partial(self) -> Path:
        return self.final.with_name(self.final.name + PARTIAL)

    @property
    def etag_file(self) -> Path:
        return self.final.with_name(self.final.name + ETAG)

    @property
    def stamp(self) -> Path:
        return self.final.parent / STAMPS / f"{self.final.name}.verified"

    @property
    def shown(self) -> str:
        """The file as messages name it: its path under --dest."""
        return str(self.remote.path)


def safe_path(text: object) -> PurePosixPath:
    """A server-given relative path that stays under --dest: no absolute path, no `..`, no empty or
    hidden-companion parts, no control characters."""
    if not isinstance(text, str) or not text or "\\" in text or not text.isprintable():
        raise BadAnswer(f"the server listed an unusable path {quote(text)}")
    parts = text.split("/")
    for part in parts:
        if part in ("", ".", "..") or part == STAMPS or part.endswith((PARTIAL, ETAG)):
            raise BadAnswer(f"the server listed an unusable path {quote(text)}")
    return PurePosixPath(*parts)


def _field(entry: Mapping[str, Any], key: str, kind: type) -> Any:
    value = entry.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadAnswer(f"the server's listing has no valid {key!r} in {quote(dict(entry))}")
    return value


def parse_listing(data: object) -> Listing:
    """The listing's JSON, checked field by field (a proxy's page or a broken server is one line)."""
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise BadAnswer("the server's listing is not the expected JSON (is SEQSHARE_URL a seqshare server?)")
    files: list[RemoteFile] = []
    seen: set[PurePosixPath] = set()
    for entry in data["files"]:
        if not isinstance(entry, dict):
            raise BadAnswer(f"the server's listing has a bad entry {quote(entry)}")
        md5 = entry.get("md5")
        if md5 is not None and not (isinstance(md5, str) and len(md5) == 32 and set(md5) <= _HEX):
            raise BadAnswer(f"the server's listing has a bad md5 {quote(md5)}")
        path = safe_path(entry.get("path"))
        if path in seen:
            raise BadAnswer(f"the server listed {quote(str(path))} twice")
        seen.add(path)
        size = _field(entry, "size", int)
        url = _field(entry, "url", str)
        if size < 0 or not url.startswith("/"):
            raise BadAnswer(f"the server's listing has a bad entry {quote(entry)}")
        files.append(
            RemoteFile(
                run_id=_field(entry, "run_id", str),
                pool=_field(entry, "pool", str),
                path=path,
                size=size,
                md5=md5,
                url=url,
            )
        )
    return Listing(project=str(data.get("project", "")), files=files)


def matches(path: PurePosixPath, pattern: str) -> bool:
    """`--glob`: against the file name, or against the whole path when the pattern has a `/`."""
    subject = str(path) if "/" in pattern else path.name
    return fnmatch.fnmatchcase(subject, pattern)


def make_plan(listing: Listing, dest: Path, pattern: str | None, target: str) -> list[Job]:
    files = listing.files
    if pattern is not None:
        files = [f for f in files if matches(f.path, pattern)]
        if not files and listing.files:
            raise BadInput(
                f"no file of {quote(target)} matches --glob {quote(pattern)} "
                f"({len(listing.files)} file(s) listed)"
            )
    return [Job(remote=f, final=dest.joinpath(*f.path.parts)) for f in files]


def size_on_disk(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def still_to_fetch(job: Job) -> int:
    """Bytes this job will still write: 0 if the final file has the right size (verified later, and
    fetched again only if its md5 is wrong), the rest after a partial that has its ETag beside it."""
    if size_on_disk(job.final) == job.remote.size:
        return 0
    partial = size_on_disk(job.partial) or 0
    if 0 < partial <= job.remote.size and job.etag_file.exists():
        return job.remote.size - partial
    return job.remote.size


def existing_parent(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def check_space(dest: Path, jobs: Iterable[Job]) -> int:
    """Refuse to start when the bytes still to fetch do not fit; returns that number of bytes."""
    need = sum(still_to_fetch(job) for job in jobs)
    free = shutil.disk_usage(existing_parent(dest.resolve())).free
    if need > free:
        raise DiskFull(
            f"not enough space in {quote(str(dest))}: {human_bytes(need)} still to download, "
            f"{human_bytes(free)} free"
        )
    return need


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # unreachable
