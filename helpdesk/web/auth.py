"""Signing in and out, and accepting an invitation to choose a password."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from ..errors import InvalidInput
from ..extensions import limiter
from ..request_input import keeps_the_form, unstorable_fields
from ..services import sign_in as sign_in_service
from . import token_in_address
from .access import current_user, page_for

bp = Blueprint("auth", __name__)
bp.after_request(token_in_address)  # invitations carry their token in the address


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site: never an absolute or scheme-relative address."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target[1:2] in ("/", "\\"):
        return None  # browsers read "//host" and "/\\host" alike: another site
    return target


def _start_session(user: Any) -> None:
    session.clear()  # a fresh session: nothing from before sign-in carries over
    session.permanent = True  # expires after PERMANENT_SESSION_LIFETIME
    session["user_id"] = user.id
    session["fp"] = sign_in_service.session_fingerprint(user)


def _rate() -> str:
    return str(current_app.config["SIGN_IN_RATE_LIMIT"])


@bp.route("/sign-in", methods=["GET", "POST"])
@keeps_the_form
@limiter.limit(_rate, methods=["POST"])
def sign_in() -> Any:
    errors: dict[str, list[str]] = dict(unstorable_fields())
    email = ""
    if request.method == "POST":
        email = request.form.get("email", "").strip()
        password = request.form.get("password", "")
        if not email:
            errors.setdefault("email", ["Enter your email address."])
        if not password:
            errors.setdefault("password", ["Enter your password."])
        if not errors:
            try:
                user = sign_in_service.sign_in(email, password)
            except InvalidInput as error:
                errors["email"] = [error.message]
            else:
                _start_session(user)
                return redirect(_safe_next(request.args.get("next")) or url_for("pages.home"))
    elif current_user() is not None:
        return redirect(url_for("pages.home"))
    status = 422 if errors else 200
    return render_template("pages/sign_in.html", errors=errors, email=email), status


@bp.post("/sign-out")
def sign_out() -> Any:
    user = current_user()
    if user is not None:
        sign_in_service.end_sessions(user.id)  # a copy of the cookie stops working too
    session.clear()
    flash("You have signed out.")
    return redirect(url_for("auth.sign_in"))


@bp.route("/invite/<token>", methods=["GET", "POST"])
@keeps_the_form
@limiter.limit(_rate, methods=["POST"])
def accept_invite(token: str) -> Any:
    errors: dict[str, list[str]] = dict(unstorable_fields())
    try:
        user = sign_in_service.invited_user(token)
    except InvalidInput as error:
        return render_template("pages/invite_unusable.html", message=error.message), 404
    if request.method == "POST" and not errors:
        password = request.form.get("password", "")
        if password != request.form.get("confirm", ""):
            errors["confirm"] = ["The two passwords are not the same."]
        else:
            errors["password"] = sign_in_service.password_problems(user, password)
        errors = {k: v for k, v in errors.items() if v}
        if not errors:
            sign_in_service.accept_invite(token, password)
            _start_session(user)
            flash("Your password is set. You are signed in.")
            return redirect(url_for("pages.home"))
    status = 422 if errors else 200
    return render_template("pages/invite.html", errors=errors, user=user), status


@bp.route("/account/password", methods=["GET", "POST"])
@keeps_the_form
@page_for()
@limiter.limit(_rate, methods=["POST"])
def change_password() -> Any:
    """Staff change their own password; their other sessions end, this one goes on."""
    errors: dict[str, list[str]] = dict(unstorable_fields())
    user = current_user()
    assert user is not None  # page_for() signed them in
    if request.method == "POST" and not errors:
        current = request.form.get("current", "")
        password = request.form.get("password", "")
        if not current:
            errors["current"] = ["Enter your current password."]
        if not password:
            errors["password"] = ["Enter a new password."]
        elif password != request.form.get("confirm", ""):
            errors["confirm"] = ["The two new passwords are not the same."]
        elif password == current:
            errors["password"] = ["Choose a password you have not been using."]
        if not errors:
            try:
                changed = sign_in_service.change_password(user.id, current, password)
            except InvalidInput as error:
                field = "current" if error.code == "current_password_wrong" else "password"
                errors[field] = [error.message]
            else:
                _start_session(changed)
                flash("Your password is changed. Any other session of yours was signed out.")
                return redirect(url_for("pages.home"))
    status = 422 if errors else 200
    return render_template("pages/change_password.html", errors=errors), status
