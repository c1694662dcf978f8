"""Signing in and out, the second step after a password, and accepting an invitation
to choose a password."""

from __future__ import annotations

import time
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

from ..errors import InvalidInput, NotFound
from ..extensions import limiter
from ..models import User
from ..request_input import keeps_the_form, unstorable_fields
from ..services import sign_in as sign_in_service
from ..services import two_step, users
from . import token_in_address
from .access import current_user, page_for

bp = Blueprint("auth", __name__)
bp.after_request(token_in_address)  # invitations carry their token in the address


def safe_next(target: str | None) -> str | None:
    """Only a path on this site: never an absolute or scheme-relative address."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target[1:2] in ("/", "\\"):
        return None  # browsers read "//host" and "/\\host" alike: another site
    return target


def start_session(user: Any, second_step: str | None = None) -> None:
    """Signed in. ``second_step`` says how more than a password was shown ("code", or
    "sso" for the identity provider's own sign-in); a role that needs it has no session
    without it (``access.current_user``)."""
    session.clear()  # a fresh session: nothing from before sign-in carries over
    session.permanent = True  # expires after PERMANENT_SESSION_LIFETIME
    session["user_id"] = user.id
    session["fp"] = sign_in_service.session_fingerprint(user)
    if second_step:
        session["two_step"] = second_step


# Between a right password and the second step: long enough to find the phone.
_PENDING_SECONDS = 600


def _after_password(user: User, next_page: str | None) -> Any:
    """A right password: signed in, or on to the code (or to setting one up, where the
    role needs it) with only a note in the session of whose password it was."""
    if not two_step.asked_of(user):
        start_session(user)
        return redirect(next_page or url_for("pages.home"))
    for key in ("user_id", "fp", "two_step"):  # no session yet; the form's CSRF token stays
        session.pop(key, None)
    session["pending"] = {
        "user_id": user.id, "fp": sign_in_service.session_fingerprint(user),
        "at": time.time(), "next": next_page,
    }  # fmt: skip
    return redirect(url_for("auth.second_step" if two_step.enrolled(user) else "auth.set_up"))


def _pending_user() -> User | None:
    """Whose password was right a moment ago, while the second step is still to come."""
    pending = session.get("pending")
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > _PENDING_SECONDS:
        return None
    try:
        user = users.user_by_id(int(pending["user_id"]))
    except NotFound:
        return None
    if sign_in_service.session_fingerprint(user) != pending.get("fp"):
        return None
    return user


def _not_this_step(user: User | None, *, enrolled: bool) -> Any | None:
    """Where a browser on the wrong second step goes: to sign in again when the time ran
    out, or to the step the account is at (a code once set up, else setting it up)."""
    if user is None:
        flash("Sign in again: the time for the second step ran out.")
        return redirect(url_for("auth.sign_in"))
    if two_step.enrolled(user) != enrolled:
        return redirect(url_for("auth.second_step" if two_step.enrolled(user) else "auth.set_up"))
    return None


def _typed_code(errors: dict[str, list[str]], missing: str) -> str | None:
    """The code the form sent, or None with ``missing`` as its error."""
    code = request.form.get("code", "").strip()
    if not code:
        errors["code"] = [missing]
        return None
    return code


def _past_second_step(user: User) -> Any:
    next_page = (session.get("pending") or {}).get("next")
    start_session(user, "code")
    return redirect(safe_next(next_page) or url_for("pages.home"))


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
                return _after_password(user, safe_next(request.args.get("next")))
    elif current_user() is not None:
        return redirect(url_for("pages.home"))
    status = 422 if errors else 200
    return render_template("pages/sign_in.html", errors=errors, email=email), status


@bp.route("/sign-in/code", methods=["GET", "POST"])
@keeps_the_form
@limiter.limit(_rate, methods=["POST"])
def second_step() -> Any:
    """After the password: the code from the authenticator app, or a recovery code."""
    user = _pending_user()
    elsewhere = _not_this_step(user, enrolled=True)
    if elsewhere is not None or user is None:
        return elsewhere
    errors: dict[str, list[str]] = dict(unstorable_fields())
    if request.method == "POST" and not errors:
        code = _typed_code(errors, "Enter the 6-digit code from your authenticator app.")
        try:
            user = two_step.check(user.id, code) if code else None
        except InvalidInput as error:
            errors["code"] = [error.message]
        if user is not None and not errors:
            left = two_step.recovery_codes_left(user.id)
            if left <= 3:
                flash(f"You have {left} recovery codes left. Ask an admin to reset your "
                      "two-step sign-in for new ones before they run out.")  # fmt: skip
            return _past_second_step(user)
    status = 422 if errors else 200
    return render_template("pages/sign_in_code.html", errors=errors), status


@bp.route("/sign-in/set-up", methods=["GET", "POST"])
@keeps_the_form
@limiter.limit(_rate, methods=["POST"])
def set_up() -> Any:
    """Setting up two-step sign-in, where the role needs it, before the first session."""
    user = _pending_user()
    elsewhere = _not_this_step(user, enrolled=False)
    if elsewhere is not None or user is None:
        return elsewhere
    errors: dict[str, list[str]] = dict(unstorable_fields())
    if request.method == "POST" and not errors:
        code = _typed_code(errors, "Enter the 6-digit code your authenticator app shows.")
        codes = None
        try:
            codes = two_step.confirm_enrolment(user.id, code) if code else None
        except InvalidInput as error:
            errors["code"] = [error.message]
        if codes and not errors:
            next_page = safe_next((session.get("pending") or {}).get("next"))
            start_session(user, "code")
            return render_template("pages/recovery_codes.html", codes=codes,
                                   next_page=next_page or url_for("pages.home"))  # fmt: skip
    enrolment = two_step.begin_enrolment(user.id)
    status = 422 if errors else 200
    return render_template("pages/two_step_set_up.html", errors=errors, enrolment=enrolment,
                           email=user.email), status  # fmt: skip


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
            user = sign_in_service.accept_invite(token, password)
            flash("Your password is set. " + ("Now set up two-step sign-in." if
                  two_step.asked_of(user) else "You are signed in."))  # fmt: skip
            return _after_password(user, None)
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
                start_session(changed, session.get("two_step"))
                flash("Your password is changed. Any other session of yours was signed out.")
                return redirect(url_for("pages.home"))
    status = 422 if errors else 200
    return render_template("pages/change_password.html", errors=errors), status
