"""Reports to take away: the queue view (with its filters) and the dashboard's figures as
CSV, for a spreadsheet. Times are in each incident's school's zone, an incident's
durations in that school's business time (the dashboard's medians are clock time, as
the page shows them). Every export is an entry of the access log (who took which
data, when), and the incidents exported are reads of the people they are about.

A cell that a spreadsheet would run as a formula (one starting with =, +, -, @, a tab
or a carriage return) is written with a leading apostrophe (OWASP: CSV injection).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..domain.lifecycle import OPEN_STATUSES
from . import access_log, subject_access
from .reports import Dashboard
from .sla import settings
from .uow import unit_of_work
from .users import Principal
from .worklist import Filters, Row, worklist

MAX_ROWS = 20_000
INCIDENT_COLUMNS = (
    "incident", "type", "status", "school", "queue", "assigned to", "filed (school time)",
    "resolved (school time)", "business hours to resolve", "business hours left",
    "breached",
)  # fmt: skip


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return out.getvalue()


def _hours(span: timedelta | None) -> str:
    return "" if span is None else f"{span.total_seconds() / 3600:.2f}"


def _local(moment: datetime | None, zone: Any) -> str:
    if moment is None:
        return ""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def incidents_csv(user: Principal, filters: Filters, chosen: dict[str, str]) -> tuple[str, int]:
    """The queue view's incidents, every page of it (up to MAX_ROWS), as CSV; and how
    many. ``chosen`` is the filters as the page had them, for the access log."""
    rows: list[Row] = []
    cursor = None
    while len(rows) < MAX_ROWS:
        page = worklist(user, filters, cursor, page_size=500)
        rows += page.rows
        cursor = page.next_cursor
        if cursor is None:
            break
    rows = rows[:MAX_ROWS]
    calendars = settings().calendars
    lines = []
    for row in rows:
        incident = row.incident
        calendar = calendars.get(incident.school_id)
        zone = ZoneInfo(calendar.timezone) if calendar is not None else UTC
        took = (calendar.between(incident.created_at, incident.resolved_at)
                if calendar is not None and incident.resolved_at else None)  # fmt: skip
        lines.append((
            incident.ref, incident.type, incident.status, incident.school_code,
            incident.queue_slug, incident.assignee_email or "", _local(incident.created_at, zone),
            _local(incident.resolved_at, zone), _hours(took),
            _hours(row.time_left) if incident.status in OPEN_STATUSES else "",
            "yes" if row.breached else "no",
        ))  # fmt: skip
    subject_access.log_reads(user, [r.incident for r in rows], via="export")
    with unit_of_work():
        access_log.note("exported", "report:incidents", actor_id=user.id, filters=chosen,
                        rows=len(lines))  # fmt: skip
    return _csv(INCIDENT_COLUMNS, lines), len(lines)


def dashboard_csv(user: Principal, figures: Dashboard) -> str:
    """The dashboard's figures, one table after another, each with its own header."""
    sections: list[tuple[Iterable[str], Iterable[Iterable[Any]]]] = [
        (("open incidents by queue", "open"), figures.open_by_queue),
        (("day", "resolved in time", "resolved"), figures.compliance_by_day),
        (("incident type", "median hours from filed to resolved (clock time)", "resolved"),
         [(k, f"{h:.2f}", n) for k, h, n in figures.median_hours_by_type]),
        (("breaches today",), [(figures.breaches_today,)]),
        (("self-service recoveries without staff, 30 days", "self-service hand-overs, 30 days"),
         [(figures.recovered_by_self_service, figures.handed_over_by_self_service)]),
    ]  # fmt: skip
    with unit_of_work():
        access_log.note("exported", "report:dashboard", actor_id=user.id)
    return "\n".join(_csv(header, rows) for header, rows in sections)
