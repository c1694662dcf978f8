"""The agents' queue view: their queues' incidents by SLA deadline, with filters."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, render_template, request

from ..domain.lifecycle import OPEN_STATUSES, Status
from ..models import Role
from ..services import roster
from ..services.queues import queue_choices
from ..services.worklist import Filters, worklist
from .access import page_for
from .forms import FORMS

bp = Blueprint("queue", __name__, url_prefix="/queue")

STATUS_CHOICES = (
    ("open", "Open (any)"),
    *((s.value, s.value.replace("_", " ").capitalize()) for s in Status),
)


def _filters(args: Any) -> Filters:
    status = args.get("status") or "open"
    statuses = tuple(sorted(OPEN_STATUSES)) if status == "open" else (status,)
    breached = {"yes": True, "no": False}.get(args.get("breached", ""))
    return Filters(
        statuses=statuses,
        type=args.get("type") or None,
        school=args.get("school") or None,
        assignee=args.get("assignee") or None,
        queue=args.get("queue") or None,
        breached=breached,
    )


@bp.get("")
@page_for(Role.AGENT, Role.ADMIN)
def index() -> Any:
    filters = _filters(request.args)
    page = worklist(g.user, filters, request.args.get("cursor"))
    queues = queue_choices(page.queue_ids)
    schools = [(school.code, school.name) for school in roster.schools()]
    chosen = {k: v for k, v in request.args.items() if k != "cursor" and v}
    return render_template(
        "pages/queue.html", page=page, queues=queues, schools=schools, forms=FORMS,
        statuses=STATUS_CHOICES, chosen=chosen,
        types=[(f.kind, f.title) for f in FORMS.values()], first="cursor" not in request.args,
    )  # fmt: skip
