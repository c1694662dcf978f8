"""Reading queues."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..domain.lifecycle import FULFILLABLE_TYPES, OPEN_STATUSES
from ..errors import InvalidInput, NotFound
from ..extensions import db
from ..models import (
    Incident,
    Queue,
    Role,
    School,
    SlaPlan,
    User,
    queue_members,
    utcnow,
)
from . import audit
from .audit import Event
from .uow import unit_of_work
from .users import Principal


def queue_summaries(viewer: Principal | None = None) -> list[dict[str, Any]]:
    """Each active queue with the number of open incidents in it; an employee sees only
    their own school's queues."""
    is_open = sa.and_(Incident.queue_id == Queue.id, Incident.status.in_(OPEN_STATUSES))
    open_count = sa.select(sa.func.count(Incident.id)).where(is_open).scalar_subquery()
    breached = (
        sa.select(sa.func.count(Incident.id))
        .where(is_open, sa.or_(Incident.resolution_breached_at.is_not(None),
                               Incident.response_breached_at.is_not(None)))
        .scalar_subquery()
    )  # fmt: skip
    query = (
        sa.select(Queue.slug, Queue.name, School.code, SlaPlan.slug, Queue.fulfils, open_count,
                  breached, Queue.assign_mode)
        .outerjoin(School, Queue.school_id == School.id)
        .outerjoin(SlaPlan, Queue.sla_plan_id == SlaPlan.id)
        .where(Queue.active.is_(True))
        .order_by(Queue.slug)
    )  # fmt: skip
    if viewer is not None and viewer.role == Role.EMPLOYEE:
        query = query.where(Queue.school_id == (viewer.school_id or -1))
    return [
        {
            "slug": s,
            "name": n,
            "school": c,
            "sla_plan": p,
            "fulfils": f,
            "open": o,
            "breached": b,
            "assign": a,
        }
        for s, n, c, p, f, o, b, a in db.session.execute(query).all()
    ]


def set_fulfils(slug: str, kinds: list[str]) -> list[str]:
    """Which incident types the queue may fulfil (replacing what it had)."""
    with unit_of_work():
        unknown = sorted(set(kinds) - FULFILLABLE_TYPES)
        if unknown:
            raise InvalidInput(
                f"{', '.join(unknown)}: not a type that is fulfilled. Choose from "
                f"{', '.join(sorted(FULFILLABLE_TYPES))}.",
                code="unknown_incident_type",
            )
        queue = db.session.execute(sa.select(Queue).where(Queue.slug == slug)).scalar_one_or_none()
        if queue is None:
            raise NotFound(f"No queue {slug!r}.")
        queue.fulfils = sorted(set(kinds))
    return list(queue.fulfils)


def queue_choices(only: list[int] | None = None) -> list[tuple[str, str]]:
    """(slug, name) of the active queues, or of ``only`` these, by name: a form's choices."""
    query = sa.select(Queue.slug, Queue.name).where(Queue.active.is_(True))
    if only is not None:
        query = query.where(Queue.id.in_(only))
    return [(slug, name) for slug, name in db.session.execute(query.order_by(Queue.name))]


def _queue_and_user(slug: str, email: str) -> tuple[Queue, User | None]:
    queue = db.session.execute(sa.select(Queue).where(Queue.slug == slug)).scalar_one_or_none()
    if queue is None:
        raise NotFound(f"No queue {slug!r}.")
    user = db.session.execute(
        sa.select(User).where(User.email == email.strip().lower())
    ).scalar_one_or_none()
    return queue, user


def add_member(slug: str, email: str) -> None:
    """Make an agent a member of a queue: they see and work its incidents."""
    with unit_of_work():
        queue, user = _queue_and_user(slug, email)
        if user is None:
            raise NotFound(f"No user with email {email}.")
        if user.role != Role.AGENT:
            raise InvalidInput(
                f"{user.email} is {user.role}: only agents are queue members (admins see all)."
            )
        exists = db.session.execute(
            sa.select(queue_members).where(
                queue_members.c.queue_id == queue.id, queue_members.c.user_id == user.id
            )
        ).first()
        if exists is None:
            db.session.execute(sa.insert(queue_members).values(queue_id=queue.id, user_id=user.id))


def remove_member(slug: str, email: str) -> int:
    """Take an agent out of a queue; what they held there goes back to the queue.

    Their open incidents in it are unassigned, each with an event saying why, so none is
    left with someone who can no longer see it. Returns how many were handed back.
    """
    with unit_of_work():
        queue, user = _queue_and_user(slug, email)
        not_a_member = NotFound(f"{email} is not a member of {slug}.")
        if user is None:
            raise not_a_member
        left = db.session.execute(
            sa.delete(queue_members)
            .where(queue_members.c.queue_id == queue.id, queue_members.c.user_id == user.id)
            .returning(queue_members.c.user_id)
        ).first()
        if left is None:  # nothing deleted, nothing to undo
            raise not_a_member
        now = utcnow()
        held = list(
            db.session.execute(
                sa.update(Incident)
                .where(
                    Incident.queue_id == queue.id,
                    Incident.assignee_id == user.id,
                    Incident.status.in_(OPEN_STATUSES),
                )
                .values(assignee_id=None, updated_at=now)
                .returning(Incident.id, Incident.status)
            )
        )
        if held:
            audit.record_all(
                Event(incident_id, "unassigned", status, status,
                      f"{user.email} left {slug}: back in the queue for someone to claim", at=now,
                      data={"assignee": user.email})
                for incident_id, status in held
            )  # fmt: skip
    return len(held)


def members(slug: str) -> list[str]:
    return list(
        db.session.execute(
            sa.select(User.email)
            .join(queue_members, queue_members.c.user_id == User.id)
            .join(Queue, Queue.id == queue_members.c.queue_id)
            .where(Queue.slug == slug)
            .order_by(User.email)
        ).scalars()
    )


def agents_of(queue_ids: list[int]) -> list[tuple[str, str]]:
    """(email, queue slugs) of the active members of these queues, for 'assign to'."""
    rows = db.session.execute(
        sa.select(User.email, Queue.slug)
        .join(queue_members, queue_members.c.user_id == User.id)
        .join(Queue, Queue.id == queue_members.c.queue_id)
        .where(Queue.id.in_(queue_ids), User.active.is_(True))
        .order_by(User.email, Queue.slug)
    )
    works: dict[str, list[str]] = {}
    for email, slug in rows:
        works.setdefault(email, []).append(slug)
    return [(email, ", ".join(slugs)) for email, slugs in works.items()]
