"""The API's test world: tests/world.py plus one user per role of the visibility matrix, a share history
around "Int Project", a run with a frozen plan and one delivered file, and a token per user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from seqshare.db.models import Delivery, DeliveryState, Group, Pool, Run, RunSnapshot
from seqshare.delivery.snapshot import SnapshotSource
from seqshare.services import sharing, tokens
from tests.world import WORLD, load_world

PROJECT = "Int Project"
MISSING = "Int Projekt"  # no such project; as long as PROJECT, so the two answers can be compared
T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
RUN_ID = "260301_A01535_0001_BTESTRUN01"

# role -> (user, may see PROJECT); expected outcomes written out, not recomputed from the rule.
MATRIX: dict[str, tuple[str, bool]] = {
    "owner": ("owner", True),
    "owner's group member": ("member", True),
    "shared internal group": ("other", True),
    "revoked internal group": ("third", False),
    "external group shared with": ("extowner", False),
    "unrelated external group": ("exttwo", False),
    "unrelated internal group": ("loner", False),
}
NO_ACCESS = [user for user, sees in MATRIX.values() if not sees]

API_WORLD: dict[str, Any] = {
    **WORLD,
    "groups": [*WORLD["groups"], {"name": "Lone Lab", "kind": "internal"}],
    "users": [
        *WORLD["users"],
        {"username": "third", "name": "Thea Third", "email": "thea@lab.example", "group": "Third Lab"},
        {"username": "loner", "name": "Lou Loner", "email": "lou@lab.example", "group": "Lone Lab"},
    ],
    "pools": [
        {
            "id": "SLX-1",
            "project": PROJECT,
            "samples": [
                {"name": "S1", "index": "ACGTACGT", "index2": "TTGGCCAA"},
                {"name": "S2", "index": "GGGGAAAA"},
            ],
        },
        *[p for p in WORLD["pools"] if p["id"] != "SLX-1"],
    ],
    "runs": [
        {"run_id": RUN_ID, "started_at": T0.isoformat(), "lanes": [{"lane": 1, "pools": ["SLX-1", "SLX-2"]}]}
    ],
}

FILES = {  # pool -> (path relative to the run folder, size)
    "SLX-1": [
        ("BCLConvert/SLX-1/S1_S1_L001_R1_001.fastq.gz", 1000),
        ("BCLConvert/SLX-1/S1_S1_L001_R2_001.fastq.gz", 1001),
    ],
}
MD5 = "0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class Tokens:
    by_user: dict[str, str]  # username -> secret
    revoked: str  # member's revoked token
    expired: str  # member's expired token
    expiring: str  # member's token that expires at T_EXPIRY
    expiry: datetime


def _freeze_plan(session: Session) -> None:
    """A frozen plan as `services.runs.freeze_snapshot` writes it: SLX-1 goes to Ext Co (its files listed),
    SLX-2 to no external group (its files not listed), and one file of SLX-1 in the ledger with its md5."""
    run = session.scalar(select(Run).where(Run.run_id == RUN_ID))
    assert run is not None
    run.run_folder = f"/runs/{RUN_ID}"
    plan = {
        "run_id": RUN_ID,
        "run_folder": run.run_folder,
        "instant": T0.isoformat(),
        "source": "lims",
        "pools": [],
        "groups": [
            {
                "group": "Ext Co",
                "ftp_dir": "extco",
                "files": [
                    {
                        "pool": "SLX-1",
                        "source": src,
                        "remote_path": f"extco/{RUN_ID}/SLX-1/{src.rsplit('/')[-1]}",
                        "size": size,
                    }
                    for src, size in FILES["SLX-1"]
                ],
            }
        ],
    }
    session.add(
        RunSnapshot(
            run_id=run.id, instant=T0, source=SnapshotSource.LIMS, frozen_at=T0, frozen_by="test", plan=plan
        )
    )
    group = session.scalar(select(Group).where(Group.name == "Ext Co"))
    pool = session.scalar(select(Pool).where(Pool.name == "SLX-1"))
    assert group is not None and pool is not None
    src, size = FILES["SLX-1"][0]
    session.add(
        Delivery(
            run_id=run.id,
            group_id=group.id,
            pool_id=pool.id,
            remote_path=f"extco/{RUN_ID}/SLX-1/{src.rsplit('/')[-1]}",
            size=size,
            md5=MD5,
            state=DeliveryState.DELIVERED,
            delivered_at=T0,
            expires_at=T0 + timedelta(days=30),
        )
    )


def load_api_world(session: Session, *, now: datetime) -> Tokens:
    """The world; shares dated before `now`; a token per user created at `now` - 1 day."""
    load_world(session, API_WORLD)
    sharing.set_sharing(session, project=PROJECT, groups=["Third Lab"], actor="owner", now=T0)
    sharing.set_sharing(
        session, project=PROJECT, groups=["Other Lab", "Ext Co"], actor="member", now=T0 + timedelta(days=1)
    )
    sharing.set_sharing(session, project="Ext Project", groups=["Other Lab"], actor="extowner", now=T0)
    _freeze_plan(session)
    created = now - timedelta(days=1)
    users = {u["username"] for u in API_WORLD["users"]}
    by_user = {
        u: tokens.create_token(session, username=u, name="test", expires_at=None, now=created).secret
        for u in sorted(users)
    }
    revoked = tokens.create_token(session, username="member", name="old", expires_at=None, now=created)
    tokens.revoke_token(session, token_id=revoked.token.id, now=created)
    expired = tokens.create_token(
        session, username="member", name="short", expires_at=created + timedelta(hours=1), now=created
    )
    expiry = now + timedelta(hours=1)
    expiring = tokens.create_token(
        session, username="member", name="expiring", expires_at=expiry, now=created
    )
    return Tokens(by_user, revoked.secret, expired.secret, expiring.secret, expiry)


# The download API's run folder: real files on disk, and the frozen plan listing every pool's files.
OUTPUT = "BCLConvert"
RUN_FILES = {  # pool -> file names under <run folder>/BCLConvert/<pool>/
    "SLX-1": ["S1_S1_L001_R1_001.fastq.gz", "S1_S1_L001_R2_001.fastq.gz", "S2_S2_L001_R1_001.fastq.gz"],
    "SLX-2": ["S3_S3_L001_R1_001.fastq.gz"],
}


def file_bytes(pool: str, name: str, size: int = 3000) -> bytes:
    """A file's made-up content: different for every file, so a file served for another shows."""
    seed = f"{pool}/{name}\n".encode()
    return (seed * (size // len(seed) + 1))[:size]


def write_run_folder(session: Session, folder: Path, sparse: dict[str, int] | None = None) -> dict[str, Path]:
    """Write the run's folder under `folder` (RUN_FILES, RunInfo.xml beside them, and `sparse`: more
    SLX-1 files of these sizes, holes only) and point the run and its frozen plan at it, the plan listing
    every pool's files with their resolved paths as `services.runs.freeze_snapshot` does.

    Returns `<pool>/<name>` -> the file's path."""
    root = folder / RUN_ID
    (root / OUTPUT).mkdir(parents=True)
    (root / "RunInfo.xml").write_text('<?xml version="1.0"?>\n<RunInfo Version="6"/>\n')
    written: dict[str, Path] = {}
    for pool, names in RUN_FILES.items():
        (root / OUTPUT / pool).mkdir()
        for name in names:
            path = root / OUTPUT / pool / name
            path.write_bytes(file_bytes(pool, name))
            written[f"{pool}/{name}"] = path
    for name, size in (sparse or {}).items():
        path = root / OUTPUT / "SLX-1" / name
        with path.open("wb") as out:
            out.truncate(size)
        written[f"SLX-1/{name}"] = path
    run = session.scalar(select(Run).where(Run.run_id == RUN_ID))
    snapshot = session.get(RunSnapshot, run.id) if run is not None else None
    assert run is not None and snapshot is not None
    run.run_folder = str(root)
    snapshot.plan = {
        **snapshot.plan,
        "run_folder": str(root),
        "output_dir": OUTPUT,
        "files": [
            {
                "pool": key.split("/")[0],
                "source": str(path.relative_to(root)),
                "size": path.stat().st_size,
                "resolved": str(path.resolve()),
            }
            for key, path in sorted(written.items())
        ],
    }
    return written
