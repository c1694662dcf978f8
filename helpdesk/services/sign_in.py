"""Staff sign-in to the pages: passwords, lockout, invitations, and who a session is.

A wrong password, an unknown email, a deactivated user and a locked account all get the
same answer after the same work, so the sign-in form reveals nothing about which
accounts exist. After ``SIGN_IN_MAX_FAILURES`` failures in a row an account is locked
for ``SIGN_IN_LOCKOUT_MINUTES``; a success clears the count.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from zxcvbn import zxcvbn

from ..errors import InvalidInput, NotFound
from ..extensions import db
from ..models import User, utcnow
from ..security import hash_password, issue_reset_token, split_reset_token, verify_password
from .uow import unit_of_work
from .users import Principal, principal_query

STAFF_PASSWORD_MIN = 12
SIGN_IN_REFUSED = (
    "The email address or password is not right. After several tries the account is "
    "locked for a while; ask an admin if you cannot sign in."
)
INVITE_NOT_USABLE = (
    "This invitation has expired or has already been used. Ask an admin for a new one."
)


class SignInRefused(InvalidInput):
    code = "sign_in_refused"


def password_problems(user: User, password: str) -> list[str]:
    """What a staff password lacks, in words the person choosing it can act on.

    As NIST SP 800-63B-4 asks: a length, and a check against what is commonly chosen
    (zxcvbn's lists of common and breached passwords, words and names, and its patterns:
    repeats, sequences, keyboard rows, dates), with the person's own email and names as
    words to refuse; no composition rules.
    """
    problems = []
    if len(password) < STAFF_PASSWORD_MIN:
        problems.append(f"Use at least {STAFF_PASSWORD_MIN} characters.")
    if len(password) > 256:
        problems.append("Use at most 256 characters.")
    if not problems:
        problems += _guessable(user, password)
    return problems


_PATTERNS = {"repeat", "sequence", "spatial", "date"}


def _guessable(user: User, password: str) -> list[str]:
    """Why a password of a good length is still easy to guess, if it is."""
    personal = re.split(r"[@._+-]+", user.email.lower())
    if user.staff is not None:
        personal += [user.staff.given_name.lower(), user.staff.family_name.lower()]
    words = {w for w in personal if len(w) >= 3}
    lowered = password.lower()
    if sum(len(w) for w in words if w in lowered) * 2 >= len(password):
        return ["Do not build your password from your name or email address."]
    found = zxcvbn(password[:100], user_inputs=[user.email, *words])
    if found["score"] >= 3:
        return []
    if {m["pattern"] for m in found["sequence"]} & _PATTERNS:
        return ["Avoid repeated characters, sequences, keyboard rows and dates (like aaaa, "
                "1234, qwerty or 2015): they are guessed first."]  # fmt: skip
    return ["This password is too common to be safe. Try three or four words that have "
            "nothing to do with each other."]  # fmt: skip


def set_password(user: User, password: str) -> None:
    problems = password_problems(user, password)
    if problems:
        raise InvalidInput(" ".join(problems), code="weak_password", problems=problems)
    user.password_hash = hash_password(password)
    user.password_set_at = utcnow()
    user.failed_sign_ins = 0
    user.locked_until = None
    user.invite_selector = user.invite_hash = user.invite_expires_at = None


CURRENT_WRONG = "Your current password is not right."  # a message, not a password


def change_password(user_id: int, current: str, new: str) -> User:
    """A signed-in user's own change: the current password first, then the new one under
    the staff policy. Every other session of theirs ends (their fingerprint changes)."""
    with unit_of_work():
        user = db.session.execute(
            sa.select(User).where(User.id == user_id, User.active.is_(True))
            .with_for_update(of=User)
        ).scalar_one_or_none()  # fmt: skip
        if user is None:
            raise NotFound("No such user.")
        if not verify_password(user.password_hash, current):
            raise InvalidInput(CURRENT_WRONG, code="current_password_wrong")
        set_password(user, new)
    return user


def _user_by_email(email: str, *, for_update: bool = False) -> User | None:
    query = sa.select(User).where(User.email == email.strip().lower())
    if for_update:
        query = query.with_for_update(of=User)
    return db.session.execute(query).scalar_one_or_none()


def sign_in(email: str, password: str, now: datetime | None = None) -> User:
    """The user these credentials sign in, or SignInRefused (one message for every cause)."""
    now = now or utcnow()
    with unit_of_work():
        user = _user_by_email(email, for_update=True)
        # Always run the hash, so an unknown email costs as much as a known one.
        valid = verify_password(user.password_hash if user else None, password)
        if user is None:
            raise SignInRefused(SIGN_IN_REFUSED)
        locked = user.locked_until is not None and user.locked_until > now
        if valid and user.active and not locked:
            user.failed_sign_ins = 0
            user.locked_until = None
            return user
        if not locked:  # the failure is counted (committed), then refused
            count_failure(user, now)
    raise SignInRefused(SIGN_IN_REFUSED)


def user_for_sso(email: str) -> User | None:
    """The active user an identity provider's vouched-for email names, if any: single
    sign-on never creates an account, and a leaver (their staff record ended) has none."""
    user = _user_by_email(email)
    if user is None or not user.active or (user.staff is not None and not user.staff.active):
        return None
    return user


def count_failure(user: User, now: datetime) -> None:
    """A wrong password or second-step code, counted in the caller's unit of work:
    ``SIGN_IN_MAX_FAILURES`` in a row lock the account."""
    user.failed_sign_ins += 1
    if user.failed_sign_ins >= int(current_app.config["SIGN_IN_MAX_FAILURES"]):
        minutes = float(current_app.config["SIGN_IN_LOCKOUT_MINUTES"])
        user.locked_until = now + timedelta(minutes=minutes)
        user.failed_sign_ins = 0
        current_app.logger.warning("sign-in locked for user %s after failures", user.id)


def user_for_update(user_id: int) -> User | None:
    """The user, locked for the rest of the unit of work (a count or a code changes), as
    the database has it once the lock is held, not as this session last saw it."""
    return db.session.execute(
        sa.select(User).where(User.id == user_id).with_for_update(of=User)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()  # fmt: skip


def _fingerprint(password_hash: str | None, session_version: int) -> str:
    text = f"{password_hash or ''}:{session_version}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def session_fingerprint(user: User) -> str:
    """Changes when the password or the session version does: a password change ends
    every other session, and signing out ends them all (``end_sessions``)."""
    return _fingerprint(user.password_hash, user.session_version)


def end_sessions(user_id: int) -> None:
    """End every session of the user, on every device: a copied cookie stops working."""
    with unit_of_work():
        db.session.execute(
            sa.update(User).where(User.id == user_id)
            .values(session_version=User.session_version + 1)
        )  # fmt: skip


# Every page asks this once: columns only, no User object (and its eager staff join).
_USERS = User.__table__.c
_SESSION_USER = principal_query(_USERS.password_hash, _USERS.session_version).where(
    _USERS.id == sa.bindparam("user_id")
)


def principal_for_session(user_id: int, fingerprint: str) -> Principal | None:
    """Who a session cookie names, or None when that user is gone, inactive, re-keyed,
    signed out or a leaver."""
    row = db.session.execute(_SESSION_USER, {"user_id": user_id}).one_or_none()
    if row is None or _fingerprint(row.password_hash, row.session_version) != fingerprint:
        return None
    return Principal.of(row)


def invite(email: str) -> tuple[str, datetime]:
    """A single-use token with which the user chooses their password; replaces any earlier."""
    with unit_of_work():
        user = _user_by_email(email)
        if user is None:
            raise NotFound(f"No user with email {email}.")
        token = issue_reset_token()
        expires_at = utcnow() + timedelta(days=float(current_app.config["INVITE_DAYS"]))
        user.invite_selector = token.selector
        user.invite_hash = token.verifier_hash
        user.invite_expires_at = expires_at
    return token.token, expires_at


def invited_user(token: str) -> User:
    """The user an invitation token is for, or InvalidInput when it cannot be used."""
    parts = split_reset_token(token)
    user = None
    if parts is not None:
        user = db.session.execute(
            sa.select(User).where(User.invite_selector == parts[0]).with_for_update(of=User)
        ).scalar_one_or_none()
    valid = verify_password(user.invite_hash if user else None, parts[1] if parts else token)
    if (
        user is None
        or not valid
        or not user.active
        or user.invite_expires_at is None
        or user.invite_expires_at <= utcnow()
    ):
        raise InvalidInput(INVITE_NOT_USABLE, code="invite_not_usable")
    return user


def accept_invite(token: str, password: str) -> User:
    with unit_of_work():
        user = invited_user(token)
        set_password(user, password)
    return user
