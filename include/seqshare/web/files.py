"""The download API, `/api/v1/downloads` and `/api/v1/files/...`: what a caller may fetch, and the files.

Routes are thin: the rules (which files, visibility, md5 once per version, the record) are
`seqshare.services.files` and `seqshare.services.downloads`. Every route depends on `current_actor`
(router-wide), so none answers an anonymous caller, and visibility is checked again on every file request.

Files are streamed by `FileStream`, not Starlette's `FileResponse` (which does ranges): FileResponse opens
the file again by its path when it starts sending, so the file served need not be the one checked (a link
re-pointed in between); it cannot notice a file changing while it is sent, cannot say how many bytes went
(the download record), and answers bad ranges in plain text. FileStream sends from the descriptor that was
checked, 1 MiB at a time read in a worker thread (uvicorn waits for the socket to drain before taking the
next chunk, so memory stays flat), checks before sending each chunk that the file is unchanged (fstat of
the open file and stat of its path: two system calls per MiB) and stops the body short if it changed.

The file route is async so that a request waiting for an md5 holds no thread: the database and stat work
runs in AnyIO's default threads, the md5 of a version not hashed yet in at most `HASHING_AT_ONCE` threads
of its own (`hashing_limiter`), so first requests of large files never stall the downloads being sent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Annotated, Any
from urllib.parse import quote

import anyio
from anyio.lowlevel import RunVar
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.types import Receive, Scope, Send

from seqshare.errors import NotFound
from seqshare.services import access, downloads, files
from seqshare.services.files import CHUNK, FileChanged, OpenFile, RunFile
from seqshare.web.actors import current_actor
from seqshare.web.api import ERRORS, PREFIX, Caller, ErrorOut, Now

log = logging.getLogger(__name__)

router = APIRouter(prefix=PREFIX, dependencies=[Depends(current_actor)], responses=ERRORS, tags=["downloads"])


class DownloadFileOut(BaseModel):
    run_id: str
    pool: str
    path: str  # where the client stores it: <run id>/<pool>/<file name>
    size: int  # the file's size now
    md5: str | None  # null until the server has computed it (on the first request for the file)
    url: str  # GET (or HEAD) it, with the same token


class DownloadsOut(BaseModel):
    project: str
    files: list[DownloadFileOut]


def _url(f: RunFile) -> str:
    """Each part percent-encoded: a file name may hold `#`, `?`, `%` or spaces."""
    return f"{PREFIX}/files/{quote(f.run_id, safe='')}/{quote(f.pool, safe='')}/{quote(f.name, safe='')}"


@router.get("/downloads", response_model=DownloadsOut, summary="The files a pool or project offers")
def list_downloads(
    request: Request,
    actor: Caller,
    at: Now,
    target: Annotated[str, Query(min_length=1, max_length=200, description="A pool id or a project name.")],
    run: Annotated[str | None, Query(max_length=200, description="Only this run (Illumina run id).")] = None,
) -> Any:
    """Every file of the pool's (or the project's pools') samples on each run, as the run's frozen plan
    lists them; a pool or project the caller may not see answers 404 exactly like a missing one."""
    project, listed = files.listing(
        request.app.state.database.sessions(),
        username=actor.username,
        target=target,
        now=at,
        run_id=run,
        plans=request.app.state.plan_files,
    )
    return DownloadsOut(
        project=project,
        files=[
            DownloadFileOut(
                run_id=x.file.run_id,
                pool=x.file.pool,
                path=x.file.path,
                size=x.size,
                md5=x.md5,
                url=_url(x.file),
            )
            for x in listed
        ],
    )


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, end) asked for by a `Range` header, None for the whole file (no header, or one this server
    ignores as RFC 9110 allows: several ranges, other units, bad syntax). ValueError if unsatisfiable."""
    found = _RANGE.fullmatch(header.strip()) if header else None
    if found is None or not any(found.groups()):
        return None
    first, last = found.groups()
    if not first:  # the last N bytes
        if int(last) == 0 or size == 0:
            raise ValueError
        return max(0, size - int(last)), size
    start = int(first)
    end = size if not last else int(last) + 1
    if last and end <= start:
        return None  # invalid: ignored
    if start >= size:
        raise ValueError
    return start, min(end, size)


def _matches(if_match: str, etag: str) -> bool:
    return any(tag.strip() in ("*", etag) for tag in if_match.split(","))


def _range_asked(range_: str | None, if_range: str | None, etag: str) -> str | None:
    """The Range header to honour: none when `If-Range` names another version (RFC 9110 13.1.5), so a
    client resuming a version that changed gets the whole new file, never a mix. A date never matches (no
    Last-Modified is sent), nor a weak tag (If-Range compares strongly)."""
    if range_ is not None and if_range is not None and if_range.strip() != etag:
        return None
    return range_


