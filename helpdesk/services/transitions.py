"""Moving an incident through its lifecycle (SPEC §4), and what follows a move: the SLA
clock, the routing rules run again, the audit trail — each move one unit of work."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from marshmallow import ValidationError

from ..domain.lifecycle import (
    FULFILLABLE_TYPES,
    LINK_REQUEST,
    SYSTEM_MOVES,
    Action,
    Status,
    allowed_actions,
    target_status,
)
from ..errors import Conflict, Forbidden
from ..extensions import db
from ..models import Incident, Role, User, queue_members, utcnow
from . import assignment, audit, fulfilment, notifications, routing, sla
from .audit import Event
from .incidents import actions_for, fulfilling_queues, get_incident, queue_by_slug, queue_fulfils
from .uow import unit_of_work
from .users import Principal

RULES_SAID = "The routing rules asked for you to be told."


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
        incident.queue, incident.assignee, replan = queue_by_slug(decided.queue), None, True
    if decided.priority and decided.priority != incident.priority:
        incident.priority, replan = decided.priority, True
    if decided.escalate_to:
        incident.escalation_queue = queue_by_slug(decided.escalate_to)
    incident.tags = [*incident.tags, *(t for t in decided.tags if t not in incident.tags)]
    if replan:
        db.session.flush()
        sla.restart_clock(incident)
    audit.record(Event(
        incident.id, "rules", incident.status, incident.status,
        "rules matched: " + ", ".join(repr(name) for name in decided.matched), at=now,
        data={"rule_set_version": active.version, "changed": changed, **decided.to_dict()},
    ))  # fmt: skip
    for audience in decided.notify:
        notifications.notify(incident.id, "queue_notice", audience, why=RULES_SAID)


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


def transition(
    user: Principal, ref: str, action: str, message: str | None = None, queue: str | None = None,
    *, assignee: str | None = None,
) -> Incident:  # fmt: skip
    """Apply one lifecycle action, checking role and state, and record it in the audit trail.

    ``assignee`` (claim only) names the agent of the incident's queue who takes it.
    """
    with unit_of_work():
        incident = get_incident(user, ref, for_update=True)
        _apply(incident, user, Action(action), message, queue, assignee)
    return incident


def _apply(
    incident: Incident, user: Principal, act: Action, message: str | None, queue: str | None,
    assignee: str | None = None,
) -> None:  # fmt: skip
    before = incident.status
    allowed = actions_for(user, incident)
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
    if act is Action.FULFIL and not queue_fulfils(incident):
        where = ", ".join(fulfilling_queues(incident.type)) or "a queue an admin allows"
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
    kind: str = "comment" if act is Action.COMMENT else act.value
    if assignee is not None and act is not Action.CLAIM:
        raise ValidationError({"assignee": ["Name an assignee only when claiming."]})
    if act is Action.CLAIM:
        taker = _assignee(incident, assignee) if assignee else db.session.get(User, user.id)
        incident.assignee = taker
        data["assignee"] = taker.email if taker else user.email
        if taker is not None and taker.id != user.id:
            kind = "assigned"
            message = message or f"assigned to {taker.email} by {user.email}"
    elif act is Action.ESCALATE:
        # Without a queue named, the escalation target its routing rules set is used.
        if queue:
            target = queue_by_slug(queue)
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
    db.session.flush()
    audit.record(Event(incident.id, kind, before, after, message, actor_id=user.id, at=now,
                       data=data))  # fmt: skip
    if act is Action.ESCALATE and incident.queue and incident.queue.assign_mode != "none":
        assignment.assign_new(incident.id, incident.queue.id, after, incident.queue.assign_mode,
                              now)  # fmt: skip
        db.session.expire(incident, ["assignee_id", "assignee"])
    if act is Action.FULFIL:
        fulfilment.request_fulfilment(incident)
    if incident.type == LINK_REQUEST and act in (Action.RESOLVE, Action.REJECT):
        _tell_link_decision(incident, act)
    _rules_on_update(incident, watched, now)


def _tell_link_decision(incident: Incident, act: Action) -> None:
    """A parent's link request decided: they hear it at the address on file (never the
    staff's words, which are for the school's own records)."""
    if incident.guardian_id is not None:
        decided = "approved" if act is Action.RESOLVE else "rejected"
        notifications.notify(incident.id, "link_decision", f"guardian:{incident.guardian_id}",
                             decision=decided,
                             child=incident.details.get("child_given_name", ""))  # fmt: skip


def _assignee(incident: Incident, email: str) -> User:
    """The active agent of the incident's queue that ``email`` names (admins too)."""
    taker = db.session.execute(
        sa.select(User).where(sa.func.lower(User.email) == email.strip().lower())
    ).scalar_one_or_none()
    member = taker is not None and db.session.execute(
        sa.select(queue_members.c.user_id).where(
            queue_members.c.user_id == taker.id, queue_members.c.queue_id == incident.queue_id
        )
    ).first() is not None  # fmt: skip
    if taker is None or not taker.active or not (member or taker.role == Role.ADMIN):
        queue = incident.queue_slug or "its queue"
        raise ValidationError(
            {"assignee": [f"Choose an agent who works {queue}: {email} does not."]}
        )
    return taker


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
    while True:
        with unit_of_work():  # a batch at a time: each its own transaction
            ids = list(db.session.execute(claim).scalars())
            if ids:
                db.session.execute(
                    sa.update(Incident)
                    .where(Incident.id.in_(ids))
                    .values(status=after.value, updated_at=now)
                )
                audit.record_all(
                    Event(i, "close", before.value, after.value,
                          f"closed after {quiet.days} quiet days", at=now)
                    for i in ids
                )  # fmt: skip
        if not ids:
            return closed
        closed += ids
