"""A small facility for tests, loaded through the real LIMS import (so tests exercise that path too)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from seqshare.lims_schema import LimsExport
from seqshare.services import lims

# Owner Lab (internal) owns "Int Project"; Ext Co (external) owns "Ext Project".
WORLD: dict[str, Any] = {
    "groups": [
        {"name": "Owner Lab", "kind": "internal"},
        {"name": "Other Lab", "kind": "internal"},
        {"name": "Third Lab", "kind": "internal"},
        {"name": "Ext Co", "kind": "external", "ftp_dir": "extco"},
        {"name": "Ext Two", "kind": "external", "ftp_dir": "exttwo"},
        {"name": "Special", "kind": "external", "ftp_dir": "special", "special": True},
    ],
    "users": [
        {"username": "owner", "name": "Olive Owner", "email": "owner@lab.example", "group": "Owner Lab"},
        {"username": "member", "name": "Max Member", "email": "member@lab.example", "group": "Owner Lab"},
        {"username": "other", "name": "Otto Other", "email": "other@lab.example", "group": "Other Lab"},
        {"username": "extowner", "name": "Eve Ext", "email": "eve@ext.example", "group": "Ext Co"},
        {"username": "extmember", "name": "Ed Ext", "email": "ed@ext.example", "group": "Ext Co"},
        {"username": "exttwo", "name": "Tess Two", "email": "tess@two.example", "group": "Ext Two"},
    ],
    "projects": [
        {"name": "Int Project", "owner": "owner"},
        {"name": "Member Project", "owner": "member"},
        {"name": "Other Project", "owner": "other"},
        {"name": "Ext Project", "owner": "extowner"},
    ],
    "pools": [
        {"id": "SLX-1", "project": "Int Project", "samples": [{"name": "S1", "index": "ACGT"}]},
        {"id": "SLX-2", "project": "Int Project"},
        {"id": "SLX-3", "project": "Member Project"},
        {"id": "SLX-4", "project": "Other Project"},
        {"id": "SLX-5", "project": "Ext Project"},
    ],
}


def load_world(session: Session, data: dict[str, Any] | None = None) -> None:
    lims.import_export(session, LimsExport.model_validate(data or WORLD))
