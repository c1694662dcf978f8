"""Running an approved incident: reset, reminder, revocation, and the emails (SPEC §6).

Each approval becomes one ``Fulfilment`` row and an outbox promise, in the approving
transaction. The jobs in ``workers/`` call ``run`` with the fulfilment id; ``run``
reloads everything, locks the row and moves it through

    pending -> credential_set -> delivered
                      |-> delivery_failed (retried with backoff) -> abandoned

so a retried or duplicated job neither resets twice nor sends a different secret: the
secret is sealed on the row between being set and being delivered, and wiped after.
The recipient is read from the records at send time, never from the incident.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm.attributes import set_committed_value

from ..domain.lifecycle import Status
from ..domain.moments import shown
from ..errors import Conflict, NotFound
from ..extensions import db
from ..models import (
    DeliveryMode,
    Fulfilment,
    FulfilmentKind,
    FulfilmentState,
    Guardian,
    GuardianStudent,
    Incident,
    PortalAccount,
    PortalPolicy,
    Student,
    User,
    utcnow,
)
from ..models.fulfilment import LIVE_FULFILMENT_STATES
from ..security import seal, unseal
from . import audit, mail, outbox
from .audit import Event
from .credentials import (
    AccountStatus,
    DirectoryRefused,
    DirectoryUnavailable,
    issue_reset_link,
    owner_names,
    password_policy,
    policy_row,
    store_for,
)
from .notifications import PARENT_TYPES, Recipient, mask, notify, recipient_for

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
_DONE = {FulfilmentState.DELIVERED, FulfilmentState.ABANDONED}

log = logging.getLogger(__name__)


def _event(
    incident: Incident, kind: str, after: str | None, message: str,
    actor_id: int | None = None, **data: Any,
) -> None:  # fmt: skip
    audit.record(Event(incident.id, kind, incident.status, after or incident.status, message,
                       actor_id=actor_id, data=data))  # fmt: skip


def _write(row: Fulfilment | Incident, **values: Any) -> None:
    """UPDATE the row by its key now, and keep the loaded object in step with it.

    The fulfilment and its incident are written on every run; an UPDATE statement each
    costs a fraction of an ORM flush of the changed object (bench/README.md). Column
    defaults on update (``updated_at``) still apply.
    """
    db.session.execute(
        _update_by_key(type(row).__table__, tuple(values)), {**values, "key": row.id}
    )
    for name, value in values.items():
        set_committed_value(row, name, value)


@lru_cache(maxsize=32)
def _update_by_key(table: sa.Table, columns: tuple[str, ...]) -> sa.Update:
    # Built once per shape: building the statement cost half as much as running it.
    return (
        sa.update(table)
        .where(table.c.id == sa.bindparam("key"))
        .values({name: sa.bindparam(name) for name in columns})
    )


def _done(incident: Incident, kind: str, message: str, now: datetime, **data: Any) -> None:
    """Record the work done; an incident still awaiting it is resolved."""
    after = Status.RESOLVED.value if incident.status == Status.AWAITING_FULFILMENT else None
    _event(incident, kind, after, message, **data)
    if after:
        _write(incident, status=after, resolved_at=now, updated_at=now)


# -- Approving ---------------------------------------------------------------------------


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
_INSERT_FULFILMENT = (
    sa.insert(_FULFILMENTS)
    .values(
        mode=sa.select(PortalPolicy.delivery_mode)
        .join(PortalAccount, PortalAccount.portal == PortalPolicy.portal)
        .where(PortalAccount.id == sa.bindparam("reset_account"))
        .scalar_subquery()
    )
    .returning(_FULFILMENTS.c.id, _FULFILMENTS.c.mode)
)


def request_fulfilment(incident: Incident) -> NewFulfilment:
    """Promise the incident's job in the current transaction (an approval, or auto_fulfil)."""
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
        "updated_at": now,
        "reset_account": incident.portal_account_id if kind is FulfilmentKind.RESET else None,
    }).one()  # fmt: skip
    outbox.promise(kind.value, written.id, job_queue(kind))
    return NewFulfilment(kind.value, written.mode)


