"""A real SMTP server for the tests (aiosmtpd), which can refuse or hang on request."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import socket
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    peer: tuple[str, int]  # the client's end of the SMTP connection it came over

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if part is not None else ""


@dataclass
class Mailbox:
    """What the server accepted; ``refuse`` messages get 451 first, ``hang`` stalls DATA
    (``hang_for`` only for those recipients)."""

    messages: list[Received] = field(default_factory=list)
    refuse: int = 0
    refuse_once_for: set[str] = field(default_factory=set)  # a 451 for these, once each
    refuse_to: set[str] = field(default_factory=set)  # a 451 for these, every time
    hang: bool = False
    hang_for: set[str] = field(default_factory=set)  # stall DATA for these recipients
    stalled: int = 0  # DATA commands stalled so far
    _release: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.hang or self.hang_for & set(envelope.rcpt_tos):
            self.stalled += 1
            self._loop = asyncio.get_running_loop()
            self._release = self._release or asyncio.Event()
            await self._release.wait()
            return "421 4.3.2 Shutting down"
        refused = self.refuse_once_for & set(envelope.rcpt_tos)
        if refused or self.refuse_to & set(envelope.rcpt_tos):
            self.refuse_once_for -= refused
            return "451 4.3.0 Mailbox temporarily unavailable, try again later"
        if self.refuse > 0:
            self.refuse -= 1
            return "451 4.3.0 Mailbox temporarily unavailable, try again later"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), message, tuple(session.peer))
        )
        return "250 2.0.0 OK: queued"

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.rcpt_tos]

    def notices_to(self, address: str) -> list[Received]:
        """The account holder's notices of what was done (never a secret)."""
        return [m for m in self.to(address) if m.message["Subject"].startswith("Account notice:")]

    def results_to(self, address: str) -> list[Received]:
        """Everything else sent to the address: results, outcomes, queue emails."""
        return [m for m in self.to(address) if m not in self.notices_to(address)]

    def reset(self) -> None:
        self.unhang()
        self.messages.clear()
        self.refuse_to.clear()
        self.refuse = 0
        self.refuse_once_for.clear()
        self.stalled = 0

    def unhang(self) -> None:
        self.hang = False
        self.hang_for = set()
        if self._release is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._release.set)
        self._release = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpServer:
    def __init__(self) -> None:
        self.mailbox = Mailbox()
        self.port = free_port()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpServer:
        # This is the recipients' mail server, not the service: its debug log of every
        # DATA line is not a log of ours, and would hold the secret by design.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.mailbox.unhang()
        self.controller.stop()

    def restart(self) -> None:
        """Stop and start again on the same port: every open connection is dropped."""
        self.controller.stop()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()
