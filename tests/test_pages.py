"""The pages through Flask's test client: who may open what, sign-in and sessions, CSRF,
the forms' validation, the agents' queue view, and the admin pages' effects.

(The journeys in a real browser, with axe-core, are in test_browser.py.)
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pyotp
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from helpdesk.config import Config
from helpdesk.extensions import db
from helpdesk.models import ApiToken, Incident, RoutingRuleSet, User, parse_ref, utcnow
from helpdesk.services import sign_in as sign_in_service
from helpdesk.services.users import Principal
from helpdesk.services.worklist import Filters, worklist

from .conftest import ROSTER
from .samples import AGAIN, FIONA_RESET, ISLA_RESET, file, page_form
from .two_step import app_code, enrolled_where_required

PASSWORD = "correct horse battery staple"
ADMIN_PAGES = ("/admin/rules", "/admin/rules/edit", "/admin/queues", "/admin/sla",
               "/admin/users", "/admin/roster")  # fmt: skip


def csrf_token(client: FlaskClient, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert found, f"{path} has no CSRF token"
    return found.group(1)


def set_password(email: str, password: str = PASSWORD) -> None:
    """The user's password, and their authenticator app where their role needs one."""
    user = db.session.execute(sa.select(User).where(User.email == email)).scalar_one()
    sign_in_service.set_password(user, password)
    db.session.commit()
    enrolled_where_required(user)


def post_sign_in(
    client: FlaskClient, email: str, password: str = PASSWORD, next_path: str | None = None
) -> TestResponse:
    """The sign-in form as a browser sends it, optionally with where to go next; for an
    enrolled user the code from their app follows, as they would type it."""
    target = "/sign-in" + (f"?next={quote(next_path, safe='')}" if next_path else "")
    form = {"email": email, "password": password, "csrf_token": csrf_token(client, "/sign-in")}
    answer = client.post(target, data=form)
    if answer.status_code == 302 and answer.location == "/sign-in/code":
        with client.application.app_context():
            user_id = db.session.execute(sa.select(User.id).where(User.email == email)).scalar_one()
            code = app_code(user_id)
        form = {"code": code, "csrf_token": csrf_token(client, "/sign-in/code")}
        answer = client.post("/sign-in/code", data=form)
    return answer


def signed_in(app: Flask, email: str) -> FlaskClient:
    set_password(email)
    client = app.test_client()
    answer = post_sign_in(client, email)
    assert answer.status_code == 302, answer.text
    return client


def sign_in_answer(client: FlaskClient, email: str, password: str) -> str:
    answer = post_sign_in(client, email, password)
    if answer.status_code == 302:
        return "signed in"
    found = re.search(r'class="govuk-error-message">.*?</span>\s*(.*?)</p>', answer.text, re.S)
    assert found, answer.text
    return found.group(1).strip()


# --- Who may open what -----------------------------------------------------------------


def test_an_employee_cannot_open_another_schools_incident(app, client, actors):
    ref = file(client, actors.ashgrove, **ISLA_RESET).json["ref"]
    colleague = signed_in(app, actors.ashgrove_teacher.email)
    assert colleague.get(f"/incidents/{ref}").status_code == 200
    other_school = signed_in(app, actors.millbrook.email)
    answer = other_school.get(f"/incidents/{ref}")
    assert answer.status_code == 404
    assert "Page not found" in answer.text
    assert "Isla" not in answer.text


def test_times_are_shown_in_the_readers_zone_with_the_zone_named(app, client, actors):
    ref = file(client, actors.ashgrove, **FIONA_RESET).json["ref"]
    summer = datetime(2026, 7, 1, 8, 15, tzinfo=UTC)
    db.session.execute(
        sa.update(Incident).where(Incident.id == parse_ref(ref)).values(created_at=summer)
    )
    db.session.commit()
    agent = signed_in(app, actors.agent.email)
    assert "1 Jul 2026 09:15 BST" in agent.get(f"/incidents/{ref}").text
    app.config["DISPLAY_TIMEZONE"] = "America/New_York"
    try:
        assert "1 Jul 2026 04:15 EDT" in agent.get(f"/incidents/{ref}").text
    finally:
        app.config["DISPLAY_TIMEZONE"] = "Europe/London"


def test_an_agent_cannot_open_admin_pages_and_an_employee_not_the_queue(app, actors):
    agent = signed_in(app, actors.agent.email)
    for path in ADMIN_PAGES:
        answer = agent.get(path)
        assert answer.status_code == 403, path
        assert "You cannot open this page" in answer.text
    employee = signed_in(app, actors.ashgrove.email)
    assert employee.get("/queue").status_code == 403
    assert employee.get("/dashboard").status_code == 403
    admin = signed_in(app, actors.admin.email)
    assert all(admin.get(path).status_code == 200 for path in ADMIN_PAGES)


def test_a_stranger_is_sent_to_sign_in_and_back(app, client, actors):
    answer = client.get("/queue?status=closed")
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/sign-in?next=")
    set_password(actors.agent.email)
    back = post_sign_in(client, actors.agent.email, next_path="/queue?status=closed")
    assert back.headers["Location"] == "/queue?status=closed"
    # ...but never to another site.
    for elsewhere in ("//evil.example/x", "/\\evil.example"):
        client.post("/sign-out", data={"csrf_token": csrf_token(client, "/queue")})
        away = post_sign_in(client, actors.agent.email, next_path=elsewhere)
        assert away.headers["Location"] == "/", elsewhere


def test_a_form_without_its_csrf_token_is_refused_and_nothing_is_stored(app, actors):
    employee = signed_in(app, actors.ashgrove.email)
    before = db.session.execute(sa.select(sa.func.count(Incident.id))).scalar_one()
    body = page_form(ISLA_RESET)
    answer = employee.post("/report/student_password_reset", data=body)
    assert answer.status_code == 400
    assert "The form was not sent from this site" in answer.text
    assert db.session.execute(sa.select(sa.func.count(Incident.id))).scalar_one() == before
    token = csrf_token(employee, "/report/student_password_reset")
    filed = employee.post("/report/student_password_reset", data={**body, "csrf_token": token})
    assert filed.status_code == 302
    assert db.session.execute(sa.select(sa.func.count(Incident.id))).scalar_one() == before + 1


