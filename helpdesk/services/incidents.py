"""Filing incidents, reading them, and moving them through their lifecycle."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from marshmallow import ValidationError

from ..domain.lifecycle import (
    FULFILLABLE_TYPES,
    SYSTEM_MOVES,
    Action,
    Status,
    allowed_actions,
    target_status,
)
from ..domain.rules import Outcome
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..extensions import db
from ..models import (
    Fulfilment,
    FulfilmentKind,
    Incident,
    IncidentEvent,
    Queue,
    Role,
    School,
    User,
    format_ref,
    parse_ref,
    queue_members,
    utcnow,
)
from ..models.incidents import (
    INSERT_EVENTS,
    REF_PREFIX,
    SEARCHED_DETAILS,
    search_text_sql,
    verification_summary,
)
from ..schemas.incidents import SECRET_FIELDS, load_incident
from . import fulfilment, notifications, outbox, routing, sla, verification_limits
from .users import Principal
from .verification import verify
from .verification_limits import IDENTITY_QUEUE, Attempt, Lock, target_of


@dataclass
class IncidentView:
    """An incident as one user sees it: the record plus what that user may do next."""

    incident: Incident
    allowed_actions: list[str]
    fulfilment: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.incident, name)


def _actions_for(user: Principal, incident: Incident) -> list[str]:
    """What the user may do next: the lifecycle's answer, less ``fulfil`` where the
    incident's queue does not fulfil its type."""
    allowed = allowed_actions(incident.status, user.role, incident.type)
    if Action.FULFIL.value in allowed and not _queue_fulfils(incident):
        allowed.remove(Action.FULFIL.value)
    return allowed


def _queue_fulfils(incident: Incident) -> bool:
    return incident.queue is not None and incident.type in (incident.queue.fulfils or [])


def _fulfilling_queues(kind: str) -> list[str]:
    rows = db.session.execute(
        sa.select(Queue.slug, Queue.fulfils).where(Queue.active.is_(True)).order_by(Queue.slug)
    )
    return [slug for slug, kinds in rows if kind in (kinds or [])]


def view_for(user: Principal, incident: Incident) -> IncidentView:
    return IncidentView(
        incident,
        _actions_for(user, incident),
        fulfilment.summary(incident.id) if incident.type in FULFILLABLE_TYPES else None,
    )


@dataclass(frozen=True)
class FiledIncident:
    """A just-filed incident, as the filer sees it; built from what was written."""

    id: int
    type: str
    status: str
    priority: str
    school_code: str
    queue_slug: str
    filer_email: str
    summary: str | None
    notes: str | None
    details: dict[str, Any]
    verification_summary: dict[str, Any]
    created_at: datetime
    allowed_actions: list[str]
    tags: list[str] = field(default_factory=list)
    response_due_at: datetime | None = None
    resolution_due_at: datetime | None = None
    assignee_email: None = None
    resolved_at: None = None
    fulfilment: Any = None

    @property
    def ref(self) -> str:
        return format_ref(self.id)

    @property
    def updated_at(self) -> datetime:
        return self.created_at


def _event(
    incident: Incident,
    actor_id: int | None,
    kind: str,
    before: str | None,
    after: str | None,
    message: str | None = None,
    **data: Any,
) -> None:
    db.session.add(
        IncidentEvent(
            incident=incident, actor_id=actor_id, kind=kind, from_status=before, to_status=after,
            message=message, data=data,
        )
    )  # fmt: skip


# Built once: constructing a statement costs more than executing it (see bench/README.md).
# The queue is resolved inside the INSERT; an unknown or inactive one leaves it NULL.
_INSERT_INCIDENT = (
    sa.insert(Incident.__table__)
    .values(
        queue_id=sa.select(Queue.id)
        .where(Queue.slug == sa.bindparam("queue_slug"), Queue.active.is_(True))
        .scalar_subquery(),
        escalation_queue_id=sa.select(Queue.id)
        .where(Queue.slug == sa.bindparam("escalation_slug"), Queue.active.is_(True))
        .scalar_subquery(),
    )
    .returning(Incident.__table__.c.id, Incident.__table__.c.queue_id)
)

