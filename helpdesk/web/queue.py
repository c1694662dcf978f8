"""The agents' queue view: their queues' incidents by SLA deadline (or any column), with
filters, and bulk actions on the ones ticked: claim, assign to an agent, move."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, g, redirect, render_template, request, url_for
from marshmallow import ValidationError

from ..domain.lifecycle import OPEN_STATUSES, Status
from ..errors import DomainError
from ..models import Role, utcnow
from ..services import assignment, exports, roster, transitions
from ..services.queues import agents_of, queue_choices
from ..services.worklist import SORTS, Filters, worklist
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
    sort = args.get("sort") if args.get("sort") in SORTS else "deadline"
    return Filters(
        sort=sort,
        descending=args.get("order") == "desc",
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
        statuses=STATUS_CHOICES, chosen=chosen, filters=filters, columns=COLUMNS,
        agents=agents_of(page.queue_ids), bulk_actions=BULK_ACTIONS,
        types=[(f.kind, f.title) for f in FORMS.values()], first="cursor" not in request.args,
        away=assignment.away_since(g.user.id),
    )  # fmt: skip


@bp.get("/export.csv")
@page_for(Role.AGENT, Role.ADMIN)
def export() -> Any:
    """The queue view with the same filters, every page of it, as CSV (audited)."""
    chosen = {k: v for k, v in request.args.items() if k != "cursor" and v}
    text, _ = exports.incidents_csv(g.user, _filters(request.args), chosen)
    return Response(
        text,
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="incidents-{utcnow():%Y%m%d-%H%M}.csv"'
        },
    )


@bp.post("/away")
@page_for(Role.AGENT, Role.ADMIN)
def away() -> Any:
    """Away (leave, training) or back: while away, assigning queues give you nothing new."""
    gone = request.form.get("away") == "yes"
    assignment.set_away(g.user.id, gone)
    flash("You are away: queues that assign give you no new incidents until you are back."
          if gone else "You are back: queues that assign include you again.")  # fmt: skip
    return redirect(url_for("queue.index"))


# The columns, in order: (sort key or None, heading).
COLUMNS = (
    ("ref", "Incident"), ("about", "About"), ("type", "Type"), ("school", "School"),
    ("age", "Filed"), ("assignee", "Assigned to"), ("status", "Status"),
    ("deadline", "SLA time left"),
)  # fmt: skip
BULK_ACTIONS = (("claim", "Claim them"), ("assign", "Assign them to"), ("move", "Move them to"))


@bp.post("/bulk")
@page_for(Role.AGENT, Role.ADMIN)
def bulk() -> Any:
    """One action on each ticked incident, each its own change: the banner says which
    changed and why any did not."""
    refs = list(dict.fromkeys(request.form.getlist("ref")))
    chosen = request.form.get("bulk_action", "")
    back = redirect(url_for("queue.index", **_kept_filters(request.form)))  # type: ignore[arg-type]
    if not refs or chosen not in {a for a, _ in BULK_ACTIONS}:
        flash("Tick at least one incident and choose what to do with them.", "important")
        return back
    agent = (request.form.get("agent") or "").strip() or None
    queue = (request.form.get("queue_to") or "").strip() or None
    if (chosen == "assign" and not agent) or (chosen == "move" and not queue):
        flash("Choose the agent to assign them to." if chosen == "assign"
              else "Choose the queue to move them to.", "important")  # fmt: skip
        return back
    done, refused = [], []
    for ref in refs:
        try:
            if chosen == "move":
                transitions.transition(g.user, ref, "escalate", queue=queue)
            else:
                transitions.transition(g.user, ref, "claim", assignee=agent)
        except (DomainError, ValidationError) as error:
            refused.append(f"{ref}: {_reason(error)}")
        else:
            done.append(ref)
    said = {"claim": "claimed by you", "assign": f"assigned to {agent}",
            "move": f"moved to {queue}"}[chosen]  # fmt: skip
    if done:
        flash(f"{len(done)} incident{'s' if len(done) != 1 else ''} {said}: {', '.join(done)}.",
              "success")  # fmt: skip
    if refused:
        flash("Not changed: " + "; ".join(refused), "important")
    return back


def _reason(error: Exception) -> str:
    if isinstance(error, ValidationError) and isinstance(error.messages, dict):
        return " ".join(str(m) for found in error.messages.values() for m in found)
    return str(getattr(error, "message", error))


def _kept_filters(form: Any) -> dict[str, str]:
    names = ("status", "queue", "type", "school", "assignee", "breached", "sort", "order")
    return {name: form[f"keep_{name}"] for name in names if form.get(f"keep_{name}")}