def revoked_guardian(incident: Incident) -> Guardian | None:
    if incident.guardian_id is None:
        return None
    guardian = db.session.get(Guardian, incident.guardian_id)
    return guardian if guardian is not None and guardian.access_revoked_at else None


# -- Running -----------------------------------------------------------------------------


def run(fulfilment_id: int) -> str:
    """Do (or finish) one fulfilment; safe to call any number of times. Returns its state."""
    found = db.session.execute(_LOCK_WITH_RECORDS, {"id": fulfilment_id}).one_or_none()
    if found is None:
        db.session.rollback()
        # Not committed (yet) where this worker reads, or deleted: the outbox relay
        # enqueues the job again while its promise is pending.
        log.warning("fulfilment %s not found; leaving it to the outbox relay", fulfilment_id)
        return "missing"
    # The account, guardian and portal policy are held in these locals for the whole run:
    # the identity map keeps only what is referenced, and the checks, the credential and
    # the email each read them again.
    fulfilment, incident, _account, _guardian, _policy, responsible = found
    if FulfilmentState(fulfilment.state) in _DONE:
        outbox.complete(fulfilment.kind, fulfilment.id)
        db.session.commit()
        return fulfilment.state
    kind = FulfilmentKind(fulfilment.kind)
    try:
        if kind is FulfilmentKind.REVOCATION:
            return _revoke(fulfilment)
        if fulfilment.state in _NOT_YET_SET:
            problem = _why_not(incident, fulfilment, responsible=bool(responsible))
            if problem:
                _abandon(fulfilment, incident, problem)
                db.session.commit()
                return fulfilment.state
            if kind is FulfilmentKind.RESET:
                _set_credential(fulfilment, incident)
                db.session.commit()
                # Locked again, and held through the SMTP conversation: a duplicate job
                # waits, then finds it delivered. Only the state can have moved since the
                # commit, and only by a duplicate that took the row over.
                state = db.session.execute(_RELOCK, {"id": fulfilment_id}).scalar_one()
                if state != FulfilmentState.CREDENTIAL_SET:
                    db.session.commit()
                    return str(state)
        return _deliver(fulfilment, incident)
    except DirectoryUnavailable as error:
        return _directory_failed(fulfilment_id, str(error))
    except DirectoryRefused as error:
        db.session.rollback()
        return _directory_refused(fulfilment_id, str(error))


# Nothing set in the store yet: the checks run (again) and the credential is set. A
# worker that dies after the directory took a password but before the commit leaves the
# fulfilment here, so the next attempt sets a fresh one: the secret emailed is always
# the one the directory holds.
_NOT_YET_SET = (FulfilmentState.PENDING, FulfilmentState.DIRECTORY_FAILED)


def _relocked(fulfilment_id: int) -> tuple[Fulfilment, Incident]:
    fulfilment, incident, *_ = db.session.execute(_LOCK_WITH_RECORDS, {"id": fulfilment_id}).one()
    return fulfilment, incident


def _directory_failed(fulfilment_id: int, reason: str) -> str:
    """The directory did not answer: nothing was set or sent. Say so and try again later;
    after the last attempt a person gets it back."""
    db.session.rollback()  # whatever the attempt had begun, it did not happen
    fulfilment, incident = _relocked(fulfilment_id)
    _failed_attempt(
        fulfilment, incident, reason, FulfilmentState.DIRECTORY_FAILED,
        retrying=f"{reason}; nothing was sent, trying again",
        given_back="the directory could not be reached",
    )  # fmt: skip
    if fulfilment.state == FulfilmentState.ABANDONED:
        return fulfilment.state
    raise DirectoryUnavailable(reason)  # RQ retries it with the configured backoff


