"""Filing an incident: validate → limit → verify → route → start the SLA clock → insert
→ follow-ups, in one unit of work, the same on every database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app
from marshmallow import ValidationError

from ..domain.lifecycle import FULFILLABLE_TYPES, Status, allowed_actions
from ..domain.rules import Outcome
from ..errors import Conflict, Forbidden
from ..extensions import db
from ..models import (
    ClassReset,
    Guardian,
    Incident,
    PortalAccount,
    Queue,
    Role,
    format_ref,
    utcnow,
)
from ..models.incidents import UNFINISHED_SQL
from ..schemas.incidents import SECRET_FIELDS, load_incident
from . import assignment, audit, fulfilment, links, notifications, routing, sla, verification_limits
from .audit import Event
from .incidents import RELATED, IncidentView, Link, unknown_queue
from .notifications import PARENT_TYPES
from .uow import unit_of_work
from .users import Principal
from .verification import Verification, verify
from .verification_limits import IDENTITY_QUEUE, Attempt, Lock, target_of

AUTO_FULFIL = "approved by the routing rules (auto_fulfil): no person needed"
RULES_SAID = "The routing rules asked for you to be told."


def file_incident(filer: Principal, payload: Any) -> IncidentView:
    """Validate, check the record limits, verify, place in its first queue and audit, in
    one commit; then hand what it promised (emails, a fulfilment) to the workers."""
    _may_file(filer)
    filing = _prepare(filer, payload)
    _refuse_duplicates([filing])
    with unit_of_work():
        return write(filer, filing)


def file_many(
    filer: Principal, payloads: list[Any], class_id: int
) -> tuple[list[IncidentView], list[Duplicate]]:
    """A class reset's incidents, in one commit or none: each is checked, verified and
    routed as if filed alone, and nothing is written unless all can be. A student with a
    reset already open is left out and pointed at it (a 409 when that is every one).
    What the rules approve at once is fulfilled together: one message of slips to the
    filer. Returns what was filed and what was already open."""
    _may_file(filer)
    filings = [_prepare(filer, payload) for payload in payloads]
    already = [f.repeats for f in filings if f.repeats]
    fresh = [f for f in filings if not f.repeats]
    if not fresh:
        _refuse_duplicates(filings)
    with unit_of_work():
        together = None
        if any(filing.fulfil for filing in fresh):
            together = ClassReset(class_id=class_id, filer_id=filer.id, created_at=utcnow())
            db.session.add(together)
            db.session.flush()
        return [write(filer, filing, together and together.id) for filing in fresh], already


def _may_file(filer: Principal) -> None:
    if filer.role != Role.EMPLOYEE or filer.school_id is None or filer.school_code is None:
        raise Forbidden(
            "Only school employees file incidents, for their own school. Ask an admin for an "
            "employee account linked to your staff record.",
        )


@dataclass(frozen=True)
class Filing:
    """An incident checked, verified and routed, ready to be written."""

    kind: str
    data: dict[str, Any]
    details: dict[str, Any]
    result: Verification
    decided: Outcome
    placement: _Placement
    version: int
    lock: Lock | None
    now: datetime
    fulfil: bool
    open_one: Duplicate | None  # an unfinished incident of the type for the same person
    force_reason: str | None  # filed anyway, and why
    approval: str = AUTO_FULFIL  # why it is fulfilled at once, for the timeline

    @property
    def repeats(self) -> Duplicate | None:
        """The open incident this filing would repeat: not filed unless forced."""
        return None if self.force_reason else self.open_one


@dataclass(frozen=True)
class Duplicate:
    id: int
    ref: str
    about: str  # "student" or "parent"
    name: str  # who, as the records name them


def _prepare(filer: Principal, payload: Any) -> Filing:
    """Validate, check the record limits, verify and route: everything before a write."""
    assert filer.school_id is not None and filer.school_code is not None  # _may_file
    kind, data = load_incident(payload)
    force_reason = data.pop("force_reason", None) if data.pop("force") else None
    if data.get("school") and data["school"] != filer.school_code:
        message = f"You file for your own school ({filer.school_code}) only; leave this out."
        raise ValidationError({"school": [message]})
    attempt = Attempt.by_employee(filer.id, filer.school_id, target_of(kind, filer.school_id, data))
    tried = verification_limits.check_allowed(attempt)  # before any record is read
    per_field = tried < int(current_app.config["VERIFY_DETAIL_TRIES"])
    result = verify(kind, filer.school_id, data, per_field=per_field)
    lock = None if result.passed else verification_limits.count(attempt)
    details = {k: v for k, v in data.items() if k not in SECRET_FIELDS | {"summary", "notes"}}
    if "child_birth_date" in details:
        details["child_birth_date"] = details["child_birth_date"].isoformat()
    return decide(filer, kind, data, details, result, lock=lock, force_reason=force_reason)


def decide(
    filer: Principal, kind: str, data: dict[str, Any], details: dict[str, Any],
    result: Verification, *, lock: Lock | None = None, force_reason: str | None = None,
    approved: str | None = None,
) -> Filing:  # fmt: skip
    """Route a checked filing and look for the open incident it would repeat: everything
    after the record check and before a write. The self-service pages file through here
    too, with a check of their own; ``approved`` (why) fulfils a passed one at once
    whatever the rules say, where they route it."""
    assert filer.school_id is not None and filer.school_code is not None
    now = utcnow()
    version, decided = routing.route(routing.incident_facts(
        kind=kind, school_code=filer.school_code, nation=filer.school_nation or "ENG",
        filer_role=filer.role, verification=result.outcome, field_results=result.fields,
        reasons=result.reasons, details=details,
        business_hours=routing.received_in_business_hours(filer.school_id, now),
    ))  # fmt: skip
    open_one = open_duplicate(kind, filer.school_id, result) if result.passed else None
    fulfil = ((decided.auto_fulfil or approved is not None) and result.passed
              and kind in FULFILLABLE_TYPES
              and open_one is None)  # a forced second one waits for a person  # fmt: skip
    approval = AUTO_FULFIL if decided.auto_fulfil or approved is None else approved
    return Filing(kind, data, details, result, decided, _placement(decided), version, lock,
                  now, fulfil, open_one, force_reason, approval)  # fmt: skip


# Every filing asks it, so it is built once: the earliest unfinished, verified incident
# of a kind at a school for one account (or guardian), read from the partial index on
# that column and id (Core, not the ORM: building the statement cost more than running it).
_I = Incident.__table__.c
_OPEN_FOR = {
    column: sa.select(_I.id, _I.details)
    .where(_I[column] == sa.bindparam("who"), _I.type == sa.bindparam("kind"),
           _I.school_id == sa.bindparam("school_id"), _I.verification == "passed",
           sa.text(UNFINISHED_SQL))
    .order_by(_I.id).limit(1)
    for column in ("portal_account_id", "guardian_id")
}  # fmt: skip
# Two filings for one person at the same moment take turns: each holds the person's
# record (FOR NO KEY UPDATE, which the incident's own foreign key check does not wait
# for) until it commits, so the second looks for an open incident only after the first
# is written. SQLite's transactions already take turns (BEGIN IMMEDIATE).
_HOLD = {
    "portal_account_id": sa.select(PortalAccount.__table__.c.id)
    .where(PortalAccount.__table__.c.id == sa.bindparam("who"))
    .with_for_update(key_share=True),
    "guardian_id": sa.select(Guardian.__table__.c.id)
    .where(Guardian.__table__.c.id == sa.bindparam("who"))
    .with_for_update(key_share=True),
}


def open_duplicate(kind: str, school_id: int, result: Verification) -> Duplicate | None:
    """The earliest unfinished, verified incident of ``kind`` at the school for the
    account (or guardian) the records matched. Only verified ones count on both sides: a
    mistyped filing is not the same request, and never points at a real one."""
    if result.account_id is not None:
        column, who = "portal_account_id", result.account_id
    elif result.guardian_id is not None:
        column, who = "guardian_id", result.guardian_id
    else:
        return None
    db.session.execute(_HOLD[column], {"who": who})
    found = db.session.execute(
        _OPEN_FOR[column], {"who": who, "kind": kind, "school_id": school_id}
    ).one_or_none()
    if found is None:
        return None
    about = "parent" if kind in PARENT_TYPES else "student"
    details = found.details or {}
    name = details.get("student_name") or details.get("parent_name") or ""
    return Duplicate(found.id, format_ref(found.id), about, str(name))


def _refuse_duplicates(filings: list[Filing]) -> None:
    """409 when a filing (not forced) repeats an unfinished incident: the employee is
    pointed at it instead of starting a second reset."""
    repeated = [f.repeats for f in filings if f.repeats]
    if not repeated:
        return
    first = repeated[0]
    if len(filings) == 1:
        message = (f"{first.ref} is already open for this {first.about}: add to it, or file "
                   "again with force and a reason if a second one is really needed.")  # fmt: skip
    else:
        message = ("Already open: " + ", ".join(f"{d.ref} for {d.name}" for d in repeated)
                   + ". Nothing new was filed: their open incidents carry on.")  # fmt: skip
    raise Conflict(message, code="already_open", open=first.ref,
                   open_refs=[d.ref for d in repeated])  # fmt: skip


def write(filer: Principal, f: Filing, class_reset_id: int | None = None) -> IncidentView:
    """Insert, audit and follow up a prepared filing, in the caller's unit of work."""
    incident = _insert(filer, f.kind, f.data, f.details, f.result, f.decided, f.placement,
                       f.version, f.now, fulfil=f.fulfil)  # fmt: skip
    events = _timeline(incident, filer, f.decided, f.result, f.placement, f.version, f.lock,
                       f.now, fulfil=f.fulfil, approval=f.approval)  # fmt: skip
    if f.open_one is not None:
        events += links.filed_despite(incident, f.open_one.id, f.open_one.ref, filer,
                                      f.force_reason, f.now)  # fmt: skip
    audit.record_all(events)  # one INSERT for both timelines
    queue = sla.settings().by_slug.get(f.placement.queue)
    assignee = None
    if queue is not None and queue.assign_mode != "none":
        assignee = assignment.assign_new(incident.id, queue.id, incident.status,
                                         queue.assign_mode, f.now)  # fmt: skip
    work = _follow_up(incident, filer, f.decided, f.result, f.lock, fulfil=f.fulfil,
                      class_reset_id=class_reset_id)  # fmt: skip
    known = {"school_code": filer.school_code, "filer_email": filer.email,
             "queue_slug": f.placement.queue, "assignee_email": assignee,
             "links": [Link(f.open_one.ref, RELATED)] if f.open_one else []}  # fmt: skip
    return IncidentView(incident, allowed_actions(incident.status, filer.role, f.kind), work,
                        known)  # fmt: skip


