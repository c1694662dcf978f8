"""Portal passwords behind a SCIM 2.0 service provider (RFC 7643/7644): the parent
portals and identity platforms that take account changes over SCIM.

The account is found with a filter (``userName eq "…"``, escaped per RFC 7644) and
changed with ``PATCH /Users/{id}``: ``password`` to reset, ``active`` to revoke and
restore. SCIM's core schema has no "must change at next sign-in" and no lockout, so a
one-time password is only as one-time as the provider makes it, and unlocking is the
provider's own affair (docs/directories.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

from ...domain.directory_queries import scim_filter
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

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
TIMEOUT = (5, 10)  # seconds to connect, and to answer


class ScimStore:
    """A SCIM 2.0 service provider at ``directory_url`` (the base, e.g. …/scim/v2)."""

    def __init__(self, settings: DirectorySettings) -> None:
        self.settings = settings

    def set_one_time_password(
        self, account: PortalAccount, password: str, expires_at: datetime
    ) -> None:
        self._patch(self._user(account)["id"], "password", password)
        account.must_change_password = True

    def set_password(self, account: PortalAccount, password: str) -> None:
        try:
            self._patch(self._user(account)["id"], "password", password)
        except DirectoryRefused as refusal:
            raise chosen_refused(refusal) from None
        account.must_change_password = False

    def unlock(self, account: PortalAccount) -> None:
        self._user(account)  # it must exist; SCIM itself has no lock to clear
        if account.status == AccountStatus.LOCKED:
            account.status = AccountStatus.ACTIVE.value

    def disable(self, account: PortalAccount) -> None:
        self._patch(self._user(account)["id"], "active", False)
        account.status = AccountStatus.DISABLED.value

    def enable(self, account: PortalAccount) -> None:
        self._patch(self._user(account)["id"], "active", True)
        if account.status == AccountStatus.DISABLED:
            account.status = AccountStatus.ACTIVE.value

    def username(self, account: PortalAccount) -> str:
        return str(self._user(account).get("userName") or account.username)

    def check(self) -> None:
        """For /readyz: the provider answers, and takes the token."""
        self._call("GET", "/ServiceProviderConfig")

    # -- HTTP -------------------------------------------------------------------------

    def _user(self, account: PortalAccount) -> dict[str, Any]:
        query = scim_filter(self.settings.find, account_values(account))
        found = self._call("GET", "/Users", params={"filter": query, "count": 2})
        resources = found.get("Resources") or []
        total = int(found.get("totalResults", len(resources)))
        if total != 1 or len(resources) != 1:
            raise refused_for(f"the portal account {account.account_number}", total,
                              self.settings.portal)  # fmt: skip
        user: dict[str, Any] = resources[0]
        return user

    def _patch(self, user_id: str, path: str, value: Any) -> None:
        body = {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": path,
                                                         "value": value}]}  # fmt: skip
        self._call("PATCH", f"/Users/{quote(str(user_id), safe='')}", json=body)

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        settings = self.settings
        where = f"the {settings.portal} SCIM service"
        headers = {"Accept": "application/scim+json"}
        if settings.secret:
            headers["Authorization"] = f"Bearer {settings.secret}"
        if "json" in kwargs:
            headers["Content-Type"] = "application/scim+json"
        try:
            response = requests.request(
                method, settings.url.rstrip("/") + path, headers=headers, timeout=TIMEOUT,
                verify=settings.ca_file or True, allow_redirects=False, **kwargs,
            )  # fmt: skip
        except requests.RequestException as error:
            raise DirectoryUnavailable(f"{where} did not answer ({type(error).__name__})") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise DirectoryUnavailable(
                f"{where} answered {response.status_code}{_detail(response)}"
            )
        if response.status_code == 401:
            raise DirectoryUnavailable(
                f"{where} refused the helpdesk's token (401); check "
                f"{settings.portal.upper()}_DIRECTORY_SECRET"
            )
        if response.status_code >= 400:
            raise DirectoryRefused(f"{where} answered {response.status_code}{_detail(response)}")
        if not response.content:
            return {}
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            raise DirectoryUnavailable(
                f"{where} answered with something that is not JSON"
            ) from None
        return body


def _detail(response: requests.Response) -> str:
    """The server's own words from a SCIM error (RFC 7644 §3.12), shortened."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    words = " ".join(str(body[k]) for k in ("scimType", "detail") if body.get(k))
    return f": {words[:200]}" if words else ""