def _failed_attempt(
    fulfilment: Fulfilment, incident: Incident, reason: str, state: FulfilmentState, *,
    retrying: str, given_back: str,
) -> None:  # fmt: skip
    """Count a failed attempt, visibly: ``state`` with the reason while retries are left,
    given back to a person after the last; committed either way."""
    fulfilment.attempts += 1
    fulfilment.last_error = reason
    if fulfilment.attempts >= outbox.attempts_allowed():
        _abandon(fulfilment, incident,
                 f"{given_back} after {fulfilment.attempts} attempts: {reason}")  # fmt: skip
    else:
        fulfilment.state = state.value
        _event(incident, state.value, None, retrying, fulfilment=fulfilment.id,
               attempt=fulfilment.attempts)  # fmt: skip
    db.session.commit()


def _directory_refused(fulfilment_id: int, reason: str) -> str:
    """The directory answered no (no such entry, several, its own password policy):
    retrying cannot help, so a person gets it back, told why; nothing is sent."""
    fulfilment, incident = _relocked(fulfilment_id)
    _abandon(fulfilment, incident, f"{reason}; nothing was sent")
    db.session.commit()
    return fulfilment.state


# Whether the incident's guardian has parental responsibility for an active child on the
# records (for the incident's child, when it names one).
_RESPONSIBLE = (
    sa.select(GuardianStudent.student_id)
    .join(Student, GuardianStudent.student_id == Student.id)
    .where(
        GuardianStudent.guardian_id == Incident.guardian_id,
        GuardianStudent.parental_responsibility.is_(True),
        Student.active.is_(True),
        sa.or_(Incident.student_id.is_(None), GuardianStudent.student_id == Incident.student_id),
    )
    .exists()
)

# The fulfilment, locked, with all the run reads, in one statement: its incident, account,
# guardian and portal policy, and whether that guardian has parental responsibility.
_LOCK_WITH_RECORDS = (
    sa.select(Fulfilment, Incident, PortalAccount, Guardian, PortalPolicy, _RESPONSIBLE)
    .join(Incident, Incident.id == Fulfilment.incident_id)
    .outerjoin(PortalAccount, PortalAccount.id == Fulfilment.portal_account_id)
    .outerjoin(Guardian, Guardian.id == Incident.guardian_id)
    .outerjoin(PortalPolicy, PortalPolicy.portal == PortalAccount.portal)
    .where(Fulfilment.id == sa.bindparam("id"))
    .with_for_update(of=Fulfilment.__table__)
    .execution_options(populate_existing=True)
)


_RELOCK = (
    sa.select(Fulfilment.__table__.c.state)
    .where(Fulfilment.__table__.c.id == sa.bindparam("id"))
    .with_for_update()
)


def _why_not(incident: Incident, fulfilment: Fulfilment, *, responsible: bool) -> str | None:
    """Why the records, as they are now, forbid this reset or reminder; None when they allow it."""
    if incident.verification != "passed":
        return "the details did not match the school's records"
    account = fulfilment.portal_account
    if account is None or not account.active:
        return "the portal account is no longer on the school's records"
    if account.status == AccountStatus.DISABLED:
        return "the portal account is disabled (access revoked)"
    if incident.type in PARENT_TYPES:
        guardian = revoked_guardian(incident)
        if guardian is not None:
            return f"the parent's access was revoked ({guardian.access_revoked_reason})"
        if not responsible:
            return "the parent no longer has parental responsibility on the school's records"
    if recipient_for(incident) is None:
        return "there is no email on file to send it to; add it to the record, then approve again"
    return None


def _set_credential(fulfilment: Fulfilment, incident: Incident) -> None:
    account = fulfilment.portal_account
    assert account is not None
    row = policy_row(account.portal)
    lifetime = timedelta(minutes=row.secret_lifetime_minutes or 72 * 60)
    store = store_for(account.portal)
    if (fulfilment.mode or row.delivery_mode) == DeliveryMode.RESET_LINK:
        secret, expires_at = issue_reset_link(account, lifetime)
        what = "a single-use reset link was issued"
    else:
        secret = password_policy(row).generate(names=owner_names(account))
        expires_at = utcnow() + lifetime
        store.set_one_time_password(account, secret, expires_at)
        what = "a one-time password was set (to be changed at first sign-in)"
    store.unlock(account)
    _write(
        fulfilment, sealed_secret=seal(current_app.config["SECRET_KEY"], secret),
        secret_expires_at=expires_at, credential_set_at=utcnow(),
        state=FulfilmentState.CREDENTIAL_SET.value,
    )  # fmt: skip
    _event(incident, "credential_set", None, f"{what}; it expires {_when(expires_at, incident)}",
           fulfilment=fulfilment.id, mode=fulfilment.mode)  # fmt: skip