# --- Sign-in, sessions and headers -----------------------------------------------------


def test_repeated_failures_lock_the_account_with_the_same_message_as_an_unknown_one(
    app, client, actors
):
    set_password(actors.agent.email)
    unknown = sign_in_answer(client, "nobody@its.example", PASSWORD)
    wrong = sign_in_answer(client, actors.agent.email, "not the password at all")
    assert unknown == wrong
    assert "not right" in wrong
    for _ in range(app.config["SIGN_IN_MAX_FAILURES"] - 1):
        sign_in_answer(client, actors.agent.email, "still not the password")
    # Locked: the right password is refused now, with the very same message.
    assert sign_in_answer(client, actors.agent.email, PASSWORD) == unknown
    user = db.session.execute(sa.select(User).where(User.email == actors.agent.email)).scalar_one()
    assert user.locked_until is not None
    user.locked_until = utcnow() - timedelta(seconds=1)  # the lock has run out
    db.session.commit()
    assert sign_in_answer(client, actors.agent.email, PASSWORD) == "signed in"


def test_session_cookie_and_security_headers(app, actors, tmp_path):
    set_password(actors.admin.email)
    client = app.test_client()
    page = client.get("/sign-in")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "Strict-Transport-Security" not in page.headers  # plain HTTP outside production
    cookie = post_sign_in(client, actors.admin.email).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Expires=" in cookie
    production = Config.from_env(
        {"DATABASE_URL": "postgresql://db/helpdesk", "SECRET_KEY": "x" * 40, "PIN_PEPPER": "p"},
        str(tmp_path),
    ).as_flask_config()
    assert production["SESSION_COOKIE_SECURE"] is True
    assert production["PERMANENT_SESSION_LIFETIME"] == timedelta(hours=8)


def test_signing_out_or_a_new_password_ends_the_session(app, actors):
    agent = signed_in(app, actors.agent.email)
    assert agent.get("/queue").status_code == 200
    agent.post("/sign-out", data={"csrf_token": csrf_token(agent, "/queue")})
    assert agent.get("/queue").status_code == 302
    agent = signed_in(app, actors.agent.email)
    set_password(actors.agent.email, "an entirely new passphrase")
    assert agent.get("/queue").status_code == 302


def test_an_invitation_sets_a_password_once(app, client, actors):
    token, _ = sign_in_service.invite(actors.identity.email)
    page = client.get(f"/invite/{token}")
    assert page.status_code == 200
    form = {"password": "short", "confirm": "short"}
    weak = client.post(
        f"/invite/{token}", data={**form, "csrf_token": csrf_token(client, f"/invite/{token}")}
    )
    assert weak.status_code == 422 and "at least 12 characters" in weak.text
    form = {"password": "aaaaaaaaaaaa", "confirm": "aaaaaaaaaaaa"}  # long enough, guessed first
    guessable = client.post(
        f"/invite/{token}", data={**form, "csrf_token": csrf_token(client, f"/invite/{token}")}
    )
    assert guessable.status_code == 422 and "Avoid repeated characters" in guessable.text
    chosen = "a long enough passphrase"
    done = client.post(
        f"/invite/{token}",
        data={"password": chosen, "confirm": chosen,
              "csrf_token": csrf_token(client, f"/invite/{token}")},
    )  # fmt: skip
    # An agent's account needs a second step: it is set up before the first session.
    assert done.status_code == 302 and done.location == "/sign-in/set-up"
    assert client.get("/queue").status_code == 302  # not signed in yet
    set_up = client.get("/sign-in/set-up")
    secret = re.search(r'id="secret-key">([A-Z2-7 ]+)<', set_up.text).group(1).replace(" ", "")
    confirmed = client.post(
        "/sign-in/set-up",
        data={
            "code": pyotp.TOTP(secret).now(),
            "csrf_token": csrf_token(client, "/sign-in/set-up"),
        },
    )
    assert confirmed.status_code == 200 and "Your recovery codes" in confirmed.text
    assert client.get("/queue").status_code == 200  # signed in
    again = app.test_client().get(f"/invite/{token}")
    assert again.status_code == 404 and "cannot be used" in again.text
    assert sign_in_answer(app.test_client(), actors.identity.email, chosen) == "signed in"


def test_staff_change_their_own_password_and_their_other_sessions_end(app, actors):
    email = actors.agent.email
    elsewhere = signed_in(app, email)  # e.g. the same person on another computer
    here = app.test_client()
    assert post_sign_in(here, email).status_code == 302
    page = here.get("/account/password")
    assert page.status_code == 200 and "Change your password" in page.text

    def change(current: str, new: str, confirm: str | None = None) -> TestResponse:
        form = {"current": current, "password": new, "confirm": new if confirm is None
                else confirm, "csrf_token": csrf_token(here, "/account/password")}  # fmt: skip
        return here.post("/account/password", data=form)

    wrong = change("not my password", "a brand new long passphrase")
    assert wrong.status_code == 422 and "current password is not right" in wrong.text
    short = change(PASSWORD, "short")
    assert short.status_code == 422 and "at least 12 characters" in short.text
    mismatch = change(PASSWORD, "a brand new long passphrase", "something else entirely")
    assert mismatch.status_code == 422 and "not the same" in mismatch.text
    assert sign_in_answer(app.test_client(), email, PASSWORD) == "signed in"  # nothing changed

    done = change(PASSWORD, "a brand new long passphrase")
    assert done.status_code == 302
    assert here.get("/queue").status_code == 200  # this session goes on
    assert elsewhere.get("/queue").headers["Location"].startswith("/sign-in")  # that one ended
    assert sign_in_answer(app.test_client(), email, "a brand new long passphrase") == "signed in"
    assert "not right" in sign_in_answer(app.test_client(), email, PASSWORD)
    set_password(email)  # as the other tests expect


