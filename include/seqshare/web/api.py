"""The internal API, `/api/v1`: thin routes, each one call into `seqshare.services.catalog`.

Every route depends on `current_actor` (router-wide), so none answers an anonymous caller; the
permission check is the services' (`seqshare.services.access`), the same the page will call.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session

from seqshare.services import catalog
from seqshare.web.actors import Actor, current_actor

PREFIX = "/api/v1"


class ErrorOut(BaseModel):
    detail: str  # one line for a person


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No token, or one unknown, revoked or expired."},
    404: {"model": ErrorOut, "description": "No such project, or one the caller may not see (alike)."},
    422: {"model": ErrorOut, "description": "Bad input."},
}

router = APIRouter(prefix=PREFIX, dependencies=[Depends(current_actor)], responses=ERRORS)


class ProjectOut(BaseModel):
    name: str
    owner: str
    owner_group: str
    access: catalog.Access  # "owned": by the caller's group; "shared": shared with it now
    pools: list[str]


class ProjectPageOut(BaseModel):
    projects: list[ProjectOut]
    next_cursor: str | None  # pass as `cursor` for the next page; null on the last page


class SampleOut(BaseModel):
    name: str
    pool: str
    index1: str | None
    index2: str | None


class RunOut(BaseModel):
    run_id: str
    flowcell: str | None
    instrument: str | None
    sequencing_started_at: datetime | None
    lanes: list[int]
    pools: list[str]  # the project's pools on this run


class ProjectDetailOut(BaseModel):
    name: str
    owner: str
    owner_group: str
    access: catalog.Access
    pools: list[str]
    samples: list[SampleOut]
    runs: list[RunOut]


class FileOut(BaseModel):
    path: str  # relative to the run folder
    size: int
    md5: str | None  # null until computed


class PoolFilesOut(BaseModel):
    run_id: str
    pool: str
    files: list[FileOut] | None  # null: the run's frozen plan does not list this pool's files


class MeOut(BaseModel):
    username: str
    via: str


def read_session(request: Request) -> Iterator[Session]:
    with request.app.state.database.transaction() as session:
        yield session


def now(request: Request, _: Annotated[Actor, Depends(current_actor)]) -> datetime:
    return request.state.now  # set with the actor, so one request sees one instant


Caller = Annotated[Actor, Depends(current_actor)]
Db = Annotated[Session, Depends(read_session)]
Now = Annotated[datetime, Depends(now)]
ProjectName = Annotated[str, Path(description="The project's name, as in the LIMS.", max_length=200)]


@router.get("/me", response_model=MeOut, summary="Who the token speaks for")
def me(actor: Caller) -> MeOut:
    return MeOut(username=actor.username, via=actor.via)


@router.get("/projects", response_model=ProjectPageOut, summary="The projects the caller can see")
def projects(
    actor: Caller,
    db: Db,
    at: Now,
    limit: Annotated[int, Query(ge=1, le=catalog.MAX_PAGE, description="Projects per page.")] = 100,
    cursor: Annotated[str | None, Query(max_length=400, description="The last page's `next_cursor`.")] = None,
) -> Any:
    """By name; the caller's group's own projects, and those shared now with it if it is internal."""
    return catalog.list_projects(db, username=actor.username, now=at, limit=limit, cursor=cursor)


@router.get("/projects/{project}", response_model=ProjectDetailOut, summary="One project")
def project(actor: Caller, db: Db, at: Now, project: ProjectName) -> Any:
    """Its pools, samples (with index sequences) and the runs its pools were sequenced on."""
    return catalog.project_detail(db, username=actor.username, project=project, now=at)


@router.get("/projects/{project}/files", response_model=list[PoolFilesOut], summary="A project's files")
def project_files(
    actor: Caller,
    db: Db,
    at: Now,
    project: ProjectName,
    run: Annotated[str | None, Query(max_length=200, description="Only this run (Illumina run id).")] = None,
) -> Any:
    """The files of each pool on each run: path relative to the run folder, size, md5 when known."""
    return catalog.project_files(db, username=actor.username, project=project, now=at, run_id=run)


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request) -> dict[str, Any]:
    """This API's OpenAPI schema (for a token holder, like everything else)."""
    return request.app.openapi()