@dataclass(frozen=True)
class _Placement:
    queue: str
    priority: str
    reason: str


def _placement(decided: Outcome) -> _Placement:
    """Where the rules put a new incident; the service desk when no rule routed it."""
    if decided.queue is None:
        return _Placement(
            routing.FALLBACK_QUEUE,
            decided.priority or routing.FALLBACK_PRIORITY,
            "no rule routed it: the service desk looks",
        )
    return _Placement(
        decided.queue,
        decided.priority or routing.FALLBACK_PRIORITY,
        "routed by " + ", ".join(repr(name) for name in decided.matched),
    )


# The incident's one writer: a prebuilt Core INSERT ... SELECT that takes the queue ids
# from the queues' rows in the same statement and writes nothing when the first queue is
# missing or inactive (an ORM flush of this wide row cost more than the rest of the
# filing's writes together, bench/README.md).
_INCIDENTS = Incident.__table__
_QUEUES = Queue.__table__.c
# Every column but the id and the queues the SELECT supplies: a value left out of
# _insert's dict fails loudly rather than taking a default.
_WRITTEN = [c for c in _INCIDENTS.c if c.name not in {"id", "queue_id", "escalation_queue_id"}]
_INSERT_INCIDENT = (
    sa.insert(_INCIDENTS)
    .from_select(
        [*_WRITTEN, _INCIDENTS.c.queue_id, _INCIDENTS.c.escalation_queue_id],
        sa.select(
            *(sa.bindparam(c.name, type_=c.type) for c in _WRITTEN),
            _QUEUES.id,
            sa.select(_QUEUES.id)
            .where(_QUEUES.slug == sa.bindparam("escalate_to"), _QUEUES.active.is_(True))
            .scalar_subquery(),
        ).where(_QUEUES.slug == sa.bindparam("queue"), _QUEUES.active.is_(True)),
    )
    .returning(_INCIDENTS.c.id, _INCIDENTS.c.queue_id, _INCIDENTS.c.escalation_queue_id)
)


