"""The admin commands: users and tokens."""

from __future__ import annotations

import sqlalchemy as sa

from helpdesk.extensions import db
from helpdesk.models import ApiToken


def run(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def test_an_employee_is_created_for_a_staff_record_and_issued_a_token(app, client):
    created = run(
        app,
        "users",
        "create",
        "--email",
        "I.Docherty2@ashgrove.sch.example",
        "--role",
        "employee",
        "--staff-id",
        "stf-2",
    )
    assert created.exit_code == 0, created.output
    issued = run(app, "tokens", "issue", "i.docherty2@ashgrove.sch.example")
    assert issued.exit_code == 0
    token = issued.output.strip()
    assert token.startswith("hdk_") and len(token) > 40
    digests = db.session.execute(sa.select(ApiToken.token_digest)).scalars().all()
    assert token not in digests and all(token not in d for d in digests)
    response = client.get("/api/v1/incidents", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_an_employee_needs_a_staff_record(app):
    result = run(app, "users", "create", "--email", "x@school.example", "--role", "employee")
    assert result.exit_code == 1
    assert "--staff-id" in result.output
    result = run(
        app,
        "users",
        "create",
        "--email",
        "x@school.example",
        "--role",
        "employee",
        "--staff-id",
        "stf-404",
    )
    assert result.exit_code == 1
    assert "No active staff record 'stf-404'" in result.output


def test_a_duplicate_user_and_an_unknown_user_are_refused(app, actors):
    result = run(app, "users", "create", "--email", actors.agent.email, "--role", "agent")
    assert result.exit_code == 1 and "already exists" in result.output
    result = run(app, "tokens", "issue", "nobody@its.example")
    assert result.exit_code == 1 and "No user" in result.output
