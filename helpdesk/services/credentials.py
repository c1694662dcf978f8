"""Where portal credentials live, behind one interface (SPEC §6.2).

The jobs speak only to ``CredentialStore``. The built-in ``SqlCredentialStore`` keeps
argon2 hashes on the portal account rows; a directory — LDAP, Active Directory, SCIM 2.0
(helpdesk/services/stores) — is another class with the same methods, chosen per portal
by an admin (``helpdesk portals set PORTAL --store …``), and the jobs do not change. The
reset-link tokens are the helpdesk's own and live in its database whichever store holds
the passwords.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy as sa

from ..domain.passwords import PasswordPolicy, PolicyError
from ..errors import InvalidInput
from ..extensions import db
from ..models import PasswordHistory, PortalAccount, PortalPolicy, utcnow
from ..security import hash_password, issue_reset_token, split_reset_token, verify_password
from .stores.base import (
    AccountStatus,
    DirectoryRefused,
    DirectoryUnavailable,
    PasswordRejected,
    settings_for,
)
from .stores.ldap import ActiveDirectoryStore, LdapStore
from .stores.scim import ScimStore

__all__ = [
    "AccountStatus",
    "CredentialStore",
    "DirectoryRefused",
    "DirectoryUnavailable",
    "PasswordRejected",
    "SqlCredentialStore",
    "store_for",
]


class CredentialStore(Protocol):
    """What a fulfilment needs from the system that holds portal passwords."""

    def set_one_time_password(
        self, account: PortalAccount, password: str, expires_at: datetime
    ) -> None:
        """Replace the password with one that must be changed at first use and expires."""

    def set_password(self, account: PortalAccount, password: str) -> None:
        """Set a password its holder chose; raise PasswordRejected if the policy refuses it."""

    def unlock(self, account: PortalAccount) -> None:
        """Clear a lock left by failed sign-ins."""

    def disable(self, account: PortalAccount) -> None:
        """Stop the account signing in at all (revocation)."""

    def enable(self, account: PortalAccount) -> None:
        """Let a disabled account sign in again (an admin restoring access)."""

    def username(self, account: PortalAccount) -> str:
        """The name the holder signs in with."""

    def check(self) -> None:
        """Raise DirectoryUnavailable when the store cannot be reached (for /readyz)."""


def policy_row(portal: str) -> PortalPolicy:
    row = db.session.get(PortalPolicy, portal)
    return row if row is not None else PortalPolicy(portal=portal)


def password_policy(row: PortalPolicy) -> PasswordPolicy:
    return PasswordPolicy(
        min_length=row.min_length if row.min_length is not None else 8,
        upper=row.require_upper is not False,
        lower=row.require_lower is not False,
        digit=row.require_digit is not False,
        symbol=bool(row.require_symbol),
        history=row.history or 0,
    )


def owner_names(account: PortalAccount) -> list[str]:
    """The words a password may not contain: the holder's names and username."""
    owner = account.guardian or account.student
    names = [account.username]
    if owner is not None:
        names += [owner.given_name, owner.family_name]
    return names


class SqlCredentialStore:
    """The portal accounts in the helpdesk's own database (the default store)."""

    def set_one_time_password(
        self, account: PortalAccount, password: str, expires_at: datetime
    ) -> None:
        self._replace(account, password, one_time=True, expires_at=expires_at)
        account.reset_selector = account.reset_token_hash = account.reset_expires_at = None

    def set_password(self, account: PortalAccount, password: str) -> None:
        policy = password_policy(policy_row(account.portal))
        previous = self._previous_hashes(account, policy.history)
        problems = policy.problems(
            password, names=owner_names(account), previous=previous,
            matches_previous=lambda old, new: verify_password(old, new),
        )  # fmt: skip
        if problems:
            raise PasswordRejected(" ".join(problems), errors={"fields": {"password": problems}})
        self._replace(account, password, one_time=False, expires_at=None)

    def unlock(self, account: PortalAccount) -> None:
        if account.status == AccountStatus.LOCKED:
            account.status = AccountStatus.ACTIVE.value

    def disable(self, account: PortalAccount) -> None:
        account.status = AccountStatus.DISABLED.value
        account.reset_selector = account.reset_token_hash = account.reset_expires_at = None

    def enable(self, account: PortalAccount) -> None:
        if account.status == AccountStatus.DISABLED:
            account.status = AccountStatus.ACTIVE.value

    def username(self, account: PortalAccount) -> str:
        return account.username

    def check(self) -> None:
        """The helpdesk's own database: /readyz checks it already."""

    # What the portal itself does with the store; the tests and the reset page use it.

    def sign_in(self, account_number: str, password: str) -> SignIn:
        """A sign-in attempt: a one-time password works once, to choose a new password."""
        account = _account(account_number)
        if account is None or account.status != AccountStatus.ACTIVE:
            verify_password(None, password)  # the same time for an unknown account
            return SignIn.REFUSED
        if not verify_password(account.password_hash, password):
            return SignIn.REFUSED
        if account.password_one_time:
            expires = account.password_expires_at
            account.password_hash = None  # used: it opens the change-password step once
            if expires is not None and expires <= utcnow():
                return SignIn.REFUSED
            return SignIn.CHANGE_REQUIRED
        return SignIn.SIGNED_IN

    def _previous_hashes(self, account: PortalAccount, count: int) -> list[str]:
        """The password in use (unless one-time) and the ``count`` before it."""
        if count <= 0:
            return []
        rows = db.session.execute(
            sa.select(PasswordHistory.password_hash)
            .where(PasswordHistory.account_id == account.id)
            .order_by(PasswordHistory.id.desc())
            .limit(count)
        ).scalars()
        current = [account.password_hash] if account.password_hash else []
        if account.password_one_time:
            current = []  # not the holder's choice, and usable only once
        return current + list(rows)

    def _replace(
        self, account: PortalAccount, password: str, *, one_time: bool,
        expires_at: datetime | None,
    ) -> None:  # fmt: skip
        # One-time passwords are not the holder's choice; only chosen ones count as history.
        if account.password_hash and not account.password_one_time:
            db.session.add(
                PasswordHistory(account_id=account.id, password_hash=account.password_hash)
            )
        account.password_hash = hash_password(password)
        account.password_one_time = account.must_change_password = one_time
        account.password_expires_at = expires_at
        account.password_set_at = utcnow()


