"""Who an email goes to, and the emails that carry no secret (outcomes, notices).

The address on file is read from the records when the email is sent, never taken
from an incident, a rule or a job argument (SPEC §6.1): a notification names an
audience ("filer", "guardian", "queue:<slug>"), not an address.
"""

from __future__ import annotations

import hashlib
import smtplib
from dataclasses import dataclass

import sqlalchemy as sa

from ..extensions import db
from ..models import Guardian, Incident, Notification, Queue, User, queue_members, utcnow
from . import mail, outbox

# Incidents whose result goes to the guardian; the rest go to the filing employee.
PARENT_TYPES = frozenset({"parent_password_reset", "username_reminder"})


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


def mask(address: str) -> str:
    """An address as the audit trail shows it: enough to recognise, not to harvest."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


_INSERT_NOTIFICATION = sa.insert(Notification.__table__).returning(Notification.__table__.c.id)


def notify(incident_id: int, template: str, audience: str, **context: str) -> int:
    """Promise an email without a secret; who receives it is decided when it is sent."""
    note_id: int = db.session.execute(
        _INSERT_NOTIFICATION,
        {"incident_id": incident_id, "template": template, "audience": audience,
         "context": context},
    ).scalar_one()  # fmt: skip
    outbox.promise("deliver_email", note_id, "mail")
    return note_id


_SUBJECTS = {
    "acknowledgement": "{ref}: received",
    "outcome": "{ref}: outcome of your request",
    "revocation_notice": "{ref}: portal access revoked",
    "queue_notice": "{ref}: new in your queue",
    "escalation_notice": "{ref}: escalated to your queue, a deadline passed",
    "sla_warning": "{ref}: resolution deadline near",
    "verification_locked": "{ref}: record checks locked after repeated failures",
    "password_changed": "Your portal password was changed",
}


def _locked(notification_id: int) -> Notification | None:
    return db.session.execute(
        sa.select(Notification)
        .where(Notification.id == notification_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def deliver_notification(notification_id: int) -> str:
    """Send one notification to its audience as the records say now; idempotent.

    Each address is sent to while the notification's row is locked, and recorded as
    sent before the lock is let go for the next one: a worker that dies between two
    recipients, or a duplicate job, never emails the earlier ones again.
    """
    note = _locked(notification_id)
    if note is None or note.state != "pending":
        if note is not None:
            outbox.complete("deliver_email", note.id)
        db.session.commit()
        return note.state if note else "missing"
    incident = db.session.get(Incident, note.incident_id)
    assert incident is not None
    context = {**note.context, "ref": incident.ref, "type": incident.type.replace("_", " "),
               "school": incident.school.name, "queue": incident.queue_slug or ""}  # fmt: skip
    subject = _SUBJECTS[note.template].format(ref=incident.ref)
    domain = mail.message_domain()
    sent = list(note.sent_to or [])
    to_send = [address for address in _audience(note.audience, incident) if address not in sent]
    unusable: list[str] = []
    try:
        for number, address in enumerate(to_send):
            if number:
                # Record the last acceptance, then lock again: another copy of this job
                # may have gone on meanwhile.
                note.sent_to = sent
                db.session.commit()
                relocked = _locked(notification_id)
                if relocked is None or relocked.state != "pending":
                    db.session.commit()
                    return relocked.state if relocked else "missing"
                note = relocked
                sent = list(note.sent_to or [])
                if address in sent:
                    continue
            # The same Message-ID for an address on every attempt, so a receiver can
            # drop a repeat sent by a worker that died before recording the acceptance.
            tag = hashlib.sha256(address.encode()).hexdigest()[:12]
            try:
                mail.send(mail.Email(address, subject, note.template, context,
                                     f"<notification-{note.id}.{tag}@{domain}>"))  # fmt: skip
            except mail.UnusableAddress as error:
                unusable.append(str(error))  # no retry can help: the record must change
                continue
            sent.append(address)
    except (smtplib.SMTPException, OSError) as error:
        note.sent_to = sent
        note.attempts += 1
        note.last_error = mail.failure_reason(error)
        if note.attempts < outbox.attempts_allowed():
            db.session.commit()
            raise mail.DeliveryFailed(note.last_error) from None
        note.state = "failed"
    else:
        note.sent_to = sent
        if unusable:
            note.last_error = ("not sent to an address on file that is not an email address "
                               "(correct the record): " + "; ".join(unusable))[:500]  # fmt: skip
        if unusable and not sent:
            note.state = "failed"
        else:
            note.state, note.sent_at = "sent", utcnow()
    outbox.complete("deliver_email", note.id)
    db.session.commit()
    return note.state


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
