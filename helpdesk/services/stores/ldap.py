"""Portal passwords in an LDAP directory: OpenLDAP with the ppolicy overlay, and Active
Directory over LDAPS.

ldap3 is the client: pure Python (no OpenLDAP headers to build against, unlike
python-ldap), synchronous like the jobs, with RFC 3062 Password Modify built in. Each
operation opens one connection, binds as the portal's service account, finds the
roster's account by the portal's template, changes it and unbinds — a job runs a few a
minute, and a connection held between jobs would only go stale.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import ldap3
from ldap3.core import exceptions as ldap_errors
from ldap3.core.results import (
    RESULT_BUSY,
    RESULT_CONSTRAINT_VIOLATION,
    RESULT_NO_SUCH_ATTRIBUTE,
    RESULT_UNAVAILABLE,
    RESULT_UNWILLING_TO_PERFORM,
)

from ...domain.directory_queries import ldap_filter
from ...models import PortalAccount
from .base import (
    AccountStatus,
    DirectoryRefused,
    DirectorySettings,
    DirectoryUnavailable,
    account_values,
    chosen_refused,
    refused_for,
)

CONNECT_SECONDS = 5
ANSWER_SECONDS = 10
# ppolicy: an administrative lock that no number of good passwords lifts (RFC draft
# behera: pwdAccountLockedTime "000001010000Z" locks the account for good).
LOCKED_FOR_GOOD = "000001010000Z"
ACCOUNTDISABLE = 0x2  # Active Directory's userAccountControl bit

# What a transport failure looks like from ldap3: no answer, a dropped connection, TLS.
_UNREACHABLE = (
    ldap_errors.LDAPCommunicationError,
    ldap_errors.LDAPSessionTerminatedByServerError,
    ldap_errors.LDAPSocketOpenError,
    ldap_errors.LDAPStartTLSError,
    ldap_errors.LDAPResponseTimeoutError,
    TimeoutError,
    ConnectionError,
)


class LdapStore:
    """OpenLDAP (or any RFC 3062 directory) with the ppolicy overlay."""

    username_attribute = "uid"

    def __init__(self, settings: DirectorySettings) -> None:
        self.settings = settings

    # -- CredentialStore ------------------------------------------------------------

    def set_one_time_password(
        self, account: PortalAccount, password: str, expires_at: datetime
    ) -> None:
        with self._entry(account) as (conn, dn, _):
            self._set(conn, dn, password)
            self._must_change(conn, dn)
        account.must_change_password = True

    def set_password(self, account: PortalAccount, password: str) -> None:
        with self._entry(account) as (conn, dn, _):
            try:
                self._set(conn, dn, password)
            except DirectoryRefused as refusal:
                # The directory's own policy (history, quality) said no: the holder
                # chooses another, told why in the directory's words.
                raise chosen_refused(refusal) from None
        account.must_change_password = False

    def unlock(self, account: PortalAccount) -> None:
        with self._entry(account) as (conn, dn, _):
            self._unlock(conn, dn)
        if account.status == AccountStatus.LOCKED:
            account.status = AccountStatus.ACTIVE.value

    def disable(self, account: PortalAccount) -> None:
        with self._entry(account) as (conn, dn, entry):
            self._disable(conn, dn, entry)
        account.status = AccountStatus.DISABLED.value

    def enable(self, account: PortalAccount) -> None:
        with self._entry(account) as (conn, dn, entry):
            self._enable(conn, dn, entry)
        if account.status == AccountStatus.DISABLED:
            account.status = AccountStatus.ACTIVE.value

    def username(self, account: PortalAccount) -> str:
        with self._entry(account) as (_, _, entry):
            found = entry.get(self.username_attribute)
        if isinstance(found, list):
            found = found[0] if found else None
        return str(found or account.username)

    def check(self) -> None:
        """Connect and bind, for /readyz: raises DirectoryUnavailable when it cannot."""
        with self._connection():
            pass

    # -- What OpenLDAP's ppolicy needs ----------------------------------------------

    attributes: tuple[str, ...] = ("uid",)

    def _set(self, conn: ldap3.Connection, dn: str, password: str) -> None:
        if self.settings.password_change == "replace":  # noqa: S105 - a mode's name
            self._modify(conn, dn, {"userPassword": [(ldap3.MODIFY_REPLACE, [password])]})
        else:
            self._run(lambda: conn.extend.standard.modify_password(dn, new_password=password))

    def _must_change(self, conn: ldap3.Connection, dn: str) -> None:
        # pwdMustChange makes the Password Modify set this itself; a replace does not.
        self._modify(conn, dn, {"pwdReset": [(ldap3.MODIFY_REPLACE, ["TRUE"])]})

    def _unlock(self, conn: ldap3.Connection, dn: str) -> None:
        self._modify(conn, dn, {"pwdAccountLockedTime": [(ldap3.MODIFY_DELETE, [])]},
                     absent_is_fine=True)  # fmt: skip

    def _disable(self, conn: ldap3.Connection, dn: str, entry: dict[str, Any]) -> None:
        locked = {"pwdAccountLockedTime": [(ldap3.MODIFY_REPLACE, [LOCKED_FOR_GOOD])]}
        self._modify(conn, dn, locked)

    def _enable(self, conn: ldap3.Connection, dn: str, entry: dict[str, Any]) -> None:
        self._unlock(conn, dn)

    # -- Connections, look-ups and errors -------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[ldap3.Connection]:
        settings = self.settings
        parts = urlsplit(settings.url)
        secure = parts.scheme == "ldaps"
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=settings.ca_file,
                        version=ssl.PROTOCOL_TLS_CLIENT)  # fmt: skip
        server = ldap3.Server(
            parts.hostname or "", port=parts.port or (636 if secure else 389), use_ssl=secure,
            tls=tls, connect_timeout=CONNECT_SECONDS, get_info=ldap3.NONE,
        )  # fmt: skip
        conn = ldap3.Connection(
            server, user=settings.bind_dn, password=settings.secret,
            receive_timeout=ANSWER_SECONDS, raise_exceptions=True,
            auto_bind=ldap3.AUTO_BIND_NONE,
        )  # fmt: skip
        try:
            self._run(conn.open)
            # Without it, Nagle's algorithm meets the server's delayed ACK after the TLS
            # handshake: 40 ms of nothing on every bind (bench/README.md).
            conn.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if settings.start_tls and not secure:
                self._run(conn.start_tls)
            try:
                self._run(conn.bind)
            except DirectoryRefused as refusal:
                # The service account's bind: an operator's to fix, and retrying after
                # they have is right, so it counts as the directory being unavailable.
                raise DirectoryUnavailable(
                    f"the {settings.portal} directory refused the helpdesk's bind ({refusal}); "
                    f"check {settings.portal.upper()}_DIRECTORY_SECRET"
                ) from None
            yield conn
        finally:
            with contextlib.suppress(Exception):  # closing a connection that already broke
                conn.unbind()

    @contextmanager
    def _entry(self, account: PortalAccount) -> Iterator[tuple[ldap3.Connection, str, Any]]:
        """The account's entry: (connection, DN, attributes); exactly one, or refused."""
        query = ldap_filter(self.settings.find, account_values(account))
        with self._connection() as conn:
            self._run(lambda: conn.search(
                self.settings.base_dn or "", query, search_scope=ldap3.SUBTREE,
                attributes=list(self.attributes), size_limit=2,
            ))  # fmt: skip
            found = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
            if len(found) != 1:
                raise refused_for(f"the portal account {account.account_number}", len(found),
                                  self.settings.portal)  # fmt: skip
            yield conn, found[0]["dn"], dict(found[0].get("attributes") or {})

    def _modify(
        self, conn: ldap3.Connection, dn: str, changes: dict[str, Any], *,
        absent_is_fine: bool = False,
    ) -> None:  # fmt: skip
        try:
            self._run(lambda: conn.modify(dn, changes))
        except DirectoryRefused:
            if absent_is_fine and conn.result.get("result") == RESULT_NO_SUCH_ATTRIBUTE:
                return
            raise

    def _run(self, operation: Any) -> Any:
        """Run one ldap3 call, its failures turned into the store's two errors."""
        where = f"the {self.settings.portal} directory"
        try:
            return operation()
        except _UNREACHABLE as error:
            raise DirectoryUnavailable(f"{where} did not answer ({type(error).__name__})") from None
        except ldap_errors.LDAPOperationResult as error:
            words = (error.message or error.description or "").strip()
            reason = f"{where} said {error.description} ({error.result})" + (
                f": {words}" if words and words != error.description else "")  # fmt: skip
            if error.result in (RESULT_BUSY, RESULT_UNAVAILABLE):
                raise DirectoryUnavailable(reason) from None
            raise DirectoryRefused(reason) from None
        except ldap_errors.LDAPException as error:
            raise DirectoryUnavailable(f"{where}: {type(error).__name__}") from None


