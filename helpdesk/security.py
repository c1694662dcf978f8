"""Hashing of passwords, PINs and API tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

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


# A reset link's token: a selector to find the account by index, and a verifier of
# 192 random bits checked against its argon2 hash, so a stolen table yields no link.
@dataclass(frozen=True)
class ResetToken:
    token: str  # "<selector>.<verifier>", only ever in the email
    selector: str
    verifier_hash: str


def issue_reset_token() -> ResetToken:
    selector, verifier = secrets.token_urlsafe(12), secrets.token_urlsafe(24)
    return ResetToken(f"{selector}.{verifier}", selector, hash_password(verifier))


def split_reset_token(token: str) -> tuple[str, str] | None:
    selector, dot, verifier = token.strip().partition(".")
    if not dot or not selector or not verifier or len(selector) > 32:
        return None
    return selector, verifier


class SealError(ValueError):
    """A sealed secret that this SECRET_KEY did not seal, or that was altered."""


@cache
def _sealer(secret_key: str) -> Fernet:
    key = HKDF(algorithm=SHA256(), length=32, salt=None, info=b"helpdesk fulfilment seal")
    return Fernet(base64.urlsafe_b64encode(key.derive(secret_key.encode())))


def seal(secret_key: str, secret: str) -> str:
    """Encrypt a secret that must survive until it is delivered (authenticated, AES-128)."""
    return _sealer(secret_key).encrypt(secret.encode()).decode()


def unseal(secret_key: str, sealed: str) -> str:
    try:
        return _sealer(secret_key).decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise SealError("the sealed secret does not open with this SECRET_KEY") from None