# --- Report a problem ---------------------------------------------------------------------


def test_the_form_shows_the_apis_validation_per_field_and_keeps_no_pin(app, actors):
    employee = signed_in(app, actors.ashgrove.email)
    token = csrf_token(employee, "/report/parent_password_reset")
    body = {**FIONA_RESET, "parent_account_number": "", "contact_phone": "12"}
    body.pop("type")
    answer = employee.post("/report/parent_password_reset", data={**body, "csrf_token": token})
    assert answer.status_code == 422
    assert 'href="#parent_account_number">Enter the parent account number.' in answer.text
    assert "Contact phone: use the phone number with its area code" in answer.text
    assert FIONA_RESET["parent_pin"] not in answer.text
    assert 'value="Fiona Campbell"' in answer.text  # what was typed is kept


def test_a_nul_character_shows_the_form_again_with_everything_else_kept(app, actors):
    employee = signed_in(app, actors.ashgrove.email)
    token = csrf_token(employee, "/report/student_password_reset")
    before = db.session.execute(sa.select(sa.func.count(Incident.id))).scalar_one()
    body = page_form({**ISLA_RESET, "student_name": "Isla\x00 Campbell", "summary": "locked out"})
    answer = employee.post("/report/student_password_reset", data={**body, "csrf_token": token})
    assert answer.status_code == 422
    assert "<h1" in answer.text and "Student password reset" in answer.text  # the form
    assert 'href="#student_name">This answer held a character that cannot be stored' in (
        answer.text
    )
    assert 'id="student_name-error"' in answer.text
    for kept in ('value="ASH240891"', 'value="04"', 'value="2017"', 'value="locked out"',
                 'value="Isla Campbell"'):  # fmt: skip
        assert kept in answer.text
    assert db.session.execute(sa.select(sa.func.count(Incident.id))).scalar_one() == before


def test_a_nul_character_on_sign_in_keeps_the_email_and_signs_no_one_in(app, actors):
    set_password(actors.agent.email)
    client = app.test_client()
    form = {"email": actors.agent.email, "password": PASSWORD + "\x00",
            "csrf_token": csrf_token(client, "/sign-in")}  # fmt: skip
    answer = client.post("/sign-in", data=form)
    assert answer.status_code == 422
    assert f'value="{actors.agent.email}"' in answer.text
    assert 'id="password-error"' in answer.text
    assert client.get("/queue").status_code == 302  # still signed out


def test_a_nul_character_in_the_address_is_still_refused(app, actors):
    employee = signed_in(app, actors.ashgrove.email)
    answer = employee.get("/incidents?q=Isla%00")
    assert answer.status_code == 422 and "NUL character" in answer.text


def test_a_verification_failure_says_what_to_do_next(app, actors):
    employee = signed_in(app, actors.ashgrove.email)
    token = csrf_token(employee, "/report/parent_password_reset")
    body = {k: v for k, v in FIONA_RESET.items() if k != "type"}
    body["contact_phone"] = "07700 900999"
    filed = employee.post("/report/parent_password_reset", data={**body, "csrf_token": token})
    page = employee.get(filed.headers["Location"])
    assert "Does not match" in page.text
    assert "Ask the parent which number the school has" in page.text
    assert "nothing will be reset or sent" in page.text


def test_a_failed_check_is_announced_as_important_and_filing_again_keeps_the_details(app, actors):
    employee = signed_in(app, actors.ashgrove.email)
    token = csrf_token(employee, "/report/student_password_reset")
    body = page_form({**ISLA_RESET, "student_name": "Isl Campbell", "summary": "forgot it"})
    filed = employee.post("/report/student_password_reset", data={**body, "csrf_token": token})
    page = employee.get(filed.headers["Location"]).text
    banner = re.search(r'<div class="govuk-notification-banner[^"]*".*?</div>\s*</div>', page, re.S)
    assert banner and "govuk-notification-banner--success" not in banner.group(0)
    assert ">Important<" in banner.group(0) and "did not match the school" in banner.group(0)
    assert "Success" not in page
    assert "nickname?" in page.lower() and "?." not in page  # one mark, not two
    again = re.search(r'href="(/report/student_password_reset\?again=INC-\d+)"', page)
    assert again, "the page links to filing it again"
    form = employee.get(again.group(1)).text
    for kept in ('value="ASH240891"', 'value="Isl Campbell"', 'value="4"', 'value="2017"',
                 'value="forgot it"'):  # fmt: skip
        assert kept in form


def test_filing_again_from_another_schools_incident_is_page_not_found(app, actors):
    ashgrove = signed_in(app, actors.ashgrove.email)
    filed = file(app.test_client(), actors.ashgrove, **ISLA_RESET).json["ref"]
    assert ashgrove.get(f"/report/student_password_reset?again={filed}").status_code == 200
    other = signed_in(app, actors.millbrook.email)
    assert other.get(f"/report/student_password_reset?again={filed}").status_code == 404


def test_choosing_no_problem_type_is_an_error_not_a_reload(app, actors):
    employee = signed_in(app, actors.ashgrove.email)
    answer = employee.get("/report?chosen=1")  # the form sent with no radio chosen
    assert answer.status_code == 422
    assert 'href="#type">Choose what the problem is.' in answer.text
    assert 'id="type-error"' in answer.text


