"""SLA clocks in business time, and the pass that escalates breaches exactly once."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from ..app_state import TTLCache
from ..domain.business_time import (
    BusinessCalendar,
    CalendarError,
    format_weekly_hours,
    parse_weekly_hours,
)
from ..domain.moments import shown
from ..domain.rules import PRIORITIES
from ..errors import InvalidInput, NotFound
from ..extensions import db
from ..models import ClosureDay, Incident, Queue, School, SlaPlan, utcnow
from ..models.incidents import OPEN_STATUS_SQL
from . import audit, notifications
from .audit import Event
from .uow import unit_of_work

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueSettings:
    id: int
    slug: str
    targets: dict[str, Any] | None  # from the queue's SLA plan; None: no clock
    warn_at_percent: int
    escalation_queue_id: int | None
    name: str = ""  # as people read it, in timelines and emails
    assign_mode: str = "none"  # services/assignment.py


@dataclass(frozen=True)
class Clock:
    response_due_at: datetime
    resolution_due_at: datetime
    warn_at: datetime


@dataclass(frozen=True)
class Settings:
    """Active queues with their plans, and each school's calendar."""

    by_slug: dict[str, QueueSettings]
    by_id: dict[int, QueueSettings]
    calendars: dict[int, BusinessCalendar]


def _load_settings(previous: Settings | None) -> Settings:
    rows = db.session.execute(
        sa.select(Queue.id, Queue.slug, SlaPlan.targets, SlaPlan.warn_at_percent,
                  Queue.escalation_queue_id, Queue.name, Queue.assign_mode)
        .outerjoin(SlaPlan, Queue.sla_plan_id == SlaPlan.id)
        .where(Queue.active.is_(True))
    ).all()  # fmt: skip
    queues = [QueueSettings(i, s, t, w or 80, e, n, a) for i, s, t, w, e, n, a in rows]
    closures: dict[int | None, set[Any]] = {}
    for school_id, day in db.session.execute(sa.select(ClosureDay.school_id, ClosureDay.day)):
        closures.setdefault(school_id, set()).add(day)
    calendars = {
        school_id: BusinessCalendar.for_nation(
            nation, closures.get(school_id, set()) | closures.get(None, set()), timezone,
            parse_weekly_hours(hours) if hours else None,
        )
        for school_id, nation, timezone, hours in db.session.execute(
            sa.select(School.id, School.nation, School.timezone, School.working_hours)
        )
    }  # fmt: skip
    return Settings({q.slug: q for q in queues}, {q.id: q for q in queues}, calendars)


# Read by every filing and escalation; a change made here is seen at once in this process
# and within RULES_CACHE_SECONDS in every other.
_SETTINGS: TTLCache[Settings] = TTLCache("sla_settings", _load_settings, "RULES_CACHE_SECONDS")


def settings() -> Settings:
    return _SETTINGS.get()


def forget_settings() -> None:
    _SETTINGS.forget()


def clock(
    calendar: BusinessCalendar,
    queue: QueueSettings | None,
    priority: str | None,
    started_at: datetime,
    paused_seconds: int = 0,
) -> Clock | None:
    """The deadlines for a clock started at ``started_at`` under the queue's plan.

    Time spent paused (awaiting a reply) extends every deadline by as much business time.
    """
    if queue is None or not queue.targets or priority not in queue.targets:
        return None
    target = queue.targets[priority]
    paused = timedelta(seconds=paused_seconds)
    resolution = timedelta(minutes=target["resolution"])
    try:
        return Clock(
            response_due_at=calendar.add(
                started_at, timedelta(minutes=target["response"]) + paused
            ),
            resolution_due_at=calendar.add(started_at, resolution + paused),
            warn_at=calendar.add(started_at, resolution * queue.warn_at_percent / 100 + paused),
        )
    except CalendarError as error:
        # A school whose hours cannot reach the target in years must not stop filing: the
        # incident is kept without deadlines, and the log says which queue and why.
        log.warning("no SLA deadline for queue %s: %s", queue.slug, error)
        return None