def _insert(
    filer: Principal, kind: str, data: dict[str, Any], details: dict[str, Any],
    result: Verification, decided: Outcome, placement: _Placement, version: int,
    now: datetime, *, fulfil: bool,
) -> Incident:  # fmt: skip
    """Write the incident in its first queue with its SLA clock started (awaiting
    fulfilment already when the rules approve it at once); return it as written.

    The returned object is the row's values, not a member of the session: nothing after
    the commit loads or flushes it, and the answer takes the school, filer and queue from
    what the filing already knows.
    """
    current = sla.settings()
    calendar = current.calendars.get(filer.school_id or -1)
    deadlines = calendar and sla.clock(
        calendar, current.by_slug.get(placement.queue), placement.priority, now
    )
    values = dict(
        type=kind, priority=placement.priority,
        status=(Status.AWAITING_FULFILMENT if fulfil else Status.TRIAGED).value,
        school_id=filer.school_id, filer_id=filer.id, assignee_id=None,
        summary=data.get("summary"), notes=data.get("notes"), details=details,
        verification=result.outcome, verification_results=result.results(),
        student_id=result.student_id, guardian_id=result.guardian_id,
        portal_account_id=result.account_id, created_at=now, updated_at=now,
        resolved_at=None, purged_at=None, merged_into_id=None, rule_set_version=version,
        tags=decided.tags, sla_started_at=now,
        sla_paused_at=None, sla_paused_seconds=0, first_response_at=None, sla_warned_at=None,
        response_breached_at=None, resolution_breached_at=None,
        response_due_at=deadlines.response_due_at if deadlines else None,
        resolution_due_at=deadlines.resolution_due_at if deadlines else None,
        sla_warn_at=deadlines.warn_at if deadlines else None,
    )  # fmt: skip
    written = db.session.execute(
        _INSERT_INCIDENT, {**values, "queue": placement.queue, "escalate_to": decided.escalate_to}
    ).one_or_none()
    if written is None:
        raise unknown_queue(placement.queue)
    return Incident(**written._asdict(), **values)


