"""A class reset's one message: every new one-time password of the class, on one printable
slip per student, emailed to the teacher who filed it — as HTML, and as a PDF to print
and cut.

Each student's fulfilment runs as a single one would, up to setting the credential
(``fulfilment_run``); the last of the class to be set (or given back) promises this job.
It sends to the filing employee's staff email on the records now, never to an address
anyone typed. A refused message is retried as a message: the credentials are sealed on
their rows until it is accepted, so no student is reset twice; after the last attempt
every incident still waiting goes back to a person, saying why.
"""

from __future__ import annotations

import os
import smtplib
from dataclasses import dataclass
from functools import cache

import sqlalchemy as sa
from flask import current_app
from fpdf import FPDF

from ..extensions import db
from ..models import (
    ClassReset,
    ClassResetState,
    DeliveryMode,
    FulfilmentState,
    SchoolClass,
    utcnow,
)
from ..security import unseal
from . import mail, outbox
from .audit import Event, record
from .fulfilment_emails import notify_holder, shown_for
from .fulfilment_run import CLASS_SLIPS_JOB, Work, abandon, lock_class, record_done
from .notifications import Recipient, filer_recipient, mask
from .uow import unit_of_work


@dataclass(frozen=True)
class Slip:
    """What one student is handed: never stored, only rendered into the message."""

    student: str
    student_number: str
    username: str
    secret: str  # the one-time password, or the reset link
    is_link: bool
    portal: str
    sign_in_url: str | None
    expires: str
    ref: str


@dataclass(frozen=True)
class NotReset:
    student: str
    ref: str
    reason: str


def deliver(class_reset_id: int) -> str:
    """Send (or finish) one class reset's message; safe to call any number of times."""
    refused = None
    with unit_of_work():
        # The fulfilments first, in id order, as a worker settling one locks it before
        # the class reset: two lockers never wait on each other.
        members = lock_class(class_reset_id)
        together = db.session.execute(
            sa.select(ClassReset).where(ClassReset.id == class_reset_id).with_for_update()
        ).scalar_one_or_none()  # fmt: skip
        if together is None:
            return "missing"
        if together.state != ClassResetState.SENDING:
            outbox.complete(CLASS_SLIPS_JOB, together.id)
            return together.state
        ready = [w for w in members if w.state is FulfilmentState.CREDENTIAL_SET]
        recipient = filer_recipient(together.filer_id)
        if recipient is None:
            _give_back(together, ready, "the filing employee has no staff email on file")
            return together.state
        try:
            mail.send(_message(together, members, ready, recipient))
        except (smtplib.SMTPException, OSError) as error:
            refused = _refused(together, ready, mail.failure_reason(error))
        except mail.UnusableAddress as error:
            _give_back(together, ready, f"the staff email on file cannot be emailed ({error})")
        else:
            _delivered(together, ready, recipient)
        state = together.state
    if refused:
        raise mail.DeliveryFailed(refused)  # RQ retries the message, never the resets
    return state


def _delivered(together: ClassReset, ready: list[Work], recipient: Recipient) -> None:
    now = utcnow()
    for work in ready:
        fulfilment = work.fulfilment
        record_done(work.incident, "delivered",
                    f"emailed to {recipient.whose}, on the class's slips", now,
                    fulfilment=fulfilment.id, to=mask(recipient.address),
                    class_reset=together.id)  # fmt: skip
        fulfilment.state, fulfilment.delivered_at = FulfilmentState.DELIVERED.value, now
        fulfilment.sealed_secret = fulfilment.last_error = None
        notify_holder(work)
    together.state, together.delivered_at = ClassResetState.DELIVERED.value, now
    together.last_error = None
    outbox.complete(CLASS_SLIPS_JOB, together.id, now)


def _refused(together: ClassReset, ready: list[Work], reason: str) -> str | None:
    """Count a refused attempt on every incident waiting for it; give them back after the
    last. The reason to retry, or None when there is no retry left."""
    together.attempts += 1
    together.last_error = reason
    if together.attempts >= outbox.attempts_allowed():
        _give_back(together, ready, f"the class's slips could not be delivered after "
                   f"{together.attempts} attempts: {reason}")  # fmt: skip
        return None
    for work in ready:
        record(Event(work.incident.id, FulfilmentState.DELIVERY_FAILED.value,
                     work.incident.status, work.incident.status,
                     f"the class's slips were not accepted ({reason}); trying again",
                     data={"fulfilment": work.fulfilment.id, "attempt": together.attempts,
                           "class_reset": together.id}))  # fmt: skip
    return reason


def _give_back(together: ClassReset, ready: list[Work], reason: str) -> None:
    for work in ready:
        abandon(work.fulfilment, work.incident, reason)
    together.state, together.last_error = ClassResetState.ABANDONED.value, reason
    outbox.complete(CLASS_SLIPS_JOB, together.id)