# On PostgreSQL the incident and its audit events are one statement (a data-modifying
# CTE), atomic by itself: the filing needs no BEGIN/COMMIT round trips (bench/README.md).
# The incident is inserted from the queue row, so an unknown or inactive queue inserts
# nothing at all. SQLite runs the two statements above inside a transaction.
_NEW_INCIDENT = """
new_incident AS (
    INSERT INTO incidents (type, status, priority, school_id, filer_id, queue_id, summary,
        notes, details, verification, verification_results, student_id, guardian_id,
        portal_account_id, created_at, updated_at, rule_set_version, tags,
        escalation_queue_id, sla_started_at, sla_paused_seconds, response_due_at,
        resolution_due_at, sla_warn_at)
    SELECT :type, :status, :priority, :school_id, :filer_id, queues.id, :summary, :notes,
        :details, :verification, :verification_results, :student_id, :guardian_id,
        :portal_account_id, :created_at, :updated_at, :rule_set_version, :tags,
        (SELECT e.id FROM queues e WHERE e.slug = :escalation_slug AND e.active),
        :sla_started_at, 0, :response_due_at, :resolution_due_at, :sla_warn_at
    FROM queues WHERE queues.slug = :queue_slug AND queues.active
    RETURNING id, portal_account_id
)"""
_NEW_EVENTS = """
new_events AS (
    INSERT INTO incident_events (incident_id, at, actor_id, kind, from_status, to_status,
        message, data)
    SELECT new_incident.id, :created_at, e.actor_id, e.kind, e.from_status, e.to_status,
        e.message, e.data
    FROM new_incident, (VALUES
        (CAST(:filer_id AS BIGINT), 'filed', CAST(NULL AS VARCHAR), CAST('new' AS VARCHAR),
         CAST(NULL AS TEXT), CAST(:filed_data AS JSON)),
        (NULL, 'routed', 'new', 'triaged', :routed_message, CAST(:routed_data AS JSON))
        {more_events}
    ) AS e (actor_id, kind, from_status, to_status, message, data)
)"""
# When the rules fulfil the new incident at once (the shipped rules do for a verified
# student reset) and ask for nothing else, the same statement also records the approval,
# creates the fulfilment and its outbox promise (what fulfilment.request_fulfilment
# writes), so the busiest filing stays one round trip. The delivery mode is the portal
# policy's, as request_fulfilment reads it.
_FULFIL_EVENT = """,
        (NULL, 'fulfil', 'triaged', 'awaiting_fulfilment', :fulfil_message,
         CAST(:fulfil_data AS JSON))"""
_NEW_FULFILMENT = """
new_fulfilment AS (
    INSERT INTO fulfilments (incident_id, kind, state, portal_account_id, mode, attempts,
        created_at, updated_at)
    SELECT new_incident.id, :fulfilment_kind, 'pending', new_incident.portal_account_id,
        (SELECT p.delivery_mode FROM portal_accounts a
         JOIN portal_policies p ON p.portal = a.portal
         WHERE a.id = new_incident.portal_account_id AND :is_reset),
        0, :created_at, :created_at
    FROM new_incident
    RETURNING id, mode
),"""
_TYPED = (
    sa.bindparam("details", type_=sa.JSON),
    sa.bindparam("verification_results", type_=sa.JSON),
    sa.bindparam("tags", type_=sa.JSON),
    sa.bindparam("filed_data", type_=sa.JSON),
    sa.bindparam("routed_data", type_=sa.JSON),
    sa.bindparam("created_at", type_=Incident.__table__.c.created_at.type),
    sa.bindparam("updated_at", type_=Incident.__table__.c.updated_at.type),
    *(
        sa.bindparam(name, type_=Incident.__table__.c[name].type)
        for name in ("sla_started_at", "response_due_at", "resolution_due_at", "sla_warn_at")
    ),
)
# An incident that waits for a person: the filer's acknowledgement (a notification to
# the "filer" audience, addressed from the records when sent); its promise follows.
_NEW_ACKNOWLEDGEMENT = """
new_notification AS (
    INSERT INTO notifications (incident_id, template, audience, context, state, attempts,
        created_at)
    SELECT new_incident.id, 'acknowledgement', 'filer', CAST(:ack_context AS JSON),
        'pending', 0, :created_at
    FROM new_incident
    RETURNING id
),"""
# The outbox promise of what the statement created (outbox.promise's row).
_NEW_PROMISE = """
new_promise AS (
    INSERT INTO outbox (job, target_id, queue, state, created_at, relay_after, enqueues)
    SELECT {job}, {target}.id, {queue}, 'pending', :created_at, :relay_after, 0
    FROM {target}
    RETURNING id
)"""


