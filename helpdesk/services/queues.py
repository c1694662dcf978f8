"""Reading queues."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..domain.lifecycle import OPEN_STATUSES
from ..extensions import db
from ..models import Incident, Queue, School, SlaPlan


def queue_summaries() -> list[dict[str, Any]]:
    """Each active queue with the number of open incidents in it."""
    is_open = sa.and_(Incident.queue_id == Queue.id, Incident.status.in_(OPEN_STATUSES))
    open_count = sa.select(sa.func.count(Incident.id)).where(is_open).scalar_subquery()
    breached = (
        sa.select(sa.func.count(Incident.id))
        .where(is_open, sa.or_(Incident.resolution_breached_at.is_not(None),
                               Incident.response_breached_at.is_not(None)))
        .scalar_subquery()
    )  # fmt: skip
    rows = db.session.execute(
        sa.select(Queue.slug, Queue.name, School.code, SlaPlan.slug, open_count, breached)
        .outerjoin(School, Queue.school_id == School.id)
        .outerjoin(SlaPlan, Queue.sla_plan_id == SlaPlan.id)
        .where(Queue.active.is_(True))
        .order_by(Queue.slug)
    ).all()
    return [
        {"slug": s, "name": n, "school": c, "sla_plan": p, "open": o, "breached": b}
        for s, n, c, p, o, b in rows
    ]
