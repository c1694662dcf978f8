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
from typing import Any

import sqlalchemy as sa
from flask import current_app

from ..domain.lifecycle import Status
from ..errors import Conflict
from ..extensions import db
from ..models import (
    DeliveryMode,
    Fulfilment,
    FulfilmentKind,
    FulfilmentState,
    Guardian,
    GuardianStudent,
    Incident,
    IncidentEvent,
    Notification,
    PortalAccount,
    Queue,
    Student,
    User,
    queue_members,
    utcnow,
)
from ..security import seal, unseal
from . import mail, outbox
from .credentials import (
    AccountStatus,
    credential_store,
    issue_reset_link,
    owner_names,
    password_policy,
    policy_row,
)

log = logging.getLogger(__name__)

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
PARENT_TYPES = frozenset({"parent_password_reset", "username_reminder"})


class DeliveryFailed(Exception):
    """The SMTP server did not accept the message; RQ retries the job with backoff."""


def _event(incident: Incident, kind: str, after: str | None, message: str, **data: Any) -> None:
    db.session.add(IncidentEvent(
        incident=incident, actor_id=None, kind=kind, from_status=incident.status,
        to_status=after or incident.status, message=message, data=data,
    ))  # fmt: skip


# -- Approving ---------------------------------------------------------------------------


def request_fulfilment(incident: Incident) -> Fulfilment:
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
    mode = None
    if kind is FulfilmentKind.RESET and incident.portal_account_id is not None:
        account = db.session.get(PortalAccount, incident.portal_account_id)
        mode = policy_row(account.portal).delivery_mode if account else None
    fulfilment = Fulfilment(
        incident_id=incident.id, kind=kind.value, state=FulfilmentState.PENDING.value,
        portal_account_id=incident.portal_account_id, mode=mode,
    )  # fmt: skip
    db.session.add(fulfilment)
    db.session.flush()
    outbox.promise(kind.value, fulfilment.id, _QUEUE_FOR_KIND[kind])
    return fulfilment


def notify(incident_id: int, template: str, audience: str, **context: str) -> Notification:
    """Promise an email without a secret; who receives it is decided when it is sent."""
    note = Notification(
        incident_id=incident_id, template=template, audience=audience, context=context
    )
    db.session.add(note)
    db.session.flush()
    outbox.promise("deliver_email", note.id, "mail")
    return note


def revoked_guardian(incident: Incident) -> Guardian | None:
    if incident.guardian_id is None:
        return None
    guardian = db.session.get(Guardian, incident.guardian_id)
    return guardian if guardian is not None and guardian.access_revoked_at else None


# -- Running -----------------------------------------------------------------------------


def run(fulfilment_id: int) -> str:
    """Do (or finish) one fulfilment; safe to call any number of times. Returns its state."""
    fulfilment = _lock(fulfilment_id)
    if fulfilment is None:
        db.session.rollback()
        return "missing"
    if FulfilmentState(fulfilment.state) in _DONE:
        outbox.complete(fulfilment.kind, fulfilment.id)
        db.session.commit()
        return fulfilment.state
    kind = FulfilmentKind(fulfilment.kind)
    if kind is FulfilmentKind.REVOCATION:
        return _revoke(fulfilment)
    incident = db.session.get(Incident, fulfilment.incident_id)
    assert incident is not None
    if fulfilment.state == FulfilmentState.PENDING:
        problem = _why_not(incident, fulfilment)
        if problem:
            _abandon(fulfilment, incident, problem)
            db.session.commit()
            return fulfilment.state
        if kind is FulfilmentKind.RESET:
            _set_credential(fulfilment, incident)
            db.session.commit()
            fulfilment = _lock(fulfilment_id)
            assert fulfilment is not None
            if fulfilment.state not in (FulfilmentState.CREDENTIAL_SET,):
                db.session.commit()
                return fulfilment.state
    return _deliver(fulfilment, incident)


