"""Self-service recovery on the public pages, end to end: real PostgreSQL, Redis, RQ
workers (burst) and an SMTP server. A parent types what the records hold; the result goes
only to the address on file; every answer reads and times the same; limits stop a
guessing loop and tell the holder; a failed attempt hands over to the child's school."""

from __future__ import annotations

import logging
import re
import statistics
import time
from collections.abc import Iterator
from html import unescape
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from helpdesk.extensions import db
from helpdesk.models import Incident, RecoveryAttempt
from helpdesk.models.incidents import UNFINISHED_SQL
from helpdesk.services.credentials import SignIn

from .test_fulfilment import (
    FIONA,
    WORKER_REDIS,
    Desk,
    assert_secret_nowhere,
    desk_on,
    one_time_password,
    smtp,  # noqa: F401 - the module's SMTP server, a fixture
    stack,  # noqa: F401 - the module's app on a fresh database, a fixture
)
from .test_pages import signed_in

FIONA_PASSWORD = {"username": "fiona.campbell1", "email": FIONA, "postcode": "EH1 1YZ"}
# Isla, Fiona's daughter at Ashgrove, was born on 12 April 2017.
FIONA_USERNAME = {"email": FIONA, "postcode": "eh11yz", "child_birth_date-day": "12",
                  "child_birth_date-month": "4", "child_birth_date-year": "2017"}  # fmt: skip
HAND_OVER = {"parent_name": "Fiona Campbell", "child_name": "Isla Campbell",
             "contact_phone": "07700 900101"}  # fmt: skip
ANSWER = ("If these details match the school&#39;s records, we have sent an email to the "
          "address we hold.")  # fmt: skip


@pytest.fixture
def desk(stack, smtp) -> Iterator[Desk]:  # noqa: F811 - the fixtures imported above
    with desk_on(stack, smtp, WORKER_REDIS) as made:
        config = made.app.config
        saved = {k: config[k] for k in config if k.startswith("SELF_SERVICE_")}
        config["SELF_SERVICE_ANSWER_MS"] = 0
        with made.app.app_context():
            before = db.session.execute(sa.select(sa.func.max(Incident.id))).scalar() or 0
            db.session.remove()
        made.incidents_after = before  # type: ignore[attr-defined]
        try:
            yield made
        finally:
            config.update(saved)
            with made.app.app_context():
                db.session.execute(sa.delete(RecoveryAttempt))
                db.session.commit()
                db.session.remove()


