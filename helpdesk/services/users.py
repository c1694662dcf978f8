"""Creating helpdesk users, issuing their API tokens, and recognising a token."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from ..domain.addresses import UnusableAddress, checked_address
from ..domain.roles import TokenScope
from ..errors import InvalidInput, NotFound, Unauthorized
from ..extensions import db
from ..models import ApiToken, Role, School, Staff, User, utcnow
from ..security import hash_password, issue_token, token_digest
from .uow import after_response, unit_of_work

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
    with unit_of_work():
        try:
            email = checked_address(email.strip()).lower()
        except UnusableAddress as error:
            raise InvalidInput(f"{error}.", code="invalid_email") from None
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
                    f"No active staff record {staff_sourced_id!r}: import the school's roster "
                    "first.",
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
    return user


def issue_api_token(
    email: str, name: str = "api", *, scope: str = TokenScope.FULL, days: float | None = None
) -> str:
    """Create a token for the user and return it; it is never shown again. It works for
    ``days`` (API_TOKEN_DAYS by default) and may do what its ``scope`` says: everything its
    user may, only look, or only file (a school system's: only an employee files)."""
    try:
        scope = TokenScope(scope)
    except ValueError:
        raise InvalidInput(
            f"A token's scope is one of {', '.join(s.value for s in TokenScope)}; not {scope!r}."
        ) from None
    with unit_of_work():
        user = user_by_email(email)
        if scope is TokenScope.FILING and (user.role != Role.EMPLOYEE or user.staff is None):
            raise InvalidInput(
                f"A filing token files for its user's school, and {user.email} is not a "
                "school employee: issue it to the account of one."
            )
        issued = issue_token()
        lifetime = timedelta(days=float(days or current_app.config["API_TOKEN_DAYS"]))
        db.session.add(ApiToken(
            user=user, name=name, token_digest=issued.digest, prefix=issued.prefix,
            expires_at=utcnow() + lifetime, scope=scope.value,
        ))  # fmt: skip
    return issued.token


def users() -> list[User]:
    return list(db.session.execute(sa.select(User).order_by(User.role, User.email)).scalars())


def staff_without_account() -> list[tuple[str, str]]:
    """(sourcedId, "Name, School (role)") of active staff records no user is tied to yet,
    for an admin adding a school employee by name."""
    rows = db.session.execute(
        sa.select(Staff.sourced_id, Staff.given_name, Staff.family_name, Staff.role,
                  School.name)
        .join(School, School.id == Staff.school_id)
        .outerjoin(User, User.staff_id == Staff.id)
        .where(Staff.active.is_(True), User.id.is_(None))
        .order_by(Staff.family_name, Staff.given_name, School.name)
    )  # fmt: skip
    return [(sid, f"{given} {family}, {school} ({role})") for sid, given, family, role, school
            in rows]  # fmt: skip


def user_by_email(email: str) -> User:
    user = db.session.execute(
        sa.select(User).where(User.email == email.strip().lower())
    ).scalar_one_or_none()
    if user is None:
        raise NotFound(f"No user with email {email}.")
    return user


def user_by_id(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(f"No user {user_id}.")
    return user


def set_active(user_id: int, active: bool, *, by: int) -> User:
    """Deactivate a user (a leaver): their sessions and tokens stop working, their history
    stays. An admin cannot deactivate themself, so there is always one to undo it."""
    with unit_of_work():
        user = user_by_id(user_id)
        if user.id == by and not active:
            raise InvalidInput("You cannot deactivate yourself; ask another admin.")
        user.active = active
    return user


def tokens_of(user_id: int) -> list[ApiToken]:
    return list(
        db.session.execute(
            sa.select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id.desc())
        ).scalars()
    )


def revoke_token(user_id: int, token_id: int) -> ApiToken:
    """Stop a token working, at once on every process (tokens are looked up per request)."""
    with unit_of_work():
        token = db.session.get(ApiToken, token_id)
        if token is None or token.user_id != user_id:
            raise NotFound(f"No token {token_id} for that user.")
        if token.revoked_at is None:
            token.revoked_at = utcnow()
    return token


@dataclass(frozen=True)
class Principal:
    """Who is making a request: what authorisation needs, without loading ORM objects."""

    id: int
    email: str
    role: str
    school_id: int | None  # employees only: the school of their staff record
    school_code: str | None
    school_nation: str | None = None
    scope: TokenScope = TokenScope.FULL  # an API token's; a signed-in session's is full

    @classmethod
    def of(cls, row: Any) -> Principal:
        """From a row of ``principal_query``."""
        return cls(row.id, row.email, row.role, row.school_id, row.code, row.nation)


def principal_query(*also: Any) -> sa.Select[Any]:
    """An active user's principal — their school through their staff record — then ``also``.

    API tokens and session cookies both name a user this way; each adds its own check.
    """
    # Table columns, not ORM attributes: rows, not objects, so no ORM loading on the path
    # every request takes.
    users, staff, schools = User.__table__.c, Staff.__table__.c, School.__table__.c
    return (
        sa.select(users.id, users.email, users.role, staff.school_id, schools.code,
                  schools.nation, *also)
        .select_from(User.__table__)
        .outerjoin(Staff.__table__, users.staff_id == staff.id)
        .outerjoin(School.__table__, staff.school_id == schools.id)
        .where(users.active.is_(True))
        # A user tied to a staff record the roster ended (a leaver) has no access at all.
        .where(sa.or_(users.staff_id.is_(None), staff.active.is_(True)))
    )  # fmt: skip


_TOKENS = ApiToken.__table__.c
_TOKEN_USER = (
    principal_query(_TOKENS.id.label("token_id"), _TOKENS.last_used_at, _TOKENS.scope)
    .join(ApiToken.__table__, _TOKENS.user_id == User.__table__.c.id)
    .where(
        _TOKENS.token_digest == sa.bindparam("digest"),
        _TOKENS.revoked_at.is_(None),
        sa.or_(
            _TOKENS.expires_at.is_(None),
            _TOKENS.expires_at > sa.bindparam("now", type_=_TOKENS.expires_at.type),
        ),
    )
)


def user_for_token(authorization: str | None) -> Principal:
    """The active user a ``Bearer`` header names, or Unauthorized."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send 'Authorization: Bearer <token>'; an admin issues tokens.")
    # Looked up on every request (one indexed query, as a session is): a revoked token,
    # a deactivated user or a leaver is refused at once on every process.
    digest = token_digest(token.strip())
    now = utcnow()
    row = db.session.execute(_TOKEN_USER, {"digest": digest, "now": now}).one_or_none()
    if row is None:
        raise Unauthorized(
            "That token is not valid: it may have expired or been revoked. Ask an admin "
            "for a new one."
        )
    if row.last_used_at is None or now - row.last_used_at > _TOKEN_USE_RESOLUTION:
        _record_use(int(row.token_id), now)
    return replace(Principal.of(row), scope=TokenScope(row.scope))


def _record_use(token_id: int, now: datetime) -> None:
    """Note when a token was last used, after the response: authenticating writes nothing
    into the request's own unit of work."""
    record = sa.update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now)

    def write() -> None:
        db.session.execute(record)

    after_response(write)