def _lock(fulfilment_id: int) -> Fulfilment | None:
    # Held through the SMTP conversation: a duplicate job waits, then finds it delivered.
    return db.session.execute(
        sa.select(Fulfilment)
        .where(Fulfilment.id == fulfilment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


@dataclass(frozen=True)
class Recipient:
    address: str
    name: str
    whose: str  # words for the audit trail: "the parent's email on file"


def recipient_for(incident: Incident) -> Recipient | None:
    """The address on file for this incident's result, read from the records now."""
    if incident.type in PARENT_TYPES:
        guardian = db.session.get(Guardian, incident.guardian_id) if incident.guardian_id else None
        if guardian is None or not guardian.active or not guardian.email:
            return None
        return Recipient(guardian.email, guardian.full_name, "the parent's email on file")
    filer = db.session.get(User, incident.filer_id)
    staff = filer.staff if filer is not None else None
    if staff is None or not staff.active or not staff.email:
        return None
    return Recipient(staff.email, staff.full_name, "the filing employee's staff email on file")


def _why_not(incident: Incident, fulfilment: Fulfilment) -> str | None:
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
        if not _has_parental_responsibility(incident):
            return "the parent no longer has parental responsibility on the school's records"
    if recipient_for(incident) is None:
        return "there is no email on file to send it to; add it to the record, then approve again"
    return None


def _has_parental_responsibility(incident: Incident) -> bool:
    query = (
        sa.select(GuardianStudent.student_id)
        .join(Student, GuardianStudent.student_id == Student.id)
        .where(
            GuardianStudent.guardian_id == incident.guardian_id,
            GuardianStudent.parental_responsibility.is_(True),
            Student.active.is_(True),
        )
    )
    if incident.student_id is not None:
        query = query.where(GuardianStudent.student_id == incident.student_id)
    return db.session.execute(query.limit(1)).first() is not None


def _set_credential(fulfilment: Fulfilment, incident: Incident) -> None:
    account = fulfilment.portal_account
    assert account is not None
    row = policy_row(account.portal)
    lifetime = timedelta(minutes=row.secret_lifetime_minutes or 72 * 60)
    store = credential_store()
    if (fulfilment.mode or row.delivery_mode) == DeliveryMode.RESET_LINK:
        secret, expires_at = issue_reset_link(account, lifetime)
        what = "a single-use reset link was issued"
    else:
        secret = password_policy(row).generate(names=owner_names(account))
        expires_at = utcnow() + lifetime
        store.set_one_time_password(account, secret, expires_at)
        what = "a one-time password was set (to be changed at first sign-in)"
    store.unlock(account)
    now = utcnow()
    fulfilment.sealed_secret = seal(current_app.config["SECRET_KEY"], secret)
    fulfilment.secret_expires_at = expires_at
    fulfilment.credential_set_at = now
    fulfilment.state = FulfilmentState.CREDENTIAL_SET.value
    _event(incident, "credential_set", None, f"{what}; it expires {_when(expires_at)}",
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
        return _delivery_failed(fulfilment, incident, _reason(error))
    now = utcnow()
    fulfilment.state = FulfilmentState.DELIVERED.value
    fulfilment.delivered_at = now
    fulfilment.sealed_secret = None
    fulfilment.last_error = None
    after = Status.RESOLVED.value if incident.status == Status.AWAITING_FULFILMENT else None
    _event(incident, "delivered", after, f"emailed to {recipient.whose}",
           fulfilment=fulfilment.id, to=mask(recipient.address))  # fmt: skip
    if after:
        incident.status, incident.resolved_at, incident.updated_at = after, now, now
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
        return mail.Email(recipient.address, "Your portal username", "username_reminder",
                          context, message_id)  # fmt: skip
    secret = unseal(current_app.config["SECRET_KEY"], fulfilment.sealed_secret or "")
    context["expires"] = _when(fulfilment.secret_expires_at)
    if fulfilment.mode == DeliveryMode.RESET_LINK:
        base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
        context["link"] = f"{base}/reset/{secret}"  # the configured URL, never a request's Host
        return mail.Email(recipient.address, "Choose a new portal password", "reset_link",
                          context, message_id)  # fmt: skip
    context["password"] = secret
    return mail.Email(recipient.address, "Your new portal password", "reset_result", context,
                      message_id)  # fmt: skip


def _delivery_failed(fulfilment: Fulfilment, incident: Incident, reason: str) -> str:
    fulfilment.attempts += 1
    fulfilment.last_error = reason
    allowed = len(outbox.retry_intervals()) + 1
    if fulfilment.attempts >= allowed:
        _abandon(fulfilment, incident, f"the email could not be delivered after "
                 f"{fulfilment.attempts} attempts: {reason}")  # fmt: skip
        db.session.commit()
        return fulfilment.state
    fulfilment.state = FulfilmentState.DELIVERY_FAILED.value
    _event(incident, "delivery_failed", None,
           f"the email was not accepted ({reason}); trying again",
           fulfilment=fulfilment.id, attempt=fulfilment.attempts)  # fmt: skip
    db.session.commit()
    raise DeliveryFailed(reason)


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
    store = credential_store()
    guardians = db.session.execute(
        sa.select(Guardian).where(Guardian.id.in_(targets)).with_for_update()
    ).scalars()
    disabled = 0
    for guardian in guardians:
        guardian.access_revoked_at = guardian.access_revoked_at or now
        guardian.access_revoked_reason = reason
        accounts = db.session.execute(
            sa.select(PortalAccount).where(PortalAccount.guardian_id == guardian.id)
        ).scalars()
        for account in accounts:
            store.disable(account)
            disabled += 1
        _stop_resets_for(guardian.id, reason)
    fulfilment.state = FulfilmentState.DELIVERED.value
    fulfilment.delivered_at = now
    after = Status.RESOLVED.value if incident.status == Status.AWAITING_FULFILMENT else None
    _event(incident, "access_revoked", after,
           f"portal access revoked for {len(targets)} parent(s), {disabled} account(s) "
           "disabled; resets are refused until an admin restores access",
           fulfilment=fulfilment.id, guardians=len(targets), accounts=disabled)  # fmt: skip
    if after:
        incident.status, incident.resolved_at, incident.updated_at = after, now, now
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
            Fulfilment.state.in_(["pending", "credential_set", "delivery_failed"]),
        )
        .with_for_update(of=Fulfilment)
    ).all()
    for fulfilment, incident in live:
        _abandon(fulfilment, incident, f"the parent's access was revoked ({reason})")


def restore_access(guardian_sourced_id: str, admin: User) -> Guardian:
    """Lift a revocation: the guardian's accounts sign in again and resets are allowed."""
    from ..errors import NotFound

    guardian = db.session.execute(
        sa.select(Guardian).where(Guardian.sourced_id == guardian_sourced_id).with_for_update()
    ).scalar_one_or_none()
    if guardian is None:
        raise NotFound(f"No guardian {guardian_sourced_id!r} on the records.")
    if guardian.access_revoked_at is None:
        raise Conflict(f"{guardian_sourced_id}'s access is not revoked.", code="not_revoked")
    store = credential_store()
    for account in db.session.execute(
        sa.select(PortalAccount).where(PortalAccount.guardian_id == guardian.id)
    ).scalars():
        store.enable(account)
    revoked = db.session.execute(
        sa.select(Incident)
        .join(Fulfilment, Fulfilment.incident_id == Incident.id)
        .where(Fulfilment.kind == FulfilmentKind.REVOCATION.value,
               Incident.verification_results.is_not(None))
        .order_by(Incident.id.desc())
    ).scalars()  # fmt: skip
    for incident in revoked:
        if guardian.id in (incident.verification_results or {}).get("revocation_guardian_ids", []):
            db.session.add(IncidentEvent(
                incident=incident, actor_id=admin.id, kind="access_restored",
                from_status=incident.status, to_status=incident.status,
                message=f"an admin restored portal access for {guardian.full_name}",
            ))  # fmt: skip
            break
    guardian.access_revoked_at = None
    guardian.access_revoked_reason = None
    db.session.commit()
    return guardian


# -- Emails without secrets ------------------------------------------------------------


def deliver_notification(notification_id: int) -> str:
    """Send one notification (outcome, notice) to its audience as the records say now."""
    note = db.session.execute(
        sa.select(Notification).where(Notification.id == notification_id).with_for_update()
    ).scalar_one_or_none()
    if note is None or note.state != "pending":
        if note is not None:
            outbox.complete("deliver_email", note.id)
        db.session.commit()
        return note.state if note else "missing"
    incident = db.session.get(Incident, note.incident_id)
    assert incident is not None
    addresses = _audience(note.audience, incident)
    context = {**note.context, "ref": incident.ref, "type": incident.type.replace("_", " "),
               "school": incident.school.name, "queue": incident.queue_slug or ""}  # fmt: skip
    subject = _SUBJECTS[note.template].format(ref=incident.ref)
    domain = mail.message_domain()
    try:
        for index, address in enumerate(addresses):
            mail.send(mail.Email(address, subject, note.template, context,
                                 f"<notification-{note.id}.{index}@{domain}>"))  # fmt: skip
    except (smtplib.SMTPException, OSError) as error:
        note.attempts += 1
        note.last_error = _reason(error)
        if note.attempts >= len(outbox.retry_intervals()) + 1:
            note.state = "failed"
            outbox.complete("deliver_email", note.id)
            db.session.commit()
            return note.state
        db.session.commit()
        raise DeliveryFailed(note.last_error) from None
    note.state, note.sent_at = "sent", utcnow()
    outbox.complete("deliver_email", note.id)
    db.session.commit()
    return note.state


_SUBJECTS = {
    "outcome": "{ref}: outcome of your request",
    "revocation_notice": "{ref}: portal access revoked",
    "queue_notice": "{ref}: new in your queue",
    "password_changed": "Your portal password was changed",
}


def _audience(audience: str, incident: Incident) -> list[str]:
    if audience == "filer":
        filer = db.session.get(User, incident.filer_id)
        return [filer.email] if filer is not None and filer.active else []
    if audience == "guardian":
        recipient = recipient_for(incident) if incident.type in PARENT_TYPES else None
        return [recipient.address] if recipient else []
    if audience.startswith("queue:"):
        return list(
            db.session.execute(
                sa.select(User.email)
                .join(queue_members, queue_members.c.user_id == User.id)
                .join(Queue, Queue.id == queue_members.c.queue_id)
                .where(Queue.slug == audience[len("queue:") :], User.active.is_(True))
                .order_by(User.email)
            ).scalars()
        )
    return []


# -- Small helpers -----------------------------------------------------------------------


def mask(address: str) -> str:
    """An address as the audit trail shows it: enough to recognise, not to harvest."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def _reason(error: BaseException) -> str:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, TimeoutError):
            return f"the mail server did not answer in time ({_timeout()} s)"
        cause = cause.__cause__ or cause.__context__
    if isinstance(error, smtplib.SMTPResponseException):
        text = error.smtp_error.decode(errors="replace") if isinstance(
            error.smtp_error, bytes) else str(error.smtp_error)  # fmt: skip
        return f"SMTP {error.smtp_code} {text}".strip()[:300]
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "the mail server refused the recipient"
    return f"{type(error).__name__}: {error}"[:300]


def _timeout() -> str:
    return f"{float(current_app.config['MAIL_TIMEOUT']):g}"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%d %b %Y %H:%M UTC") if moment else "never"


def summary(incident_id: int) -> Fulfilment | None:
    """The incident's latest fulfilment, for the API (state and reason, never the secret)."""
    return db.session.execute(
        sa.select(Fulfilment)
        .where(Fulfilment.incident_id == incident_id)
        .order_by(Fulfilment.id.desc())
        .limit(1)
    ).scalar_one_or_none()