def _timeline(
    incident: Incident, filer: Principal, decided: Outcome, result: Verification,
    placement: _Placement, version: int, lock: Lock | None, now: datetime, *, fulfil: bool,
    approval: str = AUTO_FULFIL,
) -> list[Event]:  # fmt: skip
    """What the filing's timeline says, in order: filed, routed, and the rules' approval
    or the lock it caused (one INSERT for them all)."""
    routed = {"rule_set_version": version, **decided.to_dict(), "queue": placement.queue,
              "priority": placement.priority}  # fmt: skip
    events = [
        Event(incident.id, "filed", None, Status.NEW.value, actor_id=filer.id, at=now,
              data={"verification": result.outcome, "reasons": result.reasons}),
        Event(incident.id, "routed", Status.NEW.value, Status.TRIAGED.value, placement.reason,
              at=now, data=routed),
    ]  # fmt: skip
    if lock is not None:
        events.append(Event(
            incident.id, "verification_locked", Status.TRIAGED.value, Status.TRIAGED.value,
            f"record checks for {lock.target} failed repeatedly and are locked until "
            f"{lock.until}; {IDENTITY_QUEUE} was told", actor_id=filer.id, at=now,
            data={"target": lock.target, "until": lock.until, "filer": filer.email},
        ))  # fmt: skip
    if fulfil:
        # Inserted as awaiting fulfilment already; the timeline shows the rules' approval.
        events.append(Event(incident.id, "fulfil", Status.TRIAGED.value, incident.status,
                            approval, at=now, data={"rules": decided.matched}))  # fmt: skip
    return events


def _follow_up(
    incident: Incident, filer: Principal, decided: Outcome, result: Verification,
    lock: Lock | None, *, fulfil: bool, class_reset_id: int | None,
) -> fulfilment.NewFulfilment | None:  # fmt: skip
    """What follows the placing, in the same transaction: the identity queue told of a
    lock, the rules' notices, and the fulfilment the rules approve — or the filer's
    acknowledgement when the incident waits for a person (one fulfilled at once sends its
    outcome instead)."""
    if lock is not None:
        notifications.notify(
            incident.id, "verification_locked", f"queue:{IDENTITY_QUEUE}",
            target=lock.target, until=lock.until, filer=filer.email,
        )  # fmt: skip
    for audience in decided.notify:
        notifications.notify(incident.id, "queue_notice", audience, why=RULES_SAID)
    if fulfil:
        return fulfilment.request_fulfilment(incident, class_reset_id)
    notifications.notify(incident.id, "acknowledgement", "filer", verification=incident.
                         verification, reasons="; ".join(result.reasons))  # fmt: skip
    return None
