"""No input breaks the service: each hostile request is a clear 4xx that says what to fix,
and nothing is stored."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from helpdesk.extensions import db
from helpdesk.models import Incident
from helpdesk.models.routing import RoutingRuleSet as RuleSet

from .samples import ISLA_RESET, LINK_FAILURE, page_form
from .test_pages import csrf_token, signed_in


def counts() -> tuple[int, int]:
    return (
        db.session.execute(sa.select(sa.func.count(Incident.id))).scalar_one(),
        db.session.execute(sa.select(sa.func.count(RuleSet.id))).scalar_one(),
    )


def post_raw(client, path, body: str, actor, method="POST"):
    return client.open(
        path, method=method, data=body, content_type="application/json", headers=actor.headers
    )


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def assert_clear_refusal(response, *words: str) -> None:
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)[:300]
    body = response.json
    assert body["code"] and body["message"]
    for word in words:
        assert word in json.dumps(body), body


@pytest.mark.parametrize("depth", [5_000, 100_000])
@pytest.mark.parametrize(
    ("path", "method", "template"),
    [
        ("/api/v1/incidents", "POST", '{"type": "student_password_reset", "notes": %s}'),
        ("/api/v1/routing-rules/dry-run", "POST", '{"incident": {"type": "x"}, "rules": %s}'),
        (
            "/api/v1/routing-rules",
            "PUT",
            '{"rules": [{"name": "deep", "conditions": {"all": %s}, "actions": []}]}',
        ),
    ],
)
def test_json_nested_thousands_deep_is_refused(client, actors, depth, path, method, template):
    before = counts()
    actor = actors.ashgrove if path == "/api/v1/incidents" else actors.admin
    response = post_raw(client, path, template % nested(depth), actor, method)
    assert_clear_refusal(response, "nested")
    assert counts() == before


def test_an_integer_beyond_64_bits_is_refused(client, actors):
    before = counts()
    for body in (
        {**ISLA_RESET, "student_id": 2**70},
        {"incident": {"type": "student_password_reset", "priority": 2**70}},
        {"version": 2**80},
    ):
        path = "/api/v1/incidents" if "type" in body else "/api/v1/routing-rules/dry-run"
        if "version" in body:
            path = "/api/v1/routing-rules/rollback"
        actor = actors.ashgrove if path == "/api/v1/incidents" else actors.admin
        response = post_raw(client, path, json.dumps(body), actor)
        assert_clear_refusal(response)
    assert counts() == before


def test_a_lone_surrogate_is_refused_naming_its_field(client, actors):
    before = counts()
    body = '{"type": "student_password_reset", "student_id": "ASH240891", '
    body += '"student_name": "Isla \\ud800 Campbell", "birth_month_year": "042017"}'
    response = post_raw(client, "/api/v1/incidents", body, actors.ashgrove)
    assert response.status_code == 422
    assert "student_name" in response.json["errors"]["fields"]
    assert counts() == before


@pytest.mark.parametrize("cursor", ["9" * 40, "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk", "-1"])
def test_a_huge_cursor_is_a_clear_error(app, client, actors, cursor):
    response = client.get(f"/api/v1/incidents?cursor={cursor}", headers=actors.admin.headers)
    assert response.status_code == 422
    assert "cursor" in response.json["errors"]["fields"]
    agent = signed_in(app, actors.agent.email)
    employee = signed_in(app, actors.ashgrove.email)
    for who, page in ((agent, "/queue"), (employee, "/incidents")):
        answer = who.get(f"{page}?cursor={cursor}")
        # The first page again (a cursor we did not give out is no page of ours).
        assert answer.status_code in (200, 302, 422), (page, answer.status_code)
        if answer.status_code == 302:
            assert answer.headers["Location"] == page


def test_a_huge_queue_cursor_from_the_address_bar(app, actors):
    import base64

    agent = signed_in(app, actors.agent.email)
    for text in ("|" + "9" * 30, "2026-01-01T00:00:00+00:00|" + "9" * 30, "|-5"):
        cursor = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
        assert agent.get(f"/queue?cursor={cursor}").status_code in (200, 422)
    # A column sort's cursor is an offset: too big, or digits that are not ASCII.
    for cursor in ("o" + "9" * 30, "o%C2%B2", "o-5", "o"):
        assert agent.get(f"/queue?sort=ref&cursor={cursor}").status_code == 200


def test_a_nul_in_a_large_form_is_refused_and_the_form_kept(app, actors):
    employee = signed_in(app, actors.ashgrove.email)
    page = "/report/portal_link_failure"
    before = counts()
    form = page_form(LINK_FAILURE)
    form["notes"] = "x" * (2 * 1024 * 1024) + "\x00"
    answer = employee.post(page, data={**form, "csrf_token": csrf_token(employee, page)})
    assert 400 <= answer.status_code < 500
    assert counts() == before


@pytest.mark.parametrize(
    "email", ["ops@its.example\r\nBcc: everyone@its.example", "ops\n@its.example", "not-an-address"]
)
def test_a_user_with_an_address_no_email_can_go_to_is_refused(app, email):
    from helpdesk.models import User

    result = app.test_cli_runner().invoke(
        args=["users", "create", "--email", email, "--role", "agent"]
    )
    assert result.exit_code != 0
    assert "is not an email address" in result.output
    assert (
        db.session.execute(
            sa.select(sa.func.count(User.id)).where(User.email.like("ops@%"))
        ).scalar_one()
        == 0
    )


def test_a_roster_address_with_a_line_break_is_refused_at_import(client, actors, tmp_path):
    from .test_roster_import import EditableBundle, upload

    bundle = EditableBundle(tmp_path / "roster")
    bundle.edit("users.csv", "stf-2", email="i.docherty@ashgrove.sch.example\r\nBcc: a@b.example")
    response = upload(client, actors.admin, bundle.zip())
    assert response.status_code == 422
    (problem,) = response.json["problems"]
    assert (problem["file"], problem["column"]) == ("users.csv", "email")
    assert "is not an email address" in problem["message"]


def test_a_catastrophic_pattern_runs_in_linear_time_in_a_dry_run(client, actors):
    import time

    rules = [{"name": "runaway", "conditions": {"all": [
        {"field": "details.notes", "op": "matches", "value": "(a+)+$"}]},
        "actions": [{"add_tag": "x"}]}]  # fmt: skip
    incident = {"type": "student_password_reset", "details": {"notes": "a" * 50_000 + "!"}}
    started = time.monotonic()
    response = client.post("/api/v1/routing-rules/dry-run", json={"incident": incident,
                           "rules": rules}, headers=actors.admin.headers)  # fmt: skip
    assert response.status_code == 200, response.json
    assert time.monotonic() - started < 5  # Python's re would backtrack for hours here


@pytest.mark.parametrize(
    ("pattern", "words"),
    [(r"(\w+) \1", "back-references"), (r"^(?!P1)", "look-arounds"), ("x" * 600, "longer than")],
)
def test_a_pattern_that_needs_backtracking_is_refused_with_why(client, actors, pattern, words):
    before = counts()
    rules = [{"name": "bad pattern", "conditions": {"all": [
        {"field": "details.student_name", "op": "matches", "value": pattern}]},
        "actions": [{"add_tag": "x"}]}]  # fmt: skip
    saved = client.put("/api/v1/routing-rules", json={"rules": rules},
                       headers=actors.admin.headers)  # fmt: skip
    assert saved.status_code == 422
    assert words in json.dumps(saved.json)
    assert counts() == before
