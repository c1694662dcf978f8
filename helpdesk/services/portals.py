"""Each portal's password policy and delivery mode, as admins set them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..domain.directory_queries import TemplateError, check_template
from ..errors import InvalidInput
from ..extensions import db
from ..models import DeliveryMode, PortalPolicy
from .credentials import check_policy
from .stores.base import DEFAULT_FIND, STORES, env_name, settings_for
from .uow import unit_of_work

_COLUMNS = {
    "min_length": "min_length", "upper": "require_upper", "lower": "require_lower",
    "digit": "require_digit", "symbol": "require_symbol", "history": "history",
    "mode": "delivery_mode", "lifetime_minutes": "secret_lifetime_minutes",
    "store": "store", "url": "directory_url", "bind_dn": "directory_bind_dn",
    "base_dn": "directory_base_dn", "find": "directory_find",
    "password_change": "directory_password_change", "start_tls": "directory_start_tls",
    "sign_in_url": "sign_in_url",
}  # fmt: skip


def policies() -> list[PortalPolicy]:
    return list(db.session.execute(sa.select(PortalPolicy).order_by(PortalPolicy.portal)).scalars())


def update_policy(portal: str, changes: dict[str, Any]) -> PortalPolicy:
    """Change a portal's policy; a policy no password could meet is refused, nothing stored."""
    with unit_of_work():  # a refusal rolls the changes back
        row = db.session.get(PortalPolicy, portal)
        if row is None:
            row = PortalPolicy(portal=portal)
            db.session.add(row)
        for name, value in changes.items():
            setattr(row, _COLUMNS[name], value)
        if row.delivery_mode not in {m.value for m in DeliveryMode}:
            raise InvalidInput("mode is one_time_password or reset_link.", code="invalid_policy")
        if row.sign_in_url and not row.sign_in_url.startswith(("https://", "http://")):
            raise InvalidInput(
                "The portal's sign-in address starts with https://, like "
                "https://parents.example.org/sign-in.", code="invalid_policy",
            )  # fmt: skip
        lifetime = row.secret_lifetime_minutes
        if lifetime is not None and not 5 <= lifetime <= 20160:
            raise InvalidInput("lifetime is between 5 minutes and 14 days.", code="invalid_policy")
        check_policy(row)
        _check_store(row)
    return row


def _check_store(row: PortalPolicy) -> None:
    """Refuse a directory setting that could never work, saying what is missing."""
    store = row.store or "sql"
    if store not in STORES:
        raise InvalidInput(f"store is one of {', '.join(STORES)}.", code="invalid_store")
    if store == "sql":
        return
    url = row.directory_url or ""
    schemes = ("https://", "http://") if store == "scim" else ("ldaps://", "ldap://")
    if not url.startswith(schemes):
        raise InvalidInput(f"A {store} store needs --url starting {' or '.join(schemes)}.",
                           code="invalid_store")  # fmt: skip
    if store == "active_directory" and not url.startswith("ldaps://"):
        raise InvalidInput("Active Directory takes passwords only over LDAPS: use ldaps://.",
                           code="invalid_store")  # fmt: skip
    if store != "scim" and not (row.directory_bind_dn and row.directory_base_dn):
        raise InvalidInput(f"A {store} store needs --bind-dn and --base-dn.", code="invalid_store")
    try:
        check_template(row.directory_find or DEFAULT_FIND[store])
    except TemplateError as error:
        raise InvalidInput(f"--find: {error}.", code="invalid_store") from None


def describe_store(row: PortalPolicy) -> str:
    """The store as an admin reads it: where, and whether its secrets are set (never them)."""
    settings = settings_for(row)
    if settings.store == "sql":
        return "sql (this database)"
    said = "set" if settings.secret else "NOT SET"
    ca = f", CA file {settings.ca_file}" if settings.ca_file else ""
    return (
        f"{settings.store} at {settings.url}, find {settings.find!r}, "
        f"{env_name(row.portal, 'SECRET')} {said}{ca}"
    )