def _filing_statement(events: str, after: str, returning: str, *typed: Any) -> sa.TextClause:
    """The incident, its events and what follows them, as one data-modifying CTE."""
    return sa.text(
        f"WITH {_NEW_INCIDENT},{_NEW_EVENTS.format(more_events=events)},{after}\n{returning}"
    ).bindparams(
        *_TYPED,
        *typed,
        sa.bindparam("relay_after", type_=Incident.__table__.c.created_at.type),
    )


_INSERT_ACKNOWLEDGED_INCIDENT = _filing_statement(
    "",
    _NEW_ACKNOWLEDGEMENT
    + _NEW_PROMISE.format(job="'deliver_email'", target="new_notification", queue="'mail'"),
    "SELECT new_incident.id, new_notification.id, new_promise.id "
    "FROM new_incident, new_notification, new_promise",
    sa.bindparam("ack_context", type_=sa.JSON),
)  # fmt: skip
_INSERT_FULFILLED_INCIDENT = _filing_statement(
    _FULFIL_EVENT,
    _NEW_FULFILMENT + _NEW_PROMISE.format(job=":job", target="new_fulfilment", queue=":job_queue"),
    "SELECT new_incident.id, new_fulfilment.id, new_fulfilment.mode, new_promise.id "
    "FROM new_incident, new_fulfilment, new_promise",
    sa.bindparam("fulfil_data", type_=sa.JSON),
)  # fmt: skip


def _filing_mode() -> tuple[bool, bool]:
    """(on PostgreSQL, session owns its connections rather than joining a caller's)."""
    bind = db.session.get_bind()
    return bind.dialect.name == "postgresql", isinstance(bind, sa.Engine)


