"""Running a fulfilment: the state machine behind every reset, reminder and revocation.

The jobs in ``workers/`` call ``run`` with a fulfilment id, at least once. Each step is
one unit of work: it reads the fulfilment, locked, with the records it needs (a
``Work``), does its part and returns the state it left the fulfilment in:

    pending / directory_failed --checks, set--> credential_set --send--> delivered
                 |                                    |--> delivery_failed (retried)
                 |--> abandoned (given back to a person, saying why)

``run`` takes steps until one ends where nobody, or a retry, must go on; a retried,
relayed or duplicated job finds the state and does only what is left, so nothing is
reset twice and the secret emailed is the one the store holds. The secret is sealed on
the row between being set and being delivered, and wiped after. The recipient is read
from the records at send time, never from the incident (SPEC §6).
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from ..domain.lifecycle import Status
from ..extensions import db
from ..models import (
    ClassReset,
    ClassResetState,
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
    utcnow,
)
from ..models.fulfilment import LIVE_FULFILMENT_STATES
from ..security import seal
from . import audit, mail, outbox
from .audit import Event
from .credentials import (
    AccountStatus,
    DirectoryRefused,
    DirectoryUnavailable,
    issue_reset_link,
    owner_names,
    password_policy,
    store_for,
)
from .fulfilment_emails import notify_holder, result_email, shown_for
from .notifications import PARENT_TYPES, mask, notify, recipient_for, tell_holder
from .uow import unit_of_work

log = logging.getLogger(__name__)

_DONE = {FulfilmentState.DELIVERED, FulfilmentState.ABANDONED}
CLASS_SLIPS_JOB = "deliver_class_slips"  # workers.jobs: a class reset's one message
# Nothing set in the store yet: the checks run (again) and the credential is set. A
# worker that dies after the directory took a password but before the commit leaves the
# fulfilment here, so the next attempt sets a fresh one.
_NOT_YET_SET = {FulfilmentState.PENDING, FulfilmentState.DIRECTORY_FAILED}


@dataclass(frozen=True)
class Work:
    """A fulfilment, locked, with what its steps read: incident, account, portal policy,
    guardian, and whether that guardian has parental responsibility."""

    fulfilment: Fulfilment
    incident: Incident
    account: PortalAccount | None
    guardian: Guardian | None
    policy: PortalPolicy | None
    responsible: bool

    @property
    def state(self) -> FulfilmentState:
        return FulfilmentState(self.fulfilment.state)


Step = Callable[[Work], FulfilmentState]


def run(fulfilment_id: int) -> str:
    """Do (or finish) one fulfilment; safe to call any number of times. Returns its state."""
    while True:
        try:
            with unit_of_work():
                work = _locked(fulfilment_id)
                if work is None:
                    # Not committed (yet) where this worker reads, or deleted: the outbox
                    # relay enqueues the job again while its promise is pending.
                    log.warning("fulfilment %s not found; left to the outbox relay",
                                fulfilment_id)  # fmt: skip
                    return "missing"
                step = _next_step(work)
                if step is None:
                    outbox.complete(work.fulfilment.kind, work.fulfilment.id)
                    return work.state.value
                after, reason = step(work), work.fulfilment.last_error
        except DirectoryUnavailable as error:
            after, reason = _directory_failed(fulfilment_id, str(error)), str(error)
        except DirectoryRefused as error:
            # The directory answered no (no such entry, several, its own password
            # policy): retrying cannot help, so a person gets it back, told why.
            with unit_of_work():
                work = _must_lock(fulfilment_id)
                return abandon(work.fulfilment, work.incident, f"{error}; nothing was sent").value
        if after in _DONE:
            return after.value
        if after is FulfilmentState.DELIVERY_FAILED:
            raise mail.DeliveryFailed(reason or "")  # RQ retries it with the backoff
        if after is FulfilmentState.DIRECTORY_FAILED:
            raise DirectoryUnavailable(reason or "")
        # credential_set: the send is the next step, in its own transaction, locked again
        # and held through the SMTP conversation, so a duplicate job waits, then finds it
        # delivered.


def _next_step(work: Work) -> Step | None:
    if work.state in _DONE:
        return None
    if work.fulfilment.kind == FulfilmentKind.REVOCATION:
        return _revoke
    if work.state in _NOT_YET_SET:
        return _check_then_set
    if work.fulfilment.class_reset_id is not None:
        return None  # its class's message of slips delivers it (services/class_slips.py)
    return _deliver


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

# Fulfilments, locked, with all a step reads, in one statement: one, or a class reset's.
_WITH_RECORDS = (
    sa.select(Fulfilment, Incident, PortalAccount, PortalPolicy, Guardian, _RESPONSIBLE)
    .join(Incident, Incident.id == Fulfilment.incident_id)
    .outerjoin(PortalAccount, PortalAccount.id == Fulfilment.portal_account_id)
    .outerjoin(Guardian, Guardian.id == Incident.guardian_id)
    .outerjoin(PortalPolicy, PortalPolicy.portal == PortalAccount.portal)
    .with_for_update(of=Fulfilment.__table__)
    .execution_options(populate_existing=True)
)
_LOCK_WITH_RECORDS = _WITH_RECORDS.where(Fulfilment.id == sa.bindparam("id"))
_LOCK_CLASS_WITH_RECORDS = _WITH_RECORDS.where(
    Fulfilment.class_reset_id == sa.bindparam("class_reset")
).order_by(Fulfilment.id)  # always in one order, so two lockers never deadlock


def _work(found: Any) -> Work:
    fulfilment, incident, account, policy, guardian, responsible = found
    return Work(fulfilment, incident, account, guardian, policy, bool(responsible))


def _locked(fulfilment_id: int) -> Work | None:
    found = db.session.execute(_LOCK_WITH_RECORDS, {"id": fulfilment_id}).one_or_none()
    return None if found is None else _work(found)


def lock_class(class_reset_id: int) -> list[Work]:
    """A class reset's fulfilments, locked in id order, with their records."""
    found = db.session.execute(_LOCK_CLASS_WITH_RECORDS, {"class_reset": class_reset_id})
    return [_work(row) for row in found]