def _token(client: FlaskClient, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert found, f"{path} has no CSRF token"
    return found.group(1)


def _submit(client: FlaskClient, kind: str, typed: dict[str, str]) -> Any:
    """Fill in a recovery page as a parent would, and follow its answer."""
    path = f"/recover/{kind}"
    return client.post(path, data={**typed, "csrf_token": _token(client, path)},
                       follow_redirects=True)  # fmt: skip


def _ask_school(client: FlaskClient, typed: dict[str, str] = HAND_OVER) -> Any:
    sent = client.get("/recover/sent")
    assert 'id="ask-school"' in sent.text
    return client.post(
        "/recover/help", data={**typed, "csrf_token": _token(client, "/recover/help")}
    )


def _attempts(desk: Desk) -> list[RecoveryAttempt]:
    with desk.app.app_context():
        rows = list(db.session.execute(
            sa.select(RecoveryAttempt).order_by(RecoveryAttempt.id)).scalars())  # fmt: skip
        db.session.expunge_all()
        db.session.remove()
        return rows


def _incidents(desk: Desk, **where: Any) -> list[Incident]:
    with desk.app.app_context():
        rows = list(db.session.execute(
            sa.select(Incident).filter_by(**where).where(Incident.id > desk.incidents_after)
            .order_by(Incident.id)).scalars())  # fmt: skip
        for row in rows:
            _ = row.queue, row.school
        db.session.expunge_all()
        db.session.remove()
        return rows


def test_a_password_recovery_emails_only_the_address_on_file_and_the_password_works_once(
    desk, caplog
):
    caplog.set_level(logging.DEBUG)
    typed = {
        **FIONA_PASSWORD,
        "email": "Fiona.Campbell@MAIL.example",
        "username": "Fiona.Campbell1",
    }
    answer = _submit(desk.client, "password", typed)
    assert answer.status_code == 200 and ANSWER in answer.text

    desk.work()

    assert {tuple(m.rcpt_tos) for m in desk.mailbox.messages} == {(FIONA,)}
    (result,) = [m for m in desk.mailbox.messages if "portal password" in m.message["Subject"]]
    secret = one_time_password(result)
    (notice,) = desk.mailbox.notices_to(FIONA)
    assert "through the self-service recovery page" in notice.text
    (incident,) = _incidents(desk, type="parent_password_reset")
    assert incident.status == "resolved" and "self-service" in incident.tags
    assert incident.queue.slug == "its-identity" and incident.assignee_id is None
    assert [a.outcome for a in _attempts(desk)] == ["matched"]
    assert desk.sign_in("P500001", secret) == SignIn.CHANGE_REQUIRED
    assert desk.sign_in("P500001", secret) == SignIn.REFUSED
    assert_secret_nowhere(desk, secret, caplog)
    assert_secret_nowhere(desk, typed["email"], caplog)  # what was typed is not kept either
    with desk.app.app_context():
        office = signed_in(desk.app, "m.baillie@ashgrove.sch.example")
        page = office.get(f"/incidents/{incident.ref}").text
        db.session.remove()
    assert "From self-service" in page and "Forgot password" in page
    assert secret not in page and secret not in answer.text


@pytest.mark.parametrize("typed_email", ["fiona.campbell+portal@mail.example",
                                         "fiona.campbell@mail.example.org"])  # fmt: skip
def test_a_typed_address_that_is_not_the_one_on_file_receives_nothing(desk, typed_email):
    answer = _submit(desk.client, "password", {**FIONA_PASSWORD, "email": typed_email})
    assert ANSWER in answer.text

    desk.work()

    assert desk.mailbox.messages == []
    assert _incidents(desk, type="parent_password_reset") == []
    (attempt,) = _attempts(desk)
    assert attempt.outcome == "not_matched"
    assert attempt.field_results["fields"]["email"]["result"] == "mismatch"
    assert typed_email not in repr(attempt.field_results)  # what was typed is not kept


def test_a_username_recovery_sends_the_username_to_the_address_on_file(desk):
    answer = _submit(desk.client, "username", FIONA_USERNAME)
    assert ANSWER in answer.text

    desk.work()

    (reminder,) = [m for m in desk.mailbox.to(FIONA) if "fiona.campbell1" in m.text]
    assert reminder.rcpt_tos == [FIONA]
    (incident,) = _incidents(desk, type="username_reminder")
    assert incident.status == "resolved"


def test_the_answer_reads_the_same_whatever_matched(desk):
    pages = []
    for typed in (FIONA_PASSWORD, {**FIONA_PASSWORD, "postcode": "G1 1AA"},
                  {**FIONA_PASSWORD, "username": "nobody.here"}):  # fmt: skip
        answer = _submit(desk.client, "password", typed)
        pages.append(re.sub(r'value="[^"]{40,}"', "", answer.text))
    assert pages[0] == pages[1] == pages[2]
    assert [a.outcome for a in _attempts(desk)] == ["matched", "not_matched", "not_matched"]


def _timed(desk: Desk, typed: dict[str, str], tries: int) -> list[float]:
    client = desk.client
    token = _token(client, "/recover/password")
    took = []
    for _ in range(tries):
        started = time.perf_counter()
        answer = client.post("/recover/password", data={**typed, "csrf_token": token})
        took.append(time.perf_counter() - started)
        assert answer.status_code == 303
        with desk.app.app_context():  # the next match is not a repeat of an open one
            db.session.execute(sa.update(Incident).where(sa.text(UNFINISHED_SQL))
                               .values(status="closed"))  # fmt: skip
            db.session.commit()
            db.session.remove()
    return took


def test_a_match_and_a_mismatch_take_the_same_time(desk):
    config = desk.app.config
    config["SELF_SERVICE_ANSWER_MS"] = 80  # well above either path's own time
    for name in ("CLIENT", "EMAIL", "TARGET"):
        config[f"SELF_SERVICE_LIMIT_PER_{name}"] = "100000 per hour"
    _timed(desk, FIONA_PASSWORD, 5)  # warm both paths first
    _timed(desk, {**FIONA_PASSWORD, "postcode": "G1 1AA"}, 5)
    match, mismatch = [], []
    for _ in range(4):  # interleaved, so a busy moment falls on both
        match += _timed(desk, FIONA_PASSWORD, 50)
        mismatch += _timed(desk, {**FIONA_PASSWORD, "postcode": "G1 1AA"}, 50)
    fast, slow = sorted((statistics.median(match), statistics.median(mismatch)))
    assert slow <= fast * 1.10, (statistics.median(match), statistics.median(mismatch))
    outcomes = [a.outcome for a in _attempts(desk)]
    assert outcomes.count("matched") == 205 and outcomes.count("not_matched") == 205


def test_a_guessing_loop_is_stopped_and_the_holder_told(desk):
    desk.app.config["SELF_SERVICE_LIMIT_PER_TARGET"] = "3 per day"
    for guess in ("G1 1AA", "G1 1AB", "G1 1AC"):
        assert (
            ANSWER in _submit(desk.client, "password", {**FIONA_PASSWORD, "postcode": guess}).text
        )
    # The right details, once the account is locked: refused unread, nothing sent.
    refused = _submit(desk.client, "password", FIONA_PASSWORD)
    assert refused.status_code == 429 and "Too many tries" in refused.text
    assert "Retry-After" in refused.headers

    desk.work()

    (notice,) = desk.mailbox.messages
    assert notice.rcpt_tos == [FIONA]
    assert "self-service recovery for it is stopped until" in notice.text
    assert _incidents(desk, type="parent_password_reset") == []
    assert [a.outcome for a in _attempts(desk)] == ["not_matched"] * 3 + ["limited"]


def test_attempts_from_one_client_are_limited_whatever_account_they_name(desk):
    desk.app.config["SELF_SERVICE_LIMIT_PER_CLIENT"] = "4 per hour"
    for n in range(4):
        typed = {**FIONA_PASSWORD, "username": f"guess{n}", "email": f"guess{n}@mail.example"}
        assert _submit(desk.client, "password", typed).status_code == 200
    assert _submit(desk.client, "password", FIONA_PASSWORD).status_code == 429
    desk.work()
    assert desk.mailbox.messages == []  # no account was named twice: nobody to tell


def test_a_hand_over_files_one_incident_for_the_childs_school_with_the_diagnosis_for_staff(desk):
    client = desk.client
    _submit(client, "password", {**FIONA_PASSWORD, "postcode": "G1 1AA"})
    handed = _ask_school(client)
    assert handed.status_code == 200
    assert "the school will contact you within 5 working days" in handed.text
    assert "postcode" not in handed.text.lower()  # never which field differed
    # Once only: the attempt is spent, so asking again goes back to the start page.
    again = client.get("/recover/help")
    assert again.status_code == 302 and again.headers["Location"].endswith("/recover")

    (incident,) = _incidents(desk, type="self_service_failed")
    assert incident.queue.slug == "school-office-5231234" and incident.school.code == "5231234"
    assert "self-service" in incident.tags and incident.priority == "P4"
    assert incident.details["contact_phone"] == "07700 900101"
    fields = incident.verification_results["fields"]
    assert fields["postcode"]["result"] == "mismatch" and fields["username"]["result"] == "match"
    assert incident.resolution_due_at is not None
    working_days = (incident.resolution_due_at - incident.created_at).days
    assert 5 <= working_days <= 9  # five working days, weekends and closures between

    detail = desk.client.get(
        f"/api/v1/incidents/{incident.ref}", headers=desk.actors.ashgrove.headers
    )
    assert detail.json["verification"]["fields"]["postcode"]["result"] == "mismatch"
    assert [a["outcome"] for a in detail.json["recovery_attempts"]] == [
        "handed_over",
        "not_matched",
    ]
    with desk.app.app_context():
        office = signed_in(desk.app, "m.baillie@ashgrove.sch.example")
        page = office.get(f"/incidents/{incident.ref}").text
        db.session.remove()
    assert "From self-service" in page and "Does not match" in page
    assert "the postcode differs" in page and "07700 900101" in page
    attempts = page[page.index('id="recovery-attempts"') :]
    assert "Forgot password" in attempts and "Not matched" in attempts
    assert [a.outcome for a in _attempts(desk)] == ["not_matched", "handed_over"]


def test_a_hand_over_for_details_that_point_at_no_school_files_nothing(desk):
    client = desk.client
    _submit(client, "password", {"username": "nobody.here", "email": "no@one.example",
                                 "postcode": "G1 1AA"})  # fmt: skip
    handed = _ask_school(client)
    assert "the school will contact you within 5 working days" in handed.text
    assert _incidents(desk, type="self_service_failed") == []
    assert [a.outcome for a in _attempts(desk)] == ["not_matched", "not_matched"]


def test_each_question_must_be_answered_and_says_what_to_fix(desk):
    path, client = "/recover/username", desk.client
    answer = client.post(path, data={"email": "not-an-address", "child_birth_date-day": "31",
                                          "child_birth_date-month": "2",
                                          "child_birth_date-year": "2017",
                                          "csrf_token": _token(client, path)})  # fmt: skip
    assert answer.status_code == 422
    assert "Enter an email address like name@example.com." in answer.text
    assert "Enter postcode." in answer.text and "Must be a real date." in answer.text
    assert _attempts(desk) == []
    no_token = desk.client.post("/recover/password", data=FIONA_PASSWORD)
    assert no_token.status_code == 400 and _attempts(desk) == []


def test_the_hand_over_page_needs_an_attempt_first(desk):
    assert desk.client.get("/recover/help").status_code == 302


# -- Asking to link an account to a child ------------------------------------------------

LINK_NIAMH = {"username": "fiona.campbell1", "email": FIONA, "school": "5231234",
              "child_given_name": "Niamh", "child_family_name": "Ross",
              "child_birth_date-day": "24", "child_birth_date-month": "6",
              "child_birth_date-year": "2019"}  # fmt: skip


def _ask_link(desk: Desk, typed: dict[str, str]) -> Any:
    client = desk.client
    token = _token(client, "/recover/link")
    answer = client.post("/recover/link", data={**typed, "csrf_token": token})
    answer.page = unescape(answer.text)  # as the parent reads it
    return answer


@pytest.mark.parametrize(("action", "told"), [("resolve", "has approved your request"),
                                              ("reject", "could not approve")])  # fmt: skip
def test_a_link_request_goes_to_the_school_which_decides_and_the_parent_is_told(desk, action, told):
    asked = _ask_link(desk, LINK_NIAMH)
    assert asked.status_code == 200
    assert "Ashgrove Primary School will approve or reject it within 5 working days" in asked.page
    (incident,) = _incidents(desk, type="link_request")
    assert incident.queue.slug == "school-office-5231234" and incident.priority == "P4"
    assert incident.verification == "passed" and incident.status == "triaged"
    assert incident.resolution_due_at is not None
    assert 5 <= (incident.resolution_due_at - incident.created_at).days <= 9

    decided = desk.act(desk.actors.admin, incident.ref, action, message="checked with the SIS")
    assert decided.status_code == 200, decided.json
    desk.work()

    (decision,) = [m for m in desk.mailbox.messages if "link a child" in m.message["Subject"]]
    assert decision.rcpt_tos == [FIONA] and told in decision.text
    assert "checked with the SIS" not in decision.text  # staff's words stay with staff


def test_a_link_request_that_does_not_match_says_so_generically_and_staff_see_why(desk):
    asked = _ask_link(desk, {**LINK_NIAMH, "child_given_name": "Nina"})
    assert "The details you gave did not match our records." in asked.page
    assert "first name" not in asked.page
    (incident,) = _incidents(desk, type="link_request")
    assert incident.verification == "failed"
    fields = incident.verification_results["fields"]
    assert fields["child_given_name"]["result"] == "mismatch"
    assert "first name differs" in fields["child_given_name"]["reason"]


def test_a_link_request_from_someone_the_records_do_not_know_files_nothing(desk):
    asked = _ask_link(desk, {**LINK_NIAMH, "email": "someone@else.example"})
    assert "The details you gave did not match our records." in asked.page
    assert _incidents(desk, type="link_request") == []
    assert [a.outcome for a in _attempts(desk)] == ["not_matched"]
    too_long = _ask_link(desk, {**LINK_NIAMH, "child_given_name": "N" * 201})
    assert too_long.status_code == 422 and "Must be 200 characters or fewer." in too_long.page
    wrong_school = _ask_link(desk, {**LINK_NIAMH, "school": "0000000"})
    assert wrong_school.status_code == 422 and "Choose your child's school" in wrong_school.page


def test_a_match_is_sent_even_where_saved_rules_know_nothing_of_self_service(desk):
    from helpdesk.services import routing

    with desk.app.app_context():
        own = [r for r in routing.default_rules() if "self-service" not in r["name"]]
        routing.save_rules(own, actor_id=None, note="saved before self-service existed")
        db.session.remove()
    try:
        _submit(desk.client, "password", FIONA_PASSWORD)
        desk.work()
        (result,) = [m for m in desk.mailbox.messages if "portal password" in m.message["Subject"]]
        assert result.rcpt_tos == [FIONA]
        (incident,) = _incidents(desk, type="parent_password_reset")
        assert incident.queue.slug == "its-service-desk"  # where those rules put parent resets
        assert incident.status == "resolved"
    finally:
        with desk.app.app_context():
            routing.roll_back(0, actor_id=None)
            db.session.remove()
