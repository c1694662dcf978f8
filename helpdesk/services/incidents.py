"""Reading incidents: one as a user sees it, a page of them, a search, a timeline."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from marshmallow import ValidationError

from ..domain.lifecycle import (
    FULFILLABLE_TYPES,
    Action,
    allowed_actions,
)
from ..domain.roles import SELF_SERVICE
from ..errors import InvalidInput, NotFound
from ..extensions import db
from ..models import (
    Incident,
    IncidentEvent,
    IncidentLink,
    Queue,
    RecoveryAttempt,
    Role,
    School,
    User,
    format_ref,
    parse_ref,
    queue_members,
)
from ..models.incidents import (
    REF_PREFIX,
    SEARCHED_DETAILS,
    search_text_sql,
)
from . import fulfilment
from .users import Principal


@dataclass
class IncidentView:
    """An incident as one user sees it: the record plus what that user may do next."""

    incident: Incident
    allowed_actions: list[str]
    fulfilment: Any = None
    # What the viewer already knows, so that showing it loads nothing (a filing's school
    # and filer are the filer's own).
    known: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        known = self.__dict__.get("known") or {}
        if name in known:
            return known[name]
        return getattr(self.incident, name)


def actions_for(user: Principal, incident: Incident) -> list[str]:
    """What the user may do next: the lifecycle's answer, less ``fulfil`` where the
    incident's queue does not fulfil its type."""
    allowed = allowed_actions(incident.status, user.role, incident.type)
    if Action.FULFIL.value in allowed and not queue_fulfils(incident):
        allowed.remove(Action.FULFIL.value)
    return allowed


def queue_fulfils(incident: Incident) -> bool:
    return incident.queue is not None and incident.type in (incident.queue.fulfils or [])


def fulfilling_queues(kind: str) -> list[str]:
    rows = db.session.execute(
        sa.select(Queue.slug, Queue.fulfils).where(Queue.active.is_(True)).order_by(Queue.slug)
    )
    return [slug for slug, kinds in rows if kind in (kinds or [])]


def view_for(user: Principal, incident: Incident) -> IncidentView:
    return IncidentView(
        incident,
        actions_for(user, incident),
        fulfilment.summary(incident.id) if incident.type in FULFILLABLE_TYPES else None,
        {"links": links_of(user, incident), "recovery_attempts": recovery_attempts(incident)},
    )


@dataclass(frozen=True)
class Tried:
    """A self-service attempt as staff see it on an incident: when, what, how it ended."""

    at: Any
    kind: str  # password, username, or handover
    outcome: str


def recovery_attempts(incident: Incident, limit: int = 20) -> list[Tried] | None:
    """For an incident filed from the self-service pages, the attempts that pointed at the
    same parent up to its filing, newest first (times and outcomes, never what was typed);
    None for any other incident."""
    if incident.filer.role != SELF_SERVICE:
        return None
    if incident.guardian_id is None:
        return []
    rows = db.session.execute(
        sa.select(RecoveryAttempt.at, RecoveryAttempt.kind, RecoveryAttempt.outcome)
        .where(RecoveryAttempt.guardian_id == incident.guardian_id,
               RecoveryAttempt.at <= incident.created_at)
        .order_by(RecoveryAttempt.at.desc(), RecoveryAttempt.id.desc()).limit(limit)
    ).all()  # fmt: skip
    return [Tried(*row) for row in rows]


RELATED = "related"


@dataclass(frozen=True)
class Link:
    ref: str
    kind: str  # related, merged_into (this one was merged into ref), merged_from


def links_of(user: Principal, incident: Incident) -> list[Link]:
    """The incident's links the user may follow (to incidents they can see)."""
    rows = db.session.execute(
        sa.select(IncidentLink.incident_id, IncidentLink.other_id, IncidentLink.kind)
        .where(sa.or_(IncidentLink.incident_id == incident.id,
                      IncidentLink.other_id == incident.id))
        .order_by(IncidentLink.id)
    ).all()  # fmt: skip
    others = {row.other_id if row.incident_id == incident.id else row.incident_id for row in rows}
    seen = set(db.session.execute(
        sa.select(Incident.id).where(Incident.id.in_(others), visible(user))
    ).scalars()) if others else set()  # fmt: skip
    found = []
    for row in rows:
        mine = row.incident_id == incident.id
        other = row.other_id if mine else row.incident_id
        if other not in seen:
            continue
        kind = row.kind if row.kind == RELATED else ("merged_into" if mine else "merged_from")
        found.append(Link(format_ref(other), kind))
    return found


def unknown_queue(slug: str) -> InvalidInput:
    return InvalidInput(
        f"Queue {slug!r} does not exist. An admin creates it (or imports the school's "
        "roster, which creates its office queue).",
        code="unknown_queue",
    )