def _must_lock(fulfilment_id: int) -> Work:
    work = _locked(fulfilment_id)
    assert work is not None, "a fulfilment is never deleted while its job runs"
    return work


# -- The steps ---------------------------------------------------------------------------


def _check_then_set(work: Work) -> FulfilmentState:
    """The records, as they are now, must still allow it; then a reset sets the credential
    and a reminder is sent at once."""
    problem = _why_not(work)
    if problem:
        return abandon(work.fulfilment, work.incident, problem)
    if work.fulfilment.kind == FulfilmentKind.REMINDER:
        return _deliver(work)
    return _set_credential(work)


def _why_not(work: Work) -> str | None:
    """Why the records forbid this reset or reminder; None when they allow it."""
    incident, account, guardian = work.incident, work.account, work.guardian
    if incident.verification != "passed":
        return "the details did not match the school's records"
    if account is None or not account.active:
        return "the portal account is no longer on the school's records"
    if account.status == AccountStatus.DISABLED:
        return "the portal account is disabled (access revoked)"
    if incident.type in PARENT_TYPES:
        if guardian is not None and guardian.access_revoked_at:
            return f"the parent's access was revoked ({guardian.access_revoked_reason})"
        if not work.responsible:
            return "the parent no longer has parental responsibility on the school's records"
    if recipient_for(incident) is None:
        return "there is no email on file to send it to; add it to the record, then approve again"
    return None


