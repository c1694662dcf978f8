"""Approving an incident's work: one ``Fulfilment`` row and the promise of its job, in the
approving transaction (SPEC §6); what the filer may see of it; lifting a revocation.

The work itself — reset, reminder, revocation and the email — is run by the jobs through
``fulfilment_run.run``.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ..errors import Conflict, NotFound
from ..extensions import db
from ..models import (
    Fulfilment,
    FulfilmentKind,
    FulfilmentState,
    Guardian,
    Incident,
    PortalAccount,
    PortalPolicy,
    User,
    utcnow,
)
from . import audit, outbox
from .audit import Event
from .credentials import store_for
from .notifications import tell_holder
from .uow import unit_of_work

KIND_FOR_TYPE = {
    "student_password_reset": FulfilmentKind.RESET,
    "parent_password_reset": FulfilmentKind.RESET,
    "username_reminder": FulfilmentKind.REMINDER,
    "access_revocation": FulfilmentKind.REVOCATION,
}
_QUEUE_FOR_KIND = {
    FulfilmentKind.RESET: "fulfilment",
    FulfilmentKind.REMINDER: "fulfilment",
    FulfilmentKind.REVOCATION: "revocations",
}


@dataclass(frozen=True)
class NewFulfilment:
    """A fulfilment just promised, as its filer sees it (the API's FulfilmentOut)."""

    kind: str
    mode: str | None
    state: str = FulfilmentState.PENDING.value
    attempts: int = 0
    last_error: None = None
    secret_expires_at: None = None
    delivered_at: None = None


def job_queue(kind: FulfilmentKind) -> str:
    """The RQ queue a kind of fulfilment runs on: revocations never wait behind resets."""
    return _QUEUE_FOR_KIND[kind]


# The fulfilment's one writer: a prebuilt Core INSERT that reads the delivery mode of the
# account's portal (its policy's; none without one, or for work that is not a reset) in
# the same statement.
_FULFILMENTS = Fulfilment.__table__
_POLICIES, _ACCOUNTS = PortalPolicy.__table__, PortalAccount.__table__
_INSERT_FULFILMENT = (
    sa.insert(_FULFILMENTS)
    .values(
        mode=sa.select(_POLICIES.c.delivery_mode)
        .join(_ACCOUNTS, _ACCOUNTS.c.portal == _POLICIES.c.portal)
        .where(_ACCOUNTS.c.id == sa.bindparam("reset_account"))
        .scalar_subquery()
    )
    .returning(_FULFILMENTS.c.id, _FULFILMENTS.c.mode)
)


def request_fulfilment(incident: Incident, class_reset_id: int | None = None) -> NewFulfilment:
    """Promise the incident's job in the current transaction (an approval, or auto_fulfil);
    one of a class reset is delivered with the rest of its class."""
    kind = KIND_FOR_TYPE[incident.type]
    if kind is not FulfilmentKind.REVOCATION:
        blocked = revoked_guardian(incident)
        if blocked is not None:
            raise Conflict(
                f"{incident.ref}: this parent's portal access was revoked "
                f"({blocked.access_revoked_reason}); an admin restores it before any reset "
                "or reminder.",
                code="access_revoked",
            )
    now = utcnow()
    written = db.session.execute(_INSERT_FULFILMENT, {
        "incident_id": incident.id, "kind": kind.value, "state": FulfilmentState.PENDING.value,
        "portal_account_id": incident.portal_account_id, "attempts": 0, "created_at": now,
        "updated_at": now, "class_reset_id": class_reset_id,
        "reset_account": incident.portal_account_id if kind is FulfilmentKind.RESET else None,
    }).one()  # fmt: skip
    outbox.promise(kind.value, written.id, job_queue(kind))
    return NewFulfilment(kind.value, written.mode)


def revoked_guardian(incident: Incident) -> Guardian | None:
    if incident.guardian_id is None:
        return None
    guardian = db.session.get(Guardian, incident.guardian_id)
    return guardian if guardian is not None and guardian.access_revoked_at else None


def restore_access(guardian_sourced_id: str, admin: User) -> Guardian:
    """Lift a revocation: the guardian's accounts sign in again and resets are allowed."""
    with unit_of_work():
        guardian = db.session.execute(
            sa.select(Guardian).where(Guardian.sourced_id == guardian_sourced_id)
            .with_for_update()
        ).scalar_one_or_none()  # fmt: skip
        if guardian is None:
            raise NotFound(f"No guardian {guardian_sourced_id!r} on the records.")
        if guardian.access_revoked_at is None:
            raise Conflict(f"{guardian_sourced_id}'s access is not revoked.", code="not_revoked")
        for account in db.session.execute(
            sa.select(PortalAccount).where(PortalAccount.guardian_id == guardian.id)
        ).scalars():
            store_for(account.portal).enable(account)
        revoked_by = guardian.access_revoked_by_incident_id
        incident = db.session.get(Incident, revoked_by) if revoked_by is not None else None
        if incident is not None:
            audit.record(Event(
                incident.id, "access_restored", incident.status, incident.status,
                f"an admin restored portal access for {guardian.full_name}", actor_id=admin.id,
            ))  # fmt: skip
            tell_holder(incident, "access_restored", "your parent portal access",
                        audience=f"guardian:{guardian.id}")  # fmt: skip
        guardian.access_revoked_at = None
        guardian.access_revoked_reason = None
        guardian.access_revoked_by_incident_id = None
    return guardian


def summary(incident_id: int) -> Fulfilment | None:
    """The incident's latest fulfilment, for the API (state and reason, never the secret)."""
    return db.session.execute(
        sa.select(Fulfilment)
        .where(Fulfilment.incident_id == incident_id)
        .order_by(Fulfilment.id.desc())
        .limit(1)
    ).scalar_one_or_none()