def file_incident(filer: Principal, payload: Any) -> FiledIncident:
    """Validate, verify against the records, place in its first queue and audit, in one commit.

    This is the busiest write, so on PostgreSQL it is two prebuilt statements rather
    than ORM units of work: the verification query, and one CTE that inserts the incident
    from its queue row together with its audit events.
    """
    if filer.role != Role.EMPLOYEE or filer.school_id is None or filer.school_code is None:
        raise Forbidden(
            "Only school employees file incidents, for their own school. Ask an admin for an "
            "employee account linked to your staff record.",
        )
    kind, data = load_incident(payload)
    if data.get("school") and data["school"] != filer.school_code:
        raise ValidationError(
            {
                "school": [
                    f"You file for your own school ({filer.school_code}) only; leave this out."
                ]
            }
        )
    attempt = Attempt(filer.id, filer.school_id, target_of(kind, filer.school_id, data))
    tried = verification_limits.check_allowed(attempt)  # before any record is read
    postgresql, owns_connection = _filing_mode()
    if postgresql and owns_connection:
        db.session.commit()  # end any read the token lookup began
        db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    per_field = tried < int(current_app.config["VERIFY_DETAIL_TRIES"])
    result = verify(kind, filer.school_id, data, per_field=per_field)
    outcome = "passed" if result.passed else "failed"
    lock = None if result.passed else verification_limits.record_failure(attempt)
    details = {k: v for k, v in data.items() if k not in SECRET_FIELDS | {"summary", "notes"}}
    if "child_birth_date" in details:
        details["child_birth_date"] = details["child_birth_date"].isoformat()
    now = utcnow()
    version, decided = routing.route(routing.incident_facts(
        kind=kind, school_code=filer.school_code, nation=filer.school_nation or "ENG",
        filer_role=filer.role, verification=outcome, field_results=result.fields,
        reasons=result.reasons, details=details,
        business_hours=routing.received_in_business_hours(filer.school_id, now),
    ))  # fmt: skip
    placement = _placement(decided)
    current = sla.settings()
    calendar = current.calendars.get(filer.school_id)
    deadlines = calendar and sla.clock(
        calendar, current.by_slug.get(placement.queue), placement.priority, now
    )
    summary, notes, results = data.get("summary"), data.get("notes"), result.results()
    values = {
        "type": kind, "status": Status.TRIAGED.value, "priority": placement.priority,
        "school_id": filer.school_id, "filer_id": filer.id, "queue_slug": placement.queue,
        "summary": summary, "notes": notes, "details": details,
        "verification": outcome, "verification_results": results,
        "student_id": result.student_id, "guardian_id": result.guardian_id,
        "portal_account_id": result.account_id, "created_at": now, "updated_at": now,
        "rule_set_version": version, "tags": decided.tags,
        "escalation_slug": decided.escalate_to, "sla_started_at": now,
        "response_due_at": deadlines.response_due_at if deadlines else None,
        "resolution_due_at": deadlines.resolution_due_at if deadlines else None,
        "sla_warn_at": deadlines.warn_at if deadlines else None,
    }  # fmt: skip
    filed = {"verification": outcome, "reasons": result.reasons}
    routed = {"rule_set_version": version, **decided.to_dict(), "queue": placement.queue,
              "priority": placement.priority}  # fmt: skip
    auto_fulfil = decided.auto_fulfil and result.passed and kind in FULFILLABLE_TYPES
    # An incident that waits for a person is acknowledged to its filer; one fulfilled at
    # once is not (its outcome follows in moments).
    acknowledge = not auto_fulfil
    ack = {"verification": outcome, "reasons": "; ".join(result.reasons)}
    follow_up = auto_fulfil or bool(decided.notify)
    # One statement on PostgreSQL, unless the rules asked for a notice, or a fulfilment
    # that must first check the parent's access was not revoked (request_fulfilment).
    job = fulfilment.KIND_FOR_TYPE.get(kind)
    in_one = (
        postgresql
        and lock is None
        and not decided.notify
        and (not auto_fulfil or result.guardian_id is None or job is FulfilmentKind.REVOCATION)
    )
    written = values | {
        "filed_data": filed, "routed_data": routed, "routed_message": placement.reason,
        "relay_after": outbox.relay_after(now),
    }  # fmt: skip
    status, work, promised = Status.TRIAGED.value, None, None
    incident_id: int | None = None
    try:
        if in_one and auto_fulfil and job is not None:
            status, job_queue = Status.AWAITING_FULFILMENT.value, fulfilment.job_queue(job)
            row = db.session.execute(_INSERT_FULFILLED_INCIDENT, written | {
                "status": status, "fulfil_message": _AUTO_FULFIL,
                "fulfil_data": {"rules": decided.matched}, "fulfilment_kind": job.value,
                "job": job.value, "is_reset": job is FulfilmentKind.RESET,
                "job_queue": job_queue,
            }).one_or_none()  # fmt: skip
            if row is not None:
                incident_id, work_id, mode, promise_id = row
                work = fulfilment.NewFulfilment(job.value, mode)
                promised = outbox.Promise(promise_id, job.value, work_id, job_queue)
        elif in_one:
            row = db.session.execute(
                _INSERT_ACKNOWLEDGED_INCIDENT, written | {"ack_context": ack}
            ).one_or_none()
            if row is not None:
                incident_id, note_id, promise_id = row
                promised = outbox.Promise(promise_id, "deliver_email", note_id, "mail")
        else:
            if postgresql and owns_connection:
                db.session.commit()  # leave autocommit: the follow-up work joins one transaction
            incident_id = _insert_incident_and_events(values, filer, placement, filed, routed)
            if incident_id is not None and acknowledge:
                notifications.notify(incident_id, "acknowledgement", "filer", **ack)
            if incident_id is not None and lock is not None:
                _record_lock(incident_id, filer, lock, now)
        if incident_id is None:
            raise _unknown_queue(placement.queue)
        if follow_up and not in_one:
            status, work = _follow_up(incident_id, decided, auto_fulfil)
        if promised is None or not owns_connection:
            db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    if promised is not None:
        # Committed already (in autocommit, the statement was its own transaction): the
        # bookkeeping after the enqueue reuses the connection rather than taking another.
        outbox.dispatch(promised)
    else:
        outbox.dispatch_committed()
    return FiledIncident(
        id=incident_id, type=kind, status=status, priority=placement.priority,
        school_code=filer.school_code, queue_slug=placement.queue, filer_email=filer.email,
        summary=summary, notes=notes, details=details,
        verification_summary=verification_summary(outcome, results), tags=decided.tags,
        response_due_at=deadlines.response_due_at if deadlines else None,
        resolution_due_at=deadlines.resolution_due_at if deadlines else None,
        created_at=now, allowed_actions=allowed_actions(status, filer.role, kind),
        fulfilment=work,
    )  # fmt: skip