def test_a_number_alone_finds_the_incident_with_that_reference(app, client, actors):
    refs = [file(client, actors.ashgrove, **ISLA_RESET, **AGAIN).json["ref"] for _ in range(4)]
    employee = signed_in(app, actors.ashgrove.email)
    number = str(int(refs[-1][4:]))  # "4" for INC-000004
    found = employee.get(f"/incidents?q={number}")
    assert found.status_code == 302 and found.headers["Location"].endswith(f"/{refs[-1]}")
    other = signed_in(app, actors.millbrook.email)  # not theirs: no shortcut, no leak
    answer = other.get(f"/incidents?q={number}")
    assert answer.status_code != 302 and refs[-1] not in answer.text


def test_the_employees_list_says_who_each_is_about_and_its_status_in_plain_words(
    app, client, actors
):
    ref = file(client, actors.ashgrove, **FIONA_RESET, summary="locked out again").json["ref"]
    page = signed_in(app, actors.ashgrove.email).get("/incidents").text
    row = page[page.index(f">{ref}<") :]
    row = row[: row.index("</tr>")]
    assert "Fiona Campbell" in row and "locked out again" in row
    assert "waiting for ITS" in row and "triaged" not in row
    agent_view = signed_in(app, actors.agent.email).get(f"/incidents/{ref}").text
    assert "triaged</strong>" in agent_view  # the desk keeps its own word


def test_dates_are_typed_in_day_month_and_year_boxes_and_a_stage_in_any_case(app, actors):
    from .samples import LINK_FAILURE

    employee = signed_in(app, actors.ashgrove.email)
    page = "/report/portal_link_failure"
    shown = employee.get(page).text
    for box in ('name="child_birth_date-day"', 'name="child_birth_date-month"',
                'name="child_birth_date-year"'):  # fmt: skip
        assert box in shown
    form = page_form({**LINK_FAILURE, "child_year_stage": "p4"})
    form |= {"child_birth_date-day": "31", "child_birth_date-month": "2"}  # no 31 February
    wrong = employee.post(page, data={**form, "csrf_token": csrf_token(employee, page)})
    assert wrong.status_code == 422
    assert 'href="#child_birth_date">Child&#39;s date of birth: must be a real date.' in wrong.text
    assert 'value="31"' in wrong.text and 'value="2017"' in wrong.text  # kept in their boxes
    half = {**form, "child_birth_date-day": "", "child_birth_date-month": "4"}
    missing = employee.post(page, data={**half, "csrf_token": csrf_token(employee, page)})
    assert "must include a day." in missing.text
    for day, year in (("9" * 25, "2017"), ("12", "9" * 5000)):  # no date has them
        huge = {**form, "child_birth_date-day": day, "child_birth_date-year": year}
        refused = employee.post(page, data={**huge, "csrf_token": csrf_token(employee, page)})
        assert refused.status_code == 422 and "Child&#39;s date of birth" in refused.text
    form["child_birth_date-day"], form["child_birth_date-month"] = "12", "4"
    filed = employee.post(page, data={**form, "csrf_token": csrf_token(employee, page)})
    assert filed.status_code == 302, filed.text
    ref = filed.headers["Location"].rsplit("/", 1)[-1]
    stored = db.session.execute(sa.select(Incident).where(Incident.id == parse_ref(ref)))
    details = stored.scalar_one().details
    assert details["child_birth_date"] == "2017-04-12" and details["child_year_stage"] == "P4"


def test_form_errors_are_in_page_order_and_in_words_for_people(app, actors):
    employee = signed_in(app, actors.ashgrove.email)
    page = "/report/parent_password_reset"
    form = page_form({**FIONA_RESET, "parent_name": "F" * 201, "contact_phone": "",
                      "parent_account_number": ""})  # fmt: skip
    answer = employee.post(page, data={**form, "csrf_token": csrf_token(employee, page)})
    assert answer.status_code == 422
    summary = answer.text[answer.text.index("govuk-error-summary__list") :]
    summary = summary[: summary.index("</ul>")]
    links = re.findall(r'href="#(\w+)">([^<]+)<', summary)
    assert [field for field, _ in links] == ["parent_name", "contact_phone",
                                             "parent_account_number"]  # fmt: skip
    assert links[0][1] == "Enter the parent&#39;s full name in 200 characters or fewer."
    assert "Longer than maximum length" not in answer.text


# --- The agents' queue view -------------------------------------------------------------


def test_the_queue_view_pages_by_deadline_without_gaps_or_repeats(app, client, actors):
    refs = [file(client, actors.ashgrove, **FIONA_RESET, **AGAIN).json["ref"] for _ in range(7)]
    ids = [int(ref[4:]) for ref in refs]
    now = utcnow()
    # Deadlines out of filing order, two incidents with none (a queue with no plan).
    dues = [now + timedelta(hours=h) for h in (5, 1, 3, 1, 2)] + [None, None]
    for incident_id, due in zip(ids, dues, strict=True):
        db.session.execute(
            sa.update(Incident).where(Incident.id == incident_id).values(resolution_due_at=due)
        )
    db.session.commit()
    agent = db.session.execute(sa.select(User).where(User.email == actors.agent.email)).scalar_one()
    viewer = Principal(agent.id, agent.email, agent.role, None, None)
    seen, cursor = [], None
    while True:
        page = worklist(viewer, Filters(queue="its-service-desk"), cursor, page_size=3)
        seen += [row.incident.id for row in page.rows]
        cursor = page.next_cursor
        if cursor is None:
            break
    expected = sorted(ids[:5], key=lambda i: (dues[ids.index(i)], i)) + ids[5:]
    assert seen == expected


