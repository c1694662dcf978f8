"""The dashboard: open work, breaches and SLA compliance, as server-drawn SVG charts."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, render_template

from ..models import Role, utcnow
from ..services import exports
from ..services.reports import dashboard
from .access import page_for
from .forms import FORMS

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")


@bp.get("")
@page_for(Role.AGENT, Role.ADMIN)
def index() -> Any:
    figures = dashboard()
    days = [(day, good, total) for day, good, total in figures.compliance_by_day if total]
    return render_template(
        "pages/dashboard.html",
        figures=figures,
        days=days,
        open_rows=[(queue, count, str(count)) for queue, count in figures.open_by_queue],
        compliance_rows=[
            (day, good / total * 100, f"{good / total:.0%} of {total}") for day, good, total in days
        ],
        median_rows=[
            (
                FORMS[kind].title if kind in FORMS else kind,
                hours,
                f"{took(hours)} ({count} resolved)",
            )
            for kind, hours, count in figures.median_hours_by_type
        ],
    )


def took(hours: float) -> str:
    """A median time to resolve as people say it: '25 min', '3 h 10 min', '2.5 days'."""
    minutes = round(hours * 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{hours / 24:.1f} days"


@bp.get("/export.csv")
@page_for(Role.AGENT, Role.ADMIN)
def export() -> Any:
    """The dashboard's figures as CSV (audited)."""
    return Response(
        exports.dashboard_csv(g.user, dashboard()),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="dashboard-{utcnow():%Y%m%d-%H%M}.csv"'
        },
    )
