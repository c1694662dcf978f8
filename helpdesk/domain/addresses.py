"""Email addresses the service will send to: checked where they arrive and again at send.

A header can be forged with a CR or LF inside an address, and a mail library refuses
many other malformed ones only when a message is built, so every address is checked
with email-validator (RFC 5322/6531 syntax, no DNS look-up) at roster import, at user
creation and before each send.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email


class UnusableAddress(ValueError):
    """An address no email can be sent to; the message says what is wrong with it."""


def checked_address(address: str) -> str:
    """The address, normalised (domain in lower case), or UnusableAddress."""
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise UnusableAddress(f"{address!r} is not an email address: {error}") from None
