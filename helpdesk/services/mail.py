"""Outgoing email: rendered from ``templates/email/``, sent by SMTP or captured to files.

Flask-Mail composes the message. Its own connection has neither a time-out nor a
certificate check, so ``_Connection`` adds both: an SMTP server that hangs costs at
most MAIL_TIMEOUT seconds, and TLS verifies the server against the system's CAs. A
worker thread keeps its connection between emails (MAIL_KEEPALIVE_SECONDS); any
failure closes it, and the next email opens a new one.
"""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from email.policy import compat32
from functools import cache
from typing import Any

import flask_mail
from flask import current_app, render_template

from ..domain.addresses import UnusableAddress, checked_address

__all__ = ["Attachment", "DeliveryFailed", "Email", "UnusableAddress", "send"]


class DeliveryFailed(Exception):
    """The SMTP server did not accept the message; RQ retries the job with backoff."""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    template: str  # templates/email/<template>.txt and .html
    context: dict[str, Any]
    message_id: str  # the same on every attempt, so a receiver can drop a repeat
    attachments: tuple[Attachment, ...] = ()


class _Connection(flask_mail.Connection):
    def __exit__(self, *exc: Any) -> None:
        # Flask-Mail says QUIT even on a connection that just broke, which would hide
        # why it broke; a broken one is simply closed.
        if self.host is not None:
            try:
                self.host.quit()
            except (smtplib.SMTPException, OSError):
                self.host.close()

    def configure_host(self) -> smtplib.SMTP | smtplib.SMTP_SSL:
        config = current_app.config
        timeout = float(config["MAIL_TIMEOUT"])
        host: smtplib.SMTP | smtplib.SMTP_SSL
        name = _local_hostname()
        if self.mail.use_ssl:
            host = smtplib.SMTP_SSL(
                self.mail.server, self.mail.port, local_hostname=name, timeout=timeout,
                context=_tls_context(),
            )  # fmt: skip
        else:
            host = smtplib.SMTP(
                self.mail.server, self.mail.port, local_hostname=name, timeout=timeout
            )
        if self.mail.use_tls:
            host.starttls(context=_tls_context())
        if self.mail.username and self.mail.password:
            host.login(self.mail.username, self.mail.password)
        return host


@cache
def _tls_context() -> ssl.SSLContext:
    # Loading the system's CAs takes ~30 ms: once per process, not once per message.
    return ssl.create_default_context()


@cache
def _local_hostname() -> str:
    # The name said in EHLO. smtplib looks it up (a reverse DNS query) for every
    # connection unless told; a slow resolver would delay every email by as much.
    return socket.getfqdn()


def message_domain() -> str:
    sender = current_app.config["MAIL_DEFAULT_SENDER"]
    return sender.rpartition("@")[2].rstrip(">").strip() or "helpdesk.invalid"


# Flask-Mail sets the SMTP policy on the finished message, so generating it parses every
# header it has just encoded a second time through email.headerregistry. Its headers
# are already encoded for the wire: the legacy generator with CRLF line ends writes the
# same bytes (tests/test_fulfilment.py reads them back) in half the time.
_WIRE = compat32.clone(linesep="\r\n")


class _Message(flask_mail.Message):
    def as_bytes(self) -> bytes:
        return self._message().as_bytes(policy=_WIRE)


def render(email: Email) -> flask_mail.Message:
    context = {**email.context, "base_url": current_app.config["PUBLIC_BASE_URL"]}
    message = _Message(
        subject=email.subject,
        recipients=[email.to],
        body=render_template(f"email/{email.template}.txt", **context),
        html=render_template(f"email/{email.template}.html", **context),
    )
    message.msgId = email.message_id
    for attached in email.attachments:
        message.attach(attached.filename, attached.content_type, attached.data)
    return message


def send(email: Email) -> None:
    """Send one email now; raises smtplib.SMTPException or OSError when it is not accepted,
    and UnusableAddress, before anything is sent, for an address no email can go to."""
    checked_address(email.to)
    message = render(email)
    capture_dir = current_app.config.get("MAIL_CAPTURE_DIR")
    if capture_dir and not current_app.config.get("MAIL_SERVER"):
        _capture(capture_dir, message)
        return
    state = current_app.extensions["mail"]
    keepalive = float(current_app.config["MAIL_KEEPALIVE_SECONDS"])
    if keepalive <= 0 or state.suppress:
        with _Connection(state) as connection:
            connection.send(message)
        return
    connection = _kept_connection(state, keepalive)
    try:
        connection.send(message)
    except BaseException:
        _forget_kept(quit=False)  # whatever state it is in, the next email starts afresh
        raise
    _kept.used_at = time.monotonic()


class _Kept(threading.local):
    """This thread's open SMTP connection, what it was opened for, and when last used."""

    connection: _Connection | None = None
    opened_for: tuple[Any, ...] = ()
    used_at: float = 0.0


_kept = _Kept()


def _kept_connection(state: Any, keepalive: float) -> _Connection:
    """The connection kept from the last email, if recent, for the same server, and alive.

    Opening one costs a TCP connect, the greeting, EHLO (and STARTTLS and AUTH with a real
    relay) and QUIT; a worker sending a run of results pays that once. A NOOP first tells
    a connection the server has since dropped, so no message is sent into one.
    """
    config = current_app.config
    wanted = (state.server, state.port, state.username, state.use_tls, state.use_ssl,
              config["MAIL_TIMEOUT"])  # fmt: skip
    kept = _kept.connection
    if kept is not None and kept.host is not None:
        if time.monotonic() - _kept.used_at < keepalive and _kept.opened_for == wanted:
            if _answers(kept.host):
                return kept
            _forget_kept(quit=False)
        else:
            _forget_kept(quit=True)
    connection = _Connection(state)
    connection.host = connection.configure_host()
    _kept.connection, _kept.opened_for = connection, wanted
    return connection


def _answers(host: smtplib.SMTP) -> bool:
    try:
        return host.noop()[0] == 250
    except (smtplib.SMTPException, OSError):
        return False


def _forget_kept(*, quit: bool) -> None:
    """Close the kept connection: politely (QUIT) when idle, at once after a failure,
    where a QUIT could wait MAIL_TIMEOUT again for a server that hangs."""
    kept, _kept.connection = _kept.connection, None
    if kept is None or kept.host is None:
        return
    if quit:
        kept.__exit__(None, None, None)  # QUIT if it still answers, else just close
    else:
        kept.host.close()


def failure_reason(error: BaseException) -> str:
    """Why a send failed, in words for the incident's timeline (never the message)."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, TimeoutError):
            seconds = float(current_app.config["MAIL_TIMEOUT"])
            return f"the mail server did not answer in time ({seconds:g} s)"
        cause = cause.__cause__ or cause.__context__
    if isinstance(error, smtplib.SMTPResponseException):
        text = error.smtp_error.decode(errors="replace") if isinstance(
            error.smtp_error, bytes) else str(error.smtp_error)  # fmt: skip
        return f"SMTP {error.smtp_code} {text}".strip()[:300]
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "the mail server refused the recipient"
    return f"{type(error).__name__}: {error}"[:300]


def _capture(directory: str, message: flask_mail.Message) -> None:
    """The embedded default's mailbox: one .eml file per message, written atomically."""
    os.makedirs(directory, exist_ok=True)
    name = f"{time.time_ns()}-{message.msgId.strip('<>').split('@')[0]}.eml"
    partial = os.path.join(directory, "." + name)
    with open(partial, "wb") as out:
        out.write(message.as_bytes())
    os.replace(partial, os.path.join(directory, name))
