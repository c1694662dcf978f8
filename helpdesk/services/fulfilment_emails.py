"""What a fulfilment's emails say: the result, to the address on file, and the notice to
the account's holder of what was done. The secret is unsealed here, into the message only."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import current_app

from ..domain.moments import shown
from ..models import DeliveryMode, FulfilmentKind, Incident
from ..security import unseal
from . import mail
from .credentials import store_for
from .notifications import Recipient, tell_holder

if TYPE_CHECKING:  # the state machine imports this module to send what it says
    from .fulfilment_run import Work


def notify_holder(work: Work) -> None:
    """The holder hears what was done, wherever the result went (NIST SP 800-63B-4 §4.6)."""
    fulfilment, incident, account = work.fulfilment, work.incident, work.account
    assert account is not None
    if fulfilment.kind == FulfilmentKind.REMINDER:
        what = "username_reminder"
    elif fulfilment.mode == DeliveryMode.RESET_LINK:
        what = "reset_link"
    else:
        what = "password_reset"
    if account.student is not None:
        words = f"the {account.portal} portal account of {account.student.full_name}"
        sent_to = f"a member of staff at {incident.school.name}, to give to the student"
    else:
        words, sent_to = f"your {account.portal} portal account", "your email address on file"
    tell_holder(incident, what, words, sent_to)


def result_email(work: Work, recipient: Recipient) -> mail.Email:
    """The result itself, to the address on file: the username, the one-time password or
    the reset link, as the portal's delivery mode says."""
    fulfilment, incident, account = work.fulfilment, work.incident, work.account
    assert account is not None
    context: dict[str, Any] = {
        "name": recipient.name, "ref": incident.ref, "username": account.username,
        "portal": account.portal, "school": incident.school.name,
        "for_student": incident.type == "student_password_reset",
    }  # fmt: skip
    student = account.student if context["for_student"] else None
    # The employee who gives it to the student reads whom it is for, from the record.
    context["student"] = f"{student.full_name} ({student.student_number})" if student else None
    for_whom = f" for {context['student']}" if student else ""
    message_id = f"<fulfilment-{fulfilment.id}@{mail.message_domain()}>"
    if fulfilment.kind == FulfilmentKind.REMINDER:
        # The name the holder signs in with, as the portal's store has it now.
        context["username"] = store_for(account.portal).username(account)
        return mail.Email(recipient.address, "Your portal username", "username_reminder",
                          context, message_id)  # fmt: skip
    secret = unseal(current_app.config["SECRET_KEY"], fulfilment.sealed_secret or "")
    context["expires"] = shown_for(fulfilment.secret_expires_at, incident)
    if fulfilment.mode == DeliveryMode.RESET_LINK:
        base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
        context["link"] = f"{base}/reset/{secret}"  # the configured URL, never a request's Host
        subject = f"Choose a new portal password{for_whom}"
        return mail.Email(recipient.address, subject, "reset_link", context, message_id)
    context["password"] = secret
    subject = f"New portal password{for_whom}" if student else "Your new portal password"
    return mail.Email(recipient.address, subject, "reset_result", context, message_id)


def shown_for(moment: datetime | None, incident: Incident) -> str:
    """As the school's families read it (they, and its staff, get these emails)."""
    return shown(moment, incident.school.timezone) if moment else "never"
