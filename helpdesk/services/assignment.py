"""Assignment that spreads the work: a queue may give each new incident to one of its
members, in turn (``round_robin``) or to whoever has the fewest open incidents
(``fewest_open``), skipping members who are away or no longer active.

The choice is made under a lock on the queue's row, held to the end of the filing's
unit of work, so two incidents filed at the same moment are chosen for one after the
other: the second sees the first's assignment and the turn it took. An assignment is
an ``assigned`` event on the incident's timeline.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from ..domain.lifecycle import OPEN_STATUSES
from ..errors import InvalidInput, NotFound
from ..extensions import db
from ..models import Incident, Queue, Role, User, queue_members, utcnow
from . import audit, sla
from .audit import Event
from .uow import unit_of_work

MODES = {
    "none": "agents claim new incidents themselves",
    "round_robin": "each new incident to the next member in turn",
    "fewest_open": "each new incident to the member with the fewest open incidents",
}


def assign_new(
    incident_id: int, queue_id: int, status: str, mode: str, now: datetime
) -> str | None:
    """Give a new incident of an assigning queue to a member; their email, or None when
    no member is available (then agents claim it as usual)."""
    # One assignment at a time in this queue. FOR NO KEY UPDATE, not FOR UPDATE: the new
    # incident's foreign key already holds a KEY SHARE lock on this row, which FOR UPDATE
    # would wait on — two filings at once would deadlock.
    queue = db.session.execute(
        sa.select(Queue).where(Queue.id == queue_id).with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).scalar_one()  # fmt: skip
    available = db.session.execute(
        sa.select(User.id, User.email)
        .join(queue_members, queue_members.c.user_id == User.id)
        .where(queue_members.c.queue_id == queue_id, User.active.is_(True),
               User.away_since.is_(None), User.role.in_([Role.AGENT.value, Role.ADMIN.value]))
        .order_by(User.id)
    ).all()  # fmt: skip
    if not available:
        return None
    if mode == "round_robin":
        last = queue.assigned_last_user_id or 0
        chosen = next((m for m in available if m.id > last), available[0])
    else:
        open_counts = dict(db.session.execute(
            sa.select(Incident.assignee_id, sa.func.count())
            .where(Incident.assignee_id.in_([m.id for m in available]),
                   Incident.status.in_([s.value for s in OPEN_STATUSES]))
            .group_by(Incident.assignee_id)
        ).all())  # fmt: skip
        chosen = min(available, key=lambda m: (open_counts.get(m.id, 0), m.id))
    queue.assigned_last_user_id = chosen.id
    db.session.execute(
        sa.update(Incident).where(Incident.id == incident_id).values(assignee_id=chosen.id)
    )
    audit.record(Event(
        incident_id, "assigned", status, status,
        f"assigned to {chosen.email} by {queue.slug} ({mode.replace('_', ' ')})", at=now,
        data={"assignee": chosen.email, "by": mode},
    ))  # fmt: skip
    return str(chosen.email)


def set_mode(slug: str, mode: str) -> Queue:
    if mode not in MODES:
        raise InvalidInput(f"Assignment is one of {', '.join(MODES)}; not {mode!r}.")
    with unit_of_work():
        queue = db.session.execute(sa.select(Queue).where(Queue.slug == slug)).scalar_one_or_none()
        if queue is None:
            raise NotFound(f"No queue {slug}.")
        queue.assign_mode = mode
    sla.forget_settings()  # at once here; other processes within RULES_CACHE_SECONDS
    return queue


def set_away(user_id: int, away: bool) -> None:
    """An agent away (or back): while away, assigning queues give them nothing new."""
    with unit_of_work():
        db.session.execute(
            sa.update(User).where(User.id == user_id)
            .values(away_since=utcnow() if away else None)
        )  # fmt: skip


def away_since(user_id: int) -> datetime | None:
    return db.session.execute(sa.select(User.away_since).where(User.id == user_id)).scalar()


def away_members() -> dict[str, datetime]:
    """Everyone away now, by email, for the admins' Queues page."""
    rows = db.session.execute(
        sa.select(User.email, User.away_since).where(User.away_since.is_not(None))
    ).all()
    return {email: since for email, since in rows if since is not None}
