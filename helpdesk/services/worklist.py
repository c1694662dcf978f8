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
import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ..domain.lifecycle import OPEN_STATUSES, Status
from ..extensions import db
from ..models import Incident, Queue, Role, School, User, queue_members, utcnow
from ..models.incidents import ABOUT_FIELDS
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
    sort: str = "deadline"  # one of SORTS
    descending: bool = False


@dataclass
class Row:
    incident: Incident
    time_left: timedelta | None  # business time to the next deadline
    breached: bool
    deadline: str | None = None  # which one comes next: "response" or "resolution"
    paused: bool = False  # awaiting a reply: the clock is stopped


@dataclass
class Page:
    rows: list[Row] = field(default_factory=list)
    next_cursor: str | None = None
    queue_ids: list[int] = field(default_factory=list)  # all the viewer works (for filters)


def encode_cursor(due: datetime | None, incident_id: int) -> str:
    text = f"{due.isoformat() if due else ''}|{incident_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime | None, int] | None:
    """The (deadline, id) a cursor holds, or None when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        due, _, incident_id = text.partition("|")
        last = int(incident_id)
        if not 0 < last < 2**63:
            return None  # no incident has that id
        return (datetime.fromisoformat(due) if due else None), last
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError):
        return None


def queues_of(user: Principal) -> list[int]:
    """The queues whose incidents the user works: an agent's memberships, an admin's all."""
    query = sa.select(Queue.id).where(Queue.active.is_(True))
    if user.role != Role.ADMIN:
        query = query.join(queue_members, queue_members.c.queue_id == Queue.id).where(
            queue_members.c.user_id == user.id
        )
    return list(db.session.execute(query.order_by(Queue.id)).scalars())


def _late() -> Any:
    return sa.or_(
        Incident.resolution_breached_at.is_not(None),
        Incident.response_breached_at.is_not(None),
        sa.and_(Incident.resolution_due_at < sa.bindparam("f_now", type_=_DUE_TYPE),
                Incident.status.in_(OPEN_STATUSES)),
    )  # fmt: skip


_DUE_TYPE = Incident.__table__.c.resolution_due_at.type
# Each filter is a condition with bound parameters, so a page's statement depends only on
# which filters are set, never on their values: it is built and compiled once.
_FILTERS: dict[str, Any] = {
    "type": lambda: Incident.type == sa.bindparam("f_type"),
    "school": lambda: (
        Incident.school_id
        == sa.select(School.id).where(School.code == sa.bindparam("f_school")).scalar_subquery()
    ),
    "unassigned": lambda: Incident.assignee_id.is_(None),
    "assignee": lambda: (
        Incident.assignee_id
        == sa.select(User.id).where(User.email == sa.bindparam("f_assignee")).scalar_subquery()
    ),
    "late": _late,
    "on_time": lambda: sa.not_(_late()),
}


def _filter_values(
    user: Principal, filters: Filters, now: datetime
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Which filters are set (the statement's shape) and their values (its parameters)."""
    shape: list[str] = []
    values: dict[str, Any] = {}
    if filters.type:
        shape.append("type")
        values["f_type"] = filters.type
    if filters.school:
        shape.append("school")
        values["f_school"] = filters.school
    if filters.assignee == "nobody":
        shape.append("unassigned")
    elif filters.assignee:
        shape.append("assignee")
        values["f_assignee"] = user.email if filters.assignee == "me" else filters.assignee.lower()
    if filters.breached is not None:
        shape.append("late" if filters.breached else "on_time")
        values["f_now"] = now
    return tuple(shape), values


@functools.lru_cache(maxsize=256)
def _page_statement(pairs: int, shape: tuple[str, ...], part: str) -> sa.Select[Any]:
    """One page's ids: a range seek per (queue, status) pair after the cursor, merged.

    ``part`` is ``dated`` (deadline set, from the start), ``dated_after`` (after a cursor
    of (deadline, id)), ``undated`` or ``undated_after`` (no deadline, by id).
    """
    due = Incident.resolution_due_at
    after: Any = due.is_(None) if part.startswith("undated") else due.is_not(None)
    if part == "dated_after":
        cursor = sa.tuple_(sa.bindparam("c_due", type_=_DUE_TYPE), sa.bindparam("c_id"))
        after = sa.and_(after, sa.tuple_(due, Incident.id) > cursor)
    elif part == "undated_after":
        after = sa.and_(after, Incident.id > sa.bindparam("c_id"))
    where = [_FILTERS[name]() for name in shape]
    limit = sa.bindparam("n", type_=sa.Integer)
    seeks = [
        sa.select(Incident.id, due)
        .where(Incident.queue_id == sa.bindparam(f"q{i}"),
               Incident.status == sa.bindparam(f"s{i}"), after, *where)
        .order_by(due, Incident.id)
        .limit(limit)
        .subquery()
        for i in range(pairs)
    ]  # fmt: skip
    merged = sa.union_all(*(sa.select(s.c.id, s.c.resolution_due_at) for s in seeks)).subquery()
    order = (
        (merged.c.id,) if part.startswith("undated") else (merged.c.resolution_due_at, merged.c.id)
    )
    return sa.select(merged.c.id, merged.c.resolution_due_at).order_by(*order).limit(limit)


