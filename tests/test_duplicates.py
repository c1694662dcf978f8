"""One incident per person: a second of a type for someone with one unfinished is pointed
at the open one (409), unless filed with force and a reason; agents link two incidents
and merge a duplicate into the one that carries on."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from helpdesk.extensions import db
from helpdesk.models import Incident, parse_ref

from .conftest import PG_SERVER
from .samples import AGAIN, FIONA_RESET, ISLA_RESET, REMINDER, RORY_RESET, file
from .test_incidents_api import incident_count
from .test_pages import csrf_token, signed_in


def _events(client, actors, ref):
    answer = client.get(f"/api/v1/incidents/{ref}/events", headers=actors.admin.headers)
    return answer.json


def _close(ref):
    db.session.execute(sa.update(Incident).where(Incident.id == parse_ref(ref))
                       .values(status="resolved"))  # fmt: skip


def test_a_second_reset_for_the_same_student_points_at_the_open_one(client, actors):
    first = file(client, actors.ashgrove, **ISLA_RESET).json["ref"]
    before = incident_count()
    again = file(client, actors.ashgrove, **ISLA_RESET)
    assert again.status_code == 409
    assert again.json["code"] == "already_open" and again.json["open"] == first
    assert again.json["message"].startswith(f"{first} is already open for this student")
    assert incident_count() == before  # nothing half-stored
    # Another employee of the school, filing for the same student, is told the same.
    teacher = file(client, actors.ashgrove_teacher, **ISLA_RESET)
    assert (teacher.status_code, teacher.json["open"]) == (409, first)
    # Another person, or another type for the same parent, is no duplicate.
    assert file(client, actors.ashgrove, **RORY_RESET).status_code == 201
    parent = file(client, actors.ashgrove, **FIONA_RESET).json["ref"]
    assert file(client, actors.ashgrove, **REMINDER).status_code == 201
    assert file(client, actors.ashgrove, **FIONA_RESET).json["open"] == parent
    # Once the first is done, a new one is a new request.
    _close(first)
    assert file(client, actors.ashgrove, **ISLA_RESET).status_code == 201


def test_only_verified_incidents_are_compared(client, actors):
    mistyped = {**ISLA_RESET, "birth_month_year": "012000"}
    failed = file(client, actors.ashgrove, **mistyped).json
    assert failed["verification"]["outcome"] == "failed"
    # The corrected one is the real request, not a duplicate of the mistyped one.
    right = file(client, actors.ashgrove, **ISLA_RESET)
    assert right.status_code == 201
    # And a mistyped one never points at the real one (it says nothing about it).
    again = file(client, actors.ashgrove, **mistyped)
    assert again.status_code == 201 and again.json["verification"]["outcome"] == "failed"
    assert "open" not in again.json


def test_force_files_a_second_one_linked_and_says_why_in_both_timelines(client, actors):
    first = file(client, actors.ashgrove, **ISLA_RESET).json["ref"]
    silent = file(client, actors.ashgrove, **ISLA_RESET, force=True)
    assert silent.status_code == 422 and "force_reason" in silent.json["errors"]["fields"]
    forced = file(client, actors.ashgrove, **ISLA_RESET, **AGAIN)
    assert forced.status_code == 201, forced.json
    second = forced.json
    assert second["links"] == [{"ref": first, "kind": "related"}]
    # It waits for a person: the first may still be resetting the same account.
    assert second["status"] == "triaged" and second["fulfilment"] is None
    (despite,) = [e for e in _events(client, actors, second["ref"])
                  if e["kind"] == "filed_despite_open"]  # fmt: skip
    assert AGAIN["force_reason"] in despite["message"] and first in despite["message"]
    (linked,) = [e for e in _events(client, actors, first) if e["kind"] == "linked"]
    assert second["ref"] in linked["message"] and AGAIN["force_reason"] in linked["message"]
    shown = client.get(f"/api/v1/incidents/{first}", headers=actors.agent.headers).json
    assert shown["links"] == [{"ref": second["ref"], "kind": "related"}]


def test_agents_link_two_incidents_and_merge_a_duplicate_into_the_other(client, actors):
    first = file(client, actors.ashgrove, **ISLA_RESET).json["ref"]
    second = file(client, actors.ashgrove, **ISLA_RESET, **AGAIN).json["ref"]
    rory = file(client, actors.ashgrove, **RORY_RESET).json["ref"]
    agent = actors.agent.headers
    linked = client.post(f"/api/v1/incidents/{rory}/links", json={"ref": first}, headers=agent)
    assert linked.status_code == 201, linked.json
    assert {"ref": first, "kind": "related"} in linked.json["links"]
    twice = client.post(f"/api/v1/incidents/{first}/links", json={"ref": rory}, headers=agent)
    assert twice.status_code == 409 and twice.json["code"] == "already_linked"
    employee = client.post(f"/api/v1/incidents/{rory}/links", json={"ref": second},
                           headers=actors.ashgrove.headers)  # fmt: skip
    assert employee.status_code == 403
    itself = client.post(f"/api/v1/incidents/{rory}/merge", json={"into": rory}, headers=agent)
    assert itself.status_code == 409
    # A reset whose job is in flight is not merged away.
    busy = client.post(f"/api/v1/incidents/{first}/merge", json={"into": second}, headers=agent)
    assert busy.status_code == 409 and busy.json["code"] == "fulfilment_in_flight"

    body = {"into": first, "message": "the same request"}
    merged = client.post(f"/api/v1/incidents/{second}/merge", json=body, headers=agent)
    assert merged.status_code == 200, merged.json
    assert (merged.json["status"], merged.json["merged_into"]) == ("closed", first)
    assert merged.json["links"] == [{"ref": first, "kind": "merged_into"}]
    carries_on = client.get(f"/api/v1/incidents/{first}", headers=agent).json
    assert {"ref": second, "kind": "merged_from"} in carries_on["links"]
    (into_event,) = [e for e in _events(client, actors, first) if e["kind"] == "merged_in"]
    assert into_event["message"] == (
        f"{second} was merged into this by {actors.agent.email}: the same request"
    )
    again = client.post(f"/api/v1/incidents/{second}/merge", json={"into": rory}, headers=agent)
    assert again.status_code == 409  # closed now


def test_the_report_page_points_at_the_open_one_and_files_a_second_only_with_a_reason(
    app, client, actors
):
    first = file(client, actors.ashgrove, **ISLA_RESET).json["ref"]
    page = signed_in(app, actors.ashgrove.email)
    form = {"student_id": ISLA_RESET["student_id"], "student_name": "Isla Campbell",
            "birth_month_year-month": "04", "birth_month_year-year": "2017"}  # fmt: skip
    token = csrf_token(page, "/report/student_password_reset")
    refused = page.post("/report/student_password_reset", data={**form, "csrf_token": token})
    assert refused.status_code == 409
    assert f'href="/incidents/{first}"' in refused.text
    assert "is already open for this student" in refused.text and "Nothing new was filed" in (
        refused.text
    )
    before = incident_count()
    token = csrf_token(page, "/report/student_password_reset")
    no_reason = page.post("/report/student_password_reset", data={
        **form, "force": "yes", "already_open": first, "csrf_token": token})  # fmt: skip
    assert no_reason.status_code == 422 and "Say why a second one is needed" in no_reason.text
    assert incident_count() == before
    forced = page.post("/report/student_password_reset", data={
        **form, "force": "yes", "force_reason": "the first slip was lost", "already_open": first,
        "csrf_token": token})  # fmt: skip
    assert forced.status_code == 302
    second = forced.headers["Location"].rsplit("/", 1)[1]
    agent = signed_in(app, actors.agent.email)
    shown = agent.get(f"/incidents/{first}").text
    assert f'href="/incidents/{second}"' in shown and "linked to this one" in shown
    token = csrf_token(agent, f"/incidents/{second}")
    merged = agent.post(f"/incidents/{second}/merge", data={"into": first, "csrf_token": token})
    assert merged.status_code == 302
    after = agent.get(f"/incidents/{second}").text
    assert "this one was merged into it" in after and "is merged into" in after
    wrong = agent.post(f"/incidents/{first}/links", data={"other": "INC-999999",
                                                          "csrf_token": token})  # fmt: skip
    assert wrong.status_code == 404 and "No incident INC-999999" in wrong.text


@pytest.mark.parametrize("filing", [ISLA_RESET, FIONA_RESET], ids=["student", "parent"])
def test_two_filings_for_one_person_at_one_moment_file_one(committed_app, filing):
    """Real commits on PostgreSQL: each filing is held at its INSERT (a lock the test
    takes on the table) until both have looked for an open incident — the moment two
    employees filing for the same family at once meet. One is filed; the other is
    pointed at it, not filed beside it (a second reset would email a second password)."""
    app, database, actors = committed_app
    engine = sa.create_engine(f"{PG_SERVER}/{database}")
    answers: list[Any] = []

    def one() -> None:
        answers.append(file(app.test_client(), actors.ashgrove, **filing))

    def waiting() -> int:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = :d"
                " AND wait_event_type = 'Lock'"), {"d": database}).scalar_one())  # fmt: skip

    threads = [threading.Thread(target=one) for _ in range(2)]
    try:
        with engine.connect() as held:
            held.execute(sa.text("LOCK TABLE incidents IN SHARE ROW EXCLUSIVE MODE"))
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 20
            while waiting() < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert waiting() == 2, "both filings should be waiting before they are let go"
            held.commit()
    finally:  # let go (the lock ends with its connection), then wait for both answers
        for thread in threads:
            if thread.is_alive():
                thread.join(timeout=30)
        engine.dispose()
    filed, refused = sorted(answers, key=lambda answer: answer.status_code)
    assert (filed.status_code, refused.status_code) == (201, 409), [a.json for a in answers]
    assert refused.json["code"] == "already_open" and refused.json["open"] == filed.json["ref"]