def restart_clock(incident: Incident) -> None:
    """Set an incident's deadlines from its current queue and priority (the clock keeps its
    start: a transfer or a new priority never restarts it)."""
    current = settings()
    calendar = current.calendars.get(incident.school_id)
    if calendar is None or incident.sla_started_at is None:
        return
    found = clock(
        calendar, current.by_id.get(incident.queue_id or -1), incident.priority,
        incident.sla_started_at, incident.sla_paused_seconds,
    )  # fmt: skip
    incident.response_due_at = found.response_due_at if found else None
    incident.resolution_due_at = found.resolution_due_at if found else None
    incident.sla_warn_at = found.warn_at if found else None


def pause_clock(incident: Incident, now: datetime) -> None:
    if incident.sla_paused_at is None:
        incident.sla_paused_at = now


def resume_clock(incident: Incident, now: datetime) -> timedelta:
    """Stop the pause, add its business time to the clock, move the deadlines out."""
    if incident.sla_paused_at is None:
        return timedelta(0)
    calendar = settings().calendars.get(incident.school_id)
    paused = calendar.between(incident.sla_paused_at, now) if calendar else timedelta(0)
    incident.sla_paused_seconds += int(paused.total_seconds())
    incident.sla_paused_at = None
    restart_clock(incident)
    return paused


def raised(priority: str | None) -> str:
    """One step more urgent: P4 → P3 → P2 → P1, which stays P1."""
    if priority not in PRIORITIES:
        return "P3"
    return PRIORITIES[max(0, PRIORITIES.index(priority) - 1)]


@dataclass
class EscalationReport:
    resolution_breaches: list[int] = field(default_factory=list)
    response_breaches: list[int] = field(default_factory=list)
    warnings: list[int] = field(default_factory=list)


# (deadline column, flag column, extra condition): the order the pass works in.
_PASSES = (
    ("resolution_due_at", "resolution_breached_at", "resolution_breached_at IS NULL"),
    ("response_due_at", "response_breached_at",
     "response_breached_at IS NULL AND first_response_at IS NULL"),
    ("sla_warn_at", "sla_warned_at", "sla_warned_at IS NULL"),
)  # fmt: skip


def run_escalation_pass(now: datetime | None = None, batch: int = 500) -> EscalationReport:
    """Escalate every breach not yet escalated, warn every queue not yet warned; each once.

    Rows are claimed with FOR UPDATE SKIP LOCKED and flagged in the same transaction as
    their escalation and audit event, so two schedulers at once, or one run twice, never
    act on the same breach twice.
    """
    now = now or utcnow()
    report = EscalationReport()
    table = Incident.__table__
    for due_column, flag_column, pending in _PASSES:
        claim = (
            sa.select(table.c.id)
            .where(
                sa.text(f"{pending} AND sla_paused_at IS NULL AND status IN {OPEN_STATUS_SQL}"),
                table.c[due_column] < now,
            )
            .order_by(table.c[due_column])
            .limit(batch)
            .with_for_update(skip_locked=True)
        )  # fmt: skip
        while _one_batch(claim, due_column, flag_column, now, report):
            pass
    return report


def _one_batch(
    claim: sa.Select[Any], due_column: str, flag_column: str, now: datetime,
    report: EscalationReport,
) -> bool:  # fmt: skip
    """Claim, flag and act on one batch in its own unit of work (its queues' notices sent
    after the commit); False when nothing was left to claim."""
    table = Incident.__table__
    with unit_of_work():
        ids = list(db.session.execute(claim).scalars())
        if not ids:
            return False
        db.session.execute(sa.update(table).where(table.c.id.in_(ids)).values({flag_column: now}))
        _act_on(ids, due_column, flag_column, now, report)
    return True


