"""'Your classes': a teacher resets the portal passwords of some or all of a class."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, render_template, request

from ..errors import Conflict, InvalidInput
from ..models import Role
from ..services import class_reset
from ..services.verification_limits import VerificationLimited
from .access import page_for

bp = Blueprint("class_pages", __name__, url_prefix="/classes")


@bp.get("")
@page_for(Role.EMPLOYEE)
def index() -> Any:
    return render_template("pages/classes.html", classes=class_reset.classes_taught(g.user))


def _class_page(class_id: str, errors: dict[str, list[str]], chosen: set[str],
                status: int = 200) -> Any:  # fmt: skip
    taught, students = class_reset.class_of(g.user, class_id)
    return render_template("pages/class.html", taught=taught, students=students,
                           errors=errors, chosen=chosen), status  # fmt: skip


@bp.get("/<class_id>")
@page_for(Role.EMPLOYEE)
def show(class_id: str) -> Any:
    return _class_page(class_id, {}, set())


@bp.post("/<class_id>/resets")
@page_for(Role.EMPLOYEE)
def reset(class_id: str) -> Any:
    everyone = request.form.get("which") == "all"
    chosen = request.form.getlist("student")
    if not everyone and not chosen:
        errors = {"student": ["Choose the students whose passwords to reset, or reset all."]}
        return _class_page(class_id, errors, set(), 422)
    try:
        done = class_reset.reset_class(g.user, class_id, None if everyone else chosen)
    except (InvalidInput, VerificationLimited, Conflict) as error:
        return _class_page(class_id, {"student": [error.message]}, set(chosen), error.status)
    return render_template("pages/class_reset_done.html", taught=done.taught, filed=done.filed,
                           already_open=done.already_open)  # fmt: skip
