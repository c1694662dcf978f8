"""The start page: each role lands where its work is."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, url_for

from ..models import Role
from .access import current_user

bp = Blueprint("pages", __name__)

_START = {
    Role.EMPLOYEE: "incident_pages.index",
    Role.AGENT: "queue.index",
    Role.ADMIN: "queue.index",
}


@bp.get("/")
def home() -> Any:
    user = current_user()
    if user is None:
        return redirect(url_for("auth.sign_in"))
    return redirect(url_for(_START.get(Role(user.role), "queue.index")))
