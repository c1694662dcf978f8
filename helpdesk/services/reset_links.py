"""Using a reset link: what the page shows first, the holder's chosen password, and the
notice that it changed."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ..extensions import db
from ..models import DeliveryMode, Fulfilment
from .credentials import (
    complete_reset,
    owner_names,
    password_policy,
    policy_row,
    reset_link_account,
)
from .notifications import notify
from .uow import unit_of_work


@dataclass(frozen=True)
class OpenLink:
    """What the reset page shows for a link that still works."""

    portal: str
    rules: list[str]  # what the new password must be, before any attempt
    sign_in_url: str | None
    unmet: list[str]  # what a password typed now lacks (all of it at once)


def open_link(token: str, password: str | None = None) -> OpenLink:
    """The link's portal and rules, or LinkNotUsable (the same for unknown, expired and
    used links); with ``password``, every rule it does not meet."""
    account = reset_link_account(token)
    row = policy_row(account.portal)
    policy = password_policy(row)
    unmet = policy.problems(password, names=owner_names(account)) if password else []
    return OpenLink(account.portal, policy.rules(), row.sign_in_url, unmet)


def choose_password(token: str, password: str) -> str:
    """Set the password for the link's account; returns the portal. Raises InvalidInput."""
    with unit_of_work():
        account = complete_reset(token, password)
        origin = db.session.execute(
            sa.select(Fulfilment.incident_id)
            .where(
                Fulfilment.portal_account_id == account.id,
                Fulfilment.mode == DeliveryMode.RESET_LINK.value,
            )
            .order_by(Fulfilment.id.desc())
            .limit(1)
        ).scalar()
        if origin is not None and account.guardian_id is not None:
            # Told at the address on file, with no secret: a change they did not make shows.
            owner = account.guardian
            notify(origin, "password_changed", "guardian", portal=account.portal,
                   name=owner.full_name if owner else "")  # fmt: skip
    return account.portal
