"""The agents' queue view: incidents of their queues, soonest deadline first, in keyset pages.

A page is found without OFFSET: the cursor is the (deadline, id) of the last row shown,
and each (queue, status) pair is a range seek on ``ix_incidents_worklist`` (queue_id,
status, resolution_due_at, id) that reads at most one page of rows. The seeks are merged
by a UNION ALL, so the 500th page costs what the first does however many incidents
there are (bench/pages.py). Incidents without a deadline (a queue with no SLA plan)
come after all that have one, by id.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ..domain.lifecycle import OPEN_STATUSES, Status
from ..extensions import db
from ..models import Incident, Queue, Role, School, User, queue_members, utcnow
from .sla import settings
from .users import Principal

PAGE_SIZE = 25


@dataclass(frozen=True)
class Filters:
    statuses: tuple[str, ...] = tuple(sorted(OPEN_STATUSES))
    type: str | None = None
    school: str | None = None  # school code
    assignee: str | None = None  # an email, "me" or "nobody"
    queue: str | None = None  # one of the viewer's queues
    breached: bool | None = None


@dataclass
class Row:
    incident: Incident
    time_left: timedelta | None  # business time to the resolution deadline
    breached: bool


@dataclass
class Page:
    rows: list[Row] = field(default_factory=list)
    next_cursor: str | None = None


def encode_cursor(due: datetime | None, incident_id: int) -> str:
    text = f"{due.isoformat() if due else ''}|{incident_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime | None, int] | None:
    """The (deadline, id) a cursor holds, or None when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        due, _, incident_id = text.partition("|")
        return (datetime.fromisoformat(due) if due else None), int(incident_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def queues_of(user: Principal) -> list[int]:
    """The queues whose incidents the user works: an agent's memberships, an admin's all."""
    query = sa.select(Queue.id).where(Queue.active.is_(True))
    if user.role != Role.ADMIN:
        query = query.join(queue_members, queue_members.c.queue_id == Queue.id).where(
            queue_members.c.user_id == user.id
        )
    return list(db.session.execute(query.order_by(Queue.id)).scalars())


def _conditions(user: Principal, filters: Filters, now: datetime) -> list[Any]:
    where: list[Any] = []
    if filters.type:
        where.append(Incident.type == filters.type)
    if filters.school:
        code = sa.select(School.id).where(School.code == filters.school).scalar_subquery()
        where.append(Incident.school_id == code)
    if filters.assignee == "nobody":
        where.append(Incident.assignee_id.is_(None))
    elif filters.assignee:
        email = user.email if filters.assignee == "me" else filters.assignee.lower()
        where.append(
            Incident.assignee_id == sa.select(User.id).where(User.email == email).scalar_subquery()
        )
    if filters.breached is not None:
        late = sa.or_(
            Incident.resolution_breached_at.is_not(None),
            Incident.response_breached_at.is_not(None),
            sa.and_(Incident.resolution_due_at < now, Incident.status.in_(OPEN_STATUSES)),
        )
        where.append(late if filters.breached else sa.not_(late))
    return where


def _seek(queue_id: int, status: str, where: list[Any], after: Any, limit: int) -> Any:
    """One index range seek: a queue's incidents in one status after the cursor."""
    return (
        sa.select(Incident.id, Incident.resolution_due_at)
        .where(Incident.queue_id == queue_id, Incident.status == status, after, *where)
        .order_by(Incident.resolution_due_at, Incident.id)
        .limit(limit)
        .subquery()
    )


def _ids_after(
    pairs: list[tuple[int, str]], where: list[Any], cursor: tuple[datetime | None, int] | None,
    limit: int,
) -> list[tuple[int, datetime | None]]:  # fmt: skip
    due, last_id = cursor if cursor else (None, None)
    found: list[tuple[int, datetime | None]] = []
    if cursor is None or due is not None:
        after: Any = Incident.resolution_due_at.is_not(None)
        if due is not None:
            after = sa.and_(
                after, sa.tuple_(Incident.resolution_due_at, Incident.id) > (due, last_id)
            )
        seeks = [_seek(q, s, where, after, limit) for q, s in pairs]
        merged = sa.union_all(*(sa.select(s.c.id, s.c.resolution_due_at) for s in seeks)).subquery()
        found = [
            (row.id, row.resolution_due_at)
            for row in db.session.execute(
                sa.select(merged).order_by(merged.c.resolution_due_at, merged.c.id).limit(limit)
            )
        ]
    if len(found) < limit:  # then those with no deadline, by id
        after = Incident.resolution_due_at.is_(None)
        if cursor is not None and due is None:
            after = sa.and_(after, Incident.id > last_id)
        seeks = [_seek(q, s, where, after, limit - len(found)) for q, s in pairs]
        merged = sa.union_all(*(sa.select(s.c.id, s.c.resolution_due_at) for s in seeks)).subquery()
        found += [
            (row.id, None)
            for row in db.session.execute(
                sa.select(merged).order_by(merged.c.id).limit(limit - len(found))
            )
        ]
    return found


def worklist(
    user: Principal, filters: Filters, cursor: str | None = None, *, page_size: int = PAGE_SIZE
) -> Page:
    """One page of the user's queue view, soonest resolution deadline first."""
    now = utcnow()
    queue_ids = queues_of(user)
    if filters.queue:
        wanted = db.session.execute(
            sa.select(Queue.id).where(Queue.slug == filters.queue)
        ).scalar_one_or_none()
        queue_ids = [q for q in queue_ids if q == wanted]
    statuses = [s for s in filters.statuses if s in {st.value for st in Status}]
    if not queue_ids or not statuses:
        return Page()
    position = decode_cursor(cursor) if cursor else None
    pairs = [(q, s) for q in queue_ids for s in statuses]
    ids = _ids_after(pairs, _conditions(user, filters, now), position, page_size + 1)
    more = len(ids) > page_size
    ids = ids[:page_size]
    by_id = {
        incident.id: incident
        for incident in db.session.execute(
            sa.select(Incident).where(Incident.id.in_([i for i, _ in ids]))
        ).scalars()
    }
    calendars = settings().calendars
    rows = []
    for incident_id, _ in ids:
        incident = by_id[incident_id]
        rows.append(_row(incident, calendars.get(incident.school_id), now))
    next_cursor = None
    if more:
        last_id, last_due = ids[-1]
        next_cursor = encode_cursor(last_due, last_id)
    return Page(rows, next_cursor)


def _row(incident: Incident, calendar: Any, now: datetime) -> Row:
    due = incident.resolution_due_at
    is_open = incident.status in OPEN_STATUSES
    breached = bool(
        incident.resolution_breached_at or incident.response_breached_at or (due and due < now)
    )
    left = None
    if due is not None and is_open and calendar is not None:
        left = calendar.between(now, due) if due > now else -calendar.between(due, now)
    return Row(incident, left, breached and is_open)