def _ids_after(
    pairs: list[tuple[int, str]], shape: tuple[str, ...], values: dict[str, Any],
    cursor: tuple[datetime | None, int] | None, limit: int,
) -> list[tuple[int, datetime | None]]:  # fmt: skip
    due, last_id = cursor if cursor else (None, None)
    params = dict(values)
    for i, (queue_id, status) in enumerate(pairs):
        params[f"q{i}"], params[f"s{i}"] = queue_id, status
    found: list[tuple[int, datetime | None]] = []
    if cursor is None or due is not None:
        part = "dated" if cursor is None else "dated_after"
        statement = _page_statement(len(pairs), shape, part)
        rows = db.session.execute(statement, params | {"n": limit, "c_due": due, "c_id": last_id})
        found = [(row.id, row.resolution_due_at) for row in rows]
    if len(found) < limit:  # then those with no deadline, by id
        part = "undated_after" if cursor is not None and due is None else "undated"
        statement = _page_statement(len(pairs), shape, part)
        rows = db.session.execute(statement, params | {"n": limit - len(found), "c_id": last_id})
        found += [(row.id, None) for row in rows]
    return found


# The other orders a desk sorts by (the deadline order is the keyset seek above): plain
# ORDER BY ... LIMIT/OFFSET over the viewer's open incidents, id breaking ties.
_DETAILS = Incident.__table__.c.details
SORTS: dict[str, Any] = {
    "ref": Incident.id,
    # Who it is about, as typed (Incident.about).
    "about": sa.func.coalesce(*(_DETAILS[name].as_string() for name in ABOUT_FIELDS)),
    "age": Incident.created_at,
    "type": Incident.type,
    "school": School.name,
    "assignee": User.email,
    "status": Incident.status,
}


_MAX_OFFSET = 10**9  # far past any real list; a bigger one is no cursor of ours


def _offset(cursor: str | None) -> int:
    """How far into a column-sorted list a cursor ("o50") is; 0 for anything else."""
    digits = cursor[1:] if cursor and cursor[:1] == "o" else ""
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 10:
        return 0
    return min(int(digits), _MAX_OFFSET)


def _sorted_ids(
    queue_ids: list[int], statuses: list[str], shape: tuple[str, ...], values: dict[str, Any],
    filters: Filters, offset: int, limit: int,
) -> list[int]:  # fmt: skip
    key = SORTS[filters.sort]
    order = key.desc() if filters.descending else key.asc()
    tiebreak = Incident.id.desc() if filters.descending else Incident.id.asc()
    query = (
        sa.select(Incident.id)
        .join(School, School.id == Incident.school_id)
        .outerjoin(User, User.id == Incident.assignee_id)
        .where(Incident.queue_id.in_(queue_ids), Incident.status.in_(statuses),
               *(_FILTERS[name]() for name in shape))
        .order_by(order.nulls_last(), tiebreak)
        .offset(offset)
        .limit(limit)
    )  # fmt: skip
    return list(db.session.execute(query, values).scalars())


def worklist(
    user: Principal, filters: Filters, cursor: str | None = None, *, page_size: int = PAGE_SIZE
) -> Page:
    """One page of the user's queue view, soonest deadline first, or by ``filters.sort``."""
    now = utcnow()
    mine = queue_ids = queues_of(user)
    if filters.queue:
        wanted = db.session.execute(
            sa.select(Queue.id).where(Queue.slug == filters.queue)
        ).scalar_one_or_none()
        queue_ids = [q for q in queue_ids if q == wanted]
    statuses = [s for s in filters.statuses if s in {st.value for st in Status}]
    if not queue_ids or not statuses:
        return Page(queue_ids=mine)
    shape, values = _filter_values(user, filters, now)
    offset = _offset(cursor)
    if filters.sort in SORTS:
        found = _sorted_ids(queue_ids, statuses, shape, values, filters, offset, page_size + 1)
        ids: list[tuple[int, datetime | None]] = [(i, None) for i in found]
    else:
        position = decode_cursor(cursor) if cursor else None
        pairs = [(q, s) for q in queue_ids for s in statuses]
        ids = _ids_after(pairs, shape, values, position, page_size + 1)
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
    if more and filters.sort in SORTS:
        next_cursor = f"o{offset + page_size}"
    elif more:
        last_id, last_due = ids[-1]
        next_cursor = encode_cursor(last_due, last_id)
    return Page(rows, next_cursor, mine)


def _row(incident: Incident, calendar: Any, now: datetime) -> Row:
    """The row's SLA: the next deadline (the response one until ITS has answered), the
    business time left to it, and whether the clock is paused."""
    is_open = incident.status in OPEN_STATUSES
    responding = incident.first_response_at is None and incident.response_due_at is not None
    deadline = "response" if responding else "resolution"
    due = incident.response_due_at if responding else incident.resolution_due_at
    paused = incident.sla_paused_at is not None
    late = not paused and any(d and d < now for d in (due, incident.resolution_due_at))
    breached = bool(incident.resolution_breached_at or incident.response_breached_at or late)
    left = None
    if due is not None and is_open and calendar is not None:
        at = incident.sla_paused_at or now  # a paused clock shows what was left when it stopped
        left = calendar.between(at, due) if due > at else -calendar.between(due, at)
    return Row(incident, left, breached and is_open, deadline if due else None, paused)
