"""Two-step sign-in for password accounts: a time-based one-time code (RFC 6238) from an
authenticator app after the password, or one of ten one-time recovery codes.

Required for the roles in ``MFA_REQUIRED_ROLES`` (agents and admins by default: the DfE
cyber security standards for schools ask for it on accounts with access to personal
data); anyone else may enrol too. The shared secret is kept sealed with SECRET_KEY, the
recovery codes only as digests. A code is accepted once (its time step is remembered),
and wrong codes count toward the same lockout as wrong passwords. A lost authenticator
is reset by an admin: the reset ends the user's sessions and is in the access log.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno
import sqlalchemy as sa
from flask import current_app

from ..errors import InvalidInput, NotFound
from ..extensions import db
from ..models import RecoveryCode, User, utcnow
from ..security import seal, unseal
from . import access_log
from .sign_in import SIGN_IN_REFUSED, SignInRefused, count_failure, user_for_update
from .uow import unit_of_work

ISSUER = "Portal helpdesk"
RECOVERY_CODES = 10
# 80 random bits each (16 letters of base32): a digest is as safe to keep as a token's.
_RECOVERY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_NOT_RIGHT = (
    "That code is not right. Enter the 6-digit code your authenticator app shows now, or "
    "one of your recovery codes."
)


class CodeRefused(InvalidInput):
    code = "code_refused"


def required_for(role: str) -> bool:
    return role in current_app.config["MFA_REQUIRED_ROLES"]


def enrolled(user: User) -> bool:
    return user.totp_enrolled_at is not None


def asked_of(user: User) -> bool:
    """Whether a right password is followed by a code (or by setting one up)."""
    return enrolled(user) or required_for(user.role)


@dataclass(frozen=True)
class Enrolment:
    """What an authenticator app needs: the secret as text, and the same as a QR code."""

    secret: str
    uri: str

    @property
    def grouped(self) -> str:
        """The secret in groups of four, as a person types it."""
        return " ".join(self.secret[i : i + 4] for i in range(0, len(self.secret), 4))

    def qr_svg(self) -> str:
        return str(segno.make(self.uri, error="m").svg_inline(
            scale=4, title="QR code for your authenticator app"))  # fmt: skip


def begin_enrolment(user_id: int) -> Enrolment:
    """The secret of an enrolment not yet confirmed (the same one on every visit until
    it is), or a new one. Refused once enrolled: only an admin's reset starts again."""
    with unit_of_work():
        user = _user(user_id)
        if enrolled(user):
            raise InvalidInput("Two-step sign-in is already set up for this account.")
        key = current_app.config["SECRET_KEY"]
        if user.totp_sealed is None:
            user.totp_sealed = seal(key, pyotp.random_base32())
        secret = unseal(key, user.totp_sealed)
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    return Enrolment(secret, uri)


def confirm_enrolment(user_id: int, code: str, now: datetime | None = None) -> list[str]:
    """Enrol once a first code from the app matches; returns the recovery codes, shown
    once and kept only as digests."""
    now = now or utcnow()
    with unit_of_work():
        user = _user(user_id)
        if enrolled(user) or user.totp_sealed is None:
            raise InvalidInput("Start setting up two-step sign-in again.")
        step = _matching_step(user, code, now)
        if step is None:
            raise CodeRefused("That code is not right. Enter the 6 digits your app shows "
                              "now; if they keep failing, check the phone's clock.")  # fmt: skip
        user.totp_enrolled_at = now
        user.totp_last_step = step
        codes = _new_recovery_codes(user)
        access_log.note("two_step_enrolled", access_log.user_subject(user.id),
                        actor_id=user.id)  # fmt: skip
    return codes


def check(user_id: int, code: str, now: datetime | None = None) -> User:
    """The user, once their second step passes: a current code not used before, or an
    unused recovery code (then used up). A wrong code counts toward the lockout."""
    now = now or utcnow()
    with unit_of_work():
        user = user_for_update(user_id)
        locked = user is not None and user.locked_until is not None and user.locked_until > now
        if user is None or not user.active or locked or not enrolled(user):
            raise SignInRefused(SIGN_IN_REFUSED)
        step = _matching_step(user, code, now)
        if step is not None:
            user.totp_last_step = step
            user.failed_sign_ins = 0
            return user
        recovery = _unused_recovery_code(user, code)
        if recovery is not None:
            recovery.used_at = now
            user.failed_sign_ins = 0
            left = _recovery_codes_left(user)  # (the query flushes the use first)
            access_log.note("recovery_code_used", access_log.user_subject(user.id),
                            actor_id=user.id, codes_left=left)  # fmt: skip
            return user
        count_failure(user, now)
    raise CodeRefused(CODE_NOT_RIGHT)


def reset(user_id: int, *, by: int) -> User:
    """An admin's reset of a lost second factor: the secret and recovery codes go, every
    session of the user ends, and they set it up again at their next sign-in."""
    with unit_of_work():
        user = _user(user_id)
        if user.id == by:
            raise InvalidInput("Ask another admin to reset your own two-step sign-in.")
        had = enrolled(user)
        user.totp_sealed = user.totp_enrolled_at = user.totp_last_step = None
        user.session_version += 1
        db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
        access_log.note("two_step_reset", access_log.user_subject(user.id), actor_id=by,
                        was_enrolled=had)  # fmt: skip
    return user


def recovery_codes_left(user_id: int) -> int:
    return _recovery_codes_left(_user(user_id))


def _user(user_id: int) -> User:
    user = user_for_update(user_id)
    if user is None:
        raise NotFound(f"No user {user_id}.")
    return user


def _matching_step(user: User, code: str, now: datetime) -> int | None:
    """The time step (now, or one either side for a slow typist or clock) whose code
    this is, if it is later than the last one accepted."""
    digits = re.sub(r"\s", "", code or "")
    if user.totp_sealed is None or not re.fullmatch(r"\d{6}", digits):
        return None
    totp = pyotp.TOTP(unseal(current_app.config["SECRET_KEY"], user.totp_sealed))
    current = totp.timecode(now)
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), digits):
            return step if step > (user.totp_last_step or -1) else None
    return None


def _digest(code: str) -> str:
    normalised = re.sub(r"[\s-]", "", code or "").upper()
    return hashlib.sha256(normalised.encode()).hexdigest()


def _new_recovery_codes(user: User) -> list[str]:
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    db.session.add_all(RecoveryCode(user_id=user.id, code_digest=_digest(c)) for c in codes)
    return codes


def _unused_recovery_code(user: User, code: str) -> RecoveryCode | None:
    return db.session.execute(
        sa.select(RecoveryCode).where(
            RecoveryCode.user_id == user.id, RecoveryCode.code_digest == _digest(code),
            RecoveryCode.used_at.is_(None),
        ).with_for_update()
    ).scalar_one_or_none()  # fmt: skip


def _recovery_codes_left(user: User) -> int:
    return int(db.session.execute(
        sa.select(sa.func.count()).select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    ).scalar_one())  # fmt: skip