class FileStream(Response):
    """An open run file's bytes [start, end), sent from its descriptor; see the module's docstring."""

    def __init__(
        self,
        handle: OpenFile,
        start: int,
        end: int,
        *,
        status_code: int,
        headers: dict[str, str],
        head: bool,
        done: Callable[[int, bool], None],
    ) -> None:
        super().__init__(status_code=status_code, headers=headers, media_type="application/octet-stream")
        self.handle, self.start, self.end, self.head, self.done = handle, start, end, head, done
        self.sent = 0  # bytes of the body sent so far

    def _read(self, offset: int) -> tuple[bytes, str | None]:
        chunk = self.handle.read(offset, min(CHUNK, self.end - offset))
        return chunk, self.handle.changed()  # after the read: the chunk is of the version announced

    async def _send_body(self, send: Send) -> bool:
        """Send the body; True if all of it went (`self.sent` counts what did)."""
        offset = self.start
        if self.head or offset >= self.end:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return True
        while offset < self.end:
            chunk, changed = await anyio.to_thread.run_sync(self._read, offset)
            if changed or not chunk:
                log.warning(
                    "stopped sending %s at byte %d: %s", self.handle.path, offset, changed or "shrunk"
                )
                return False  # a short body: the client sees the file changed
            offset += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": offset < self.end})
            self.sent += len(chunk)
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        complete = False
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            async with anyio.create_task_group() as tasks:

                async def watch_disconnect() -> None:  # uvicorn's send() is silent once the client is gone
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tasks.cancel_scope.cancel()

                tasks.start_soon(watch_disconnect)
                complete = await self._send_body(send)
                tasks.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                self.handle.close()
                await anyio.to_thread.run_sync(self.done, self.sent, complete)


FileName = Annotated[str, Path(max_length=255, description="The file's name, as the listing gives it.")]

HASHING_AT_ONCE = 2
"""md5s computed at once per server process: each reads a whole file (disk and one core); two keep the disk
busy on this 2-core class of machine while the rest of the server keeps sending."""
_hashing: RunVar[anyio.CapacityLimiter] = RunVar("seqshare_hashing")


def hashing_limiter() -> anyio.CapacityLimiter:
    """This event loop's limiter for md5 computations. Not AnyIO's default one (40 threads), which also reads
    every running download's chunks: first requests of large files would hold all of those threads and stall
    the downloads. An AnyIO limiter, not a threading.Semaphore, because a request waiting for its turn
    then waits in the event loop, holding no thread; a semaphore would be waited on in a default thread."""
    try:
        return _hashing.get()
    except LookupError:
        _hashing.set(limiter := anyio.CapacityLimiter(HASHING_AT_ONCE))
        return limiter


@dataclass
class _Answer:
    """A file request judged servable: the file, its open handle, the bytes asked for, its md5 if known,
    and its record if written (not yet when the md5 is to be computed or kept first)."""

    file: RunFile
    handle: OpenFile
    etag: str
    span: tuple[int, int] | None
    md5: str | None
    from_ledger: bool  # md5 is a delivery's, not kept for this version yet
    record_id: int | None


FILE_ROUTE: dict[str, Any] = {
    "response_class": Response,
    "summary": "A file of a pool on a run (ranges, ETag, md5)",
    "responses": {
        200: {"content": {"application/octet-stream": {}}, "description": "The whole file."},
        206: {
            "content": {"application/octet-stream": {}},
            "description": "`Range: bytes=N-`: from N on (with `If-Range`, only if it names this version).",
        },
        409: {"model": ErrorOut, "description": "The file changed while its md5 was computed; retry."},
        412: {"model": ErrorOut, "description": "`If-Match` names another version: the file changed."},
        416: {"model": ErrorOut, "description": "The range starts past the end of the file."},
    },
}
FILE_PATH = "/files/{run_id}/{pool}/{name}"