def _deliver(fulfilment: Fulfilment, incident: Incident) -> str:
    recipient = recipient_for(incident)
    if recipient is None:
        _abandon(fulfilment, incident, "the address on file was removed before the email went")
        db.session.commit()
        return fulfilment.state
    email = _result_email(fulfilment, incident, recipient)
    try:
        mail.send(email)
    except (smtplib.SMTPException, OSError) as error:
        return _delivery_failed(fulfilment, incident, mail.failure_reason(error))
    except mail.UnusableAddress as error:
        _abandon(fulfilment, incident, f"the address on file cannot be emailed ({error}): "
                 "correct the record, then approve again")  # fmt: skip
        db.session.commit()
        return fulfilment.state
    now = utcnow()
    _write(fulfilment, state=FulfilmentState.DELIVERED.value, delivered_at=now,
           sealed_secret=None, last_error=None)  # fmt: skip
    _done(incident, "delivered", f"emailed to {recipient.whose}", now,
          fulfilment=fulfilment.id, to=mask(recipient.address))  # fmt: skip
    outbox.complete(fulfilment.kind, fulfilment.id, now)
    notify(incident.id, "outcome", "filer", outcome="done", detail=recipient.whose)
    db.session.commit()
    return fulfilment.state


def _result_email(fulfilment: Fulfilment, incident: Incident, recipient: Recipient) -> mail.Email:
    account = fulfilment.portal_account
    assert account is not None
    context: dict[str, Any] = {
        "name": recipient.name, "ref": incident.ref, "username": account.username,
        "portal": account.portal, "school": incident.school.name,
        "for_student": incident.type == "student_password_reset",
    }  # fmt: skip
    domain = mail.message_domain()
    message_id = f"<fulfilment-{fulfilment.id}@{domain}>"
    if fulfilment.kind == FulfilmentKind.REMINDER:
        # The name the holder signs in with, as the portal's store has it now.
        context["username"] = store_for(account.portal).username(account)
        return mail.Email(recipient.address, "Your portal username", "username_reminder",
                          context, message_id)  # fmt: skip
    secret = unseal(current_app.config["SECRET_KEY"], fulfilment.sealed_secret or "")
    context["expires"] = _when(fulfilment.secret_expires_at, incident)
    if fulfilment.mode == DeliveryMode.RESET_LINK:
        base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
        context["link"] = f"{base}/reset/{secret}"  # the configured URL, never a request's Host
        return mail.Email(recipient.address, "Choose a new portal password", "reset_link",
                          context, message_id)  # fmt: skip
    context["password"] = secret
    return mail.Email(recipient.address, "Your new portal password", "reset_result", context,
                      message_id)  # fmt: skip


def _delivery_failed(fulfilment: Fulfilment, incident: Incident, reason: str) -> str:
    _failed_attempt(
        fulfilment, incident, reason, FulfilmentState.DELIVERY_FAILED,
        retrying=f"the email was not accepted ({reason}); trying again",
        given_back="the email could not be delivered",
    )  # fmt: skip
    if fulfilment.state == FulfilmentState.ABANDONED:
        return fulfilment.state
    raise mail.DeliveryFailed(reason)


def _abandon(fulfilment: Fulfilment, incident: Incident, reason: str) -> None:
    """Give the incident back to a person, saying why; the secret, if any, is forgotten."""
    fulfilment.state = FulfilmentState.ABANDONED.value
    fulfilment.sealed_secret = None
    fulfilment.last_error = reason
    back = Status.TRIAGED.value if incident.status == Status.AWAITING_FULFILMENT else None
    _event(incident, "returned" if back else "fulfilment_abandoned", back,
           f"not fulfilled: {reason}; back with {incident.queue_slug or 'its queue'} "
           "for a person", fulfilment=fulfilment.id)  # fmt: skip
    if back:
        incident.status, incident.assignee_id, incident.updated_at = back, None, utcnow()
        if "fulfilment-failed" not in incident.tags:
            incident.tags = [*incident.tags, "fulfilment-failed"]
    outbox.complete(fulfilment.kind, fulfilment.id)
    notify(incident.id, "outcome", "filer", outcome="not_done", detail=reason)


