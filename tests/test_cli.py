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


def test_a_new_user_gets_an_invitation_link_or_a_password_asked_at_the_terminal(app):
    invited = run(app, "users", "create", "--email", "new@its.example", "--role", "agent",
                  "--invite")  # fmt: skip
    assert invited.exit_code == 0, invited.output
    link = invited.output.strip().splitlines()[-1].strip()
    assert link.startswith(app.config["PUBLIC_BASE_URL"] + "/invite/")
    page = app.test_client().get(link.removeprefix(app.config["PUBLIC_BASE_URL"]))
    assert page.status_code == 200 and "new@its.example" in page.text

    runner = app.test_cli_runner()
    asked = runner.invoke(
        args=["users", "create", "--email", "typed@its.example", "--role", "agent",
              "--password"],
        input="too short\ntoo short\na passphrase long enough\na passphrase long enough\n",
    )  # fmt: skip
    assert asked.exit_code == 0, asked.output
    assert "at least 12 characters" in asked.output
    assert "a passphrase long enough" not in asked.output  # never echoed
    from helpdesk.services.sign_in import sign_in

    assert sign_in("typed@its.example", "a passphrase long enough").email == "typed@its.example"