def _message(
    together: ClassReset, members: list[Work], ready: list[Work], recipient: Recipient
) -> mail.Email:
    taught = db.session.get(SchoolClass, together.class_id)
    assert taught is not None
    slips = [_slip(work) for work in ready]
    not_reset = [
        NotReset(_student_of(work), work.incident.ref, work.fulfilment.last_error or "")
        for work in members
        if work.state is FulfilmentState.ABANDONED
    ]
    school = members[0].incident.school.name if members else ""
    context = {"name": recipient.name, "class_title": taught.title, "school": school,
               "slips": slips, "not_reset": not_reset}  # fmt: skip
    attachments: tuple[mail.Attachment, ...] = ()
    if slips:
        pdf = slips_pdf(taught.title, slips)
        attachments = (mail.Attachment(f"slips-{_file_safe(taught.title)}.pdf", "application/pdf",
                                       pdf),)  # fmt: skip
    return mail.Email(
        recipient.address,
        f"New portal passwords for {taught.title}: {len(slips)} slips to print",
        "class_slips",
        context,
        f"<class-reset-{together.id}@{mail.message_domain()}>",
        attachments,
    )


def _student_of(work: Work) -> str:
    student = work.account.student if work.account is not None else None
    return f"{student.full_name} ({student.student_number})" if student else work.incident.ref


def _slip(work: Work) -> Slip:
    fulfilment, account, policy = work.fulfilment, work.account, work.policy
    assert account is not None and account.student is not None
    secret = unseal(current_app.config["SECRET_KEY"], fulfilment.sealed_secret or "")
    is_link = fulfilment.mode == DeliveryMode.RESET_LINK
    if is_link:
        secret = f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/reset/{secret}"
    return Slip(
        student=account.student.full_name, student_number=account.student.student_number,
        username=account.username, secret=secret, is_link=is_link, portal=account.portal,
        sign_in_url=policy.sign_in_url if policy is not None else None,
        expires=shown_for(fulfilment.secret_expires_at, work.incident), ref=work.incident.ref,
    )  # fmt: skip


def _file_safe(title: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in title).strip("-").lower()[:60] or "class"


# -- The PDF -----------------------------------------------------------------------------

# Ten slips to an A4 page, two across, with dashed lines to cut along.
_SLIP_W, _SLIP_H, _MARGIN_X, _MARGIN_Y = 95.0, 55.0, 10.0, 11.0
_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu",)


@cache
def _unicode_fonts() -> tuple[str, str, str] | None:
    """DejaVu Sans, Sans Bold and Sans Mono (Debian's fonts-dejavu-core), for any name on
    the roster; None where they are not installed."""
    for folder in _FONT_DIRS:
        files = tuple(os.path.join(folder, name) for name in
                      ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono.ttf"))  # fmt: skip
        if all(os.path.exists(f) for f in files):
            return files  # type: ignore[return-value]
    return None


def slips_pdf(title: str, slips: list[Slip]) -> bytes:
    """The slips as a PDF to print and cut: one per student, ten to a page."""
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_title(f"Portal password slips: {title}")
    fonts = _unicode_fonts()
    if fonts:
        pdf.add_font("Slip", fname=fonts[0])
        pdf.add_font("Slip", style="B", fname=fonts[1])
        pdf.add_font("SlipMono", fname=fonts[2])
        sans, mono = "Slip", "SlipMono"
    else:  # the PDF's core fonts: Latin-1 only, so other letters become "?"
        sans, mono = "Helvetica", "Courier"
    text = (lambda words: words) if fonts else _latin1
    for index, slip in enumerate(slips):
        if index % 10 == 0:
            pdf.add_page()
        column, row = index % 2, (index % 10) // 2
        x, y = _MARGIN_X + column * _SLIP_W, _MARGIN_Y + row * _SLIP_H
        pdf.set_dash_pattern(dash=1.5, gap=1.5)
        pdf.rect(x, y, _SLIP_W, _SLIP_H)
        pdf.set_dash_pattern()
        pdf.set_xy(x + 4, y + 4)
        pdf.set_font(sans, "B", 12)
        pdf.cell(_SLIP_W - 8, 6, text(f"{slip.student} ({slip.student_number})"))
        lines = [("Username", slip.username, False),
                 ("Reset link" if slip.is_link else "One-time password", slip.secret, True),
                 ("Sign in at", slip.sign_in_url or f"the school's {slip.portal} portal", False),
                 ("Expires", slip.expires, False)]  # fmt: skip
        line_y = y + 13
        for label, value, secret in lines:
            pdf.set_xy(x + 4, line_y)
            pdf.set_font(sans, "", 8)
            pdf.cell(_SLIP_W - 8, 4, text(label))
            pdf.set_xy(x + 4, line_y + 4)
            pdf.set_font(mono if secret else sans, "", 11 if secret and not slip.is_link else 9)
            pdf.multi_cell(_SLIP_W - 8, 4.5, text(value))
            line_y = pdf.get_y() + 1.5
        pdf.set_xy(x + 4, y + _SLIP_H - 7)
        pdf.set_font(sans, "", 7)
        pdf.cell(_SLIP_W - 8, 4, text(f"{slip.ref} · works once; the portal then asks for a "
                                      "new password"))  # fmt: skip
    return bytes(pdf.output())


def _latin1(words: str) -> str:
    return words.encode("latin-1", "replace").decode("latin-1")
