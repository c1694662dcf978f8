"""Versions of the routing rule set: every save is a new version, none is ever changed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import BigId, UTCDateTime, utcnow
from .users import User

# The version column is a 32-bit INTEGER: no saved version is above this.
MAX_VERSION = 2**31 - 1


class RoutingRuleSet(db.Model):  # type: ignore[name-defined]
    """One saved version of the rules; the highest version is the one in force."""

    __tablename__ = "routing_rule_sets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version: Mapped[int] = mapped_column(unique=True)
    rules: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON)
    note: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))

    created_by: Mapped[User | None] = relationship(lazy="joined")

    @property
    def created_by_email(self) -> str | None:
        return self.created_by.email if self.created_by else None
