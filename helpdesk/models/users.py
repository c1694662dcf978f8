"""Staff users of the helpdesk, their second factor, their API tokens, and the access
log of what staff did to accounts and read of people's records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
    # Two-step sign-in (RFC 6238): the shared secret sealed with SECRET_KEY, set when
    # enrolment begins; enrolled once a first code confirmed it; the last time step a
    # code was accepted for, so no code signs in twice.
    totp_sealed: Mapped[str | None] = mapped_column(sa.String(255))
    totp_enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    # An agent who is away (leave, training) gets no new incidents from assigning queues.
    away_since: Mapped[datetime | None] = mapped_column(UTCDateTime)

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


class RecoveryCode(db.Model):  # type: ignore[name-defined]
    """A one-time code that stands in for a lost authenticator; only its digest is kept."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    code_digest: Mapped[str] = mapped_column(sa.String(64), unique=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AccessEntry(db.Model):  # type: ignore[name-defined]
    """One line of the access log: a member of staff read a person's records or changed
    an account's sign-in. Appended, never changed (see services/access_log.py)."""

    __tablename__ = "access_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(sa.String(32))
    # Whose records or account: a student's or guardian's sourcedId, or "user:<id>".
    subject: Mapped[str] = mapped_column(sa.String(300), index=True)
    incident_id: Mapped[int | None] = mapped_column(sa.ForeignKey("incidents.id"))
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)

    actor: Mapped[User | None] = relationship(lazy="joined")