def _act_on(
    ids: list[int], due_column: str, flag_column: str, now: datetime, report: EscalationReport
) -> None:
    for incident in db.session.execute(sa.select(Incident).where(Incident.id.in_(ids))).scalars():
        if flag_column == "sla_warned_at":
            _warn(incident, now)
            report.warnings.append(incident.id)
        else:
            clock_name = due_column.removesuffix("_due_at")
            _escalate(incident, clock_name, now)
            target = (report.resolution_breaches if clock_name == "resolution"
                      else report.response_breaches)  # fmt: skip
            target.append(incident.id)


def _escalate(incident: Incident, clock_name: str, now: datetime) -> None:
    current = settings()
    queue = current.by_id.get(incident.queue_id or -1)
    before_queue = queue.slug if queue else None
    before_priority = incident.priority
    target = (
        current.by_id.get(queue.escalation_queue_id)
        if queue and queue.escalation_queue_id
        else None
    )
    if target is not None and target.id != incident.queue_id:
        incident.queue_id, incident.assignee_id = target.id, None
    incident.priority = raised(incident.priority)
    incident.updated_at = now
    restart_clock(incident)
    after_queue = target.slug if target else before_queue
    placed = target or queue
    now_in = placed.name if placed is not None else "no queue"
    audit.record(Event(
        incident.id, "sla_breach", incident.status, incident.status,
        f"{clock_name} deadline passed: escalated to {now_in}, "
        f"priority {before_priority} → {incident.priority}", at=now,
        data={"clock": clock_name, "from_queue": before_queue, "to_queue": after_queue,
              "from_priority": before_priority, "to_priority": incident.priority,
              "notify": [f"queue:{after_queue}"] if after_queue else []},
    ))  # fmt: skip
    if after_queue:
        notifications.notify(incident.id, "escalation_notice", f"queue:{after_queue}",
                             clock=clock_name, from_queue=queue.name if queue else "",
                             priority=incident.priority)  # fmt: skip


def _warn(incident: Incident, now: datetime) -> None:
    queue = settings().by_id.get(incident.queue_id or -1)
    audit.record(Event(
        incident.id, "sla_warning", incident.status, incident.status,
        f"resolution deadline {incident.resolution_due_at:%Y-%m-%d %H:%M} UTC is near", at=now,
        data={"clock": "resolution", "due_at": incident.resolution_due_at.isoformat()
              if incident.resolution_due_at else None,
              "notify": [f"queue:{queue.slug}"] if queue else []},
    ))  # fmt: skip
    if queue is not None and incident.resolution_due_at is not None:
        notifications.notify(incident.id, "sla_warning", f"queue:{queue.slug}",
                             due=shown(incident.resolution_due_at,
                                       current_app.config["DISPLAY_TIMEZONE"]))  # fmt: skip


def add_closure(day: date, reason: str, school_code: str | None = None) -> ClosureDay:
    """Close a day for SLA clocks: for one school, or every school when none is named."""
    with unit_of_work():
        school_id = _school_id(school_code)
        exists = _closure(day, school_id)
        if exists is not None:
            raise InvalidInput(
                f"{day} is already closed ({exists.reason}).", code="duplicate_closure"
            )
        closure = ClosureDay(day=day, reason=reason, school_id=school_id)
        db.session.add(closure)
    forget_settings()
    return closure


def remove_closure(day: date, school_code: str | None = None) -> str:
    """Open a closed day again (a closure added by mistake); returns its reason."""
    with unit_of_work():
        closure = _closure(day, _school_id(school_code))
        if closure is None:
            where = f"for {school_code}" if school_code else "for every school"
            raise NotFound(f"{day} is not a closure day {where}.")
        reason = closure.reason
        db.session.delete(closure)
    forget_settings()
    log.info("closure day %s removed (%s)", day, school_code or "every school",
             extra={"event": "closure_removed"})  # fmt: skip
    return reason


def _school_id(school_code: str | None) -> int | None:
    if school_code is None:
        return None
    school_id = db.session.execute(
        sa.select(School.id).where(School.code == school_code)
    ).scalar_one_or_none()
    if school_id is None:
        raise NotFound(f"No school with code {school_code}.")
    return int(school_id)


