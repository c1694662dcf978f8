"""Access ends when it should: a revoked token, a deactivated user, a leaver, a signed-out
session — each refused at once, on every process."""

from __future__ import annotations

import shutil

import sqlalchemy as sa

from helpdesk import create_app
from helpdesk.extensions import db
from helpdesk.models import ApiToken, Incident, User, utcnow
from helpdesk.roster import open_bundle
from helpdesk.services.roster import import_roster

from .conftest import PG_SERVER, ROSTER, environ_for
from .samples import ISLA_RESET, file
from .test_pages import csrf_token, signed_in


def test_a_revoked_token_is_refused(client, actors):
    headers = actors.agent.headers
    assert client.get("/api/v1/queues", headers=headers).status_code == 200
    db.session.execute(
        sa.update(ApiToken).where(ApiToken.user_id == sa.select(User.id).where(
            User.email == actors.agent.email).scalar_subquery()).values(revoked_at=utcnow())
    )  # fmt: skip
    response = client.get("/api/v1/queues", headers=headers)
    assert response.status_code == 401
    assert "revoked" in response.json["message"]


def test_a_token_works_for_its_lifetime_and_then_no_more(app, client, actors):
    from datetime import timedelta

    from helpdesk.services.users import issue_api_token

    token = issue_api_token(actors.ashgrove.email, "school system")
    headers = {"Authorization": f"Bearer {token}"}
    issued = db.session.execute(
        sa.select(ApiToken).where(ApiToken.name == "school system")
    ).scalar_one()
    lifetime = issued.expires_at - issued.created_at
    assert timedelta(days=89.9) < lifetime <= timedelta(days=90)  # API_TOKEN_DAYS
    assert client.get("/api/v1/incidents", headers=headers).status_code == 200
    issued.expires_at = utcnow() - timedelta(seconds=1)
    db.session.flush()
    response = client.get("/api/v1/incidents", headers=headers)
    assert response.status_code == 401 and "expired" in response.json["message"]
    shortened = app.test_cli_runner().invoke(
        args=["tokens", "issue", actors.ashgrove.email, "--name", "a week", "--days", "7"]
    )
    assert shortened.exit_code == 0, shortened.output
    week = db.session.execute(sa.select(ApiToken).where(ApiToken.name == "a week")).scalar_one()
    assert timedelta(days=6.9) < week.expires_at - week.created_at <= timedelta(days=7)


def test_a_read_only_token_may_look_and_never_change(client, actors):
    from helpdesk.services.users import issue_api_token

    token = issue_api_token(actors.ashgrove.email, "reporting", scope="read-only")
    headers = {"Authorization": f"Bearer {token}"}
    before = db.session.execute(sa.select(sa.func.count()).select_from(Incident)).scalar_one()
    assert client.get("/api/v1/incidents", headers=headers).status_code == 200
    refused = file(client, type("Reader", (), {"headers": headers})(), **ISLA_RESET)
    assert refused.status_code == 403 and "read-only" in refused.json["message"]
    after = db.session.execute(sa.select(sa.func.count()).select_from(Incident)).scalar_one()
    assert after == before


def test_a_filing_token_files_for_its_school_and_does_nothing_else(app, client, actors):
    issued = app.test_cli_runner().invoke(
        args=["tokens", "issue", actors.ashgrove.email, "--name", "MIS", "--scope", "filing"]
    )
    assert issued.exit_code == 0, issued.output
    system = type("System", (), {"headers": {"Authorization": f"Bearer {issued.output.strip()}"}})
    filed = file(client, system, **ISLA_RESET)
    assert filed.status_code == 201, filed.json
    ref, school = filed.json["ref"], filed.json["school"]
    assert client.get(f"/api/v1/incidents/{ref}", headers=system.headers).status_code == 200
    assert client.get(f"/api/v1/incidents/{ref}/events", headers=system.headers).status_code == 200
    commented = client.post(f"/api/v1/incidents/{ref}/transitions", headers=system.headers,
                            json={"action": "comment", "message": "any news?"})  # fmt: skip
    assert commented.status_code == 403
    assert f"only files incidents for {school}" in commented.json["message"]
    assert client.get("/api/v1/queues", headers=system.headers).status_code == 403
    events = client.get(f"/api/v1/incidents/{ref}/events", headers=actors.ashgrove.headers)
    assert [e for e in events.json if e["kind"] == "comment"] == []


