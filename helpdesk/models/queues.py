"""ITS queues: the teams incidents are routed to."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .types import BigId


def school_office_slug(school_code: str) -> str:
    return f"school-office-{school_code}"


queue_members = sa.Table(
    "queue_members",
    db.metadata,
    sa.Column("queue_id", sa.ForeignKey("queues.id"), primary_key=True),
    sa.Column("user_id", sa.ForeignKey("users.id"), primary_key=True, index=True),
)


class Queue(db.Model):  # type: ignore[name-defined]
    """A team that works incidents; school-office queues belong to one school."""

    __tablename__ = "queues"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    school_id: Mapped[int | None] = mapped_column(sa.ForeignKey("schools.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    sla_plan_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sla_plans.id"))
    # Where a breach of this queue's SLA sends an incident.
    escalation_queue_id: Mapped[int | None] = mapped_column(sa.ForeignKey("queues.id"))
    # The incident types whose fulfilment this queue's agents may approve (SPEC §5: the
    # identity department runs parent resets); elsewhere `fulfil` is refused.
    fulfils: Mapped[list[str]] = mapped_column(sa.JSON, default=list, server_default="[]")
    # How new incidents get an assignee: none (agents claim them), round_robin, or
    # fewest_open; and, for round_robin, who was given the last one.
    assign_mode: Mapped[str] = mapped_column(sa.String(16), default="none", server_default="none")
    assigned_last_user_id: Mapped[int | None] = mapped_column(sa.BigInteger)