def _revoke(fulfilment: Fulfilment) -> str:
    """Disable every portal account of the guardians named at filing, at once, and record it."""
    incident = db.session.get(Incident, fulfilment.incident_id)
    assert incident is not None
    targets = (incident.verification_results or {}).get("revocation_guardian_ids") or []
    if incident.verification != "passed" or not targets:
        _abandon(fulfilment, incident, "the parent was not found on the school's records")
        db.session.commit()
        return fulfilment.state
    now = utcnow()
    reason = incident.details.get("reason", "revoked")
    guardians = db.session.execute(
        sa.select(Guardian).where(Guardian.id.in_(targets)).with_for_update()
    ).scalars()
    disabled = 0
    for guardian in guardians:
        guardian.access_revoked_at = guardian.access_revoked_at or now
        guardian.access_revoked_reason = reason
        guardian.access_revoked_by_incident_id = incident.id
        accounts = db.session.execute(
            sa.select(PortalAccount).where(PortalAccount.guardian_id == guardian.id)
        ).scalars()
        for account in accounts:
            store_for(account.portal).disable(account)
            disabled += 1
        _stop_resets_for(guardian.id, reason)
    fulfilment.state = FulfilmentState.DELIVERED.value
    fulfilment.delivered_at = now
    _done(incident, "access_revoked",
          f"portal access revoked for {len(targets)} parent(s), {disabled} account(s) "
          "disabled; resets are refused until an admin restores access", now,
          fulfilment=fulfilment.id, guardians=len(targets), accounts=disabled)  # fmt: skip
    outbox.complete(fulfilment.kind, fulfilment.id, now)
    notify(incident.id, "revocation_notice", "filer", reason=reason, parents=str(len(targets)))
    db.session.commit()
    return fulfilment.state


def _stop_resets_for(guardian_id: int, reason: str) -> None:
    """A revocation overtakes any reset or reminder still in flight for that guardian."""
    live = db.session.execute(
        sa.select(Fulfilment, Incident)
        .join(Incident, Fulfilment.incident_id == Incident.id)
        .where(
            Incident.guardian_id == guardian_id,
            Fulfilment.kind != FulfilmentKind.REVOCATION.value,
            Fulfilment.state.in_(LIVE_FULFILMENT_STATES),
        )
        .with_for_update(of=Fulfilment)
    ).all()
    for fulfilment, incident in live:
        _abandon(fulfilment, incident, f"the parent's access was revoked ({reason})")


def restore_access(guardian_sourced_id: str, admin: User) -> Guardian:
    """Lift a revocation: the guardian's accounts sign in again and resets are allowed."""
    guardian = db.session.execute(
        sa.select(Guardian).where(Guardian.sourced_id == guardian_sourced_id).with_for_update()
    ).scalar_one_or_none()
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
        _event(incident, "access_restored", None,
               f"an admin restored portal access for {guardian.full_name}",
               actor_id=admin.id)  # fmt: skip
    guardian.access_revoked_at = None
    guardian.access_revoked_reason = None
    guardian.access_revoked_by_incident_id = None
    db.session.commit()
    return guardian


# -- Small helpers -----------------------------------------------------------------------


def _when(moment: datetime | None, incident: Incident) -> str:
    """As the school's families read it (they, and its staff, get these emails)."""
    return shown(moment, incident.school.timezone) if moment else "never"


def summary(incident_id: int) -> Fulfilment | None:
    """The incident's latest fulfilment, for the API (state and reason, never the secret)."""
    return db.session.execute(
        sa.select(Fulfilment)
        .where(Fulfilment.incident_id == incident_id)
        .order_by(Fulfilment.id.desc())
        .limit(1)
    ).scalar_one_or_none()
