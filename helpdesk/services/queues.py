"""Reading queues."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..domain.lifecycle import OPEN_STATUSES
from ..extensions import db
from ..models import Incident, Queue, School


def queue_summaries() -> list[dict[str, Any]]:
    """Each active queue with the number of open incidents in it."""
    open_count = (
        sa.select(sa.func.count(Incident.id))
        .where(Incident.queue_id == Queue.id, Incident.status.in_(OPEN_STATUSES))
        .scalar_subquery()
    )
    rows = db.session.execute(
        sa.select(Queue.slug, Queue.name, School.code, open_count)
        .outerjoin(School, Queue.school_id == School.id)
        .where(Queue.active.is_(True))
        .order_by(Queue.slug)
    ).all()
    return [{"slug": s, "name": n, "school": c, "open": o} for s, n, c, o in rows]