def test_staff_find_an_incident_from_the_queue_or_the_list(app, client, actors):
    isla = file(client, actors.ashgrove, **ISLA_RESET).json["ref"]
    fiona = file(client, actors.ashgrove, **FIONA_RESET).json["ref"]
    agent = signed_in(app, actors.agent.email)
    assert 'role="search"' in agent.get("/queue").text  # the box is on the agent's queue
    went = agent.get(f"/incidents?q={fiona[len('INC-') :]}")  # a reference goes straight there
    assert went.status_code == 302 and went.headers["Location"].endswith(f"/incidents/{fiona}")
    listed = agent.get("/incidents?q=ASH240891").text
    assert isla in listed and fiona in listed and "Matching “ASH240891”" in listed
    assert "No incident you can see matches “Zebedee”" in agent.get("/incidents?q=Zebedee").text
    short = agent.get("/incidents?q=Z")
    assert short.status_code == 422 and "between 2 and 100 characters" in short.text
    other_school = signed_in(app, actors.millbrook.email)
    hidden = other_school.get(f"/incidents?q={fiona}")  # not theirs: no jump, nothing found
    assert hidden.status_code == 200 and f"matches “{fiona}”" in hidden.text


def test_the_queue_view_filters_and_marks_breaches(app, client, actors):
    late, on_time = (
        file(client, actors.ashgrove, **FIONA_RESET, **AGAIN).json["ref"] for _ in range(2)
    )
    db.session.execute(
        sa.update(Incident).where(Incident.id == int(late[4:]))
        .values(resolution_due_at=utcnow() - timedelta(hours=1))
    )  # fmt: skip
    db.session.commit()
    agent = signed_in(app, actors.agent.email)
    breached = agent.get("/queue?breached=yes").text
    assert late in breached and on_time not in breached and "Breached" in breached
    assert on_time in agent.get("/queue?breached=no&type=parent_password_reset").text
    assert late not in agent.get("/queue?type=student_password_reset").text
    identity = signed_in(app, actors.identity.email)
    assert late not in identity.get("/queue").text  # not one of the identity agent's queues


def _queue_rows(page: str) -> list[str]:
    """The references in the queue table, in the order shown."""
    return re.findall(r'<a class="govuk-link[^"]*" href="/incidents/(INC-\d+)">', page)


def test_the_queue_says_who_it_is_about_which_deadline_and_when_its_clock_is_paused(
    app, client, actors
):
    fiona = file(client, actors.ashgrove, **FIONA_RESET, summary="locked out").json["ref"]
    agent_api = actors.agent.headers
    client.post(f"/api/v1/incidents/{fiona}/transitions", headers=agent_api,
                json={"action": "claim"})  # fmt: skip
    waiting = client.post(f"/api/v1/incidents/{fiona}/transitions", headers=agent_api,
                          json={"action": "await_reply", "message": "which phone?"})  # fmt: skip
    assert waiting.status_code == 200, waiting.json
    fresh = file(client, actors.ashgrove, **FIONA_RESET, **AGAIN).json["ref"]
    page = signed_in(app, actors.agent.email).get("/queue").text
    assert "Fiona Campbell" in page and "locked out" in page
    row = page[page.index(f">{fresh}<") :]
    row = row[: row.index("</tr>")]
    assert "Response:" in row  # nobody at ITS has answered yet
    row = page[page.index(f">{fiona}<") :]
    row = row[: row.index("</tr>")]
    assert "Paused" in row and "Resolution:" in row  # claimed: the response is given


def test_the_queue_sorts_by_any_column_both_ways(app, client, actors):
    refs = [file(client, actors.ashgrove, **FIONA_RESET, **AGAIN).json["ref"] for _ in range(3)]
    claimed = client.post(f"/api/v1/incidents/{refs[1]}/transitions",
                          headers=actors.agent.headers, json={"action": "claim"})  # fmt: skip
    assert claimed.status_code == 200
    agent = signed_in(app, actors.agent.email)
    assert _queue_rows(agent.get("/queue?sort=ref").text) == refs
    newest_first = agent.get("/queue?sort=ref&order=desc").text
    assert _queue_rows(newest_first) == refs[::-1]
    assert 'aria-sort="descending"' in newest_first
    by_assignee = _queue_rows(agent.get("/queue?sort=assignee").text)
    assert by_assignee[0] == refs[1]  # the one assigned; nobody's come after
    by_status = _queue_rows(agent.get("/queue?sort=status&order=desc").text)
    assert by_status[0] != refs[1]  # triaged after in progress, descending: triaged first
    isla = file(client, actors.ashgrove, **{**ISLA_RESET, "student_name": "Isl Campbell"})
    by_whom = _queue_rows(agent.get("/queue?sort=about").text)
    assert by_whom[0] in refs and by_whom[-1] == isla.json["ref"]  # Fiona before Isl
    assert _queue_rows(agent.get("/queue?sort=nonsense").text) == _queue_rows(
        agent.get("/queue").text
    )  # an unknown sort is the deadline order


def test_bulk_actions_claim_assign_and_move_with_a_banner_of_what_changed(app, client, actors):
    from helpdesk.services.queues import add_member

    add_member("its-service-desk", actors.identity.email)
    refs = [file(client, actors.ashgrove, **FIONA_RESET, **AGAIN).json["ref"] for _ in range(3)]
    agent = signed_in(app, actors.agent.email)
    token = csrf_token(agent, "/queue")

    def bulk(**form: Any) -> str:
        answer = agent.post("/queue/bulk", data={"csrf_token": token, **form})
        assert answer.status_code == 302
        return agent.get(answer.headers["Location"]).text

    claimed = bulk(ref=refs[:2], bulk_action="claim")
    assert f"2 incidents claimed by you: {refs[0]}, {refs[1]}." in claimed
    assigned = bulk(ref=refs[1:], bulk_action="assign", agent=actors.identity.email)
    assert f"2 incidents assigned to {actors.identity.email}" in assigned
    stranger = bulk(ref=[refs[0]], bulk_action="assign", agent=actors.ashgrove.email)
    assert f"{refs[0]}: Choose an agent who works its-service-desk" in stranger
    moved = bulk(ref=refs, bulk_action="move", queue_to="its-identity")
    assert f"3 incidents moved to its-identity: {', '.join(refs)}." in moved
    nothing = bulk(bulk_action="claim")
    assert "Tick at least one incident" in nothing
    for ref in refs:
        shown = client.get(f"/api/v1/incidents/{ref}", headers=actors.identity.headers).json
        assert shown["queue"] == "its-identity" and shown["assignee"] is None
    timeline = client.get(f"/api/v1/incidents/{refs[2]}/events", headers=actors.identity.headers)
    kinds = [event["kind"] for event in timeline.json]
    assert "assigned" in kinds and kinds.index("assigned") < kinds.index("escalate")