_AUTO_FULFIL = "approved by the routing rules (auto_fulfil): no person needed"


def _record_lock(incident_id: int, filer: Principal, lock: Lock, now: datetime) -> None:
    """The check that locked its target: in the audit trail, and the identity queue told."""
    message = (
        f"record checks for {lock.target} failed repeatedly and are locked until "
        f"{lock.until}; {IDENTITY_QUEUE} was told"
    )
    db.session.execute(INSERT_EVENTS, [{
        "incident_id": incident_id, "at": now, "actor_id": filer.id,
        "kind": "verification_locked", "from_status": Status.TRIAGED.value,
        "to_status": Status.TRIAGED.value, "message": message,
        "data": {"target": lock.target, "until": lock.until, "filer": filer.email},
    }])  # fmt: skip
    notifications.notify(
        incident_id, "verification_locked", f"queue:{IDENTITY_QUEUE}",
        target=lock.target, until=lock.until, filer=filer.email,
    )  # fmt: skip


_RULES_SAID = "The routing rules asked for you to be told."


def _follow_up(
    incident_id: int, decided: Outcome, auto_fulfil: bool
) -> tuple[str, Fulfilment | None]:
    """What the rules asked for beyond placing the incident, in the filing transaction."""
    incident = db.session.get(Incident, incident_id)
    assert incident is not None
    for audience in decided.notify:
        notifications.notify(incident_id, "queue_notice", audience, why=_RULES_SAID)
    if auto_fulfil:
        before, after = incident.status, Status.AWAITING_FULFILMENT.value
        incident.status = after
        _event(incident, None, "fulfil", before, after, _AUTO_FULFIL,
               rules=decided.matched)  # fmt: skip
        return incident.status, fulfilment.request_fulfilment(incident)
    return incident.status, None


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


def _insert_incident_and_events(
    values: dict[str, Any],
    filer: Principal,
    placement: _Placement,
    filed: dict[str, Any],
    routed: dict[str, Any],
) -> int | None:
    """The portable form of the filing write: the incident, then its events, or nothing."""
    incident_id, placed_in = db.session.execute(_INSERT_INCIDENT, values).one()
    if placed_in is None:
        return None
    event = {"incident_id": incident_id, "at": values["created_at"], "message": None}
    db.session.execute(INSERT_EVENTS, [
        event | {"actor_id": filer.id, "kind": "filed", "from_status": None,
                 "to_status": Status.NEW.value, "data": filed},
        event | {"actor_id": None, "kind": "routed", "from_status": Status.NEW.value,
                 "to_status": Status.TRIAGED.value, "message": placement.reason,
                 "data": routed},
    ])  # fmt: skip
    return int(incident_id)


