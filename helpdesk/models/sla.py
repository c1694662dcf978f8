"""SLA plans and the closure days that business time skips."""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .types import BigId


class SlaPlan(db.Model):  # type: ignore[name-defined]
    """Response and resolution targets per priority, in business minutes."""

    __tablename__ = "sla_plans"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    # {"P1": {"response": 30, "resolution": 240}, ...}
    targets: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    warn_at_percent: Mapped[int] = mapped_column(default=80)


class ClosureDay(db.Model):  # type: ignore[name-defined]
    """A day the helpdesk does not count: term holidays, in-service days (all or one school)."""

    __tablename__ = "closure_days"
    __table_args__ = (sa.UniqueConstraint("school_id", "day", name="uq_closure_days_school_day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    school_id: Mapped[int | None] = mapped_column(sa.ForeignKey("schools.id"))
    day: Mapped[date] = mapped_column(sa.Date, index=True)
    reason: Mapped[str] = mapped_column(sa.String(255))
