"""The public self-service pages: "Forgot your password?", "Forgot your username?" and
"Ask your child's school for help". No sign-in; every form carries a CSRF token; they
work without JavaScript.

Every answer is the same whatever the records said, and takes at least
``SELF_SERVICE_ANSWER_MS``: the page can tell nobody whether details matched. Which
attempt a hand-over follows is kept in the signed session cookie, never in the form.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask_limiter.util import get_remote_address

from ..domain.recovery import KINDS, PASSWORD, QUESTIONS
from ..services import link_requests, self_service
from .forms import FormField, date_from_boxes

bp = Blueprint("recovery", __name__, url_prefix="/recover")

_ATTEMPT = "recovery_attempt"  # the session key naming the last attempt
_FIELDS = {
    "username": FormField("username", QUESTIONS["username"], "As on your portal letter.",
                          width=20, autocomplete="username"),
    "email": FormField("email", QUESTIONS["email"], "The one you gave the school.",
                       autocomplete="email"),
    "postcode": FormField("postcode", QUESTIONS["postcode"], "Of your home address.", width=10,
                          autocomplete="postal-code"),
    "child_birth_date": FormField("child_birth_date", QUESTIONS["child_birth_date"],
                                  "For example, 30 4 2015.", widget="date"),
}  # fmt: skip
_HAND_OVER = (
    FormField("parent_name", "Your full name", autocomplete="name"),
    FormField("child_name", "Your child's full name"),
    FormField("contact_phone", "A phone number the school can call you on",
              "For example, 07700 900 982.", width=20, autocomplete="tel", inputmode="tel"),
)  # fmt: skip
_LINK = (
    _FIELDS["username"],
    _FIELDS["email"],
    FormField("school", "Your child's school", widget="select"),
    FormField("child_given_name", "Your child's first name"),
    FormField("child_family_name", "Your child's last name"),
    FormField("child_birth_date", "Your child's date of birth", "For example, 30 4 2015.",
              widget="date"),
)  # fmt: skip
_LONGEST = {"username": 255, "email": 320, "postcode": 16, "parent_name": 200,
            "child_name": 200, "contact_phone": 40, "school": 64}  # fmt: skip


def _in_equal_time(work: Callable[[], Any]) -> Any:
    """Run ``work``; answer no sooner than the configured least time, whatever it did."""
    started = time.monotonic()
    try:
        return work()
    finally:
        least = int(current_app.config["SELF_SERVICE_ANSWER_MS"]) / 1000
        time.sleep(max(0.0, least - (time.monotonic() - started)))


def _read(fields: tuple[FormField, ...]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """What was typed in ``fields``, and what to fix: every field is needed."""
    typed: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for field in fields:
        if field.widget == "date":
            value, problem = date_from_boxes(field, request.form)
            if problem:
                errors[field.name] = [problem]
        else:
            value = (request.form.get(field.name) or "").strip()
            longest = _LONGEST.get(field.name, 200)
            if len(value) > longest:
                errors[field.name] = [f"Must be {longest} characters or fewer."]
        if not value and field.name not in errors:
            errors[field.name] = [f"Enter {field.label[0].lower()}{field.label[1:]}."]
        typed[field.name] = value
    if "email" in typed and typed["email"] and "@" not in typed["email"]:
        errors["email"] = ["Enter an email address like name@example.com."]
    if typed.get("child_birth_date") and not errors.get("child_birth_date"):
        typed["child_birth_date"] = date.fromisoformat(typed["child_birth_date"])
    return typed, errors


@bp.get("")
def start() -> Any:
    return render_template("recovery/start.html")


@bp.route("/<kind>", methods=["GET", "POST"])
def recover(kind: str) -> Any:
    if kind not in KINDS:
        return redirect(url_for("recovery.start"))
    fields = tuple(_FIELDS[name] for name in self_service.questions(kind))
    errors: dict[str, list[str]] = {}
    values = {k: v for k, v in request.form.items() if k != "csrf_token"}
    if request.method == "POST":
        typed, errors = _read(fields)
        if not errors:
            try:
                session[_ATTEMPT] = _in_equal_time(
                    lambda: self_service.recover(kind, typed, get_remote_address())
                )
            except self_service.RecoveryLimited as limited:
                session.pop(_ATTEMPT, None)
                page = render_template("recovery/limited.html", until=limited.until)
                return page, 429, {"Retry-After": str(limited.retry_after)}
            return redirect(url_for("recovery.sent"), 303)
    title = "Forgot your password?" if kind == PASSWORD else "Forgot your username?"
    page = render_template("recovery/ask.html", kind=kind, title=title, fields=fields,
                           values=values, errors=errors)  # fmt: skip
    return page, 422 if errors else 200


@bp.route("/link", methods=["GET", "POST"])
def link() -> Any:
    """Ask for the parent's account to be linked to a child; the school decides."""
    errors: dict[str, list[str]] = {}
    values = {k: v for k, v in request.form.items() if k != "csrf_token"}
    schools = link_requests.schools()
    if request.method == "POST":
        typed, errors = _read(_LINK)
        if typed.get("school") and typed["school"] not in dict(schools):
            errors["school"] = ["Choose your child's school from the list."]
        if not errors:
            try:
                asked = _in_equal_time(
                    lambda: link_requests.request_link(typed, get_remote_address())
                )
            except self_service.RecoveryLimited as limited:
                page = render_template("recovery/limited.html", until=limited.until)
                return page, 429, {"Retry-After": str(limited.retry_after)}
            return render_template("recovery/link_asked.html", school=asked.school)
    page = render_template("recovery/link.html", fields=_LINK, values=values, errors=errors,
                           schools=schools)  # fmt: skip
    return page, 422 if errors else 200


@bp.get("/sent")
def sent() -> Any:
    return render_template("recovery/sent.html", answer=self_service.ANSWER,
                           can_ask=_ATTEMPT in session)  # fmt: skip


@bp.route("/help", methods=["GET", "POST"])
def ask_school() -> Any:
    attempt_id = session.get(_ATTEMPT)
    if attempt_id is None:
        return redirect(url_for("recovery.start"))
    errors: dict[str, list[str]] = {}
    values = {k: v for k, v in request.form.items() if k != "csrf_token"}
    if request.method == "POST":
        typed, errors = _read(_HAND_OVER)
        if not errors:
            _in_equal_time(lambda: self_service.hand_over(int(attempt_id), typed,
                                                          get_remote_address()))  # fmt: skip
            session.pop(_ATTEMPT, None)  # one hand-over per attempt
            return render_template("recovery/handed_over.html", answer=self_service.HANDED_OVER)
    page = render_template("recovery/help.html", fields=_HAND_OVER, values=values, errors=errors)
    return page, 422 if errors else 200
