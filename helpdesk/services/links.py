"""Incidents about the same request: linked, or one merged into the other.

Filing refuses a second incident of a type for a person who has one unfinished
(``filing.open_duplicate``); one filed anyway, with a reason, is linked to it. Agents
link two incidents by hand, and merge a duplicate into the one that carries on: the
merged one closes, pointing at the other, and both timelines say so.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from ..domain.lifecycle import OPEN_STATUSES, Status
from ..errors import Conflict, Forbidden
from ..extensions import db
from ..models import Incident, IncidentLink, Role, format_ref, parse_ref, utcnow
from . import audit
from .audit import Event
from .incidents import RELATED, get_incident
from .uow import unit_of_work
from .users import Principal

MERGED = "merged"


def filed_despite(
    incident: Incident, open_id: int, open_ref: str, filer: Principal, reason: str | None,
    now: datetime,
) -> list[Event]:  # fmt: skip
    """Link a filing made although ``open_ref`` was unfinished; return what both
    timelines say of it, for the filing to record with its own events."""
    _insert_link(incident.id, open_id, RELATED, filer.id, now)
    return [
        Event(incident.id, "filed_despite_open", incident.status, incident.status,
              f"filed although {open_ref} is open: {reason}", actor_id=filer.id, at=now,
              data={"open": open_ref, "reason": reason}),
        Event(open_id, "linked", None, None, f"{incident.ref} was filed for the same person "
              f"by {filer.email}: {reason}", actor_id=filer.id, at=now,
              data={"other": incident.ref}),
    ]  # fmt: skip


def link(user: Principal, ref: str, other_ref: str) -> Incident:
    """Link two incidents an agent sees as one request (each timeline says so)."""
    _staff_only(user, "link")
    with unit_of_work():
        incident, other = _pair(user, ref, other_ref)
        if _existing(incident.id, other.id) is not None:
            raise Conflict(f"{incident.ref} and {other.ref} are already linked.",
                           code="already_linked")  # fmt: skip
        now = utcnow()
        _insert_link(incident.id, other.id, RELATED, user.id, now)
        audit.record(*(
            Event(one.id, "linked", None, None, f"linked to {two.ref} by {user.email}",
                  actor_id=user.id, at=now, data={"other": two.ref})
            for one, two in ((incident, other), (other, incident))
        ))  # fmt: skip
    return incident


def merge(user: Principal, ref: str, into_ref: str, message: str | None = None) -> Incident:
    """Close ``ref`` as a duplicate of ``into_ref``, which carries on."""
    _staff_only(user, "merge")
    with unit_of_work():
        incident, into = _pair(user, ref, into_ref)
        if incident.status not in OPEN_STATUSES:
            raise Conflict(f"{incident.ref} is {incident.status}: only an open incident is "
                           "merged.", code="illegal_transition")  # fmt: skip
        if incident.status == Status.AWAITING_FULFILMENT:
            raise Conflict(f"{incident.ref} is being fulfilled: let its job finish (or resolve "
                           "it), then merge.", code="fulfilment_in_flight")  # fmt: skip
        if into.merged_into_id is not None:
            raise Conflict(f"{into.ref} was itself merged into "
                           f"{format_ref(into.merged_into_id)}: merge into that one.",
                           code="merged")  # fmt: skip
        now = utcnow()
        before = incident.status
        incident.status, incident.merged_into_id, incident.updated_at = (
            Status.CLOSED.value, into.id, now)  # fmt: skip
        found = _existing(incident.id, other_id=into.id)
        if found is not None:
            found.incident_id, found.other_id, found.kind = incident.id, into.id, MERGED
        else:
            _insert_link(incident.id, into.id, MERGED, user.id, now)
        words = f": {message}" if message else ""
        audit.record(
            Event(incident.id, "merged", before, Status.CLOSED.value,
                  f"merged into {into.ref} by {user.email}{words}", actor_id=user.id, at=now,
                  data={"into": into.ref}),
            Event(into.id, "merged_in", into.status, into.status,
                  f"{incident.ref} was merged into this by {user.email}{words}",
                  actor_id=user.id, at=now, data={"from": incident.ref}),
        )  # fmt: skip
    return incident


def _staff_only(user: Principal, what: str) -> None:
    if user.role not in (Role.AGENT, Role.ADMIN):
        raise Forbidden(f"Only ITS agents and admins {what} incidents.")


def _pair(user: Principal, ref: str, other_ref: str) -> tuple[Incident, Incident]:
    if parse_ref(ref) is not None and parse_ref(ref) == parse_ref(other_ref):
        raise Conflict(f"{ref} cannot be linked to itself.", code="same_incident")
    first, second = sorted((ref, other_ref), key=lambda r: parse_ref(r) or 0)
    locked = {r: get_incident(user, r, for_update=True) for r in (first, second)}  # in id order
    return locked[ref], locked[other_ref]


def _existing(incident_id: int, other_id: int) -> IncidentLink | None:
    return db.session.execute(
        sa.select(IncidentLink).where(sa.or_(
            sa.and_(IncidentLink.incident_id == incident_id, IncidentLink.other_id == other_id),
            sa.and_(IncidentLink.incident_id == other_id, IncidentLink.other_id == incident_id),
        ))
    ).scalar_one_or_none()  # fmt: skip


_INSERT_LINK = sa.insert(IncidentLink.__table__)


def _insert_link(incident_id: int, other_id: int, kind: str, by: int | None, now: datetime) -> None:
    db.session.execute(_INSERT_LINK, {
        "incident_id": incident_id, "other_id": other_id, "kind": kind, "created_by_id": by,
        "created_at": now,
    })  # fmt: skip
