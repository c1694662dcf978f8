"""What every credential store shares: its errors, its settings, and its secrets.

A directory's connection secret (bind password or SCIM bearer token) and its CA file
come from the environment — ``PARENT_DIRECTORY_SECRET`` or
``PARENT_DIRECTORY_SECRET_FILE``, ``PARENT_DIRECTORY_CA_FILE`` (``STUDENT_…`` for the
student portal) — never from the database, a log line or an API response.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass

from ...errors import InvalidInput
from ...models import PortalAccount, PortalPolicy


class AccountStatus(enum.StrEnum):
    ACTIVE = "active"
    LOCKED = "locked"
    DISABLED = "disabled"


class PasswordRejected(InvalidInput):
    """A chosen password that the portal's policy refuses; ``problems`` say what to change."""

    code = "password_rejected"


class DirectoryUnavailable(Exception):
    """The directory did not answer, timed out or said it is busy: nothing was changed
    that the helpdesk relies on; try again later. The message is the reason, for the
    incident's timeline (never a secret)."""


class DirectoryRefused(Exception):
    """The directory answered and will not do it — no such entry, more than one, a
    password its own policy refuses, no right to change it. Retrying cannot help."""


STORES = ("sql", "ldap", "active_directory", "scim")
# What a store looks the account up by, unless the portal names its own template.
DEFAULT_FIND = {
    "ldap": "(&(objectClass=inetOrgPerson)(uid={username}))",
    "active_directory": "(&(objectClass=user)(sAMAccountName={username}))",
    "scim": 'userName eq "{username}"',
}


@dataclass(frozen=True)
class DirectorySettings:
    """How to reach one portal's directory: the admin's settings and the environment's
    secrets together. ``repr`` never shows the secret."""

    portal: str
    store: str
    url: str
    bind_dn: str | None
    base_dn: str | None
    find: str
    password_change: str  # LDAP: "exop" or "replace"
    start_tls: bool
    ca_file: str | None
    secret: str | None

    def __repr__(self) -> str:
        return f"DirectorySettings(portal={self.portal!r}, store={self.store!r}, url={self.url!r})"


def env_name(portal: str, what: str) -> str:
    return f"{portal.upper()}_DIRECTORY_{what}"


def secret_for(portal: str, environ: dict[str, str] | None = None) -> str | None:
    """The portal's directory secret from the environment, or from the file it names."""
    env = os.environ if environ is None else environ
    value = env.get(env_name(portal, "SECRET"))
    if value:
        return value
    path = env.get(env_name(portal, "SECRET_FILE"))
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip() or None
    except OSError:
        return None  # shown as not set; the directory then refuses the bind, saying to check it


def settings_for(row: PortalPolicy) -> DirectorySettings:
    store = row.store or "sql"
    return DirectorySettings(
        portal=row.portal, store=store, url=row.directory_url or "",
        bind_dn=row.directory_bind_dn, base_dn=row.directory_base_dn,
        find=row.directory_find or DEFAULT_FIND.get(store, ""),
        password_change=row.directory_password_change or "exop",
        start_tls=bool(row.directory_start_tls),
        ca_file=os.environ.get(env_name(row.portal, "CA_FILE")) or None,
        secret=secret_for(row.portal),
    )  # fmt: skip


def account_values(account: PortalAccount) -> dict[str, str]:
    """The roster's values a find template may name."""
    owner = account.guardian or account.student
    return {
        "username": account.username or "",
        "accountNumber": account.account_number or "",
        "sourcedId": owner.sourced_id if owner is not None else "",
    }


def chosen_refused(refusal: DirectoryRefused) -> PasswordRejected:
    """A password its holder chose that the directory's own policy refused, in its words."""
    return PasswordRejected(
        f"The portal refused that password: {refusal}.",
        errors={"fields": {"password": [str(refusal)]}},
    )


def refused_for(what: str, count: int, portal: str) -> DirectoryRefused:
    """No entry, or several, for the account: a person must look (nothing is sent)."""
    if count == 0:
        return DirectoryRefused(f"no entry in the {portal} directory matches {what}")
    return DirectoryRefused(
        f"{count} entries in the {portal} directory match {what}: the find template must "
        "name exactly one"
    )
