"""Hashing of passwords, PINs and API tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP's Password Storage Cheat Sheet: argon2id, 19 MiB, 2 iterations, 1 lane.
password_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.ID)

# A six-digit PIN has a million values, so no work factor protects it once the hash is
# out: the pepper (an HMAC key kept outside the database) does. Argon2id over the
# peppered digest adds a per-row salt and some cost, light enough to hash the ~90,000
# PINs of a 100,000-student import in well under a minute (bench/README.md).
_pin_hasher = PasswordHasher(time_cost=1, memory_cost=512, parallelism=1, type=Type.ID)


@cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    """A hash to verify against when there is none, so a miss takes as long as a hit."""
    return hasher.hash("placeholder")


def _peppered(pepper: str, account_number: str, pin: str) -> str:
    message = f"{account_number}\x00{pin.strip()}".encode()
    return hmac.new(pepper.encode(), message, hashlib.sha256).hexdigest()


def hash_pin(pepper: str, account_number: str, pin: str) -> str:
    return _pin_hasher.hash(_peppered(pepper, account_number, pin))


def verify_pin(pepper: str, account_number: str, pin_hash: str | None, pin: str) -> bool:
    """Check a PIN; an unknown account costs the same time as a known one."""
    try:
        known = _pin_hasher.verify(
            pin_hash or _dummy_hash(_pin_hasher), _peppered(pepper, account_number, pin)
        )
        return known and pin_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def hash_password(password: str) -> str:
    return password_hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        known = password_hasher.verify(password_hash or _dummy_hash(password_hasher), password)
        return known and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


TOKEN_PREFIX = "hdk_"  # noqa: S105 - a marker, not a secret


@dataclass(frozen=True)
class IssuedToken:
    token: str  # shown once to the person it is issued for, never stored
    digest: str
    prefix: str


def token_digest(token: str) -> str:
    # Tokens carry 256 random bits, so a fast digest is safe and lets every request
    # find its token by index instead of running a password hash.
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token() -> IssuedToken:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return IssuedToken(token=token, digest=token_digest(token), prefix=token[:12])
