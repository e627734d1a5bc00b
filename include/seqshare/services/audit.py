"""The audit trail: every recorded change, newest last."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from seqshare.db.models import AuditEvent
from seqshare.services import lookup
from seqshare.services.views import AuditView


def audit_events(
    session: Session, *, project: str | None = None, limit: int | None = None
) -> list[AuditView]:
    query = (
        select(AuditEvent).options(selectinload(AuditEvent.project)).order_by(AuditEvent.at, AuditEvent.id)
    )
    if project is not None:
        query = query.where(AuditEvent.project_id == lookup.project(session, project).id)
    events = list(session.scalars(query))
    if limit is not None:
        events = events[-limit:]
    return [
        AuditView(
            at=e.at,
            actor=e.actor,
            action=e.action.value,
            project=e.project.name if e.project else None,
            before=e.before,
            after=e.after,
            via=e.via,
        )
        for e in events
    ]
