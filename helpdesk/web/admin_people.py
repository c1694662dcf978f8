"""Admin: one person's records for a subject access request — who read them, and
everything the service holds about them as a JSON download."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, g, render_template, request

from ..errors import NotFound
from ..models import Role
from ..services import subject_access
from .access import page_for

bp = Blueprint("admin_people", __name__, url_prefix="/admin/people")
admin_page = page_for(Role.ADMIN)


@bp.get("")
@admin_page
def index() -> Any:
    person = (request.args.get("person") or "").strip()[:255]
    reads = subject_access.reads_of(person) if person else []
    return render_template("admin/people.html", person=person, reads=reads)


@bp.post("/export")
@admin_page
def export() -> Any:
    person = (request.form.get("person") or "").strip()[:255]
    try:
        held = subject_access.export(person, actor_id=g.user.id)
    except NotFound as error:
        return render_template("admin/people.html", person=person, reads=[],
                               errors={"person": [error.message]}), 404  # fmt: skip
    return Response(
        json.dumps(held, indent=2, ensure_ascii=False),
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="subject-{_safe(person)}.json"'},
    )


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:80]