def test_an_agent_assigns_an_incident_to_a_named_agent_of_its_queue(app, client, actors):
    from helpdesk.services.queues import add_member

    add_member("its-service-desk", actors.identity.email)
    ref = file(client, actors.ashgrove, **FIONA_RESET).json["ref"]
    agent = signed_in(app, actors.agent.email)
    page = agent.get(f"/incidents/{ref}").text
    assert f'<option value="{actors.identity.email}"' in page
    token = csrf_token(agent, f"/incidents/{ref}")
    done = agent.post(f"/incidents/{ref}/actions", data={
        "csrf_token": token, "action": "claim", "assignee": actors.identity.email})  # fmt: skip
    assert done.status_code == 302
    shown = agent.get(done.headers["Location"]).text
    assert f"{ref}: assigned to {actors.identity.email}." in shown
    refused = client.post(
        f"/api/v1/incidents/{ref}/transitions",
        headers=actors.agent.headers,
        json={"action": "claim", "assignee": actors.admin.email + "x"},
    )
    assert refused.status_code == 422
    assert "Choose an agent who works its-service-desk" in str(refused.json)
    mine = agent.get("/queue?assignee=me").text
    assert ref not in mine  # it is the identity agent's now
    assert ref in signed_in(app, actors.identity.email).get("/queue?assignee=me").text


# --- Admin pages --------------------------------------------------------------------------


def test_rule_errors_point_at_their_line_and_a_saved_version_can_be_rolled_back(app, actors):
    admin = signed_in(app, actors.admin.email)
    token = csrf_token(admin, "/admin/rules/edit")
    text = (
        "- name: first\n  conditions: {field: type, op: eq, value: x}\n  actions:\n"
        "    - route_to: no-such-queue\n"
    )
    answer = admin.post("/admin/rules/edit", data={"rules": text, "csrf_token": token})
    assert answer.status_code == 422
    assert "Line 4: unknown queue &#39;no-such-queue&#39;" in answer.text
    good = text.replace("no-such-queue", "its-identity")
    saved = admin.post(
        "/admin/rules/edit", data={"rules": good, "intent": "save", "note": "one rule",
                                   "csrf_token": token},
    )  # fmt: skip
    assert saved.status_code == 302
    versions = db.session.execute(sa.select(RoutingRuleSet.version)).scalars().all()
    assert versions == [1]
    admin.post("/admin/rules/edit", data={"rules": good.replace("first", "second"),
                                          "intent": "save", "csrf_token": token})  # fmt: skip
    asked = admin.post("/admin/rules/rollback", data={"version": "1", "csrf_token": token})
    assert asked.status_code == 200 and "Roll back to version 1?" in asked.text
    assert db.session.execute(sa.select(sa.func.count(RoutingRuleSet.version))).scalar_one() == 2
    admin.post("/admin/rules/rollback", data={"version": "1", "csrf_token": token,
                                              "confirmed": "yes"})  # fmt: skip
    page = admin.get("/admin/rules").text
    assert "Version 3" in page and "roll back to version 1" in page
    assert "name: first" in page
    beyond = admin.post("/admin/rules/rollback", data={"version": str(2**80), "csrf_token": token,
                        "confirmed": "yes"}, follow_redirects=True)  # fmt: skip
    assert f"Nothing rolled back: There is no rule-set version {2**80}." in beyond.text


def test_an_id_no_record_can_have_is_page_not_found(app, actors):
    admin = signed_in(app, actors.admin.email)
    for path in (f"/admin/users/{2**64}", "/admin/users/0", f"/admin/users/{2**63 - 1}"):
        answer = admin.get(path)
        assert answer.status_code == 404, path
        assert "Page not found" in answer.text


def test_a_new_token_is_shown_once_and_a_revoked_one_stops_working(app, client, actors):
    admin = signed_in(app, actors.admin.email)
    user_id = db.session.execute(
        sa.select(User.id).where(User.email == actors.agent.email)
    ).scalar_one()
    token = csrf_token(admin, f"/admin/users/{user_id}")
    issued = admin.post(
        f"/admin/users/{user_id}/tokens", data={"name": "sync", "csrf_token": token}
    )
    new = re.search(r'id="new-token">(hdk_[^<]+)<', issued.text).group(1)
    assert (
        client.get("/api/v1/queues", headers={"Authorization": f"Bearer {new}"}).status_code == 200
    )
    assert new not in admin.get(f"/admin/users/{user_id}").text  # never shown again
    token_id = db.session.execute(
        sa.select(ApiToken.id).where(ApiToken.name == "sync")
    ).scalar_one()
    admin.post(f"/admin/users/{user_id}/tokens/{token_id}/revoke", data={"csrf_token": token})
    assert (
        client.get("/api/v1/queues", headers={"Authorization": f"Bearer {new}"}).status_code == 401
    )
    reader = admin.post(f"/admin/users/{user_id}/tokens", data={
        "name": "reports", "scope": "read-only", "csrf_token": token})  # fmt: skip
    assert "read-only</strong>" in reader.text and "Works until" in reader.text
    looking = re.search(r'id="new-token">(hdk_[^<]+)<', reader.text).group(1)
    bearer = {"Authorization": f"Bearer {looking}"}
    assert client.get("/api/v1/queues", headers=bearer).status_code == 200
    assert client.post("/api/v1/incidents", json=ISLA_RESET, headers=bearer).status_code == 403


