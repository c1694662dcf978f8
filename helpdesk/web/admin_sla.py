"""Admin: SLA plans, school working hours and closure days; a thin page over the
service the API uses."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from ..domain.rules import PRIORITIES
from ..errors import DomainError
from ..models import Role
from ..services import queues as queue_service
from ..services import roster, sla
from .access import page_for

bp = Blueprint("admin_sla", __name__, url_prefix="/admin/sla")
admin_page = page_for(Role.ADMIN)


def _school_choices(schools: list[Any]) -> list[tuple[str, str]]:
    return [(school.code, school.name) for school in schools]


def _sla_page(errors: dict[str, list[str]] | None = None, status: int = 200) -> Any:
    schools, plans = roster.schools(), sla.plans()
    return render_template(
        "admin/sla.html", plans=plans, closures=sla.closures(),
        schools=_school_choices(schools),
        school_hours=[(s.code, s.name, s.working_hours) for s in schools],
        priorities=PRIORITIES, queue_options=queue_service.queue_choices(),
        plan_options=[(p.slug, p.name) for p in plans], errors=errors or {},
        form=request.form,
    ), status  # fmt: skip


@bp.get("")
@admin_page
def index_sla() -> Any:
    return _sla_page()


@bp.post("/closures")
@admin_page
def add_closure() -> Any:
    errors: dict[str, list[str]] = {}
    try:
        day = date.fromisoformat(request.form.get("day", "").strip())
    except ValueError:
        errors["day"] = ["Enter the date like 2026-12-24."]
    reason = request.form.get("reason", "").strip()
    if not reason:
        errors["reason"] = ["Say why the day is closed, like 'In-service day'."]
    if errors:
        return _sla_page(errors, 422)
    try:
        sla.add_closure(day, reason, request.form.get("school") or None)
    except DomainError as error:
        return _sla_page({"day": [error.message]}, 422)
    flash(f"{day:%d %B %Y} is closed: SLA clocks do not run that day.")
    return redirect(url_for("admin_sla.index_sla"))


@bp.post("/closures/remove")
@admin_page
def remove_closure() -> Any:
    try:
        day = date.fromisoformat(request.form.get("day", ""))
    except ValueError:
        return _sla_page({"closures": ["Choose a closure day to remove."]}, 422)
    try:
        reason = sla.remove_closure(day, request.form.get("school") or None)
    except DomainError as error:
        return _sla_page({"closures": [error.message]}, error.status)
    flash(f"{day:%d %B %Y} ({reason}) is no longer a closure day: SLA clocks run that day "
          "again for deadlines worked out from now.", "success")  # fmt: skip
    return redirect(url_for("admin_sla.index_sla"))


@bp.post("/plans/<slug>")
@admin_page
def save_plan(slug: str) -> Any:
    """Change a plan's targets (business minutes) and its warning point."""
    plan = next((p for p in sla.plans() if p.slug == slug), None)
    if plan is None:
        return _sla_page({"plan": [f"No plan {slug!r}."]}, 404)
    try:
        targets = {
            priority: {
                clock: int(request.form.get(f"{slug}-{priority}-{clock}", ""))
                for clock in ("response", "resolution")
            }
            for priority in PRIORITIES
        }
        warn_at = int(request.form.get(f"{slug}-warn", ""))
    except ValueError:
        return _sla_page({f"{slug}-targets": ["Enter every target as whole minutes."]}, 422)
    try:
        sla.save_plan(slug, plan.name, targets, warn_at)
    except DomainError as error:
        return _sla_page({f"{slug}-targets": [error.message]}, 422)
    flash(f"{plan.name}: targets saved; they apply to incidents placed from now.")
    return redirect(url_for("admin_sla.index_sla"))


@bp.post("/hours")
@admin_page
def working_hours() -> Any:
    try:
        hours = sla.set_working_hours(request.form.get("school", ""), request.form.get("hours", ""))
    except DomainError as error:
        return _sla_page({"hours": [error.message]}, 422)
    flash(f"Working hours saved: {hours}.")
    return redirect(url_for("admin_sla.index_sla"))


@bp.post("/queue-plan")
@admin_page
def queue_plan() -> Any:
    try:
        sla.set_queue_plan(request.form.get("queue", ""), request.form.get("plan", ""))
    except DomainError as error:
        return _sla_page({"plan": [error.message]}, 422)
    flash("The queue's SLA plan is changed; it applies to incidents placed from now.")
    return redirect(url_for("admin_sla.index_sla"))