def queue_by_slug(slug: str) -> Queue:
    queue = db.session.execute(
        sa.select(Queue).where(Queue.slug == slug, Queue.active.is_(True))
    ).scalar_one_or_none()
    if queue is None:
        raise unknown_queue(slug)
    return queue


def visible(user: Principal) -> sa.ColumnElement[bool]:
    """Which incidents a user may see: an employee their school's, an agent those in the
    queues they are a member of, an admin all."""
    if user.role == Role.EMPLOYEE:
        return Incident.school_id == (user.school_id if user.school_id is not None else -1)
    if user.role == Role.AGENT:
        mine = sa.select(queue_members.c.queue_id).where(queue_members.c.user_id == user.id)
        return Incident.queue_id.in_(mine)
    return sa.true()


def get_incident(user: Principal, ref: str, *, for_update: bool = False) -> Incident:
    """The incident, or NotFound when it does not exist or the user may not see it."""
    incident_id = parse_ref(ref)
    query = sa.select(Incident).where(Incident.id == incident_id, visible(user))
    if for_update:
        query = query.with_for_update(of=Incident)
    incident = db.session.execute(query).scalar_one_or_none() if incident_id else None
    if incident is None:
        raise NotFound(f"No incident {ref} that you can see.")
    return incident


def incident_events(user: Principal, ref: str) -> list[IncidentEvent]:
    incident = get_incident(user, ref)
    return list(
        db.session.execute(
            sa.select(IncidentEvent)
            .where(IncidentEvent.incident_id == incident.id)
            .order_by(IncidentEvent.id)
        ).scalars()
    )


def _encode_cursor(incident_id: int) -> str:
    return base64.urlsafe_b64encode(str(incident_id).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        last = int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        last = 0
    if not 0 < last < 2**63:  # not one we gave out: no incident has that id
        raise ValidationError({"cursor": ["Use the next_cursor value from the previous page."]})
    return last


def list_incidents(user: Principal, query: dict[str, Any]) -> tuple[list[Incident], str | None]:
    """A page of visible incidents, newest first, with the cursor of the next page."""
    stmt = sa.select(Incident).where(visible(user))
    if "status" in query:
        stmt = stmt.where(Incident.status == query["status"])
    if "type" in query:
        stmt = stmt.where(Incident.type == query["type"])
    if "queue" in query:
        stmt = stmt.join(Queue, Incident.queue_id == Queue.id).where(Queue.slug == query["queue"])
    if "school" in query:
        stmt = stmt.join(School, Incident.school_id == School.id).where(
            School.code == query["school"]
        )
    if "assignee" in query:
        email = user.email if query["assignee"] == "me" else query["assignee"]
        assignee = sa.select(User.id).where(User.email == email).scalar_subquery()
        stmt = stmt.where(Incident.assignee_id == assignee)
    if "breached" in query:
        past_due = sa.or_(
            Incident.resolution_breached_at.is_not(None),
            Incident.response_breached_at.is_not(None),
        )
        stmt = stmt.where(past_due if query["breached"] else sa.not_(past_due))
    if query.get("q"):
        stmt = stmt.where(text_matches(query["q"]))
    if "cursor" in query:
        stmt = stmt.where(Incident.id < _decode_cursor(query["cursor"]))
    limit = query["limit"]
    rows = list(db.session.execute(stmt.order_by(Incident.id.desc()).limit(limit + 1)).scalars())
    next_cursor = _encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


_SEARCH_TEXT: sa.ColumnElement[str] = sa.literal_column(search_text_sql("incidents"))


def _search_text_portable() -> sa.ColumnElement[str]:
    """The same text for SQLite, whose JSON functions SQLAlchemy spells for it."""
    places = [Incident.summary, Incident.notes,
              *(Incident.details[key].as_string() for key in SEARCHED_DETAILS)]  # fmt: skip
    text: sa.ColumnElement[str] = sa.func.coalesce(places[0], "")
    for place in places[1:]:
        text = text + " " + sa.func.coalesce(place, "")
    return text


def text_matches(text: str) -> sa.ColumnElement[bool]:
    """Incidents whose reference is ``text``, or whose summary, notes or typed names and
    numbers contain it, in any case."""
    text = text.strip()
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    postgresql = db.session.get_bind().dialect.name == "postgresql"
    # On PostgreSQL, spelled as the trigram index is built (search_text_sql).
    searched = _SEARCH_TEXT if postgresql else _search_text_portable()
    found: sa.ColumnElement[bool] = searched.ilike(pattern, escape="\\")
    incident_id = parse_ref(text) or parse_ref(REF_PREFIX + text)
    return sa.or_(Incident.id == incident_id, found) if incident_id else found