def test_adding_a_user_gives_a_one_time_invitation_link(app, actors):
    from helpdesk.models import School, Staff

    school = db.session.execute(sa.select(School).where(School.code == "5231234")).scalar_one()
    db.session.add(Staff(sourced_id="stf-new", school_id=school.id, role="teacher",
                         given_name="Ailsa", family_name="Reid"))  # fmt: skip
    db.session.commit()
    admin = signed_in(app, actors.admin.email)
    token = csrf_token(admin, "/admin/users")
    missing = admin.post("/admin/users", data={"email": "", "role": "agent", "csrf_token": token})
    assert missing.status_code == 422 and "Enter an email address" in missing.text
    no_staff = admin.post(
        "/admin/users",
        data={"email": "new@school.example", "role": "employee", "csrf_token": token},
    )
    assert no_staff.status_code == 422 and "staff record" in no_staff.text
    # The staff record is picked by name; those who already have an account are not offered.
    options = dict(re.findall(r'<option value="(stf-[^"]+)"[^>]*>([^<]+)</option>', no_staff.text))
    assert "stf-1" not in options  # m.baillie has an account
    assert options == {"stf-new": "Ailsa Reid, Ashgrove Primary School (teacher)"}
    sourced, said = "stf-new", options["stf-new"]
    employee = admin.post("/admin/users", data={
        "email": "second@school.example", "role": "employee", "staff_id": sourced,
        "csrf_token": token})  # fmt: skip
    assert employee.status_code == 200 and "invite-link" in employee.text, said
    made = admin.post(
        "/admin/users",
        data={"email": "new.agent@its.example", "role": "agent", "csrf_token": token},
    )
    link = re.search(r'id="invite-link">([^<]+)<', made.text).group(1)
    assert link.startswith("http") and "/invite/" in link
    assert app.test_client().get(link.split("localhost", 1)[-1]).status_code == 200


def roster_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in ROSTER.glob("*.csv"):
            archive.write(path, path.name)
    return buffer.getvalue()


def test_an_admin_takes_an_agent_off_a_queue_and_their_incidents_go_back_to_it(app, client, actors):
    from helpdesk.services.queues import add_member

    ref = file(client, actors.ashgrove, **FIONA_RESET).json["ref"]  # the service desk
    claimed = client.post(f"/api/v1/incidents/{ref}/transitions", json={"action": "claim"},
                          headers=actors.agent.headers)  # fmt: skip
    assert claimed.status_code == 200
    admin = signed_in(app, actors.admin.email)
    page = admin.get("/admin/queues").text
    assert f'Remove<span class="govuk-visually-hidden"> {actors.agent.email} from' in page
    form = {"queue": "its-service-desk", "email": actors.agent.email,
            "csrf_token": csrf_token(admin, "/admin/queues")}  # fmt: skip
    try:
        asked = admin.post("/admin/queues/members/remove", data=form)
        assert asked.status_code == 200 and "their open ones in it go back" in asked.text
        assert 'name="confirmed" value="yes"' in asked.text
        form["confirmed"] = "yes"
        assert admin.post("/admin/queues/members/remove", data=form).status_code == 302
        assert "went back to the queue" in admin.get("/admin/queues").text
        incident = client.get(f"/api/v1/incidents/{ref}", headers=actors.admin.headers).json
        assert incident["assignee"] is None and incident["queue"] == "its-service-desk"
        events = client.get(f"/api/v1/incidents/{ref}/events", headers=actors.admin.headers)
        assert events.json[-1]["kind"] == "unassigned"
        assert f"{actors.agent.email} left its-service-desk" in events.json[-1]["message"]
        # Out of the queue, out of sight.
        gone = client.get(f"/api/v1/incidents/{ref}", headers=actors.agent.headers)
        assert gone.status_code == 404
        again = admin.post("/admin/queues/members/remove", data=form)
        assert again.status_code == 422 and "is not a member of its-service-desk" in again.text
        typo = admin.post("/admin/queues/members", data={
            "queue": "its-service-desk", "email": "nobody@its.example", "csrf_token": form[
                "csrf_token"]})  # fmt: skip
        assert typo.status_code == 422 and 'class="govuk-error-summary"' in typo.text
        assert 'value="nobody@its.example"' in typo.text  # kept in its box
    finally:
        add_member("its-service-desk", actors.agent.email)


