"""The LIMS export schema (JSON or YAML), validated field by field before anything is written.

See `docs/lims-import.md` and `examples/lims.yaml`. Names are the LIMS's natural keys: groups by name,
users by username, projects by name, pools by `SLX-` id, runs by Illumina run id.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from seqshare.rules import GroupKind

POOL_ID = r"^SLX-\d+$"
INDEX = r"^[ACGTN]+$"

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320)]
PoolId = Annotated[str, StringConstraints(pattern=POOL_ID)]
IndexSeq = Annotated[
    str,
    BeforeValidator(lambda v: v.strip().upper() if isinstance(v, str) else v),
    StringConstraints(pattern=INDEX, max_length=64),
]
RunId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")]


def _safe_ftp_dir(value: str) -> str:
    """A group's FTP directory: a normalised relative path under the FTP root that cannot escape it.

    Checked part by part on the raw string (`PurePosixPath` would silently drop `.` parts, letting `./a`
    pass as a second name for `a`).
    """
    parts = value.split("/")
    if (
        not value
        or not re.fullmatch(r"[A-Za-z0-9._/-]+", value)
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise ValueError(
            "must be a relative path of letters, digits, '.', '_', '-' and '/', "
            "without '..', '.' or empty parts"
        )
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must give a time zone, e.g. 2026-03-01T09:30:00+00:00")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GroupIn(Strict):
    name: Name
    kind: GroupKind
    ftp_dir: Annotated[str, AfterValidator(_safe_ftp_dir)] | None = None
    special: bool = False
    ttl_days: Annotated[int, Field(ge=1, le=3650)] | None = None  # None: the default time to live


class UserIn(Strict):
    username: Username
    name: Name
    email: Email
    group: Name


class ProjectIn(Strict):
    name: Name
    owner: Username


class SampleIn(Strict):
    name: Name
    index: IndexSeq | None = None
    index2: IndexSeq | None = None


class PoolIn(Strict):
    id: PoolId
    project: Name
    samples: list[SampleIn] = Field(default_factory=list)


class LaneIn(Strict):
    lane: Annotated[int, Field(ge=1, le=64)]
    pools: list[PoolId] = Field(min_length=1)


class RunIn(Strict):
    run_id: RunId
    flowcell: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,50}$")] | None = None
    instrument: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,50}$")] | None = None
    run_folder: str | None = None
    started_at: Annotated[datetime, AfterValidator(_aware)] | None = None
    lanes: list[LaneIn] = Field(default_factory=list)


class LimsExport(Strict):
    groups: list[GroupIn] = Field(default_factory=list)
    users: list[UserIn] = Field(default_factory=list)
    projects: list[ProjectIn] = Field(default_factory=list)
    pools: list[PoolIn] = Field(default_factory=list)
    runs: list[RunIn] = Field(default_factory=list)
