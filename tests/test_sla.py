"""SLA clocks at filing, across transfers and pauses, and escalation exactly once per breach."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from helpdesk.domain.business_time import BusinessCalendar
from helpdesk.extensions import db
from helpdesk.models import Incident, IncidentEvent, Queue
from helpdesk.services import sla

from .conftest import environ_for
from .samples import AGAIN, FIONA_RESET, ISLA_RESET, LINK_FAILURE, REMINDER, file

SCOTLAND = BusinessCalendar.for_nation("SCT")  # Ashgrove Primary is in Scotland
MINUTE = timedelta(minutes=1)


def stored(ref: str) -> Incident:
    incident = db.session.get(Incident, int(ref[4:]))
    db.session.refresh(incident)
    return incident


def act(client, actor, ref, action, **body):
    return client.post(f"/api/v1/incidents/{ref}/transitions", json={"action": action, **body},
                       headers=actor.headers)  # fmt: skip


@pytest.mark.parametrize(
    ("body", "response_minutes", "resolution_minutes"),
    [
        (ISLA_RESET, 240, 1530),  # student systems, standard plan, P3
        (LINK_FAILURE, 510, 2550),  # school office, five working days
        (
            {"type": "access_revocation", "guardian_id": "par-5-1", "reason": "court_order"},
            30,
            240,
        ),  # identity, standard plan, P1
    ],
)
def test_filing_starts_the_clock_on_the_queue_plan(client, actors, body, response_minutes,
                                                    resolution_minutes):  # fmt: skip
    response = file(client, actors.ashgrove, **body)
    incident = stored(response.json["ref"])
    start = incident.sla_started_at
    assert SCOTLAND.between(start, incident.response_due_at) == response_minutes * MINUTE
    assert SCOTLAND.between(start, incident.resolution_due_at) == resolution_minutes * MINUTE
    assert SCOTLAND.between(start, incident.sla_warn_at) == resolution_minutes * 0.8 * MINUTE
    assert SCOTLAND.is_open(incident.resolution_due_at)
    assert response.json["resolution_due_at"].startswith(
        incident.resolution_due_at.isoformat()[:19]
    )


def test_the_clock_follows_a_transfer_without_restarting(client, actors):
    ref = file(client, actors.ashgrove, **REMINDER).json["ref"]
    start = stored(ref).sla_started_at
    act(client, actors.agent, ref, "escalate", queue="school-office-5231234")
    moved = stored(ref)
    assert moved.sla_started_at == start
    # The office's five-working-day plan now applies, from the original start.
    assert SCOTLAND.between(start, moved.resolution_due_at) == 2550 * MINUTE


def test_awaiting_a_reply_pauses_and_the_schools_reply_resumes(client, actors):
    ref = file(client, actors.ashgrove, **FIONA_RESET).json["ref"]
    act(client, actors.agent, ref, "claim")
    paused = act(client, actors.agent, ref, "await_reply", message="Asked the parent to ring")
    assert paused.json["status"] == "awaiting_reply"
    assert stored(ref).sla_paused_at is not None
    assert "resume" in paused.json["allowed_actions"]
    reply = act(client, actors.ashgrove, ref, "comment", message="Parent rang the office")
    assert reply.json["status"] == "in_progress"
    assert stored(ref).sla_paused_at is None
    events = client.get(f"/api/v1/incidents/{ref}/events", headers=actors.agent.headers).json
    assert [e["to_status"] for e in events[-2:]] == ["awaiting_reply", "in_progress"]
    assert "paused_business_minutes" in events[-1]["data"]


def test_pausing_moves_every_deadline_out_by_the_business_time_paused(app):
    incident = Incident(
        school_id=1, sla_started_at=datetime(2026, 11, 16, 9, 0, tzinfo=UTC),  # Mon 09:00
        sla_paused_seconds=0, priority="P3",
        queue_id=db.session.execute(
            sa.select(Queue.id).where(Queue.slug == "its-service-desk")).scalar_one(),
    )  # fmt: skip
    sla.restart_clock(incident)
    due = incident.resolution_due_at
    sla.pause_clock(incident, datetime(2026, 11, 16, 10, 0, tzinfo=UTC))
    # Paused Monday 10:00 until Tuesday 10:00: one working day, 8 h 30.
    paused = sla.resume_clock(incident, datetime(2026, 11, 17, 10, 0, tzinfo=UTC))
    assert paused == timedelta(hours=8, minutes=30)
    assert SCOTLAND.between(due, incident.resolution_due_at) == paused


def test_an_agents_first_claim_meets_the_response_target(client, actors):
    ref = file(client, actors.ashgrove, **REMINDER).json["ref"]
    act(client, actors.ashgrove, ref, "comment", message="The pupil is waiting")
    assert stored(ref).first_response_at is None
    act(client, actors.agent, ref, "claim")
    assert stored(ref).first_response_at is not None


def overdue(ref: str, **columns) -> None:
    db.session.execute(sa.update(Incident).where(Incident.id == int(ref[4:])).values(**columns))


def sla_events(ref: str) -> list[IncidentEvent]:
    return list(db.session.execute(
        sa.select(IncidentEvent).where(IncidentEvent.incident_id == int(ref[4:]),
                                       IncidentEvent.kind.in_(["sla_breach", "sla_warning"]))
        .order_by(IncidentEvent.id)
    ).scalars())  # fmt: skip


def test_a_breach_is_escalated_once_to_the_queues_escalation_target(client, actors):
    ref = file(client, actors.ashgrove, **FIONA_RESET).json["ref"]  # service desk, P3
    past = datetime.now(UTC) - timedelta(minutes=5)
    overdue(ref, resolution_due_at=past, response_due_at=past + timedelta(days=30),
            sla_warn_at=past + timedelta(days=30))  # fmt: skip
    first = sla.run_escalation_pass()
    assert first.resolution_breaches == [int(ref[4:])]
    incident = stored(ref)
    assert incident.queue.slug == "its-identity"
    assert incident.priority == "P2"
    (event,) = sla_events(ref)
    assert event.kind == "sla_breach"
    assert event.data["from_queue"] == "its-service-desk"
    assert event.data["notify"] == ["queue:its-identity"]
    again = sla.run_escalation_pass()
    assert again.resolution_breaches == []
    assert len(sla_events(ref)) == 1
    queues = {q["slug"]: q for q in client.get("/api/v1/queues", headers=actors.agent.headers).json}
    assert queues["its-identity"]["breached"] >= 1


def test_a_warning_comes_once_before_the_deadline_and_paused_clocks_never_breach(client, actors):
    warned = file(client, actors.ashgrove, **ISLA_RESET).json["ref"]
    paused = file(client, actors.ashgrove, **ISLA_RESET, **AGAIN).json["ref"]
    past = datetime.now(UTC) - timedelta(minutes=1)
    overdue(warned, sla_warn_at=past)
    overdue(paused, sla_warn_at=past, resolution_due_at=past, response_due_at=past,
            sla_paused_at=past, status="awaiting_reply")  # fmt: skip
    report = sla.run_escalation_pass()
    assert report.warnings == [int(warned[4:])]
    assert [e.kind for e in sla_events(warned)] == ["sla_warning"]
    assert sla_events(paused) == []
    sla.run_escalation_pass()
    assert len(sla_events(warned)) == 1


def test_two_schedulers_racing_escalate_each_breach_exactly_once(committed_app, tmp_path):
    app, _, actors = committed_app
    client = app.test_client()
    refs = [file(client, actors.ashgrove, **FIONA_RESET, **AGAIN).json["ref"] for _ in range(40)]
    ids = [int(r[4:]) for r in refs]
    past = datetime.now(UTC) - timedelta(hours=1)
    with app.app_context():
        db.session.execute(sa.update(Incident).where(Incident.id.in_(ids)).values(
            resolution_due_at=past, response_due_at=past, sla_warn_at=past))  # fmt: skip
        db.session.commit()
    env = {**os.environ, **environ_for(app.config["SQLALCHEMY_DATABASE_URI"], tmp_path)}
    command = [sys.executable, "-m", "helpdesk.cli", "scheduler", "--once", "--batch", "3"]
    racers = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
              for _ in range(2)]  # fmt: skip
    outputs = [r.communicate(timeout=120)[0] for r in racers]
    assert all(r.returncode == 0 for r in racers), outputs
    with app.app_context():
        breaches = db.session.execute(
            sa.select(IncidentEvent.incident_id, IncidentEvent.data)
            .where(IncidentEvent.incident_id.in_(ids), IncidentEvent.kind == "sla_breach")
        ).all()  # fmt: skip
        db.session.remove()
    per_clock = Counter((incident_id, data["clock"]) for incident_id, data in breaches)
    # Never twice for one clock of one incident, and every resolution breach escalated.
    # (Escalating re-plans the response deadline from filing, so it may no longer be due.)
    assert set(per_clock.values()) == {1}
    assert {i for i, clock in per_clock if clock == "resolution"} == set(ids)
    escalated = sum(int(o.split()[1]) for o in outputs)
    assert escalated == 40  # between them the two runs escalated each breach once


def test_a_closure_day_is_skipped_by_new_deadlines(client, actors, app):
    # Close the next three working days at Ashgrove: a P3 reset's 3-day target moves past.
    opening = SCOTLAND.add(datetime.now(UTC), timedelta(0))
    days = []
    day = opening.date()
    while len(days) < 3:
        if SCOTLAND.is_working_day(day):
            days.append(day)
        day += timedelta(days=1)
    runner = app.test_cli_runner()
    for closed in days:
        result = runner.invoke(args=["closures", "add", closed.isoformat(), "--reason",
                                     "In-service day", "--school", "5231234"])  # fmt: skip
        assert result.exit_code == 0, result.output
    assert "In-service day" in runner.invoke(args=["closures", "list"]).output
    incident = stored(file(client, actors.ashgrove, **ISLA_RESET).json["ref"])
    assert incident.resolution_due_at.astimezone(ZoneInfo("Europe/London")).date() > days[-1]
    closed = BusinessCalendar.for_nation("SCT", closure_days=days)
    assert closed.between(incident.sla_started_at, incident.resolution_due_at) == 1530 * MINUTE
    again = runner.invoke(args=["closures", "add", days[0].isoformat(), "--reason", "x",
                                "--school", "5231234"])  # fmt: skip
    assert again.exit_code == 1 and "already closed" in again.output


def test_a_closure_added_by_mistake_is_removed_and_deadlines_run_through_it(client, actors, app):
    day = next(d for d in (datetime.now(UTC).date() + timedelta(days=n) for n in range(1, 9))
               if SCOTLAND.is_working_day(d))  # fmt: skip
    runner = app.test_cli_runner()
    added = runner.invoke(args=["closures", "add", day.isoformat(), "--reason", "typo",
                                "--school", "5231234"])  # fmt: skip
    assert added.exit_code == 0, added.output
    removed = runner.invoke(args=["closures", "remove", day.isoformat(), "--school", "5231234"])
    assert removed.exit_code == 0, removed.output
    assert "open again" in removed.output and "typo" in removed.output
    assert day.isoformat() not in runner.invoke(args=["closures", "list"]).output
    incident = stored(file(client, actors.ashgrove, **ISLA_RESET).json["ref"])
    assert SCOTLAND.between(incident.sla_started_at, incident.resolution_due_at) == 1530 * MINUTE
    again = runner.invoke(args=["closures", "remove", day.isoformat(), "--school", "5231234"])
    assert again.exit_code == 1 and "is not a closure day for 5231234" in again.output


def test_a_schools_own_hours_and_a_new_plan_set_the_deadlines(client, actors, app):
    runner = app.test_cli_runner()
    hours = runner.invoke(args=["sla", "hours", "5231234", "mon-fri 09:00-12:00"])
    assert hours.exit_code == 0, hours.output
    plan = runner.invoke(args=[
        "sla", "plan", "mornings", "--name", "Mornings only", "--target", "P1=10/60",
        "--target", "P2=20/120", "--target", "P3=30/180", "--target", "P4=60/360",
    ])  # fmt: skip
    assert plan.exit_code == 0, plan.output
    assigned = runner.invoke(args=["sla", "assign", "its-student-systems", "mornings"])
    assert assigned.exit_code == 0, assigned.output
    incident = stored(file(client, actors.ashgrove, **ISLA_RESET).json["ref"])
    mornings = BusinessCalendar.for_nation("SCT", weekly_hours=((time(9), time(12)),) * 5
                                           + (None, None))  # fmt: skip
    assert mornings.between(incident.sla_started_at, incident.resolution_due_at) == 180 * MINUTE
    assert mornings.is_open(incident.resolution_due_at)
    assert "mornings" in runner.invoke(args=["sla", "plans"]).output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["sla", "plan", "x", "--name", "X", "--target", "P1=10/60"], "missing P2"),
        (
            [
                "sla",
                "plan",
                "x",
                "--name",
                "X",
                "--target",
                "P1=90/60",
                "--target",
                "P2=1/2",
                "--target",
                "P3=1/2",
                "--target",
                "P4=1/2",
            ],
            "no later than resolution",
        ),
        (["sla", "hours", "5231234", "weekdays"], "mon-fri 08:00-16:30"),
        (["sla", "assign", "its-nowhere", "standard"], "No queue"),
    ],
)
def test_bad_sla_settings_are_refused_saying_what_to_fix(app, args, says):
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 1
    assert says in result.output


def test_hours_too_sparse_for_a_deadline_do_not_stop_filing(client, actors, app, caplog):
    # One minute a week cannot reach a three-day target within the calendar's horizon.
    hours = app.test_cli_runner().invoke(args=["sla", "hours", "5231234", "wed 10:00-10:01"])
    assert hours.exit_code == 0, hours.output
    response = file(client, actors.ashgrove, **ISLA_RESET)
    assert response.status_code == 201, response.json
    assert response.json["resolution_due_at"] is None
    assert "no SLA deadline for queue its-student-systems" in caplog.text
