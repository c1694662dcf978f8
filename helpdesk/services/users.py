"""Creating helpdesk users, issuing their API tokens, and recognising a token."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from ..errors import InvalidInput, NotFound, Unauthorized
from ..extensions import db
from ..models import ApiToken, Role, Staff, User, utcnow
from ..security import hash_password, issue_token, token_digest

# Writing last_used_at on every request would turn each read into a write.
_TOKEN_USE_RESOLUTION = timedelta(minutes=15)


def create_user(
    email: str,
    role: str,
    *,
    staff_sourced_id: str | None = None,
    display_name: str | None = None,
    password: str | None = None,
) -> User:
    """Add a user; an employee must be linked to an active staff record (their school)."""
    email = email.strip().lower()
    if role not in {r.value for r in Role}:
        raise InvalidInput(f"Role {role!r} is not one of: {', '.join(r.value for r in Role)}.")
    if db.session.execute(sa.select(User.id).where(User.email == email)).first():
        raise InvalidInput(f"A user with email {email} already exists.", code="duplicate_user")
    staff = None
    if staff_sourced_id:
        staff = db.session.execute(
            sa.select(Staff).where(Staff.sourced_id == staff_sourced_id, Staff.active.is_(True))
        ).scalar_one_or_none()
        if staff is None:
            raise InvalidInput(
                f"No active staff record {staff_sourced_id!r}: import the school's roster first.",
                code="unknown_staff",
            )
    if role == Role.EMPLOYEE and staff is None:
        raise InvalidInput(
            "An employee files for their school, so give their staff record (--staff-id).",
            code="staff_required",
        )
    user = User(
        email=email,
        role=role,
        staff=staff,
        display_name=display_name or (staff.full_name if staff else email.split("@")[0]),
        password_hash=hash_password(password) if password else None,
    )
    db.session.add(user)
    db.session.commit()
    return user


def issue_api_token(email: str, name: str = "api") -> str:
    """Create a token for the user and return it; it is never shown again."""
    user = db.session.execute(
        sa.select(User).where(User.email == email.strip().lower())
    ).scalar_one_or_none()
    if user is None:
        raise NotFound(f"No user with email {email}.")
    issued = issue_token()
    db.session.add(ApiToken(user=user, name=name, token_digest=issued.digest, prefix=issued.prefix))
    db.session.commit()
    return issued.token


def user_for_token(authorization: str | None) -> User:
    """The active user a ``Bearer`` header names, or Unauthorized."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send 'Authorization: Bearer <token>'; an admin issues tokens.")
    api_token = db.session.execute(
        sa.select(ApiToken).where(ApiToken.token_digest == token_digest(token.strip()))
    ).scalar_one_or_none()
    if api_token is None or api_token.revoked_at is not None or not api_token.user.active:
        raise Unauthorized("That token is not valid: it may have been revoked. Ask an admin.")
    now = utcnow()
    if api_token.last_used_at is None or now - api_token.last_used_at > _TOKEN_USE_RESOLUTION:
        api_token.last_used_at = now
        db.session.commit()
    return api_token.user
