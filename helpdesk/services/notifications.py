"""Who an email goes to, and the emails that carry no secret (outcomes, notices).

The address on file is read from the records when the email is sent, never taken
from an incident, a rule or a job argument (SPEC §6.1): a notification names an
audience ("filer", "guardian", "holder", "guardian:<id>", "queue:<slug>"), not an address.

The account holder is told of every completed reset, reminder, revocation and
restoration (NIST SP 800-63B-4 §4.6): ``tell_holder`` promises that notice, and nothing
turns it off. A notice that reaches nobody is recorded on the incident's timeline.
"""

from __future__ import annotations

import hashlib
import smtplib
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..domain.moments import shown
from ..domain.roles import SELF_SERVICE
from ..extensions import db
from ..models import (
    Guardian,
    GuardianStudent,
    Incident,
    Notification,
    PortalAccount,
    Queue,
    User,
    queue_members,
    utcnow,
)
from . import audit, mail, outbox
from .audit import Event
from .uow import unit_of_work

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
    return filer_recipient(incident.filer_id)


def filer_recipient(filer_id: int) -> Recipient | None:
    """The filing employee's staff email on the records now (not their sign-in address)."""
    filer = db.session.get(User, filer_id)
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


HOLDER_NOTICE = "holder_notice"


# What the holder is told, per thing done: its headline, then what happened.
HOLDER_NOTICES = {
    "password_reset": ("Account notice: password reset",
                       "On {when}, {requested}, the password of {account} was "
                       "reset. A one-time password was sent to {sent_to}; the old password no "
                       "longer works."),
    "reset_link": ("Account notice: reset link sent",
                   "On {when}, {requested}, a link to choose a new password "
                   "for {account} was sent to {sent_to}."),
    "username_reminder": ("Account notice: username sent",
                          "On {when}, {requested}, the username of {account} "
                          "was sent to {sent_to}. The password was not changed."),
    "access_revoked": ("Account notice: portal access stopped",
                       "On {when}, {requested}, {account} was stopped: its "
                       "accounts cannot sign in, and no password reset will be made until the "
                       "school restores access."),
    "access_restored": ("Account notice: portal access restored",
                        "On {when}, {account} at {school} was restored by the school's IT "
                        "support: you can sign in again."),
}  # fmt: skip


def tell_holder(
    incident: Incident, what: str, account: str, sent_to: str = "", audience: str = "holder"
) -> int:
    """Promise the account holder's notice that ``what`` (a key of HOLDER_NOTICES) was
    done to ``account`` (words: "your parent portal access"): when, at which school's
    request, where the result went, and what to do if they did not ask. Never a secret."""
    headline, happened = HOLDER_NOTICES[what]
    requested = ("through the self-service recovery page" if incident.filer.role == SELF_SERVICE
                 else f"at the request of {incident.school.name}")  # fmt: skip
    words = {"when": shown(utcnow(), incident.school.timezone), "school": incident.school.name,
             "requested": requested, "account": account, "sent_to": sent_to}  # fmt: skip
    return notify(incident.id, HOLDER_NOTICE, audience, what=what, headline=headline,
                  happened=happened.format(**words))  # fmt: skip


def holder_addresses(incident: Incident) -> list[str]:
    """Whom an incident's work is told to, from the records now: the guardian for a parent
    account; for a student account, the student's own email on file, and otherwise the
    guardians with parental responsibility who are the main contact."""
    if incident.type in PARENT_TYPES:
        return _guardian_addresses([incident.guardian_id] if incident.guardian_id else [])
    account = db.session.get(PortalAccount, incident.portal_account_id or 0)
    student = account.student if account is not None else None
    if student is None:
        return []
    if student.active and student.email:
        return [student.email]
    responsible_main_contacts = sa.select(GuardianStudent.guardian_id).where(
        GuardianStudent.student_id == student.id,
        GuardianStudent.parental_responsibility.is_(True),
        GuardianStudent.main_contact.is_(True),
    )
    return _guardian_addresses(responsible_main_contacts)


def _guardian_addresses(ids: Any) -> list[str]:
    """The emails on file of these guardians (ids, or a select of them) who are active."""
    found = db.session.execute(
        sa.select(Guardian.email)
        .where(Guardian.id.in_(ids), Guardian.active.is_(True), Guardian.email.is_not(None))
        .order_by(Guardian.email)
    ).scalars()
    return [address for address in found if address]


