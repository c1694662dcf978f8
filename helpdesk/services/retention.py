"""Data kept only as long as needed: what was typed about people is purged after closure.

An incident that ended (closed, rejected or cancelled) longer ago than its type's
retention period (``RETENTION_DAYS``, 30 by default, per type where it says so) loses
what people typed into it — the verification details (names, phone, birth dates,
postcodes, account and student numbers), the summary, the notes, the words of comments
and reasons staff wrote, and the context of its emails — and keeps the audit skeleton:
who filed and acted, when, which transitions, the verification outcome, and a
``purged`` event. A revocation keeps its reason category. The search reads only what
is left, so purged words are found no more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from ..domain.lifecycle import Status
from ..extensions import db
from ..models import Incident, IncidentEvent, Notification, utcnow
from ..models.types import UTCDateTime
from . import audit
from .audit import Event
from .uow import unit_of_work

ENDED = (Status.CLOSED.value, Status.REJECTED.value, Status.CANCELLED.value)
KEPT_DETAILS = {"access_revocation": ("reason",)}  # a category from a list, not free text


def retention_days(incident_type: str) -> float:
    """The days an ended incident of this type keeps what was typed into it."""
    periods: dict[str, float] = current_app.config["RETENTION_DAYS"]
    return periods.get(incident_type, periods["*"])


@dataclass(frozen=True)
class Due:
    """An ended incident past its retention period, and when it ended."""

    incident_id: int
    ref: str
    type: str
    ended_at: datetime


def _ended_at() -> sa.ScalarSelect[datetime]:
    events = IncidentEvent.__table__.c
    return (
        sa.select(sa.func.max(events.at))
        .where(events.incident_id == Incident.id, events.to_status.in_(ENDED))
        .scalar_subquery()
    )


def due(now: datetime | None = None, batch: int | None = None) -> list[Due]:
    """The ended, not yet purged incidents whose retention period has passed."""
    now = now or utcnow()
    periods: dict[str, float] = current_app.config["RETENTION_DAYS"]
    default: Any = sa.literal(now - timedelta(days=periods["*"]), UTCDateTime())
    by_type = {kind: now - timedelta(days=days) for kind, days in periods.items() if kind != "*"}
    cutoff = sa.case(by_type, value=Incident.type, else_=default) if by_type else default
    ended = _ended_at()
    query = (
        sa.select(Incident.id, Incident.type, ended.label("ended_at"))
        .where(Incident.status.in_(ENDED), Incident.purged_at.is_(None), ended <= cutoff)
        .order_by(Incident.id)
        .limit(batch)
    )
    return [Due(row.id, Incident(id=row.id).ref, row.type, row.ended_at)
            for row in db.session.execute(query)]  # fmt: skip


def purge(now: datetime | None = None, batch: int = 200) -> list[str]:
    """Purge every incident that is due, a batch per unit of work; returns their refs."""
    now = now or utcnow()
    purged: list[str] = []
    while True:
        with unit_of_work():
            batch_due = due(now, batch)
            for item in batch_due:
                _purge_one(item, now)
        purged += [item.ref for item in batch_due]
        if len(batch_due) < batch:
            return purged


def _purge_one(item: Due, now: datetime) -> None:
    incident = db.session.execute(
        sa.select(Incident).where(Incident.id == item.incident_id).with_for_update(of=Incident)
    ).scalar_one()
    if incident.purged_at is not None:  # another scheduler got there first
        return
    kept = KEPT_DETAILS.get(incident.type, ())
    incident.details = {key: incident.details[key] for key in kept if key in incident.details}
    incident.summary = incident.notes = None
    # The outcome and each field's result stay; the reasons, which may quote what was
    # typed, do not.
    fields = (incident.verification_results or {}).get("fields", {})
    incident.verification_results = {"fields": fields}
    incident.purged_at = now
    # What people wrote on the timeline (comments, reasons for moves) goes; who did
    # what, when, and which transition, stays.
    db.session.execute(
        sa.update(IncidentEvent)
        .where(IncidentEvent.incident_id == incident.id, IncidentEvent.actor_id.is_not(None))
        .values(message=None, data={})
    )
    db.session.execute(
        sa.update(Notification)
        .where(Notification.incident_id == incident.id)
        .values(context={}, sent_to=None, last_error=None)
    )
    days = retention_days(incident.type)
    audit.record(Event(
        incident.id, "purged", incident.status, incident.status,
        f"what was typed about people was removed, {days:g} days after the incident ended",
        at=now,
    ))  # fmt: skip
