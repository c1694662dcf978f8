"""A record of each roster import and what it changed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .types import BigId, UTCDateTime, utcnow


class RosterImport(db.Model):  # type: ignore[name-defined]
    """One successful import: who ran it, from where, and its report."""

    __tablename__ = "roster_imports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    source: Mapped[str] = mapped_column(sa.String(255))
    report: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