_SUBJECTS = {
    "acknowledgement": "{ref}: received",
    "outcome": "{ref}: outcome of your request",
    "revocation_notice": "{ref}: portal access revoked",
    "queue_notice": "{ref}: new in your queue",
    "escalation_notice": "{ref}: escalated to your queue, a deadline passed",
    "sla_warning": "{ref}: resolution deadline near",
    "verification_locked": "{ref}: record checks locked after repeated failures",
    "password_changed": "Your portal password was changed",
    "link_decision": "Your request to link a child to your parent portal account ({ref})",
    HOLDER_NOTICE: "{headline} ({ref})",
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
    sent in that unit of work before the lock is let go for the next one: a worker that
    dies between two recipients, or a duplicate job, never emails the earlier ones again.
    """
    unusable: dict[str, str] = {}  # address on file -> why no email can go to it, this run
    while True:
        with unit_of_work():
            note = _locked(notification_id)
            if note is None or note.state != "pending":
                if note is not None:
                    outbox.complete("deliver_email", note.id)
                return note.state if note else "missing"
            incident = db.session.get(Incident, note.incident_id)
            assert incident is not None
            sent = list(note.sent_to or [])
            to_send = [a for a in _audience(note.audience, incident)
                       if a not in sent and a not in unusable]  # fmt: skip
            if not to_send:
                return _finish(note, unusable)
            failure = _send(note, incident, to_send[0], unusable)
        if failure is not None:
            raise mail.DeliveryFailed(failure)  # RQ retries it with the backoff


def _send(
    note: Notification, incident: Incident, address: str, unusable: dict[str, str]
) -> str | None:
    """Send the notification to one address and record it; the reason when the mail server
    refused and a retry is left (the attempt is counted, the state kept pending)."""
    context = {**note.context, "ref": incident.ref, "type": incident.type.replace("_", " "),
               "school": incident.school.name,
               "queue": incident.queue.name if incident.queue else ""}  # fmt: skip
    subject = _SUBJECTS[note.template].format(**{**note.context, "ref": incident.ref})
    # The same Message-ID for an address on every attempt, so a receiver can drop a
    # repeat sent by a worker that died before recording the acceptance.
    tag = hashlib.sha256(address.encode()).hexdigest()[:12]
    message_id = f"<notification-{note.id}.{tag}@{mail.message_domain()}>"
    try:
        mail.send(mail.Email(address, subject, note.template, context, message_id))
    except mail.UnusableAddress as error:
        unusable[address] = str(error)  # no retry can help: the record must change
        return None
    except (smtplib.SMTPException, OSError) as error:
        note.attempts += 1
        note.last_error = mail.failure_reason(error)
        if note.attempts < outbox.attempts_allowed():
            return note.last_error
        note.state = "failed"  # the next turn finds it so, completes the promise and ends
        _not_told(note, f"the mail server refused it {note.attempts} times ({note.last_error})")
        return None
    note.sent_to = [*(note.sent_to or []), address]
    return None


def _finish(note: Notification, unusable: dict[str, str]) -> str:
    """Every address is sent to (or cannot be): the notification is sent, or failed."""
    if unusable:
        why = "; ".join(unusable.values())
        note.last_error = ("not sent to an address on file that is not an email address "
                           f"(correct the record): {why}")[:500]  # fmt: skip
    if note.template == HOLDER_NOTICE and not note.sent_to:
        note.state = "failed"
        note.last_error = note.last_error or "there is no email on file for the account holder"
        _not_told(note, note.last_error)
    elif unusable and not note.sent_to:
        note.state = "failed"
    else:
        note.state, note.sent_at = "sent", utcnow()
    outbox.complete("deliver_email", note.id)
    return note.state


def _not_told(note: Notification, why: str) -> None:
    """A holder's notice that reached nobody is visible on the incident, saying why."""
    if note.template == HOLDER_NOTICE:
        incident = db.session.get(Incident, note.incident_id)
        assert incident is not None
        audit.record(Event(incident.id, "holder_not_told", incident.status, incident.status,
                           f"the account holder could not be told: {why}"[:500],
                           data={"notification": note.id}))  # fmt: skip


def _audience(audience: str, incident: Incident) -> list[str]:
    if audience == "filer":
        filer = db.session.get(User, incident.filer_id)
        return [filer.email] if filer is not None and filer.active else []
    if audience == "guardian":
        recipient = recipient_for(incident) if incident.type in PARENT_TYPES else None
        return [recipient.address] if recipient else []
    if audience == "holder":
        return holder_addresses(incident)
    if audience.startswith("guardian:"):
        return _guardian_addresses([int(audience[len("guardian:") :])])
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