_WATCHED = ("status", "queue_id", "priority", "assignee_id")
_FACT_NAMES = {"status": "status", "queue_id": "queue", "priority": "priority",
               "assignee_id": "assignee"}  # fmt: skip


def _watched(incident: Incident) -> dict[str, Any]:
    return {name: getattr(incident, name) for name in _WATCHED}


def _rules_on_update(incident: Incident, watched: dict[str, Any], now: datetime) -> None:
    """Run the rules again when an update changed a field they read, and apply them."""
    changed = [_FACT_NAMES[n] for n, v in watched.items() if getattr(incident, n) != v]
    active = routing.active_rules()
    reads = active.compiled.fields_read
    if not changed or not (set(changed) & reads or "changed" in reads):
        return
    db.session.refresh(incident)  # relationships follow the columns just changed
    facts = routing.stored_incident_facts(incident, event="updated", changed=changed)
    decided = active.compiled.evaluate(facts)
    if not decided.matched:
        return
    replan = False
    if decided.queue and decided.queue != incident.queue_slug:
        incident.queue, incident.assignee, replan = _queue(decided.queue), None, True
    if decided.priority and decided.priority != incident.priority:
        incident.priority, replan = decided.priority, True
    if decided.escalate_to:
        incident.escalation_queue = _queue(decided.escalate_to)
    incident.tags = [*incident.tags, *(t for t in decided.tags if t not in incident.tags)]
    if replan:
        db.session.flush()
        sla.restart_clock(incident)
    _event(incident, None, "rules", incident.status, incident.status,
           "rules matched: " + ", ".join(repr(name) for name in decided.matched),
           rule_set_version=active.version, changed=changed, **decided.to_dict())  # fmt: skip
    for audience in decided.notify:
        notifications.notify(incident.id, "queue_notice", audience, why=_RULES_SAID)


def _run_clock(
    incident: Incident,
    act: Action,
    before: str,
    after: str,
    user: Principal,
    now: datetime,
    data: dict[str, Any],
) -> None:
    """Keep the SLA clock in step with a transition (SPEC §5)."""
    answered = user.role != Role.EMPLOYEE and act in (Action.CLAIM, Action.COMMENT)
    if answered and incident.first_response_at is None:
        incident.first_response_at = now  # ITS has answered: the response target is met
    if after == Status.AWAITING_REPLY and before != Status.AWAITING_REPLY:
        sla.pause_clock(incident, now)
    elif before == Status.AWAITING_REPLY and after != Status.AWAITING_REPLY:
        paused = sla.resume_clock(incident, now)
        data["paused_business_minutes"] = round(paused.total_seconds() / 60)
    if act is Action.ESCALATE:
        db.session.flush()  # queue_id follows the new queue only once flushed
        sla.restart_clock(incident)  # the new queue's plan, from the same start


def _unknown_queue(slug: str) -> InvalidInput:
    return InvalidInput(
        f"Queue {slug!r} does not exist. An admin creates it (or imports the school's "
        "roster, which creates its office queue).",
        code="unknown_queue",
    )


def _queue(slug: str) -> Queue:
    queue = db.session.execute(
        sa.select(Queue).where(Queue.slug == slug, Queue.active.is_(True))
    ).scalar_one_or_none()
    if queue is None:
        raise _unknown_queue(slug)
    return queue


def _visible(user: Principal) -> sa.ColumnElement[bool]:
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
    query = sa.select(Incident).where(Incident.id == incident_id, _visible(user))
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
    stmt = sa.select(Incident).where(_visible(user))
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


