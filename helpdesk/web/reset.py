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
from ..services.reset_links import choose_password
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
    """Show the form; on a valid submission, set the password and void the link."""
    form = ChoosePasswordForm()
    problems: list[str] = []
    if form.validate_on_submit():
        try:
            portal = choose_password(token, form.password.data or "")
        except InvalidInput as error:
            fields = error.details.get("errors", {}).get("fields", {})
            problems = fields.get("password") or [error.message]
        else:
            return render_template("reset/done.html", portal=portal), 200
    else:
        problems = [message for messages in form.errors.values() for message in messages]
    status = 422 if problems else 200
    return render_template("reset/choose.html", form=form, problems=problems), status
