"""Using a reset link: the holder's chosen password, and the notice that it changed."""

from __future__ import annotations

import sqlalchemy as sa

from ..extensions import db
from ..models import DeliveryMode, Fulfilment
from .credentials import complete_reset
from .notifications import notify
from .uow import unit_of_work


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