def transition(
    user: Principal, ref: str, action: str, message: str | None = None, queue: str | None = None
) -> Incident:
    """Apply one lifecycle action, checking role and state, and record it in the audit trail."""
    incident = get_incident(user, ref, for_update=True)
    act = Action(action)
    before = incident.status
    allowed = _actions_for(user, incident)
    if act.value not in allowed_actions(before, Role.ADMIN, incident.type) or (
        act is Action.FULFIL and incident.type not in FULFILLABLE_TYPES
    ):
        raise Conflict(
            f"{incident.ref} is {before}: '{act.value}' is not possible now.",
            code="illegal_transition",
            incident_status=before,
            allowed_actions=allowed,
        )
    if act is Action.FULFIL and incident.verification != "passed":
        raise Conflict(
            f"{incident.ref} failed verification: correct the record and file again; "
            "a reset is never sent on unverified details.",
            code="verification_failed",
            allowed_actions=allowed,
        )
    if act is Action.FULFIL and not _queue_fulfils(incident):
        where = ", ".join(_fulfilling_queues(incident.type)) or "a queue an admin allows"
        raise Forbidden(
            f"{incident.queue_slug or 'This queue'} does not approve "
            f"{incident.type.replace('_', ' ')}s: escalate {incident.ref} to {where}, "
            "which does.",
            allowed_actions=allowed,
        )
    if act.value not in allowed:
        raise Forbidden(
            f"Your role ({user.role}) may not {act.value} incidents.", allowed_actions=allowed
        )
    after = target_status(act, before)
    data: dict[str, Any] = {}
    now = utcnow()
    watched = _watched(incident)
    if act is Action.CLAIM:
        incident.assignee = db.session.get(User, user.id)
        data["assignee"] = user.email
    elif act is Action.ESCALATE:
        # Without a queue named, the escalation target its routing rules set is used.
        if queue:
            target = _queue(queue)
        elif incident.escalation_queue is not None:
            target = incident.escalation_queue
        else:
            message = "Name the queue to escalate to, e.g. its-identity: no rule set one."
            raise ValidationError({"queue": [message]})
        if target.id == incident.queue_id:
            raise ValidationError({"queue": [f"{incident.ref} is already in {target.slug}."]})
        data.update(
            from_queue=incident.queue.slug if incident.queue else None, to_queue=target.slug
        )
        incident.queue, incident.assignee = target, None
    elif act is Action.REJECT and not message:
        raise ValidationError({"message": ["Say why it is rejected; the filer is told."]})
    elif act in (Action.COMMENT, Action.AWAIT_REPLY) and not message:
        what = "Write the comment." if act is Action.COMMENT else "Say what you are waiting for."
        raise ValidationError({"message": [what]})
    elif act is Action.REOPEN:
        incident.resolved_at = None
    if act is Action.COMMENT and before == Status.AWAITING_REPLY and user.role == Role.EMPLOYEE:
        after = Status.IN_PROGRESS.value  # the school replied: the clock runs again
    _run_clock(incident, act, before, after, user, now, data)
    if act is Action.RESOLVE:
        incident.resolved_at = now
    incident.status = after
    incident.updated_at = now
    _event(
        incident,
        user.id,
        "comment" if act is Action.COMMENT else act.value,
        before,
        after,
        message,
        **data,
    )
    db.session.flush()
    if act is Action.FULFIL:
        fulfilment.request_fulfilment(incident)
    _rules_on_update(incident, watched, now)
    db.session.commit()
    outbox.dispatch_committed()
    return incident


def close_quiet_resolved(now: datetime | None = None, batch: int = 500) -> list[int]:
    """Close incidents resolved longer ago than RESOLVED_QUIET_DAYS; each once, audited."""
    now = now or utcnow()
    quiet = timedelta(days=float(current_app.config["RESOLVED_QUIET_DAYS"]))
    before, after = SYSTEM_MOVES["close"]
    claim = (
        sa.select(Incident.id)
        .where(Incident.status == before.value, Incident.resolved_at < now - quiet)
        .order_by(Incident.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    closed: list[int] = []
    while ids := list(db.session.execute(claim).scalars()):
        db.session.execute(
            sa.update(Incident)
            .where(Incident.id.in_(ids))
            .values(status=after.value, updated_at=now)
        )
        db.session.execute(INSERT_EVENTS, [
            {"incident_id": i, "at": now, "actor_id": None, "kind": "close",
             "from_status": before.value, "to_status": after.value,
             "message": f"closed after {quiet.days} quiet days", "data": {}}
            for i in ids
        ])  # fmt: skip
        db.session.commit()
        closed += ids
    db.session.commit()
    return closed
