"""Record checks cannot be used to guess a record: failures are limited per employee, per
school and per target, the limit is checked before the records are read, and a target
that reaches its limit is locked and the identity team told (docs/security.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from helpdesk import create_app
from helpdesk.extensions import db
from helpdesk.models import IncidentEvent, Notification

from .conftest import PG_SERVER, environ_for
from .samples import AGAIN, FIONA_RESET, ISLA_RESET, LINK_FAILURE, file, page_form
from .servers import RedisServer
from .test_incidents_api import incident_count

LIMIT = 5  # VERIFY_LIMIT_PER_TARGET's default: "5 per day"


def guess_until_refused(client, actor, body, field, guesses):
    """File ``body`` with each wrong guess of ``field`` until one is refused (bounded)."""
    for tried, guess in enumerate(guesses):
        response = file(client, actor, **{**body, field: guess})
        if response.status_code == 429:
            return tried, response
        assert response.status_code == 201, response.json
        assert response.json["verification"]["outcome"] == "failed"
    pytest.fail(f"{len(guesses)} wrong guesses of {field} were all checked")


def assert_refused_for_good_reason(response) -> None:
    assert response.status_code == 429
    body = response.json
    assert body["code"] == "verification_limited"
    assert "Try again after" in body["message"]
    assert "identity team" in body["message"]
    assert "Nothing was checked or stored" in body["message"]
    assert int(response.headers["Retry-After"]) > 0


def test_pin_guessing_stops_at_the_limit_and_then_the_right_pin_is_refused(client, actors):
    pins = [f"{n:06d}" for n in range(100000, 100040)]
    tried, refused = guess_until_refused(client, actors.ashgrove, FIONA_RESET, "parent_pin", pins)
    assert tried == LIMIT
    assert_refused_for_good_reason(refused)
    assert "this parent account" in refused.json["message"]
    before = incident_count()
    right = file(client, actors.ashgrove, **FIONA_RESET)
    assert_refused_for_good_reason(right)
    assert incident_count() == before  # nothing stored for a refused check
    # Another employee of the school is refused for this account too: the lock is the
    # account's, not the guesser's.
    assert file(client, actors.ashgrove_teacher, **FIONA_RESET).status_code == 429
    # ...while other parents are checked as usual.
    lorna = {**FIONA_RESET, "parent_name": "Lorna Fraser", "contact_phone": "07700 900501",
             "parent_pin": "683244", "parent_account_number": "P500012",
             "student_id": "ASH595185"}  # fmt: skip
    assert file(client, actors.ashgrove_teacher, **lorna).json["verification"]["outcome"] == (
        "passed"
    )


def test_the_lock_is_in_the_audit_trail_and_the_identity_queue_is_told(client, actors):
    pins = [f"{n:06d}" for n in range(200000, 200040)]
    guess_until_refused(client, actors.ashgrove, FIONA_RESET, "parent_pin", pins)
    (locked,) = db.session.execute(
        sa.select(IncidentEvent).where(IncidentEvent.kind == "verification_locked")
    ).scalars()
    assert "this parent account" in locked.message
    assert locked.data["filer"] == actors.ashgrove.email
    (notice,) = db.session.execute(
        sa.select(Notification).where(Notification.template == "verification_locked")
    ).scalars()
    assert notice.audience == "queue:its-identity"
    assert notice.incident_id == locked.incident_id
    # Every failed check before it is audited with who tried.
    failed = db.session.execute(
        sa.select(IncidentEvent).where(IncidentEvent.kind == "filed")
    ).scalars()
    tries = [e for e in failed if e.data.get("verification") == "failed"]
    assert len(tries) == LIMIT
    assert {e.actor_id for e in tries} == {locked.actor_id}


def test_a_birth_month_cannot_be_guessed(client, actors):
    months = [f"{m:02d}{y}" for y in (2015, 2016) for m in range(1, 13)]
    tried, refused = guess_until_refused(
        client, actors.ashgrove, ISLA_RESET, "birth_month_year", months
    )
    assert tried == LIMIT
    assert_refused_for_good_reason(refused)
    assert "this student" in refused.json["message"]
    assert file(client, actors.ashgrove, **ISLA_RESET).status_code == 429


def test_link_failure_results_stop_being_per_field_for_a_child_tried_often(client, actors):
    wrong = {**LINK_FAILURE, "child_birth_date": "2017-04-13"}
    for _ in range(3):  # VERIFY_DETAIL_TRIES
        fields = file(client, actors.ashgrove, **wrong).json["verification"]["fields"]
        assert fields["child_birth_date"]["result"] == "mismatch"
        assert fields["child_given_name"]["result"] == "match"
    plain = file(client, actors.ashgrove, **{**wrong, "child_birth_date": "2017-04-14"})
    verification = plain.json["verification"]
    assert {f["result"] for f in verification["fields"].values()} == {"mismatch"}
    assert any("contact the parent" in reason for reason in verification["reasons"])
    # Another child is still compared field by field.
    other = file(client, actors.ashgrove, **{**LINK_FAILURE, "child_given_name": "Rory",
                                             "child_family_name": "Fraser"})  # fmt: skip
    assert len({f["result"] for f in other.json["verification"]["fields"].values()}) > 1


def test_an_employee_trying_many_records_is_stopped(app, client, actors, monkeypatch):
    monkeypatch.setitem(app.config, "VERIFY_LIMIT_PER_EMPLOYEE", "3 per hour")
    numbers = [f"P9{n:05d}" for n in range(20)]
    tried, refused = guess_until_refused(
        client, actors.ashgrove, FIONA_RESET, "parent_account_number", numbers
    )
    assert tried == 3
    assert_refused_for_good_reason(refused)
    assert "your record checks" in refused.json["message"]
    assert file(client, actors.ashgrove, **FIONA_RESET).status_code == 429  # right, refused
    # The limit is the employee's: a colleague is checked as usual.
    assert file(client, actors.ashgrove_teacher, **FIONA_RESET).status_code == 201


def test_a_school_whose_staff_fail_many_checks_is_stopped(app, client, actors, monkeypatch):
    monkeypatch.setitem(app.config, "VERIFY_LIMIT_PER_SCHOOL", "4 per hour")
    numbers = iter(f"P8{n:05d}" for n in range(20))
    for number in range(4):
        actor = actors.ashgrove if number % 2 else actors.ashgrove_teacher
        response = file(client, actor, **{**FIONA_RESET,
                                          "parent_account_number": next(numbers)})  # fmt: skip
        assert response.status_code == 201
    refused = file(client, actors.ashgrove, **FIONA_RESET)
    assert_refused_for_good_reason(refused)
    assert "at your school" in refused.json["message"]
    # Another school is not held back by Ashgrove's failures.
    gareth = {"type": "student_password_reset", "student_id": "MIL367459",
              "student_name": "Jack Hughes", "birth_month_year": "012000"}  # fmt: skip
    assert file(client, actors.millbrook, **gareth).status_code == 201


def test_a_passed_check_counts_nothing(client, actors):
    for _ in range(LIMIT + 2):
        response = file(client, actors.ashgrove, **FIONA_RESET, **AGAIN)
        assert response.json["verification"]["outcome"] == "passed"


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def test_the_limits_hold_in_memory_while_redis_is_away(committed_app, private_redis, tmp_path):
    _, database, actors = committed_app
    env = environ_for(f"{PG_SERVER}/{database}", tmp_path) | {"REDIS_URL": private_redis.url}
    app = create_app(env)
    client = app.test_client()
    private_redis.stop()  # Redis goes away before the guessing starts
    pins = [f"{n:06d}" for n in range(300000, 300040)]
    tried, refused = guess_until_refused(client, actors.ashgrove, FIONA_RESET, "parent_pin", pins)
    assert tried == LIMIT
    assert_refused_for_good_reason(refused)
    with app.app_context():
        db.engine.dispose()
    # Flask-Limiter keeps one storage per process, the last app's: give it back one that
    # is there, as the other tests' apps do.
    create_app(env | {"RATELIMIT_STORAGE_URI": "memory://"})


def test_the_report_page_keeps_what_was_typed_and_says_when_to_try_again(app, actors):
    from .test_pages import csrf_token, signed_in

    employee = signed_in(app, actors.ashgrove.email)
    body = page_form(ISLA_RESET)
    page = "/report/student_password_reset"
    for month in range(1, LIMIT + 1):
        sent = {**body, "birth_month_year-month": str(month), "birth_month_year-year": "2010"}
        answer = employee.post(page, data={**sent, "csrf_token": csrf_token(employee, page)})
        assert answer.status_code == 302
    answer = employee.post(page, data={**body, "csrf_token": csrf_token(employee, page)})
    assert answer.status_code == 429
    assert "There is a problem" in answer.text
    assert "Try again after" in answer.text and "identity team" in answer.text
    assert 'value="ASH240891"' in answer.text  # what was typed is kept
