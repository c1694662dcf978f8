"""Incident pages: the employee's list of their school's incidents, and one incident with
its verification, timeline and the actions the lifecycle allows the viewer now."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from marshmallow import ValidationError

from ..domain.lifecycle import Action
from ..domain.recovery import LABELS
from ..errors import Conflict, Forbidden, NotFound
from ..models import Role, format_ref, parse_ref
from ..services import incidents, links, subject_access, transitions
from ..services.queues import members, queue_choices
from .access import page_for
from .confirm import confirm_first
from .forms import FORMS, next_steps

bp = Blueprint("incident_pages", __name__, url_prefix="/incidents")

PAGE_SIZE = 25
ACTION_LABELS = {
    Action.CLAIM: "Claim",
    Action.COMMENT: "Add comment",
    Action.AWAIT_REPLY: "Wait for a reply",
    Action.RESUME: "Resume",
    Action.ESCALATE: "Escalate",
    Action.FULFIL: "Approve fulfilment",
    Action.RESOLVE: "Resolve",
    Action.REJECT: "Reject",
    Action.CANCEL: "Cancel incident",
    Action.REOPEN: "Reopen",
}
# What the banner says was done, as a sentence after the reference.
ACTION_DONE = {
    Action.CLAIM: "claimed by you",
    Action.COMMENT: "comment added",
    Action.AWAIT_REPLY: "waiting for a reply; its SLA clock is paused",
    Action.RESUME: "resumed; its SLA clock runs again",
    Action.ESCALATE: "escalated to {queue}",
    Action.FULFIL: "approved; the workers do it now, and any result goes only to the address "
    "on file",
    Action.RESOLVE: "resolved",
    Action.REJECT: "rejected",
    Action.CANCEL: "cancelled",
    Action.REOPEN: "reopened",
}
# Actions whose form has a message box, and whether it must be filled in.
MESSAGE_ACTIONS = {Action.REJECT: True, Action.AWAIT_REPLY: True, Action.CANCEL: False}


@bp.get("")
@page_for()
def index() -> Any:
    query: dict[str, Any] = {"limit": PAGE_SIZE}
    if request.args.get("cursor"):
        query["cursor"] = request.args["cursor"]
    q = request.args.get("q", "").strip()
    find_error = None
    found = _by_reference(q) if q and len(q) <= 100 else None
    if found is not None:  # a reference, or its number alone ("4" opens INC-000004)
        return redirect(url_for("incident_pages.show", ref=found))
    if len(q) > 100 or len(q) == 1:
        find_error = "Type between 2 and 100 characters to find an incident."
    elif q:
        query["q"] = q
    try:
        rows, next_cursor = incidents.list_incidents(g.user, query)
    except ValidationError:
        return redirect(url_for("incident_pages.index"))
    return render_template(
        "pages/incidents.html", rows=rows, next_cursor=next_cursor, forms=FORMS,
        first=not query.get("cursor"), q=q[:100], search=query.get("q"),
        find_error=find_error,
    ), 422 if find_error else 200  # fmt: skip


def _by_reference(text: str) -> str | None:
    """The reference of the incident ``text`` names (INC-000123 or 123), if the viewer may
    see it: a search for a reference goes straight to it."""
    number = text.isascii() and text.isdigit()
    ref = text if parse_ref(text) else format_ref(int(text)) if number else None
    if ref is None or parse_ref(ref) is None:
        return None
    try:
        return incidents.get_incident(g.user, ref).ref
    except NotFound:
        return None


def _detail(ref: str, errors: dict[str, list[str]] | None = None, status: int = 200) -> Any:
    incident = incidents.get_incident(g.user, ref)
    subject_access.log_reads(g.user, [incident], via="page")
    view = incidents.view_for(g.user, incident)
    events = incidents.incident_events(g.user, ref)
    verification = view.verification_summary
    queues = queue_choices()
    agents = members(view.queue.slug) if view.queue is not None else []
    return render_template(
        "pages/incident.html", incident=view, events=events, verification=verification,
        steps=next_steps(verification) if verification["outcome"] == "failed" else [],
        form=FORMS.get(view.type), labels=ACTION_LABELS, message_actions=MESSAGE_ACTIONS,
        queues=queues, agents=agents, errors=errors or {}, Action=Action,
        recovery_questions=LABELS,
    ), status  # fmt: skip


@bp.get("/<ref>")
@page_for()
def show(ref: str) -> Any:
    return _detail(ref)


@bp.post("/<ref>/actions")
@page_for()
def act(ref: str) -> Any:
    action = request.form.get("action", "")
    if action not in {a.value for a in Action}:
        return _detail(ref, {"action": ["Choose one of the actions shown."]}, 422)
    if action == Action.CANCEL:
        asked = confirm_first(
            f"Cancel {ref}?",
            "Nothing more is done for it, and it cannot be reopened: file a new one if it is "
            "needed again.",
            "Yes, cancel it", url_for("incident_pages.show", ref=ref),
        )  # fmt: skip
        if asked is not None:
            return asked
    message = (request.form.get(f"message-{action}") or "").strip() or None
    queue = (request.form.get("queue") or "").strip() or None
    assignee = (request.form.get("assignee") or "").strip() or None
    try:
        moved = transitions.transition(g.user, ref, action, message, queue, assignee=assignee)
    except ValidationError as error:
        messages = error.messages if isinstance(error.messages, dict) else {}
        field = {"message": f"message-{action}", "queue": "queue", "assignee": "assignee"}
        errors = {field.get(k, k): list(v) for k, v in messages.items()}
        return _detail(ref, errors, 422)
    except (Conflict, Forbidden) as error:
        return _detail(ref, {"action": [error.message]}, error.status)
    try:
        seen = incidents.get_incident(g.user, ref)  # as it is now, if still the viewer's
    except NotFound:  # escalated to a queue the viewer does not work: back to their own
        where = moved.queue.name if moved.queue else "no queue"
        flash(f"{ref} is escalated to {where}. It has left your queues.", "success")
        return redirect(url_for("queue.index"))
    done = ACTION_DONE[Action(action)].format(queue=seen.queue.name if seen.queue else "no queue")
    if assignee and seen.assignee_email != g.user.email:
        done = f"assigned to {seen.assignee_email}"
    flash(f"{ref}: {done}.", "success")
    return redirect(url_for("incident_pages.show", ref=ref))


@bp.post("/<ref>/links")
@page_for(Role.AGENT, Role.ADMIN)
def link(ref: str) -> Any:
    other = (request.form.get("other") or "").strip().upper()
    return _joined(ref, "other", other, lambda: links.link(g.user, ref, other),
                   f"{ref} is linked to {other}.")  # fmt: skip


@bp.post("/<ref>/merge")
@page_for(Role.AGENT, Role.ADMIN)
def merge(ref: str) -> Any:
    into = (request.form.get("into") or "").strip().upper()
    return _joined(ref, "into", into, lambda: links.merge(g.user, ref, into),
                   f"{ref} is merged into {into} and closed.")  # fmt: skip


def _joined(ref: str, field: str, other: str, join: Callable[[], Any], done: str) -> Any:
    """Link or merge, answering on the incident's page what went wrong, by the field."""
    if not other:
        return _detail(ref, {field: ["Enter the other incident's reference, like INC-000123."]},
                       422)  # fmt: skip
    try:
        join()
    except (Conflict, Forbidden, NotFound) as error:
        return _detail(ref, {field: [error.message]}, error.status)
    flash(done, "success")
    return redirect(url_for("incident_pages.show", ref=ref))
