"""Figures for the dashboard: open work per queue, today's breaches, SLA compliance over
the last 30 days, and the median time to resolve each incident type.

Days are the readers' days, in ``DISPLAY_TIMEZONE``: an incident resolved at 00:30 BST
counts on that day, not on the UTC day before."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app

from ..domain.lifecycle import OPEN_STATUSES
from ..domain.moments import zone
from ..extensions import db
from ..models import Incident, Queue, RecoveryAttempt, utcnow

WINDOW_DAYS = 30


@dataclass(frozen=True)
class Dashboard:
    open_by_queue: list[tuple[str, int]]
    breaches_today: int
    compliance_by_day: list[tuple[str, int, int]]  # (day, resolved in time, resolved)
    compliance: float | None  # share resolved in time over the window
    median_hours_by_type: list[tuple[str, float, int]]  # (type, median hours, resolved)
    # Self-service over the window: recoveries done without staff, and hand-overs to schools.
    recovered_by_self_service: int = 0
    handed_over_by_self_service: int = 0


def dashboard(now: datetime | None = None) -> Dashboard:
    now = now or utcnow()
    local = zone(current_app.config["DISPLAY_TIMEZONE"])
    today = now.astimezone(local).date()
    first = today - timedelta(days=WINDOW_DAYS - 1)
    since = datetime.combine(first, time(0), tzinfo=local)
    open_by_queue = open_work_by_queue()
    breaches_today = breaches_since(datetime.combine(today, time(0), tzinfo=local))
    in_window = Incident.resolved_at >= since
    days = {first + timedelta(days=n): [0, 0] for n in range(WINDOW_DAYS)}
    for day, in_time_count, counted_count in _compliance_by_day(in_window, local):
        tally = days.get(day)
        if tally is not None:
            tally[0], tally[1] = in_time_count, counted_count
    in_time = sum(t[0] for t in days.values())
    counted = sum(t[1] for t in days.values())
    return Dashboard(
        open_by_queue=open_by_queue,
        breaches_today=breaches_today,
        compliance_by_day=[(day.strftime("%d %b"), t[0], t[1]) for day, t in days.items()],
        compliance=in_time / counted if counted else None,
        median_hours_by_type=_median_hours_by_type(in_window),
        **_self_service_since(since),
    )


def _self_service_since(moment: datetime) -> dict[str, int]:
    """Recoveries completed without staff (the incident resolved by its fulfilment, nobody
    assigned), and hand-overs to a school, from ``moment``."""
    recovered = db.session.execute(
        sa.select(sa.func.count()).select_from(RecoveryAttempt)
        .join(Incident, Incident.id == RecoveryAttempt.incident_id)
        .where(RecoveryAttempt.at >= moment, RecoveryAttempt.outcome == "matched",
               Incident.status.in_(("resolved", "closed")), Incident.assignee_id.is_(None))
    ).scalar_one()  # fmt: skip
    handed_over = db.session.execute(
        sa.select(sa.func.count()).select_from(RecoveryAttempt)
        .where(RecoveryAttempt.at >= moment, RecoveryAttempt.outcome == "handed_over")
    ).scalar_one()  # fmt: skip
    return {"recovered_by_self_service": int(recovered),
            "handed_over_by_self_service": int(handed_over)}  # fmt: skip


def open_work_by_queue() -> list[tuple[str, int]]:
    """(queue name, open incidents in it), the busiest first."""
    # Counted per queue id first, from the queue view's index (queue_id, status, ...),
    # then named: the join no longer runs once per open incident.
    per_queue = (
        sa.select(Incident.queue_id, sa.func.count().label("open"))
        .where(Incident.status.in_(OPEN_STATUSES))
        .group_by(Incident.queue_id)
        .subquery()
    )
    return [
        (name, int(count))
        for name, count in db.session.execute(
            sa.select(Queue.name, per_queue.c.open)
            .join(per_queue, per_queue.c.queue_id == Queue.id)
            .order_by(per_queue.c.open.desc(), Queue.name)
        )
    ]


def breaches_since(moment: datetime) -> int:
    """Incidents that breached a deadline (response or resolution) since ``moment``."""
    return int(
        db.session.execute(
            sa.select(sa.func.count(Incident.id)).where(
                sa.or_(Incident.resolution_breached_at >= moment,
                       Incident.response_breached_at >= moment)
            )
        ).scalar_one()
    )  # fmt: skip


# The figures are aggregated where the rows are: a month of a large district's resolved
# incidents read into Python took seconds (bench/README.md, dashboard).
def _compliance_by_day(
    in_window: sa.ColumnElement[bool], local: ZoneInfo
) -> list[tuple[date, int, int]]:
    """(local day, resolved by their deadline, resolved with a deadline), per day."""
    due = Incident.resolution_due_at
    if db.session.get_bind().dialect.name == "postgresql":
        resolved_on = sa.cast(sa.func.timezone(local.key, Incident.resolved_at), sa.Date)
        rows = db.session.execute(
            sa.select(
                resolved_on.label("resolved_on"),
                sa.func.sum(sa.case((Incident.resolved_at <= due, 1), else_=0)),
                sa.func.count(due),
            )
            .where(in_window)
            .group_by(sa.literal_column("resolved_on"))
        ).all()
        return [(day, int(in_time or 0), int(counted)) for day, in_time, counted in rows]
    # SQLite (the embedded default, a small instance) knows no time zones.
    tallies: dict[date, list[int]] = {}
    for resolved_at, due_at in db.session.execute(
        sa.select(Incident.resolved_at, due).where(in_window, due.is_not(None))
    ):
        assert resolved_at is not None and due_at is not None  # as the query asks
        tally = tallies.setdefault(resolved_at.astimezone(local).date(), [0, 0])
        tally[0] += resolved_at <= due_at
        tally[1] += 1
    return [(day, in_time, counted) for day, (in_time, counted) in tallies.items()]


def _median_hours_by_type(in_window: sa.ColumnElement[bool]) -> list[tuple[str, float, int]]:
    """(type, median hours from filed to resolved, how many), by type."""
    if db.session.get_bind().dialect.name == "postgresql":
        seconds = sa.extract("epoch", Incident.resolved_at - Incident.created_at)
        rows = db.session.execute(
            sa.select(Incident.type, sa.func.percentile_cont(0.5).within_group(seconds),
                      sa.func.count())
            .where(in_window)
            .group_by(Incident.type)
            .order_by(Incident.type)
        ).all()  # fmt: skip
        return [(kind, float(median) / 3600, int(count)) for kind, median, count in rows]
    # SQLite (the embedded default, a small instance) has no percentile function.
    durations: dict[str, list[float]] = {}
    for kind, created, resolved_at in db.session.execute(
        sa.select(Incident.type, Incident.created_at, Incident.resolved_at).where(in_window)
    ):
        assert resolved_at is not None  # the window asks for resolved incidents only
        durations.setdefault(kind, []).append((resolved_at - created).total_seconds() / 3600)
    return sorted((kind, statistics.median(hours), len(hours)) for kind, hours in durations.items())