class SignIn(enum.StrEnum):
    SIGNED_IN = "signed_in"
    CHANGE_REQUIRED = "change_required"
    REFUSED = "refused"


def store_for(portal: str) -> CredentialStore:
    """The store holding ``portal``'s passwords, as its policy names it."""
    settings = settings_for(policy_row(portal))
    if settings.store == "ldap":
        return LdapStore(settings)
    if settings.store == "active_directory":
        return ActiveDirectoryStore(settings)
    if settings.store == "scim":
        return ScimStore(settings)
    return SqlCredentialStore()


def _account(account_number: str) -> PortalAccount | None:
    return db.session.execute(
        sa.select(PortalAccount).where(
            PortalAccount.account_number == account_number.strip().upper(),
            PortalAccount.active.is_(True),
        )
    ).scalar_one_or_none()


def issue_reset_link(account: PortalAccount, lifetime: timedelta) -> tuple[str, datetime]:
    """A new single-use reset link token for the account; any earlier one stops working."""
    token = issue_reset_token()
    expires_at = utcnow() + lifetime
    account.reset_selector = token.selector
    account.reset_token_hash = token.verifier_hash
    account.reset_expires_at = expires_at
    return token.token, expires_at


_NO_LINK = (
    "This link has expired or has already been used. Ask the school office to request a new one."
)


class LinkNotUsable(InvalidInput):
    code = "link_not_usable"


def reset_link_account(token: str, *, for_update: bool = False) -> PortalAccount:
    """The account a reset link can still reset, or LinkNotUsable.

    An unknown, expired, used or voided token all give the same answer after the same
    work, so the page reveals nothing about which tokens exist.
    """
    parts = split_reset_token(token)
    account = None
    if parts is not None:
        query = sa.select(PortalAccount).where(PortalAccount.reset_selector == parts[0])
        account = db.session.execute(
            query.with_for_update() if for_update else query
        ).scalar_one_or_none()
    verifier = parts[1] if parts else token
    valid = verify_password(account.reset_token_hash if account else None, verifier)
    if (
        account is None
        or not valid
        or account.status == AccountStatus.DISABLED
        or account.reset_expires_at is None
        or account.reset_expires_at <= utcnow()
    ):
        raise LinkNotUsable(_NO_LINK)
    return account


def complete_reset(token: str, password: str) -> PortalAccount:
    """Set the password a reset link's holder chose; the link then stops working."""
    account = reset_link_account(token, for_update=True)
    store = store_for(account.portal)
    if not isinstance(store, SqlCredentialStore):
        # The portal's rules first; the directory then applies its own (history, quality).
        problems = password_policy(policy_row(account.portal)).problems(
            password, names=owner_names(account)
        )
        if problems:
            raise PasswordRejected(" ".join(problems), errors={"fields": {"password": problems}})
    store.set_password(account, password)
    account.reset_selector = account.reset_token_hash = account.reset_expires_at = None
    store.unlock(account)
    return account


def check_policy(row: PortalPolicy) -> None:
    """Refuse a policy no password could meet, with the reason."""
    try:
        password_policy(row)
    except PolicyError as error:
        raise InvalidInput(str(error), code="invalid_policy") from None
