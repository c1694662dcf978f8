"""Reports to take away: the queue view with its filters and the dashboard as CSV, times
in the school's zone and durations in business time, every export audited."""

from __future__ import annotations

import csv
import io

import sqlalchemy as sa

from helpdesk.extensions import db
from helpdesk.models import AccessEntry, Incident

from .samples import FIONA_RESET, ISLA_RESET, file
from .test_pages import signed_in


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_queue_exports_with_its_filters_in_the_schools_time(app, client, actors):
    parent = file(client, actors.ashgrove, **FIONA_RESET).json["ref"]
    student = file(client, actors.ashgrove, **ISLA_RESET).json["ref"]
    agent = signed_in(app, actors.agent.email)
    everything = agent.get("/queue/export.csv")
    assert everything.status_code == 200 and everything.mimetype == "text/csv"
    assert "attachment" in everything.headers["Content-Disposition"]
    rows = {r["incident"]: r for r in _rows(everything.text)}
    assert {parent, student} <= set(rows)
    filed = db.session.execute(sa.select(Incident.created_at).where(
        Incident.id == int(parent.removeprefix("INC-")))).scalar_one()  # fmt: skip
    from zoneinfo import ZoneInfo

    local = filed.astimezone(ZoneInfo("Europe/London")).strftime("%Y-%m-%d %H:%M")
    assert rows[parent]["filed (school time)"] == local
    assert rows[parent]["business hours left"] != ""  # open, with an SLA clock
    # The same filters as the page: only the parent resets.
    only = _rows(agent.get("/queue/export.csv?type=parent_password_reset").text)
    assert [r["incident"] for r in only] == [parent]
    entries = db.session.execute(
        sa.select(AccessEntry.data).where(AccessEntry.subject == "report:incidents")
        .order_by(AccessEntry.id)
    ).scalars().all()  # fmt: skip
    assert entries[-1] == {"filters": {"type": "parent_password_reset"}, "rows": 1}
    reads = db.session.execute(
        sa.select(sa.func.count())
        .select_from(AccessEntry)
        .where(AccessEntry.action == "read", AccessEntry.incident_id == int(parent[4:]))
    ).scalar()
    assert reads == 4  # each of the two exports read the parent's and the child's records


def test_a_cell_that_would_run_as_a_formula_is_defused(app, client, actors):
    from helpdesk.services.exports import _cell

    assert [_cell(v) for v in ("=HYPERLINK(1)", "+1", "-2", "@x", "ok", None)] == [
        "'=HYPERLINK(1)", "'+1", "'-2", "'@x", "ok", ""]  # fmt: skip


def test_the_dashboard_exports_and_an_employee_cannot(app, client, actors):
    file(client, actors.ashgrove, **FIONA_RESET)
    admin = signed_in(app, actors.admin.email)
    answer = admin.get("/dashboard/export.csv")
    assert answer.status_code == 200
    assert "open incidents by queue,open" in answer.text
    assert "ITS Service Desk,1" in answer.text
    assert db.session.execute(sa.select(AccessEntry.actor_id).where(
        AccessEntry.subject == "report:dashboard")).scalar() is not None  # fmt: skip
    employee = signed_in(app, actors.ashgrove.email)
    assert employee.get("/dashboard/export.csv").status_code == 403
    assert employee.get("/queue/export.csv").status_code == 403
