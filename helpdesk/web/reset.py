"""The public page a reset link opens: its holder chooses a password under the portal's policy.

It is the one page a parent or student sees. It answers the same way for a token that
never existed as for one that expired or was used, is rate-limited per address, and
tells the browser to send no Referer (the token is in the address) and keep no copy.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template
from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms.validators import DataRequired, EqualTo

from ..errors import InvalidInput
from ..extensions import limiter
from ..services.credentials import LinkNotUsable
from ..services.reset_links import choose_password, open_link
from . import token_in_address

bp = Blueprint("reset", __name__)
bp.after_request(token_in_address)  # the reset token is in the address


class ChoosePasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired("Enter a new password.")])
    confirm = PasswordField(
        "New password again",
        validators=[
            DataRequired("Enter the new password again."),
            EqualTo("password", "The two passwords are not the same."),
        ],
    )


def _rate() -> str:
    return str(current_app.config["RESET_PAGE_RATE_LIMIT"])


@bp.route("/reset/<token>", methods=["GET", "POST"])
@limiter.limit(_rate)
def choose(token: str) -> Any:
    """Check the link first; show its rules; on a submission list every problem at once,
    or set the password, void the link and point to the portal."""
    form = ChoosePasswordForm()
    typed = form.password.data if form.is_submitted() else None
    try:
        link = open_link(token, typed)
    except LinkNotUsable as error:
        # The same page for a link that never existed, expired or was used.
        return render_template("reset/unusable.html", message=error.message), 404
    problems: list[str] = []
    if form.is_submitted():
        form.validate()  # both boxes filled in, and the same
        errors = form.errors
        rest = [m for name, found in errors.items() if name != "password" for m in found]
        problems = list(dict.fromkeys([*errors.get("password", []), *link.unmet, *rest]))
    if form.is_submitted() and not problems:
        try:
            choose_password(token, form.password.data or "")
        except LinkNotUsable as error:  # used in another tab a moment ago
            return render_template("reset/unusable.html", message=error.message), 404
        except InvalidInput as error:  # the store's own rules (history, a directory's)
            fields = error.details.get("errors", {}).get("fields", {})
            problems = fields.get("password") or [error.message]
        else:
            return render_template("reset/done.html", link=link), 200
    status = 422 if problems else 200
    return render_template("reset/choose.html", form=form, problems=problems, link=link), status