@router.get(FILE_PATH, operation_id="get_file", **FILE_ROUTE)
async def get_file(
    request: Request,
    actor: Caller,
    run_id: Annotated[str, Path(max_length=200, description="The Illumina run id.")],
    pool: Annotated[str, Path(max_length=50, description="The pool id (SLX-...).")],
    name: FileName,
    range_: Annotated[str | None, Header(alias="range", max_length=200)] = None,
    if_match: Annotated[str | None, Header(max_length=400)] = None,
    if_range: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """The file's bytes, after checking that the caller may see the pool now and that the file is the
    pool's own. Headers: `ETag` (the version), `X-Seqshare-MD5` (of the whole file), `Accept-Ranges`.
    A GET whose md5 is not known yet waits for it (computed under `hashing_limiter`) before the first
    byte; a HEAD never reads the file: it sends X-Seqshare-MD5 only when the md5 is known already.

    What a request costs is what every file of a many-file download pays, so the judging (the caller,
    visibility, the file, its stored md5) and the record are one transaction in one worker thread, and
    "now" is read from the request (set with the actor) rather than by a dependency of its own (a thread).
    """
    at: datetime = request.state.now  # set by current_actor: one request sees one instant
    sessions = request.app.state.database.sessions()
    method = request.method.upper()
    asked = {"run_id": run_id, "pool": pool, "name": name, "method": method, "at": at}

    def record_alone(status: int, f: RunFile | None, start: int | None = None, done: bool = True) -> int:
        """Record the request in a transaction of its own (after an md5 was computed or kept)."""
        return downloads.record_request(
            sessions,
            username=actor.username,
            project=f.project if f else None,
            status=status,
            range_start=start,
            done=done,
            **asked,
        )

    def judge() -> _Answer | Response | NotFound:
        """Visibility, the file, If-Match, Range, the md5 if stored, and the record: one transaction. The
        file is opened and stat'ed inside it (never read). A refusal is recorded and answered (NotFound
        returned, raised by the caller once the record is committed)."""
        with sessions.begin() as s:
            who = access.caller(s, actor.username)

            def record(status: int, f: RunFile | None, start: int | None = None, done: bool = True) -> int:
                project = f.project if f else None
                return downloads.record(
                    s, who, project=project, status=status, range_start=start, done=done, **asked
                )

            f = None
            try:
                f = files.find_file(
                    s,
                    username=actor.username,
                    run_id=run_id,
                    pool=pool,
                    name=name,
                    now=at,
                    plans=request.app.state.plan_files,
                    who=who,
                )
                handle = files.open_file(f)
            except NotFound as exc:
                record(404, f)
                return exc
            try:
                return _judged(f, handle, s, record)
            except BaseException:
                handle.close()
                raise

    def _judged(f: RunFile, handle: OpenFile, s: Session, record: Callable[..., int]) -> _Answer | Response:
        etag, size = f'"{handle.version.tag}"', handle.version.size
        if if_match is not None and not _matches(if_match, etag):
            record(412, f)
            handle.close()
            return _error(412, f"file changed on the server: {f.path} is not the version asked for any more")
        try:
            span = byte_range(_range_asked(range_, if_range, etag), size)
        except ValueError:
            record(416, f)
            handle.close()
            return _error(
                416, f"range not satisfiable: {f.path} has {size} bytes", {"Content-Range": f"bytes */{size}"}
            )
        md5, from_ledger = files.stored_checksum(s, f, handle.version)
        record_id = None
        if not from_ledger and (md5 is not None or method == "HEAD"):  # nothing to wait for: record now
            record_id = record(206 if span else 200, f, span[0] if span else None, done=False)
        return _Answer(f, handle, etag, span, md5, from_ledger, record_id)

    judged = await anyio.to_thread.run_sync(judge)
    if isinstance(judged, NotFound):
        raise judged
    if isinstance(judged, Response):
        return judged
    f, handle, size = judged.file, judged.handle, judged.handle.version.size
    start, end = judged.span or (0, size)
    status = 206 if judged.span is not None else 200
    try:
        md5, record_id = judged.md5, judged.record_id
        if (
            record_id is None
        ):  # before the first byte: the md5 kept (a delivery's) or computed, once per version
            if judged.from_ledger:
                assert md5 is not None
                keep = partial(files.keep_ledger_checksum, sessions, f, handle.version, md5, now=at)
                md5 = await anyio.to_thread.run_sync(keep)
            elif method != "HEAD":
                md5 = await anyio.to_thread.run_sync(
                    partial(files.checksum, sessions, f, handle, now=at), limiter=hashing_limiter()
                )
            record_id = await anyio.to_thread.run_sync(
                partial(record_alone, status, f, start if judged.span is not None else None, done=False)
            )
        headers = {"Accept-Ranges": "bytes", "ETag": judged.etag, "Content-Length": str(end - start)}
        if md5 is not None:
            headers["X-Seqshare-MD5"] = md5
        if judged.span is not None:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    except BaseException as exc:
        handle.close()
        if isinstance(exc, FileChanged):
            await anyio.to_thread.run_sync(partial(record_alone, 409, f))
        raise

    def done(sent: int, complete: bool) -> None:
        downloads.finish_request(
            sessions, record_id, bytes_sent=sent, completed=complete, at=request.app.state.clock()
        )

    return FileStream(
        handle, start, end, status_code=status, headers=headers, head=method == "HEAD", done=done
    )


router.head(FILE_PATH, operation_id="head_file", **FILE_ROUTE)(get_file)  # headers only: never hashes


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)
