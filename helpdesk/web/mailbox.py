"""The demo mailbox: the mail the embedded default captured under instance/mail/.

It stands in for the inboxes of the parents, students and staff the demo writes to, so
someone running ``make run`` sees a reset email arrive. It exists only on the embedded
default in development (``init_web`` does not register it otherwise), and only to an
admin: the captured mail holds the one-time passwords the demo sent.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, render_template

from ..models import Role
from .access import page_for

bp = Blueprint("mailbox", __name__, url_prefix="/dev/mail")


@dataclass(frozen=True)
class Captured:
    name: str
    to: str
    subject: str
    sent: Any  # datetime, shown in the service's zone


def _folder() -> Path:
    return Path(current_app.config["MAIL_CAPTURE_DIR"])


def _read(path: Path) -> email.message.EmailMessage:
    with path.open("rb") as handle:
        message = email.message_from_binary_file(handle, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


@bp.get("")
@page_for(Role.ADMIN)
def index() -> Any:
    folder = _folder()
    files = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True)
    mail = []
    for path in files[:200]:
        message = _read(path)
        mail.append(
            Captured(
                path.name,
                str(message["To"]),
                str(message["Subject"]),
                parsedate_to_datetime(str(message["Date"])),
            )
        )
    return render_template("pages/mailbox.html", mail=mail, folder=folder)


@bp.get("/<name>")
@page_for(Role.ADMIN)
def show(name: str) -> Any:
    path = _folder() / name
    if "/" in name or not name.endswith(".eml") or not path.is_file():
        abort(404)
    message = _read(path)
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    return render_template("pages/mail.html", message=message, text=text, name=name)
