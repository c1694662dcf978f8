"""Figures for the dashboard: open work per queue, today's breaches, SLA compliance over
the last 30 days, and the median time to resolve each incident type."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import sqlalchemy as sa

from ..domain.lifecycle import OPEN_STATUSES
from ..extensions import db
from ..models import Incident, Queue, utcnow

WINDOW_DAYS = 30


@dataclass(frozen=True)
class Dashboard:
    open_by_queue: list[tuple[str, int]]
    breaches_today: int
    compliance_by_day: list[tuple[str, int, int]]  # (day, resolved in time, resolved)
    compliance: float | None  # share resolved in time over the window
    median_hours_by_type: list[tuple[str, float, int]]  # (type, median hours, resolved)


def dashboard(now: datetime | None = None) -> Dashboard:
    now = now or utcnow()
    midnight = datetime.combine(now.date(), time(0), tzinfo=UTC)
    since = midnight - timedelta(days=WINDOW_DAYS - 1)
    open_by_queue = [
        (name, count)
        for name, count in db.session.execute(
            sa.select(Queue.name, sa.func.count(Incident.id))
            .join(Incident, Incident.queue_id == Queue.id)
            .where(Incident.status.in_(OPEN_STATUSES))
            .group_by(Queue.name)
            .order_by(sa.func.count(Incident.id).desc(), Queue.name)
        )
    ]
    breaches_today = db.session.execute(
        sa.select(sa.func.count(Incident.id)).where(
            sa.or_(Incident.resolution_breached_at >= midnight,
                   Incident.response_breached_at >= midnight)
        )
    ).scalar_one()  # fmt: skip
    resolved = db.session.execute(
        sa.select(Incident.type, Incident.created_at, Incident.resolved_at,
                  Incident.resolution_due_at)
        .where(Incident.resolved_at >= since)
    ).all()  # fmt: skip
    days = {(since + timedelta(days=n)).date(): [0, 0] for n in range(WINDOW_DAYS)}
    durations: dict[str, list[float]] = {}
    for kind, created, resolved_at, due in resolved:
        assert resolved_at is not None  # the query asks for resolved incidents only
        durations.setdefault(kind, []).append((resolved_at - created).total_seconds() / 3600)
        if due is not None and resolved_at.date() in days:
            tally = days[resolved_at.date()]
            tally[1] += 1
            tally[0] += resolved_at <= due
    in_time = sum(t[0] for t in days.values())
    counted = sum(t[1] for t in days.values())
    return Dashboard(
        open_by_queue=open_by_queue,
        breaches_today=breaches_today,
        compliance_by_day=[(day.strftime("%d %b"), t[0], t[1]) for day, t in days.items()],
        compliance=in_time / counted if counted else None,
        median_hours_by_type=sorted(
            (kind, statistics.median(hours), len(hours)) for kind, hours in durations.items()
        ),
    )
