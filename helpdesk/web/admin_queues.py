"""Admin: queues and their members; a thin page over the service the API uses."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from ..errors import DomainError, InvalidInput
from ..models import Role
from ..services import assignment
from ..services import queues as queue_service
from .access import page_for
from .confirm import confirm_first

bp = Blueprint("admin_queues", __name__, url_prefix="/admin/queues")
admin_page = page_for(Role.ADMIN)


def _queues_page(errors: dict[str, list[str]] | None = None, status: int = 200) -> Any:
    summaries = queue_service.queue_summaries()
    for summary in summaries:
        summary["members"] = queue_service.members(summary["slug"])
    # What was typed stays in the box it was typed in, beside its error.
    typed = {f"email-{request.form.get('queue', '')}": request.form.get("email", "")}
    return render_template(
        "admin/queues.html", queues=summaries, errors=errors or {}, typed=typed,
        modes=assignment.MODES, away=assignment.away_members(),
    ), status  # fmt: skip


@bp.get("")
@admin_page
def index_queues() -> Any:
    return _queues_page()


@bp.post("/members")
@admin_page
def add_member() -> Any:
    slug, email = request.form.get("queue", ""), request.form.get("email", "").strip()
    try:
        if not email:
            raise InvalidInput("Enter the agent's email address.")
        queue_service.add_member(slug, email)
    except DomainError as error:
        return _queues_page({f"email-{slug}": [error.message]}, 422)
    flash(f"{email} now works {slug}.")
    return redirect(url_for("admin_queues.index_queues"))


@bp.post("/assign")
@admin_page
def set_assignment() -> Any:
    slug, mode = request.form.get("queue", ""), request.form.get("mode", "")
    try:
        assignment.set_mode(slug, mode)
    except DomainError as error:
        return _queues_page({f"mode-{slug}": [error.message]}, 422)
    flash(f"{slug}: {assignment.MODES[mode]}.")
    return redirect(url_for("admin_queues.index_queues"))


@bp.post("/members/remove")
@admin_page
def remove_member() -> Any:
    slug, email = request.form.get("queue", ""), request.form.get("email", "")
    asked = confirm_first(
        f"Remove {email} from {slug}?",
        "They stop seeing this queue's incidents, and their open ones in it go back to the "
        "queue, unassigned.",
        "Yes, remove them", url_for("admin_queues.index_queues"),
    )  # fmt: skip
    if asked is not None:
        return asked
    try:
        handed_back = queue_service.remove_member(slug, email)
    except DomainError as error:
        return _queues_page({f"email-{slug}": [error.message]}, 422)
    back = f" {handed_back} of their incidents went back to the queue." if handed_back else ""
    flash(f"{email} no longer works {slug}.{back}")
    return redirect(url_for("admin_queues.index_queues"))
