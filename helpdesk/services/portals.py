"""Each portal's password policy and delivery mode, as admins set them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..errors import InvalidInput
from ..extensions import db
from ..models import DeliveryMode, PortalPolicy
from .credentials import check_policy

_COLUMNS = {
    "min_length": "min_length", "upper": "require_upper", "lower": "require_lower",
    "digit": "require_digit", "symbol": "require_symbol", "history": "history",
    "mode": "delivery_mode", "lifetime_minutes": "secret_lifetime_minutes",
}  # fmt: skip


def policies() -> list[PortalPolicy]:
    return list(db.session.execute(sa.select(PortalPolicy).order_by(PortalPolicy.portal)).scalars())


def update_policy(portal: str, changes: dict[str, Any]) -> PortalPolicy:
    """Change a portal's policy; a policy no password could meet is refused, nothing stored."""
    row = db.session.get(PortalPolicy, portal)
    if row is None:
        row = PortalPolicy(portal=portal)
        db.session.add(row)
    for name, value in changes.items():
        setattr(row, _COLUMNS[name], value)
    if row.delivery_mode not in {m.value for m in DeliveryMode}:
        db.session.rollback()
        raise InvalidInput("mode is one_time_password or reset_link.", code="invalid_policy")
    if row.secret_lifetime_minutes is not None and not 5 <= row.secret_lifetime_minutes <= 20160:
        db.session.rollback()
        raise InvalidInput("lifetime is between 5 minutes and 14 days.", code="invalid_policy")
    try:
        check_policy(row)
    except InvalidInput:
        db.session.rollback()
        raise
    db.session.commit()
    return row