class ActiveDirectoryStore(LdapStore):
    """Active Directory (or Samba as a domain controller), over LDAPS: AD takes a new
    password only on an encrypted connection."""

    username_attribute = "sAMAccountName"
    attributes = ("sAMAccountName", "userAccountControl")

    def _set(self, conn: ldap3.Connection, dn: str, password: str) -> None:
        quoted = f'"{password}"'.encode("utf-16-le")
        try:
            self._modify(conn, dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE, [quoted])]})
        except DirectoryRefused as refusal:
            if conn.result.get("result") in (RESULT_CONSTRAINT_VIOLATION,
                                              RESULT_UNWILLING_TO_PERFORM):  # fmt: skip
                raise DirectoryRefused(
                    f"the domain's password policy refused the password ({refusal})"
                ) from None
            raise

    def _must_change(self, conn: ldap3.Connection, dn: str) -> None:
        self._modify(conn, dn, {"pwdLastSet": [(ldap3.MODIFY_REPLACE, ["0"])]})

    def _unlock(self, conn: ldap3.Connection, dn: str) -> None:
        self._modify(conn, dn, {"lockoutTime": [(ldap3.MODIFY_REPLACE, ["0"])]})

    def _disable(self, conn: ldap3.Connection, dn: str, entry: dict[str, Any]) -> None:
        flags = _first(entry.get("userAccountControl"), 512) | ACCOUNTDISABLE
        self._modify(conn, dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [str(flags)])]})

    def _enable(self, conn: ldap3.Connection, dn: str, entry: dict[str, Any]) -> None:
        flags = _first(entry.get("userAccountControl"), 512) & ~ACCOUNTDISABLE
        self._modify(conn, dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [str(flags)])]})


def _first(value: Any, default: int) -> int:
    """An attribute's value as a number: ldap3 hands lists when it knows no schema."""
    if isinstance(value, list):
        value = value[0] if value else None
    return int(value) if value is not None else default