def test_an_admin_uploads_the_roster_and_sees_the_report(app, actors):
    admin = signed_in(app, actors.admin.email)
    token = csrf_token(admin, "/admin/roster")
    answer = admin.post(
        "/admin/roster",
        data={"bundle": (io.BytesIO(roster_zip()), "roster.zip"), "csrf_token": token},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 200
    assert "Import report" in answer.text and "Unchanged" in answer.text
    wrong = admin.post(
        "/admin/roster",
        data={"bundle": (io.BytesIO(b"name,age\n"), "roster.csv"), "csrf_token": token},
        content_type="multipart/form-data",
    )
    assert wrong.status_code == 422 and "must be a zip" in wrong.text


def test_the_dashboard_counts_open_work_and_time_to_resolve(app, client, actors):
    ref = file(client, actors.ashgrove, **FIONA_RESET).json["ref"]
    for action in ("claim", "resolve"):
        client.post(f"/api/v1/incidents/{ref}/transitions", json={"action": action},
                    headers=actors.agent.headers)  # fmt: skip
    file(client, actors.ashgrove, **FIONA_RESET)
    agent = signed_in(app, actors.agent.email)
    page = agent.get("/dashboard").text
    assert "Open incidents per queue" in page and "ITS Service Desk" in page
    assert "Parent password reset" in page  # in the median time to resolve chart
    assert "under a minute (1 resolved)" in page
    assert "100%" in page  # the one resolved incident was within its deadline


@pytest.mark.parametrize(
    ("hours", "said"),
    [(0.001, "under a minute"), (0.5, "30 min"), (3.25, "3 h 15 min"), (47.9, "47 h 54 min"),
     (60, "2.5 days")],
)  # fmt: skip
def test_times_to_resolve_are_said_as_people_say_them(hours, said):
    from helpdesk.web.dashboard import took

    assert took(hours) == said


def test_the_dashboard_counts_days_as_its_readers_live_them(app, client, actors):
    from helpdesk.services import reports

    ref = file(client, actors.ashgrove, **FIONA_RESET).json["ref"]
    # Resolved at 00:30 BST on 2 July, which is still 1 July in UTC; due at 09:00 BST.
    db.session.execute(sa.update(Incident).where(Incident.id == parse_ref(ref)).values(
        status="resolved", resolved_at=datetime(2026, 7, 1, 23, 30, tzinfo=UTC),
        resolution_due_at=datetime(2026, 7, 2, 8, 0, tzinfo=UTC),
    ))  # fmt: skip
    db.session.commit()
    figures = reports.dashboard(now=datetime(2026, 7, 5, 12, 0, tzinfo=UTC))
    by_day = {day: (in_time, resolved) for day, in_time, resolved in figures.compliance_by_day}
    assert (by_day["01 Jul"], by_day["02 Jul"]) == ((0, 0), (1, 1))
    assert figures.compliance == 1.0


def test_the_demo_mailbox_exists_only_on_the_embedded_default(client):
    assert client.get("/dev/mail").status_code == 404


@pytest.mark.parametrize(("path", "status"), [("/sign-in", 200), ("/reset/a.b", 404)])
def test_public_pages_need_no_sign_in(client, path, status):
    answer = client.get(path)  # a page of its own, not a redirect to sign in
    assert answer.status_code == status and "<h1" in answer.text


def test_an_admin_changes_a_plans_targets_and_a_schools_hours(app, actors):
    from helpdesk.models import School, SlaPlan

    admin = signed_in(app, actors.admin.email)
    token = csrf_token(admin, "/admin/sla")
    plan = db.session.execute(sa.select(SlaPlan).order_by(SlaPlan.slug)).scalars().first()
    form = {
        f"{plan.slug}-{p}-{c}": str(minutes)
        for p, minutes in (("P1", 60), ("P2", 240), ("P3", 480), ("P4", 960))
        for c in ("response", "resolution")
    }
    form[f"{plan.slug}-P1-response"] = "30"
    backwards = admin.post(f"/admin/sla/plans/{plan.slug}",
                           data={**form, f"{plan.slug}-P2-resolution": "10",
                                 f"{plan.slug}-warn": "80", "csrf_token": token})  # fmt: skip
    assert backwards.status_code == 422 and "no later than resolution" in backwards.text
    endless = admin.post(f"/admin/sla/plans/{plan.slug}",
                         data={**form, f"{plan.slug}-P4-resolution": str(10**16),
                               f"{plan.slug}-warn": "80", "csrf_token": token})  # fmt: skip
    assert endless.status_code == 422 and "at most 100,000 business minutes" in endless.text
    saved = admin.post(f"/admin/sla/plans/{plan.slug}",
                       data={**form, f"{plan.slug}-warn": "75", "csrf_token": token})  # fmt: skip
    assert saved.status_code == 302
    db.session.expire_all()
    changed = db.session.get(SlaPlan, plan.id)
    assert changed.targets["P1"] == {"response": 30, "resolution": 60}
    assert changed.warn_at_percent == 75

    bad = admin.post("/admin/sla/hours", data={"school": "5231234", "hours": "weekdays",
                                               "csrf_token": token})  # fmt: skip
    assert bad.status_code == 422 and "mon-fri 08:00-16:30" in bad.text
    hours = "mon-thu 08:00-16:30, fri 08:00-15:00"
    admin.post("/admin/sla/hours", data={"school": "5231234", "hours": hours, "csrf_token": token})
    hours = db.session.execute(
        sa.select(School.working_hours).where(School.code == "5231234")
    ).scalar_one()
    assert (
        hours
        == "mon 08:00-16:30, tue 08:00-16:30, wed 08:00-16:30, thu 08:00-16:30, fri 08:00-15:00"
    )


def test_a_deactivated_user_can_no_longer_sign_in_or_use_a_token(app, client, actors):
    agent = signed_in(app, actors.agent.email)
    admin = signed_in(app, actors.admin.email)
    user_id = db.session.execute(
        sa.select(User.id).where(User.email == actors.agent.email)
    ).scalar_one()
    token = csrf_token(admin, f"/admin/users/{user_id}")
    admin.post(f"/admin/users/{user_id}/active", data={"active": "no", "csrf_token": token})
    assert agent.get("/queue").status_code == 302  # the open session ends
    assert sign_in_answer(app.test_client(), actors.agent.email, PASSWORD) != "signed in"
    assert client.get("/api/v1/queues", headers=actors.agent.headers).status_code == 401
    admin_id = db.session.execute(
        sa.select(User.id).where(User.email == actors.admin.email)
    ).scalar_one()
    admin.post(f"/admin/users/{admin_id}/active", data={"active": "no", "csrf_token": token})
    assert "You cannot deactivate yourself" in admin.get(f"/admin/users/{admin_id}").text
    admin.post(f"/admin/users/{user_id}/active", data={"active": "yes", "csrf_token": token})
    assert sign_in_answer(app.test_client(), actors.agent.email, PASSWORD) == "signed in"


def test_an_invitation_token_never_reaches_the_log(app, actors):
    import logging

    from helpdesk.logs import JsonFormatter

    token, _ = sign_in_service.invite(actors.identity.email)
    with app.test_request_context(f"/invite/{token}"):
        record = logging.LogRecord(
            "werkzeug", logging.INFO, __file__, 1, '"GET /invite/%s HTTP/1.1" 200 -', (token,),
            None,
        )  # fmt: skip
        line = JsonFormatter().format(record)
    assert token not in line
    assert line.count("/invite/[redacted]") == 2  # in the message and in the path
