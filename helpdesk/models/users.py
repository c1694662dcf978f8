"""Staff users of the helpdesk and their API tokens."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..domain.roles import Role
from ..extensions import db
from .records import Staff
from .types import BigId, UTCDateTime, utcnow


class User(db.Model):  # type: ignore[name-defined]
    """Someone who signs in to the helpdesk; employees are tied to a staff record."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(320), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(255))
    role: Mapped[str] = mapped_column(sa.String(16))
    staff_id: Mapped[int | None] = mapped_column(sa.ForeignKey("staff.id"), index=True)
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Sign-in to the pages: failures since the last success, and a lock after too many.
    failed_sign_ins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    password_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Part of every session's fingerprint: raising it ends all of the user's sessions.
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    # An invitation to choose a password: selector to find it, argon2 hash of the rest.
    invite_selector: Mapped[str | None] = mapped_column(sa.String(32), unique=True)
    invite_hash: Mapped[str | None] = mapped_column(sa.String(255))
    invite_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    staff: Mapped[Staff | None] = relationship(lazy="joined")

    @property
    def school_id(self) -> int | None:
        """The school an employee files for; None for ITS agents and admins."""
        return self.staff.school_id if self.staff is not None else None

    def has_role(self, *roles: Role) -> bool:
        return self.role in roles


class ApiToken(db.Model):  # type: ignore[name-defined]
    """A bearer token; only its SHA-256 digest is stored, the token itself is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    token_digest: Mapped[str] = mapped_column(sa.String(64), unique=True)
    prefix: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: never
    # What it may do: TokenScope (full, read-only, filing).
    scope: Mapped[str] = mapped_column(sa.String(10), default="full", server_default="full")

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)