def test_a_filing_token_is_only_for_a_school_employee(app, actors):
    refused = app.test_cli_runner().invoke(
        args=["tokens", "issue", actors.agent.email, "--scope", "filing"]
    )
    assert refused.exit_code != 0
    assert "not a school employee" in refused.output
    assert (
        db.session.execute(
            sa.select(sa.func.count()).select_from(ApiToken).where(ApiToken.scope == "filing")
        ).scalar_one()
        == 0
    )


def test_a_deactivated_user_is_refused(client, actors):
    db.session.execute(sa.update(User).where(User.email == actors.agent.email).values(active=False))
    assert client.get("/api/v1/queues", headers=actors.agent.headers).status_code == 401


def test_a_token_revoked_on_one_worker_is_refused_at_once_by_every_other(committed_app, tmp_path):
    app, database, actors = committed_app
    # A second web worker: another app on the same database, as gunicorn runs them.
    other = create_app(environ_for(f"{PG_SERVER}/{database}", tmp_path))
    with app.app_context():
        from helpdesk.services.users import issue_api_token

        token = issue_api_token(actors.agent.email, "revoked-elsewhere")
        db.session.remove()
    headers = {"Authorization": f"Bearer {token}"}
    for worker in (app, other):
        assert worker.test_client().get("/api/v1/queues", headers=headers).status_code == 200
    with app.app_context():
        from helpdesk.services.users import revoke_token

        token_id = db.session.execute(
            sa.select(ApiToken.id).where(ApiToken.name == "revoked-elsewhere")
        ).scalar_one()
        user_id = db.session.execute(
            sa.select(ApiToken.user_id).where(ApiToken.id == token_id)
        ).scalar_one()
        revoke_token(user_id, token_id)
        db.session.remove()
    for worker in (other, app):
        assert worker.test_client().get("/api/v1/queues", headers=headers).status_code == 401
    with other.app_context():
        db.engine.dispose()


def test_a_leaver_marked_by_the_roster_has_no_access_on_any_route(app, client, actors, tmp_path):
    browser = signed_in(app, actors.ashgrove.email)
    assert browser.get("/incidents").status_code == 200
    bundle = tmp_path / "roster"
    shutil.copytree(ROSTER, bundle)
    users = bundle / "users.csv"
    users.write_text(users.read_text().replace("stf-1,active,", "stf-1,tobedeleted,", 1))
    import_roster(open_bundle(bundle), source="tests")
    assert file(client, actors.ashgrove, **ISLA_RESET).status_code == 401
    assert client.get("/api/v1/incidents", headers=actors.ashgrove.headers).status_code == 401
    page = browser.get("/incidents")
    assert page.status_code == 302 and "/sign-in" in page.headers["Location"]
    # A colleague still at the school is unaffected.
    assert file(client, actors.ashgrove_teacher, **ISLA_RESET).status_code == 201


def test_signing_out_ends_the_session_and_every_copy_of_its_cookie(app, actors):
    browser = signed_in(app, actors.agent.email)
    copy = app.test_client()
    cookie = browser.get_cookie("helpdesk_session")
    assert cookie is not None
    copy.set_cookie("helpdesk_session", cookie.value)
    assert copy.get("/queue").status_code == 200
    browser.post("/sign-out", data={"csrf_token": csrf_token(browser, "/queue")})
    answer = copy.get("/queue")
    assert answer.status_code == 302 and "/sign-in" in answer.headers["Location"]
    # Signing in again works, with a new session.
    again = signed_in(app, actors.agent.email)
    assert again.get("/queue").status_code == 200


def test_an_employee_sees_only_their_own_schools_queues(client, actors):
    mine = client.get("/api/v1/queues", headers=actors.ashgrove.headers).json
    assert [q["slug"] for q in mine] == ["school-office-5231234"]
    everything = client.get("/api/v1/queues", headers=actors.agent.headers).json
    assert {"its-identity", "school-office-8864021"} <= {q["slug"] for q in everything}


def test_a_tokens_last_use_is_recorded_after_the_response_not_in_its_transaction(client, actors):
    token = db.session.execute(sa.select(ApiToken).join(User).where(
        User.email == actors.agent.email)).scalars().first()  # fmt: skip
    db.session.execute(sa.update(ApiToken).where(ApiToken.id == token.id)
                       .values(last_used_at=None))  # fmt: skip
    assert client.get("/api/v1/queues", headers=actors.agent.headers).status_code == 200
    used = db.session.execute(
        sa.select(ApiToken.last_used_at).where(ApiToken.id == token.id)
    ).scalar_one()
    assert used is not None