def _closure(day: date, school_id: int | None) -> ClosureDay | None:
    """The closure of ``day`` for that school (or for every school when None)."""
    same_school = (
        ClosureDay.school_id.is_(None) if school_id is None else ClosureDay.school_id == school_id
    )
    return db.session.execute(
        sa.select(ClosureDay).where(ClosureDay.day == day, same_school)
    ).scalar_one_or_none()


def closures() -> list[tuple[date, str, str | None]]:
    return [
        (day, reason, code)
        for day, reason, code in db.session.execute(
            sa.select(ClosureDay.day, ClosureDay.reason, School.code)
            .outerjoin(School, ClosureDay.school_id == School.id)
            .order_by(ClosureDay.day)
        )
    ]


def set_working_hours(school_code: str, spec: str) -> str:
    """Set a school's helpdesk hours; returns them as stored (normalised)."""
    with unit_of_work():
        school = db.session.execute(
            sa.select(School).where(School.code == school_code)
        ).scalar_one_or_none()
        if school is None:
            raise NotFound(f"No school with code {school_code}.")
        try:
            hours = format_weekly_hours(parse_weekly_hours(spec))
        except ValueError as error:
            raise InvalidInput(str(error), code="invalid_hours") from None
        school.working_hours = hours
    forget_settings()
    return hours


# Longer targets than this are no SLA; far longer ones could not be turned into a date.
LONGEST_TARGET_MINUTES = 100_000


def save_plan(slug: str, name: str, targets: dict[str, dict[str, int]], warn_at: int) -> SlaPlan:
    """Create or change an SLA plan; targets in business minutes for every priority."""
    missing = [p for p in PRIORITIES if p not in targets]
    if missing:
        raise InvalidInput(f"Give targets for every priority; missing {', '.join(missing)}.")
    for priority, target in targets.items():
        if not 0 < target["response"] <= target["resolution"]:
            raise InvalidInput(
                f"{priority}: the response target must be positive and no later than resolution."
            )
        if target["resolution"] > LONGEST_TARGET_MINUTES:
            raise InvalidInput(
                f"{priority}: a target can be at most {LONGEST_TARGET_MINUTES:,} business "
                "minutes (about a school year of working days)."
            )
    if not 1 <= warn_at <= 99:
        raise InvalidInput("Warn at a percentage between 1 and 99.")
    with unit_of_work():
        plan = _by_slug(SlaPlan, slug)
        if plan is None:
            plan = SlaPlan(slug=slug)
            db.session.add(plan)
        plan.name, plan.targets, plan.warn_at_percent = name, targets, warn_at
    forget_settings()
    return plan


def set_queue_plan(queue_slug: str, plan_slug: str, escalates_to: str | None = None) -> None:
    """Give a queue its SLA plan and, optionally, the queue its breaches go to."""
    with unit_of_work():
        queue = db.session.execute(
            sa.select(Queue).where(Queue.slug == queue_slug)
        ).scalar_one_or_none()
        plan = db.session.execute(
            sa.select(SlaPlan).where(SlaPlan.slug == plan_slug)
        ).scalar_one_or_none()
        if queue is None or plan is None:
            raise NotFound(
                f"No queue {queue_slug!r}." if queue is None else f"No plan {plan_slug!r}."
            )
        queue.sla_plan_id = plan.id
        if escalates_to is not None:
            target = _by_slug(Queue, escalates_to)
            if target is None or target.id == queue.id:
                raise InvalidInput(f"Queue {escalates_to!r} cannot take this queue's breaches.")
            queue.escalation_queue_id = target.id
    forget_settings()


def _by_slug(model: Any, slug: str) -> Any:
    return db.session.execute(sa.select(model).where(model.slug == slug)).scalar_one_or_none()


def plans() -> list[SlaPlan]:
    return list(db.session.execute(sa.select(SlaPlan).order_by(SlaPlan.slug)).scalars())