def _set_credential(work: Work) -> FulfilmentState:
    fulfilment, incident, account = work.fulfilment, work.incident, work.account
    assert account is not None
    policy = work.policy or PortalPolicy(portal=account.portal)
    lifetime = timedelta(minutes=policy.secret_lifetime_minutes or 72 * 60)
    store = store_for(account.portal)
    if (fulfilment.mode or policy.delivery_mode) == DeliveryMode.RESET_LINK:
        secret, expires_at = issue_reset_link(account, lifetime)
        what = "a single-use reset link was issued"
    else:
        secret = password_policy(policy).generate(names=owner_names(account))
        expires_at = utcnow() + lifetime
        store.set_one_time_password(account, secret, expires_at)
        what = "a one-time password was set (to be changed at first sign-in)"
    store.unlock(account)
    expires = shown_for(expires_at, incident)
    _event(incident, "credential_set", None, f"{what}; it expires {expires}",
           fulfilment=fulfilment.id, mode=fulfilment.mode)  # fmt: skip
    fulfilment.sealed_secret = seal(current_app.config["SECRET_KEY"], secret)
    fulfilment.secret_expires_at, fulfilment.credential_set_at = expires_at, utcnow()
    fulfilment.state = FulfilmentState.CREDENTIAL_SET.value
    _settle_class(fulfilment)
    return FulfilmentState.CREDENTIAL_SET


def _settle_class(fulfilment: Fulfilment) -> None:
    """A class reset's message is promised once the last of its credentials is set or
    given back. Its row is locked first, so of two workers settling the last two at once
    the second waits, then counts what the first committed."""
    if fulfilment.class_reset_id is None:
        return
    together = db.session.execute(
        sa.select(ClassReset).where(ClassReset.id == fulfilment.class_reset_id)
        .with_for_update()
    ).scalar_one()  # fmt: skip
    if together.state != ClassResetState.WAITING:
        return
    unsettled = db.session.execute(
        sa.select(sa.func.count()).select_from(Fulfilment).where(
            Fulfilment.class_reset_id == together.id,
            Fulfilment.state.in_([state.value for state in _NOT_YET_SET]),
        )
    ).scalar_one()  # fmt: skip
    if unsettled == 0:
        together.state = ClassResetState.SENDING.value
        outbox.promise(CLASS_SLIPS_JOB, together.id, "mail")


def _deliver(work: Work) -> FulfilmentState:
    fulfilment, incident = work.fulfilment, work.incident
    recipient = recipient_for(incident)
    if recipient is None:
        return abandon(fulfilment, incident,
                        "the address on file was removed before the email went")  # fmt: skip
    try:
        mail.send(result_email(work, recipient))
    except (smtplib.SMTPException, OSError) as error:
        return _failed_attempt(
            fulfilment, incident, mail.failure_reason(error), FulfilmentState.DELIVERY_FAILED,
            retrying="the email was not accepted ({}); trying again",
            given_back="the email could not be delivered",
        )  # fmt: skip
    except mail.UnusableAddress as error:
        return abandon(fulfilment, incident, f"the address on file cannot be emailed ({error}):"
                        " correct the record, then approve again")  # fmt: skip
    now = utcnow()
    record_done(incident, "delivered", f"emailed to {recipient.whose}", now,
          fulfilment=fulfilment.id, to=mask(recipient.address))  # fmt: skip
    fulfilment.state, fulfilment.delivered_at = FulfilmentState.DELIVERED.value, now
    fulfilment.sealed_secret = fulfilment.last_error = None
    outbox.complete(fulfilment.kind, fulfilment.id, now)
    notify(incident.id, "outcome", "filer", outcome="done", detail=recipient.whose)
    notify_holder(work)
    return FulfilmentState.DELIVERED


