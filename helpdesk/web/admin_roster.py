"""Admin: importing a school's roster (a OneRoster bundle); a thin page over the
service the API uses."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, render_template, request

from ..errors import InvalidInput
from ..models import Role
from ..services import roster
from .access import page_for

bp = Blueprint("admin_roster", __name__, url_prefix="/admin/roster")
admin_page = page_for(Role.ADMIN)


@bp.route("", methods=["GET", "POST"])
@admin_page
def index_roster() -> Any:
    errors: dict[str, list[str]] = {}
    problems: list[str] = []
    report = None
    if request.method == "POST":
        upload = request.files.get("bundle")
        if upload is None or not upload.filename:
            errors["bundle"] = ["Choose the roster bundle (a zip) to upload."]
        else:
            try:
                report = roster.import_zip(
                    upload.stream, filename=upload.filename, actor_id=g.user.id
                )
            except InvalidInput as error:
                errors["bundle"] = [error.message]
                problems = [str(p) for p in getattr(error, "problems", [])[:100]]
    staff_count = roster.staff_count()
    status = 422 if errors else 200
    return render_template(
        "admin/roster.html", errors=errors, problems=problems, report=report,
        staff_count=staff_count,
    ), status  # fmt: skip