def _revoke(work: Work) -> FulfilmentState:
    """Disable every portal account of the guardians named at filing, at once, and record it."""
    fulfilment, incident = work.fulfilment, work.incident
    targets = (incident.verification_results or {}).get("revocation_guardian_ids") or []
    if incident.verification != "passed" or not targets:
        return abandon(fulfilment, incident, "the parent was not found on the school's records")
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
        tell_holder(incident, "access_revoked", "your parent portal access",
                    audience=f"guardian:{guardian.id}")  # fmt: skip
    record_done(incident, "access_revoked",
          f"portal access revoked for {len(targets)} parent(s), {disabled} account(s) "
          "disabled; resets are refused until an admin restores access", now,
          fulfilment=fulfilment.id, guardians=len(targets), accounts=disabled)  # fmt: skip
    fulfilment.state, fulfilment.delivered_at = FulfilmentState.DELIVERED.value, now
    outbox.complete(fulfilment.kind, fulfilment.id, now)
    notify(incident.id, "revocation_notice", "filer", reason=reason, parents=str(len(targets)))
    return FulfilmentState.DELIVERED


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
        abandon(fulfilment, incident, f"the parent's access was revoked ({reason})")


# -- Failures and endings ----------------------------------------------------------------


def _directory_failed(fulfilment_id: int, reason: str) -> FulfilmentState:
    """The directory did not answer: nothing was set or sent (the attempt's transaction was
    rolled back). Say so and try again later; after the last attempt a person gets it."""
    with unit_of_work():
        work = _must_lock(fulfilment_id)
        return _failed_attempt(
            work.fulfilment, work.incident, reason, FulfilmentState.DIRECTORY_FAILED,
            retrying="{}; nothing was sent, trying again",
            given_back="the directory could not be reached",
        )  # fmt: skip


def _failed_attempt(
    fulfilment: Fulfilment, incident: Incident, reason: str, state: FulfilmentState, *,
    retrying: str, given_back: str,
) -> FulfilmentState:  # fmt: skip
    """Count a failed attempt, visibly: ``state`` with the reason while retries are left,
    given back to a person after the last."""
    fulfilment.attempts += 1
    fulfilment.last_error = reason
    if fulfilment.attempts >= outbox.attempts_allowed():
        return abandon(fulfilment, incident,
                        f"{given_back} after {fulfilment.attempts} attempts: {reason}")  # fmt: skip
    _event(incident, state.value, None, retrying.format(reason), fulfilment=fulfilment.id,
           attempt=fulfilment.attempts)  # fmt: skip
    fulfilment.state = state.value
    return state


def abandon(fulfilment: Fulfilment, incident: Incident, reason: str) -> FulfilmentState:
    """Give the incident back to a person, saying why; the secret, if any, is forgotten."""
    back = Status.TRIAGED.value if incident.status == Status.AWAITING_FULFILMENT else None
    _event(incident, "returned" if back else "fulfilment_abandoned", back,
           f"not fulfilled: {reason}; back with {incident.queue_slug or 'its queue'} "
           "for a person", fulfilment=fulfilment.id)  # fmt: skip
    fulfilment.state = FulfilmentState.ABANDONED.value
    fulfilment.sealed_secret, fulfilment.last_error = None, reason
    if back:
        incident.status, incident.assignee_id, incident.updated_at = back, None, utcnow()
        if "fulfilment-failed" not in incident.tags:
            incident.tags = [*incident.tags, "fulfilment-failed"]
    outbox.complete(fulfilment.kind, fulfilment.id)
    if fulfilment.class_reset_id is None:
        notify(incident.id, "outcome", "filer", outcome="not_done", detail=reason)
    else:  # its class's message names it among those not reset
        _settle_class(fulfilment)
    return FulfilmentState.ABANDONED


def record_done(incident: Incident, kind: str, message: str, now: datetime, **data: Any) -> None:
    """Record the work done; an incident still awaiting it is resolved."""
    after = Status.RESOLVED.value if incident.status == Status.AWAITING_FULFILMENT else None
    _event(incident, kind, after, message, **data)
    if after:
        incident.status, incident.resolved_at, incident.updated_at = after, now, now


def _event(
    incident: Incident, kind: str, after: str | None, message: str, **data: Any
) -> None:  # fmt: skip
    audit.record(Event(incident.id, kind, incident.status, after or incident.status, message,
                       data=data))  # fmt: skip
