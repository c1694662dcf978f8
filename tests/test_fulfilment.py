"""Fulfilment end to end: real RQ workers (burst), real Redis and PostgreSQL, a real SMTP server.

Each test files through the API, approves as an agent would (or lets the rules do it),
runs a worker, and looks at what a parent, a school employee or an agent would see:
the message at the address on file, the secret working once, the incident's state.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from helpdesk.extensions import db, limiter
from helpdesk.models import (
    Fulfilment,
    Guardian,
    GuardianStudent,
    Incident,
    OutboxEntry,
    PasswordHistory,
    PortalAccount,
    Student,
    parse_ref,
    utcnow,
)
from helpdesk.models.incidents import UNFINISHED_SQL
from helpdesk.services import outbox, verification_limits
from helpdesk.services.credentials import SignIn, SqlCredentialStore
from helpdesk.services.portals import update_policy
from workers.worker import make_worker

from .conftest import REDIS_URL, Actor, Actors, app_on_fresh_database
from .samples import FIONA_RESET, ISLA_RESET, NIAMH_RESET, REMINDER, REVOCATION, RORY_RESET
from .smtp import Mailbox, Received, SmtpServer

WORKER_REDIS = REDIS_URL  # the database the suite is given (TEST_REDIS_URL), flushed first
FIONA = "fiona.campbell@mail.example"  # par-1-0's email on file
FILER = "m.baillie@ashgrove.sch.example"  # stf-1's staff email, and her user
BASE_URL = "https://help.example.org"
LORNA_RESET = {
    "type": "parent_password_reset",
    "parent_name": "Lorna Fraser",
    "contact_phone": "07700 900501",
    "parent_pin": "683244",
    "parent_account_number": "P500012",
    "student_id": "ASH595185",
}


@dataclass
class Desk:
    """The service as its users drive it, plus the worker and the mail server behind it."""

    app: Flask
    database: str
    actors: Actors
    mailbox: Mailbox
    redis: redis.Redis

    @property
    def client(self) -> FlaskClient:
        return self.app.test_client()

    def file(self, body: dict[str, Any], actor: Actor | None = None) -> dict[str, Any]:
        response = self.client.post(
            "/api/v1/incidents", json=body, headers=(actor or self.actors.ashgrove).headers
        )
        assert response.status_code == 201, response.json
        return dict(response.json)

    def act(self, actor: Actor, ref: str, action: str, **body: Any) -> Any:
        return self.client.post(
            f"/api/v1/incidents/{ref}/transitions", json={"action": action, **body},
            headers=actor.headers,
        )  # fmt: skip

    def approve_parent_reset(self, ref: str) -> Any:
        """The support procedure: the desk escalates to identity, which approves."""
        assert self.act(self.actors.agent, ref, "escalate").status_code == 200
        return self.act(self.actors.identity, ref, "fulfil")

    def work(self) -> None:
        make_worker(self.app, fork=False).work(burst=True)

    def worker_env(self, tmp_path: Path, **extra: str) -> dict[str, str]:
        """The environment of a `helpdesk worker` process on this desk's database, Redis
        and SMTP server."""
        from .conftest import PG_SERVER, environ_for

        env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "VIRTUAL_ENV"}}
        return env | environ_for(f"{PG_SERVER}/{self.database}", tmp_path) | {
            "REDIS_URL": WORKER_REDIS, "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": str(self.app.config["MAIL_PORT"]), "JOB_RETRY_INTERVALS": "0,0,0",
        } | extra  # fmt: skip

    def get(self, ref: str, actor: Actor | None = None) -> dict[str, Any]:
        response = self.client.get(
            f"/api/v1/incidents/{ref}", headers=(actor or self.actors.admin).headers
        )
        return dict(response.json)

    def events(self, ref: str) -> list[dict[str, Any]]:
        response = self.client.get(
            f"/api/v1/incidents/{ref}/events", headers=self.actors.admin.headers
        )
        return list(response.json)

    def fulfilments(self, ref: str) -> list[Fulfilment]:
        with self.app.app_context():
            rows = db.session.execute(
                sa.select(Fulfilment)
                .where(Fulfilment.incident_id == parse_ref(ref))
                .order_by(Fulfilment.id)
            ).scalars()
            found = list(rows)
            db.session.remove()
            return found

    def sign_in(self, account_number: str, password: str) -> SignIn:
        with self.app.app_context():
            outcome = SqlCredentialStore().sign_in(account_number, password)
            db.session.commit()
            db.session.remove()
            return outcome

    def sql(self, statement: Any, params: dict[str, Any] | None = None) -> None:
        with self.app.app_context():
            db.session.execute(statement, params or {})
            db.session.commit()
            db.session.remove()


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def desk_environ(smtp: SmtpServer) -> dict[str, str]:
    """A desk's settings: the suite's Redis, this SMTP server, quick retries."""
    return {"REDIS_URL": WORKER_REDIS, "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(smtp.port),
            "MAIL_TIMEOUT": "1", "JOB_RETRY_INTERVALS": "0,0,0", "PUBLIC_BASE_URL": BASE_URL,
            "RATELIMIT_STORAGE_URI": "memory://"}  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory, smtp) -> Iterator[tuple[Flask, str, Actors]]:
    with app_on_fresh_database(tmp_path_factory, **desk_environ(smtp)) as made:
        yield made


# The usernames some tests change, as the roster has them.
ROSTER_USERNAMES = {"P500001": "fiona.campbell1", "S700000": "icampbell1"}


@contextlib.contextmanager
def desk_on(stack: tuple[Flask, str, Actors], smtp: SmtpServer, redis_url: str) -> Iterator[Desk]:
    """The desk for one test over a module's stack; afterwards the records are as
    imported again: nobody revoked, every account active, no limits counted, and no
    incident left unfinished (the next test's filing for the same person is no
    duplicate)."""
    app, database, actors = stack
    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    smtp.mailbox.reset()
    try:
        yield Desk(app, database, actors, smtp.mailbox, connection)
    finally:
        smtp.mailbox.reset()
        with app.app_context():
            limiter.reset()
            verification_limits.forget()
            db.session.execute(sa.update(Guardian).values(access_revoked_at=None,
                                                           access_revoked_reason=None))  # fmt: skip
            db.session.execute(sa.update(PortalAccount).values(status="active"))
            db.session.execute(sa.update(Incident).where(sa.text(UNFINISHED_SQL))
                               .values(status="closed"))  # fmt: skip
            for number, username in ROSTER_USERNAMES.items():
                db.session.execute(sa.update(PortalAccount).where(
                    PortalAccount.account_number == number).values(username=username))  # fmt: skip
            db.session.commit()
            db.session.remove()
        connection.close()


@pytest.fixture
def desk(stack, smtp) -> Iterator[Desk]:
    with desk_on(stack, smtp, WORKER_REDIS) as made:
        yield made
        with stack[0].app_context():
            # Each test starts from the records as imported, with the default policies.
            db.session.execute(sa.update(GuardianStudent).where(
                GuardianStudent.guardian_id == sa.select(Guardian.id).where(
                    Guardian.sourced_id == "par-1-0").scalar_subquery()
            ).values(parental_responsibility=True))  # fmt: skip
            db.session.commit()
            update_policy("parent", {"mode": "one_time_password", "min_length": 8, "history": 0})
            db.session.remove()


def one_time_password(message: Received) -> str:
    found = re.search(r"One-time password:\s+(\S+)", message.text)
    assert found, message.text
    return found.group(1)


def reset_link(message: Received) -> str:
    found = re.search(re.escape(BASE_URL) + r"/reset/(\S+)", message.text)
    assert found, message.text
    return found.group(1)


def without_csrf(page: str) -> str:
    return re.sub(r'name="csrf_token" type="hidden" value="[^"]+"', "", page)


def _readable(value: Any) -> bytes:
    """A Redis value as bytes, with RQ's zlib-compressed fields (job data, errors) opened."""
    parts = list(value.items()) if isinstance(value, dict) else [value]
    out = []
    for part in parts:
        for item in part if isinstance(part, tuple | list | set) else [part]:
            raw = item if isinstance(item, bytes) else repr(item).encode()
            with contextlib.suppress(zlib.error):
                raw += zlib.decompress(raw)
            out.append(raw)
    return b"\n".join(out)


def assert_secret_nowhere(desk: Desk, secret: str, caplog: pytest.LogCaptureFixture) -> None:
    """Not in any table, event, API response, Redis key or log line (SPEC §6.3)."""
    with desk.app.app_context():
        for table in db.metadata.sorted_tables:
            rows = db.session.execute(sa.select(table)).all()
            assert secret not in repr(rows), f"the secret is stored in {table.name}"
        db.session.remove()
    readers = {
        "string": lambda r, k: r.get(k),
        "hash": lambda r, k: r.hgetall(k),
        "list": lambda r, k: r.lrange(k, 0, -1),
        "set": lambda r, k: r.smembers(k),
        "zset": lambda r, k: r.zrange(k, 0, -1),
        "stream": lambda r, k: r.xrange(k),
    }
    keys = list(desk.redis.scan_iter("*"))
    assert keys, "the run left nothing in Redis to look at"
    for key in keys:
        value = readers[desk.redis.type(key).decode()](desk.redis, key)
        assert secret.encode() not in _readable(value), f"the secret is in Redis {key!r}"
        assert secret not in key.decode()
    assert secret not in caplog.text
    for record in caplog.records:
        assert secret not in record.getMessage()


# -- Each type and mode, end to end ----------------------------------------------------


def test_a_parent_reset_reaches_only_the_address_on_file_once_and_works_once(desk, caplog):
    caplog.set_level(logging.DEBUG)
    body = {**FIONA_RESET, "notes": "Mum says send it to fiona.new@elsewhere.example instead",
            "summary": "reset for fiona.new@elsewhere.example"}  # fmt: skip
    ref = desk.file(body)["ref"]
    approved = desk.approve_parent_reset(ref)
    assert approved.status_code == 200, approved.json
    assert approved.json["status"] == "awaiting_fulfilment"
    assert approved.json["fulfilment"]["state"] == "pending"

    desk.work()

    results = [m for m in desk.mailbox.messages if "portal password" in m.message["Subject"]]
    assert [m.rcpt_tos for m in results] == [[FIONA]]
    assert not [m for m in desk.mailbox.messages if "elsewhere.example" in repr(m.rcpt_tos)]
    secret = one_time_password(results[0])
    assert "fiona.campbell1" in results[0].text  # the username, so the parent can sign in
    assert "your old password no longer works" in results[0].text
    incident = desk.get(ref)
    assert incident["status"] == "resolved"
    assert incident["fulfilment"]["state"] == "delivered"
    expires = datetime.fromisoformat(incident["fulfilment"]["expires_at"])
    local = expires.astimezone(ZoneInfo("Europe/London"))  # the school's zone
    assert f"It expires {local.day} {local:%b %Y %H:%M %Z}." in results[0].text
    # The filer was told it was received, then hears the outcome, never the secret.
    (received,) = [m for m in desk.mailbox.to(FILER) if "received" in m.message["Subject"]]
    assert ref in received.message["Subject"] and "matched the school's records" in received.text
    (told,) = [m for m in desk.mailbox.to(FILER) if "outcome" in m.message["Subject"]]
    assert ref in told.message["Subject"] and "parent's email on file" in told.text
    assert secret not in told.text + told.html + received.text + received.html
    assert len(desk.mailbox.to(FILER)) == 2
    events = desk.events(ref)
    assert [e["kind"] for e in events][-3:] == ["fulfil", "credential_set", "delivered"]
    assert events[-1]["data"]["to"] == "f***@mail.example"

    assert desk.sign_in("P500001", secret) == SignIn.CHANGE_REQUIRED
    assert desk.sign_in("P500001", secret) == SignIn.REFUSED  # once, and then no more
    assert_secret_nowhere(desk, secret, caplog)


def test_a_student_reset_is_fulfilled_at_once_to_the_filing_employees_staff_email(desk, caplog):
    caplog.set_level(logging.DEBUG)
    filed = desk.file(ISLA_RESET)
    assert filed["status"] == "awaiting_fulfilment"
    desk.work()
    results = [m for m in desk.mailbox.to(FILER) if "portal password" in m.message["Subject"]]
    assert len(results) == 1
    # Whom it is for, from the record: the employee may have filed several at once.
    assert results[0].message["Subject"] == "New portal password for Isla Campbell (ASH240891)"
    assert "Isla Campbell (ASH240891)" in results[0].text
    assert "Isla Campbell (ASH240891)" in results[0].html
    assert "give the student this one-time password" in results[0].text
    assert "the student's old password no longer works" in results[0].text
    assert "your old password" not in results[0].text  # the employee's own is untouched
    assert "the student's old password no longer works" in results[0].html
    secret = one_time_password(results[0])
    assert desk.get(filed["ref"])["status"] == "resolved"
    assert desk.sign_in("S700000", secret) == SignIn.CHANGE_REQUIRED
    assert desk.sign_in("S700000", secret) == SignIn.REFUSED
    assert_secret_nowhere(desk, secret, caplog)


# -- The account holder is told (NIST SP 800-63B-4 §4.6) ----------------------------------


def _no_secret_in(message: Received, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in message.text + message.html


def test_a_parent_reset_tells_the_holder_when_at_whose_request_and_what_to_do(desk):
    ref = desk.file(FIONA_RESET)["ref"]
    assert desk.approve_parent_reset(ref).status_code == 200
    desk.work()
    (result,) = desk.mailbox.results_to(FIONA)
    (notice,) = desk.mailbox.notices_to(FIONA)
    assert notice.message["Subject"] == f"Account notice: password reset ({ref})"
    when = desk.events(ref)[-1]["at"]
    local = datetime.fromisoformat(when).astimezone(ZoneInfo("Europe/London"))
    assert (
        f"On {local.day} {local:%b %Y %H:%M %Z}, at the request of Ashgrove Primary School"
        in notice.text
    )
    assert "the password of your parent portal account was reset" in notice.text
    assert "If you did not ask for this, contact Ashgrove Primary School at once" in notice.text
    assert ref in notice.html and "If you did not ask for this" in notice.html
    _no_secret_in(notice, one_time_password(result), "596853", "P500001")
    assert not desk.mailbox.to("al.campbell@mail.example")


def test_a_student_reset_tells_the_main_contact_with_parental_responsibility(desk):
    ref = desk.file(ISLA_RESET)["ref"]
    desk.work()
    (result,) = [m for m in desk.mailbox.to(FILER) if "portal password" in m.message["Subject"]]
    (notice,) = desk.mailbox.to(FIONA)  # main contact, parental responsibility
    assert "the password of the student portal account of Isla Campbell was reset" in notice.text
    assert "sent to a member of staff at Ashgrove Primary School" in notice.text
    assert not desk.mailbox.to("al.campbell@mail.example")  # not the main contact
    _no_secret_in(notice, one_time_password(result))
    assert not desk.mailbox.notices_to(FILER)
    assert "holder_not_told" not in [e["kind"] for e in desk.events(ref)]


def test_a_student_with_an_email_on_file_is_told_themselves(desk):
    own = "isla.campbell@pupils.ashgrove.sch.example"
    desk.sql(sa.update(Student).where(Student.student_number == "ASH240891").values(email=own))
    try:
        desk.file(ISLA_RESET)
        desk.work()
    finally:
        desk.sql(sa.update(Student).where(Student.student_number == "ASH240891")
                 .values(email=None))  # fmt: skip
    (notice,) = desk.mailbox.to(own)
    assert notice.message["Subject"].startswith("Account notice: password reset")
    assert not desk.mailbox.to(FIONA)


def test_a_username_reminder_tells_the_holder_the_password_did_not_change(desk):
    ref = desk.file(REMINDER)["ref"]
    assert desk.act(desk.actors.agent, ref, "fulfil").status_code == 200
    desk.work()
    (notice,) = desk.mailbox.notices_to(FIONA)
    assert notice.message["Subject"] == f"Account notice: username sent ({ref})"
    assert "The password was not changed." in notice.text


def test_a_notice_no_address_can_take_is_visible_on_the_incident(desk):
    desk.sql(sa.update(Guardian).where(Guardian.sourced_id == "par-1-0").values(email=None))
    try:
        ref = desk.file(ISLA_RESET)["ref"]
        desk.work()
    finally:
        desk.sql(sa.update(Guardian).where(Guardian.sourced_id == "par-1-0")
                 .values(email=FIONA))  # fmt: skip
    assert desk.get(ref)["status"] == "resolved"  # the reset itself is done
    (event,) = [e for e in desk.events(ref) if e["kind"] == "holder_not_told"]
    assert event["message"] == ("the account holder could not be told: there is no email on "
                                "file for the account holder")  # fmt: skip
    assert desk.redis.llen("rq:queue:mail") == 0


def test_a_notice_the_mail_server_keeps_refusing_is_visible_on_the_incident(desk):
    desk.mailbox.refuse_to.add(FIONA)
    ref = desk.file(ISLA_RESET)["ref"]
    desk.work()  # the reset, the result to the employee, and every try of the notice
    assert desk.get(ref)["status"] == "resolved"
    (event,) = [e for e in desk.events(ref) if e["kind"] == "holder_not_told"]
    assert event["message"].startswith("the account holder could not be told: the mail "
                                       "server refused it 4 times (SMTP 451")  # fmt: skip
    assert not desk.mailbox.to(FIONA)


def test_a_filing_the_rules_fulfil_at_once_is_recorded_like_an_approval(desk):
    """The shipped rules approve a verified student reset as it is filed: it must leave
    what an approval by a person leaves."""
    filed = desk.file(ISLA_RESET)
    assert filed["fulfilment"] == {
        "kind": "reset_credential", "state": "pending", "mode": "one_time_password",
        "attempts": 0, "reason": None, "expires_at": None, "delivered_at": None,
    }  # fmt: skip
    events = desk.events(filed["ref"])
    assert [(e["kind"], e["from_status"], e["to_status"]) for e in events] == [
        ("filed", None, "new"),
        ("routed", "new", "triaged"),
        ("fulfil", "triaged", "awaiting_fulfilment"),
    ]
    assert events[2]["data"] == {"rules": ["student resets go to student systems"]}
    assert "auto_fulfil" in events[2]["message"]
    (work,) = desk.fulfilments(filed["ref"])
    assert (work.kind, work.state, work.mode) == (
        "reset_credential",
        "pending",
        "one_time_password",
    )
    assert desk.get(filed["ref"])["fulfilment"]["state"] == "pending"
    with desk.app.app_context():
        (promise,) = db.session.execute(
            sa.select(OutboxEntry).where(
                OutboxEntry.job == "reset_credential", OutboxEntry.target_id == work.id
            )
        ).scalars()
        assert (promise.queue, promise.state) == ("fulfilment", "pending")
        queued = outbox.rq_queue("fulfilment").get_job_ids()
        db.session.remove()
    assert promise.job_id in queued
    desk.work()
    assert desk.get(filed["ref"])["status"] == "resolved"


def test_a_username_reminder_sends_the_username_and_changes_no_password(desk):
    ref = desk.file(REMINDER)["ref"]
    assert desk.act(desk.actors.agent, ref, "fulfil").status_code == 200
    desk.work()
    (reminder,) = desk.mailbox.results_to(FIONA)
    assert "fiona.campbell1" in reminder.text
    (fulfilment,) = desk.fulfilments(ref)
    assert fulfilment.state == "delivered" and fulfilment.credential_set_at is None
    assert desk.get(ref)["status"] == "resolved"


def test_a_one_time_password_expires(desk):
    ref = desk.file(ISLA_RESET)["ref"]
    desk.work()
    secret = one_time_password(desk.mailbox.messages[0])
    desk.sql(
        sa.update(PortalAccount)
        .where(PortalAccount.account_number == "S700000")
        .values(password_expires_at=utcnow() - timedelta(minutes=1))
    )
    assert desk.sign_in("S700000", secret) == SignIn.REFUSED
    assert desk.fulfilments(ref)[0].secret_expires_at is not None


def test_reset_link_mode_lets_the_holder_choose_a_password_once(desk, caplog):
    caplog.set_level(logging.DEBUG)
    with desk.app.app_context():
        update_policy("parent", {"mode": "reset_link", "min_length": 12, "history": 2})
        db.session.remove()
    ref = desk.file(FIONA_RESET)["ref"]
    assert desk.approve_parent_reset(ref).status_code == 200
    desk.work()
    (message,) = [m for m in desk.mailbox.to(FIONA) if "password" in m.message["Subject"]]
    token = reset_link(message)
    selector, _, verifier = token.partition(".")
    assert len(verifier) >= 32  # 192 random bits, well over 128

    with desk.app.app_context():
        update_policy("parent", {"sign_in_url": "https://parents.portal.example/sign-in"})
        db.session.remove()
    page = desk.client  # one browser: the form's CSRF token lives in its session cookie
    shown = page.get(f"/reset/{token}")
    assert shown.status_code == 200
    assert shown.headers["Referrer-Policy"] == "no-referrer"
    assert shown.headers["Cache-Control"] == "no-store"
    # The rules are shown before the first attempt.
    assert "Your password needs" in shown.text and "at least 12 characters" in shown.text
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', shown.text).group(1)

    weak = page.post(f"/reset/{token}", data={"csrf_token": csrf, "password": "short",
                                              "confirm": "shorter"})  # fmt: skip
    assert weak.status_code == 422
    for unmet in ("Use at least 12 characters.", "Include a capital letter.",
                  "Include a digit.", "The two passwords are not the same."):  # fmt: skip
        assert unmet in weak.text  # every problem at once
    named = "Campbell" + "Xy7!pqrs"
    refused = page.post(f"/reset/{token}", data={"csrf_token": csrf, "password": named,
                                                 "confirm": named})  # fmt: skip
    assert "Do not use your name or username" in refused.text

    chosen = "Heather-Glen-42"
    done = page.post(f"/reset/{token}", data={"csrf_token": csrf, "password": chosen,
                                              "confirm": chosen})  # fmt: skip
    assert done.status_code == 200 and "has been changed" in done.text
    assert 'href="https://parents.portal.example/sign-in">Sign in to the parent portal' in (
        done.text
    )
    assert desk.sign_in("P500001", chosen) == SignIn.SIGNED_IN

    # A used or unknown link says so when it is opened, before anything is typed.
    opened_used = page.get(f"/reset/{token}")
    opened_unknown = page.get(f"/reset/{selector}.{'A' * len(verifier)}")
    assert opened_used.status_code == opened_unknown.status_code == 404
    assert opened_used.text == opened_unknown.text and 'type="password"' not in opened_used.text
    used = page.post(f"/reset/{token}", data={"csrf_token": csrf, "password": chosen + "x",
                                              "confirm": chosen + "x"})  # fmt: skip
    unknown = page.post(f"/reset/{selector}.{'A' * len(verifier)}",
                        data={"csrf_token": csrf, "password": chosen + "x",
                              "confirm": chosen + "x"})  # fmt: skip
    assert used.status_code == unknown.status_code == 404
    # The same answer whether or not the token exists (the form's CSRF token is signed
    # with the time, so it alone may differ between two answers).
    assert without_csrf(used.text) == without_csrf(unknown.text)
    assert "expired or has already been used" in used.text

    desk.work()  # the "password changed" notice, which carries no secret
    (notice,) = [m for m in desk.mailbox.to(FIONA) if "was changed" in m.message["Subject"]]
    assert chosen not in notice.text
    assert_secret_nowhere(desk, token, caplog)
    assert_secret_nowhere(desk, chosen, caplog)


def test_a_new_reset_link_voids_the_old_one_and_links_expire(desk):
    with desk.app.app_context():
        update_policy("parent", {"mode": "reset_link"})
        db.session.remove()
    tokens = []
    for _ in range(2):
        ref = desk.file(FIONA_RESET)["ref"]
        assert desk.approve_parent_reset(ref).status_code == 200
        desk.work()
        tokens.append(reset_link(desk.mailbox.results_to(FIONA)[-1]))
    page = desk.client
    assert "expired or has already been used" in page.get(f"/reset/{tokens[0]}").text
    csrf = re.search(r'value="([^"]+)"', page.get(f"/reset/{tokens[1]}").text).group(1)
    form = {"csrf_token": csrf, "password": "Heather-Glen-42", "confirm": "Heather-Glen-42"}
    assert "expired or has already been used" in page.post(f"/reset/{tokens[0]}", data=form).text
    desk.sql(sa.update(PortalAccount).where(PortalAccount.account_number == "P500001")
             .values(reset_expires_at=utcnow() - timedelta(seconds=1)))  # fmt: skip
    assert "expired or has already been used" in page.post(f"/reset/{tokens[1]}", data=form).text


def test_the_reset_page_is_rate_limited(desk):
    page = desk.client
    answers = [page.get("/reset/not-a-token").status_code for _ in range(21)]
    assert answers[:20] == [404] * 20  # the page saying the link cannot be used
    assert answers[20] == 429


def test_a_form_without_its_csrf_token_is_refused(desk):
    response = desk.client.post("/reset/some.token", data={"password": "a", "confirm": "a"})
    assert response.status_code == 400
    assert "The form was not sent from this site" in response.text


@pytest.mark.parametrize("field", ["email", "recipient", "to", "send_to"])
def test_no_field_can_name_a_recipient(desk, field):
    response = desk.client.post(
        "/api/v1/incidents", json={**FIONA_RESET, field: "someone@elsewhere.example"},
        headers=desk.actors.ashgrove.headers,
    )  # fmt: skip
    assert response.status_code == 422
    assert "address on file" in response.json["errors"]["fields"][field][0]


# -- Faults ---------------------------------------------------------------------------


def test_redis_down_while_filing_loses_nothing(desk, stack, tmp_path):
    app, database, actors = stack
    from helpdesk import create_app

    from .conftest import PG_SERVER, environ_for

    # The same database, but a Redis that is not there (nothing listens on port 1).
    env = environ_for(f"{PG_SERVER}/{database}", tmp_path) | {
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "RATELIMIT_STORAGE_URI": "memory://",
    }
    cut_off = create_app(env)
    response = cut_off.test_client().post(
        "/api/v1/incidents", json=ISLA_RESET, headers=actors.ashgrove.headers
    )
    assert response.status_code == 201, response.json
    ref = response.json["ref"]
    with cut_off.app_context():
        db.engine.dispose()

    desk.work()
    assert desk.mailbox.messages == []  # nothing reached RQ
    (fulfilment,) = desk.fulfilments(ref)
    with app.app_context():
        promised = db.session.execute(
            sa.select(OutboxEntry.id).where(
                OutboxEntry.job == "reset_credential", OutboxEntry.target_id == fulfilment.id
            )
        ).scalar_one()
        # The module's database is shared: other tests may leave promises of their own.
        relayed = outbox.relay(now=utcnow() + timedelta(hours=1))
        db.session.remove()
    assert promised in relayed
    desk.work()
    assert (
        len([m for m in desk.mailbox.to(FILER) if "portal password" in m.message["Subject"]]) == 1
    )
    assert desk.get(ref)["status"] == "resolved"
    with app.app_context():
        assert promised not in outbox.relay(now=utcnow() + timedelta(hours=2))  # kept: done
        db.session.remove()


def test_an_smtp_refusal_then_acceptance_sends_one_message_with_one_working_secret(desk):
    desk.mailbox.refuse = 1
    ref = desk.file(ISLA_RESET)["ref"]
    desk.work()
    results = [m for m in desk.mailbox.to(FILER) if "portal password" in m.message["Subject"]]
    assert len(results) == 1
    (fulfilment,) = desk.fulfilments(ref)
    assert fulfilment.state == "delivered" and fulfilment.attempts == 1
    failed = next(e for e in desk.events(ref) if e["kind"] == "delivery_failed")
    assert "451" in failed["message"]
    assert desk.sign_in("S700000", one_time_password(results[0])) == SignIn.CHANGE_REQUIRED


def test_a_worker_keeps_its_smtp_connection_and_opens_a_new_one_after_a_restart(desk, smtp):
    for reset in (ISLA_RESET, RORY_RESET, NIAMH_RESET):
        desk.file(reset)
    desk.work()
    assert len(desk.mailbox.messages) >= 3
    # One connection for the run: no connect, greeting, EHLO and QUIT per email.
    assert len({m.peer for m in desk.mailbox.messages}) == 1
    first = desk.mailbox.messages[0].peer

    smtp.restart()  # the server drops the kept connection while the worker is idle
    filed = desk.file(ISLA_RESET)
    desk.work()
    results = [m for m in desk.mailbox.to(FILER) if "portal password" in m.message["Subject"]]
    assert len(results) == 4  # the fourth sent once, over a new connection, and not lost
    assert filed["ref"] in results[-1].text and results[-1].peer != first
    assert desk.get(filed["ref"])["status"] == "resolved"
    # The dropped connection was noticed before sending, not by a failed delivery.
    assert "delivery_failed" not in [e["kind"] for e in desk.events(filed["ref"])]


def _overdue(desk: Desk, ref: str, **columns: Any) -> None:
    with desk.app.app_context():
        db.session.execute(
            sa.update(Incident).where(Incident.id == parse_ref(ref)).values(**columns)
        )
        db.session.commit()
        db.session.remove()


def test_the_scheduler_emails_a_queue_before_a_deadline_and_when_it_escalates(desk):
    from helpdesk.services import sla

    warned = desk.file(REMINDER)["ref"]  # the service desk, where agent@ works
    breached = desk.file(FIONA_RESET)["ref"]  # the service desk, escalating to identity
    past, later = utcnow() - timedelta(minutes=5), utcnow() + timedelta(days=30)
    _overdue(desk, warned, sla_warn_at=past)
    _overdue(desk, breached, resolution_due_at=past, response_due_at=later, sla_warn_at=later)
    with desk.app.app_context():
        sla.run_escalation_pass()
        sla.run_escalation_pass()  # once per breach: a second pass sends nothing more
        db.session.remove()
    desk.work()

    (escalated,) = [m for m in desk.mailbox.to("identity@its.example")
                    if breached in m.message["Subject"]]  # fmt: skip
    assert "escalated to your queue" in escalated.message["Subject"]
    assert "escalated to ITS Identity & Access" in escalated.text
    assert "resolution deadline passed in ITS Service Desk" in escalated.text
    assert f"{BASE_URL}/incidents/{breached}" in escalated.text
    (warning,) = [m for m in desk.mailbox.to("agent@its.example")
                  if warned in m.message["Subject"]]  # fmt: skip
    assert "deadline near" in warning.message["Subject"]
    due = datetime.fromisoformat(desk.get(warned)["resolution_due_at"])
    local = due.astimezone(ZoneInfo("Europe/London"))  # the service's DISPLAY_TIMEZONE
    assert f"is due to be resolved by {local.day} {local:%b %Y %H:%M %Z}." in warning.text
    # Queue notices go to the queue's members only: never to the parent or the filer
    # (who had only the acknowledgements of filing).
    assert desk.mailbox.to(FIONA) == []
    assert {m.message["Subject"].split(": ")[1] for m in desk.mailbox.to(FILER)} == {"received"}


def test_a_rule_that_notifies_on_an_update_emails_the_queue(desk):
    from helpdesk.services.routing import default_rules, save_rules

    notify_identity = {
        "name": "escalated into identity: tell identity",
        "conditions": {"all": [
            {"field": "event", "op": "eq", "value": "updated"},
            {"field": "changed", "op": "contains", "value": "queue"},
            {"field": "queue", "op": "eq", "value": "its-identity"},
        ]},
        "actions": [{"notify": "queue:its-identity"}],
    }  # fmt: skip
    with desk.app.app_context():
        save_rules([*default_rules(), notify_identity], actor_id=None, note="test")
        db.session.remove()
    try:
        ref = desk.file(FIONA_RESET)["ref"]
        assert desk.act(desk.actors.agent, ref, "escalate").status_code == 200
        desk.work()
        (notice,) = [m for m in desk.mailbox.to("identity@its.example")
                     if ref in m.message["Subject"]]  # fmt: skip
        assert "is waiting in ITS Identity & Access" in notice.text
        assert "routing rules asked" in notice.text
    finally:
        with desk.app.app_context():
            save_rules(default_rules(), actor_id=None, note="test: back to the defaults")
            db.session.remove()


@contextlib.contextmanager
def _notice_to_two_members(desk: Desk, ref: str) -> Iterator[None]:
    """its-identity with the agent as a second member (agent@ comes before identity@), and
    a queue notice to its members promised and enqueued; the membership is taken back."""
    from helpdesk.services import notifications
    from helpdesk.services.queues import add_member, remove_member

    with desk.app.app_context():
        add_member("its-identity", desk.actors.agent.email)
        notifications.notify(parse_ref(ref), "queue_notice", "queue:its-identity", why="test")
        db.session.commit()
        outbox.dispatch_committed()
        db.session.remove()
    try:
        yield
    finally:
        with desk.app.app_context():
            remove_member("its-identity", desk.actors.agent.email)
            db.session.remove()


def _one_notice_each(desk: Desk) -> None:
    for member in (desk.actors.agent.email, "identity@its.example"):
        notices = [m for m in desk.mailbox.to(member) if "in your queue" in m.message["Subject"]]
        assert len(notices) == 1, member


def test_a_queue_notice_refused_for_one_member_is_not_sent_again_to_the_others(desk):
    ref = desk.file(FIONA_RESET)["ref"]
    with _notice_to_two_members(desk, ref):
        desk.mailbox.refuse_once_for = {"identity@its.example"}
        desk.work()  # the agent accepts, identity refuses once; the retry sends to identity
    _one_notice_each(desk)


def test_a_worker_killed_between_two_recipients_does_not_email_the_first_again(desk, tmp_path):
    """A real `helpdesk worker` process is killed while the second member's email is on
    its way; the retry reaches that member and leaves the first alone."""
    import signal
    import subprocess
    import sys
    import time

    from rq.registry import StartedJobRegistry
    from rq.serializers import JSONSerializer

    ref = desk.file(FIONA_RESET)["ref"]
    desk.work()  # the filer's acknowledgement goes first, out of the way
    with _notice_to_two_members(desk, ref):
        desk.mailbox.hang_for = {"identity@its.example"}
        worker = subprocess.Popen([sys.executable, "-m", "helpdesk.cli", "worker", "--no-fork"],
                                  env=desk.worker_env(tmp_path, MAIL_TIMEOUT="60"))  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not desk.mailbox.stalled:
                assert time.monotonic() < deadline, "the worker never reached the second member"
                time.sleep(0.1)
            worker.send_signal(signal.SIGKILL)  # mid-conversation, as a crash or an OOM kill
            worker.wait(timeout=30)
            desk.mailbox.unhang()
            registry = StartedJobRegistry("mail", connection=desk.redis,
                                          serializer=JSONSerializer)  # fmt: skip
            registry.cleanup(timestamp=utcnow().timestamp() + 100_000)  # RQ gives it back
            desk.work()
        finally:
            if worker.poll() is None:
                worker.kill()
    _one_notice_each(desk)


def _gauge(desk: Desk, name: str) -> float:
    text = desk.client.get("/metrics").text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def test_metrics_show_the_work_in_flight_and_what_is_overdue(desk):
    pending = 'helpdesk_fulfilments_in_flight{state="pending"}'
    queued = 'helpdesk_outbox_pending{overdue="false"}'
    overdue = 'helpdesk_outbox_pending{overdue="true"}'
    before = {name: _gauge(desk, name) for name in (pending, queued, overdue)}
    with desk.app.app_context():
        last = db.session.execute(sa.select(sa.func.max(OutboxEntry.id))).scalar() or 0
        db.session.remove()
    ref = desk.file(FIONA_RESET)["ref"]  # the filer's acknowledgement is promised
    assert desk.approve_parent_reset(ref).status_code == 200  # and the reset
    assert _gauge(desk, pending) == before[pending] + 1
    assert _gauge(desk, queued) == before[queued] + 2
    with desk.app.app_context():  # as if no worker had taken them in time
        db.session.execute(sa.update(OutboxEntry).where(OutboxEntry.id > last)
                           .values(relay_after=utcnow() - timedelta(minutes=1)))  # fmt: skip
        db.session.commit()
        db.session.remove()
    assert _gauge(desk, overdue) == before[overdue] + 2
    desk.work()
    assert _gauge(desk, pending) == before[pending]
    assert _gauge(desk, overdue) == before[overdue]  # these two promises kept
    assert _gauge(desk, queued) == before[queued]


def test_an_smtp_server_that_hangs_times_out_and_the_incident_returns_to_a_person(desk):
    desk.mailbox.hang = True
    ref = desk.file(ISLA_RESET)["ref"]
    desk.work()  # four attempts of MAIL_TIMEOUT=1 s each, then given back
    desk.mailbox.unhang()
    (fulfilment,) = desk.fulfilments(ref)
    assert fulfilment.state == "abandoned"
    assert fulfilment.attempts == 4
    assert "did not answer in time" in fulfilment.last_error
    assert fulfilment.sealed_secret is None  # the undelivered secret is forgotten
    incident = desk.get(ref, desk.actors.agent)
    assert incident["status"] == "triaged" and incident["queue"] == "its-student-systems"
    assert incident["fulfilment"]["state"] == "abandoned"
    assert "fulfil" in incident["allowed_actions"]  # a person can approve it again
    returned = desk.events(ref)[-1]
    assert returned["kind"] == "returned" and "4 attempts" in returned["message"]


def test_a_worker_killed_mid_job_gives_exactly_one_reset_and_one_message(desk):
    """The worker dies after setting the credential, before the email is accepted.

    As RQ's own tests do, the dead worker's job is left in the started-job registry and
    RQ's cleanup hands it back; the retry finds the credential set and only delivers.
    """
    from rq.job import Job
    from rq.registry import StartedJobRegistry
    from rq.serializers import JSONSerializer

    from helpdesk.services.fulfilment_run import run

    ref = desk.file(ISLA_RESET)["ref"]
    (fulfilment,) = desk.fulfilments(ref)
    with desk.app.app_context():
        queue = outbox.rq_queue("fulfilment")
        worker = make_worker(desk.app, fork=False)
        job = Job.fetch(queue.job_ids[0], connection=desk.redis, serializer=JSONSerializer)
        queue.remove(job)
        worker.prepare_execution(job)  # the job is now STARTED by this worker
        worker.prepare_job_execution(job)
        desk.mailbox.hang = True
        with pytest.raises(Exception, match=r"SMTP|time|answer"):
            run(fulfilment.id)  # the job's work, up to the hanging SMTP conversation
        db.session.remove()
    desk.mailbox.unhang()
    # ...and here the worker is gone: no result, no failure recorded by it.
    set_once = desk.fulfilments(ref)[0]
    assert set_once.state == "delivery_failed" and set_once.credential_set_at is not None
    registry = StartedJobRegistry("fulfilment", connection=desk.redis, serializer=JSONSerializer)
    registry.cleanup(timestamp=utcnow().timestamp() + 100_000)
    assert job.id in queue.get_job_ids()  # retried, since it has retries left

    desk.work()
    results = [m for m in desk.mailbox.to(FILER) if "portal password" in m.message["Subject"]]
    assert len(results) == 1
    after = desk.fulfilments(ref)[0]
    assert after.state == "delivered"
    assert after.credential_set_at == set_once.credential_set_at  # reset once, not twice
    assert desk.sign_in("S700000", one_time_password(results[0])) == SignIn.CHANGE_REQUIRED


def test_the_same_job_enqueued_twice_sends_one_message(desk):
    ref = desk.file(ISLA_RESET)["ref"]
    (fulfilment,) = desk.fulfilments(ref)
    with desk.app.app_context():
        queue = outbox.rq_queue("fulfilment")
        for _ in range(2):
            queue.enqueue("workers.jobs.reset_credential", fulfilment.id)
        entry = db.session.execute(
            sa.select(OutboxEntry).where(
                OutboxEntry.job == "reset_credential", OutboxEntry.target_id == fulfilment.id
            )
        ).scalar_one()
        outbox.enqueue(entry)  # and the relay's copy, under the outbox's own job id
        db.session.remove()
    desk.work()
    results = [m for m in desk.mailbox.to(FILER) if "portal password" in m.message["Subject"]]
    assert len(results) == 1
    with desk.app.app_context():
        history = db.session.execute(
            sa.select(sa.func.count(PasswordHistory.id)).where(
                PasswordHistory.account_id == fulfilment.portal_account_id
            )
        ).scalar()
        db.session.remove()
    assert history == 0  # one-time passwords are not history
    kinds = [e["kind"] for e in desk.events(ref)]
    assert kinds.count("credential_set") == 1 and kinds.count("delivered") == 1  # one reset
    assert desk.sign_in("S700000", one_time_password(results[0])) == SignIn.CHANGE_REQUIRED


# -- Revocation, and who may be a target ----------------------------------------------


def test_revocation_disables_at_once_and_blocks_later_resets_until_restored(desk):
    filed = desk.file({"type": "access_revocation", "guardian_id": "par-5-0",
                       "reason": "court_order"})  # fmt: skip
    assert filed["status"] == "awaiting_fulfilment"
    desk.work()
    assert desk.get(filed["ref"])["status"] == "resolved"
    with desk.app.app_context():
        account = db.session.execute(
            sa.select(PortalAccount).where(PortalAccount.account_number == "P500012")
        ).scalar_one()
        assert account.status == "disabled"
        db.session.remove()
    (notice,) = [m for m in desk.mailbox.to(FILER) if "revoked" in m.message["Subject"]]
    assert "court order" in notice.text
    # The holder is told that access stopped (never why), and nothing else.
    (told,) = desk.mailbox.to("lorna.fraser@mail.example")
    assert told.message["Subject"] == f"Account notice: portal access stopped ({filed['ref']})"
    assert "your parent portal access was stopped" in told.text
    assert "court" not in told.text.lower() + told.html.lower()

    reset = desk.client.post("/api/v1/incidents", json=LORNA_RESET,
                             headers=desk.actors.ashgrove.headers).json  # fmt: skip
    assert reset["verification"]["outcome"] == "failed"
    assert any("revoked" in r for r in reset["verification"]["reasons"])
    refused = desk.act(desk.actors.agent, reset["ref"], "fulfil")
    assert refused.status_code == 409

    with desk.app.app_context():
        restored = desk.app.test_cli_runner().invoke(
            args=["access", "restore", "par-5-0", "--admin", desk.actors.admin.email]
        )
        db.session.remove()
    assert restored.exit_code == 0, restored.output
    restoration = desk.events(filed["ref"])[-1]  # recorded on the revocation it lifts
    assert (restoration["kind"], restoration["actor"]) == (
        "access_restored",
        desk.actors.admin.email,
    )
    desk.work()
    restored_notice = desk.mailbox.notices_to("lorna.fraser@mail.example")[-1]
    assert restored_notice.message["Subject"].startswith("Account notice: portal access restored")
    assert "you can sign in again" in restored_notice.text
    again = desk.file(LORNA_RESET)
    assert again["verification"]["outcome"] == "passed"
    assert desk.approve_parent_reset(again["ref"]).status_code == 200
    desk.work()
    assert len(desk.mailbox.results_to("lorna.fraser@mail.example")) == 1


def test_a_revocation_overtakes_a_reset_already_approved(desk):
    ref = desk.file(LORNA_RESET)["ref"]
    assert desk.approve_parent_reset(ref).status_code == 200
    desk.file({"type": "access_revocation", "guardian_id": "par-5-0", "reason": "policy_breach"})
    desk.work()  # revocations are served first
    assert not desk.mailbox.results_to("lorna.fraser@mail.example")  # only the notice
    assert desk.fulfilments(ref)[0].state == "abandoned"
    assert desk.get(ref)["status"] == "triaged"


def test_child_protection_revokes_every_guardian_of_the_child(desk):
    desk.file({"type": "access_revocation", "guardian_id": "par-5-0", "student_id": "ASH595185",
               "reason": "child_protection"})  # fmt: skip
    desk.work()
    with desk.app.app_context():
        revoked = db.session.execute(
            sa.select(Guardian.sourced_id)
            .join(GuardianStudent, GuardianStudent.guardian_id == Guardian.id)
            .join(Student, Student.id == GuardianStudent.student_id)
            .where(Student.student_number == "ASH595185", Guardian.access_revoked_at.is_not(None))
        ).scalars()
        assert sorted(revoked) == ["par-5-0", "par-5-1"]
        db.session.remove()


def test_a_guardian_who_lost_parental_responsibility_after_approval_is_not_a_target(desk):
    ref = desk.file(FIONA_RESET)["ref"]
    assert desk.approve_parent_reset(ref).status_code == 200
    # The school's records change before the worker runs (a roster import, say).
    desk.sql(sa.update(GuardianStudent).where(
        GuardianStudent.guardian_id == sa.select(Guardian.id).where(
            Guardian.sourced_id == "par-1-0").scalar_subquery()
    ).values(parental_responsibility=False))  # fmt: skip
    desk.work()
    assert not desk.mailbox.to(FIONA)
    (fulfilment,) = desk.fulfilments(ref)
    assert fulfilment.state == "abandoned"
    assert "parental responsibility" in fulfilment.last_error
    assert fulfilment.credential_set_at is None  # the account was never touched
    (told,) = [m for m in desk.mailbox.to(FILER) if "outcome" in m.message["Subject"]]
    assert "Not done yet" in told.text


def test_a_carer_without_parental_responsibility_cannot_be_approved(desk):
    raj = {"type": "parent_password_reset", "parent_name": "Raj Kapoor",
           "contact_phone": "07700 900402", "parent_pin": "471325",
           "parent_account_number": "P500010", "student_id": "MIL619501"}  # fmt: skip
    filed = desk.client.post("/api/v1/incidents", json=raj, headers=desk.actors.millbrook.headers)
    assert filed.json["verification"]["outcome"] == "failed"
    assert desk.act(desk.actors.admin, filed.json["ref"], "fulfil").status_code == 409
    desk.work()
    assert not desk.mailbox.to("raj.kapoor@mail.example")


def test_an_incident_in_flight_is_visible_and_never_shows_a_secret(desk):
    ref = desk.file(ISLA_RESET)["ref"]
    pending = desk.get(ref, desk.actors.agent)
    assert pending["status"] == "awaiting_fulfilment"
    assert set(pending["fulfilment"]) == {
        "kind", "state", "mode", "attempts", "reason", "expires_at", "delivered_at",
    }  # fmt: skip


@pytest.mark.parametrize("mode", ["--fork", "--no-fork"])
def test_helpdesk_worker_runs_the_jobs_forked_or_in_process(desk, tmp_path, mode):
    """The production command: `helpdesk worker --burst` in its own process, either way."""
    import subprocess
    import sys

    ref = desk.file(ISLA_RESET)["ref"]
    done = subprocess.run(
        [sys.executable, "-m", "helpdesk.cli", "worker", mode, "--burst"],
        env=desk.worker_env(tmp_path), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        len([m for m in desk.mailbox.to(FILER) if "portal password" in m.message["Subject"]]) == 1
    )
    assert desk.get(ref)["status"] == "resolved"


def test_a_record_locked_after_repeated_failures_is_emailed_to_the_identity_queue(desk):
    for pin in range(5):  # VERIFY_LIMIT_PER_TARGET's default
        filed = desk.file({**FIONA_RESET, "parent_pin": f"{pin:06d}"})
        assert filed["verification"]["outcome"] == "failed"
    refused = desk.client.post(
        "/api/v1/incidents", json=FIONA_RESET, headers=desk.actors.ashgrove.headers
    )
    assert refused.status_code == 429
    desk.work()
    (notice,) = [
        m for m in desk.mailbox.to(desk.actors.identity.email) if "locked" in m.message["Subject"]
    ]
    assert filed["ref"] in notice.message["Subject"]
    assert "this parent account" in notice.text
    assert FILER in notice.text  # who was filing
    assert "596853" not in notice.text and "P500001" not in notice.text
    assert desk.mailbox.to(FIONA) == []  # nothing reaches the parent


def test_a_notice_to_an_address_no_email_can_go_to_fails_visibly_and_blocks_nothing(desk):
    from helpdesk.models import Notification, User

    bad = "m.baillie@ashgrove.sch.example\r\nBcc: all@ashgrove.sch.example"
    # An address stored before addresses were checked (today's import and creation refuse it).
    desk.sql(sa.update(User).where(User.email == FILER).values(email=bad))
    try:
        poisoned = desk.file(FIONA_RESET)  # acknowledged to its filer
        fine = desk.file({**LORNA_RESET}, desk.actors.ashgrove_teacher)
        desk.work()
        with desk.app.app_context():
            notes = {
                n.incident_id: n
                for n in db.session.execute(
                    sa.select(Notification).where(Notification.template == "acknowledgement")
                ).scalars()
            }
            db.session.remove()
        failed = notes[parse_ref(poisoned["ref"])]
        assert failed.state == "failed"
        assert "not an email address" in failed.last_error
        assert notes[parse_ref(fine["ref"])].state == "sent"
        assert desk.mailbox.to(desk.actors.ashgrove_teacher.email)
        assert not [m for m in desk.mailbox.messages if "Bcc" in str(m.message)]
        assert desk.redis.llen("rq:queue:mail") == 0  # nothing left to retry for ever
    finally:
        desk.sql(sa.update(User).where(User.email == bad).values(email=FILER))


def test_a_mail_server_that_accepts_and_never_answers_is_a_visible_failure(desk, tmp_path):
    """The server takes the connection and says nothing, not even its greeting."""
    import time

    from helpdesk import create_app

    from .servers import SilentServer

    silent = SilentServer()
    try:
        env = desk.worker_env(tmp_path, MAIL_PORT=str(silent.port), MAIL_TIMEOUT="1")
        app = create_app(env)
        ref = desk.file(ISLA_RESET)["ref"]
        started = time.monotonic()
        make_worker(app, fork=False).work(burst=True)
        # Four attempts (JOB_RETRY_INTERVALS 0,0,0) of MAIL_TIMEOUT each, not RQ's job timeout.
        assert time.monotonic() - started < 15
        (fulfilment,) = desk.fulfilments(ref)
        assert fulfilment.state == "abandoned"  # back with a person, saying why
        assert "did not answer in time (1 s)" in fulfilment.last_error
        failures = [e for e in desk.events(ref) if e["kind"] == "delivery_failed"]
        assert failures and all("did not answer in time" in e["message"] for e in failures)
        with app.app_context():
            db.engine.dispose()
    finally:
        silent.close()


def test_a_database_lost_just_after_filing_commits_is_not_reported_as_nothing_stored(desk):
    """The filing committed; the connection then dies before its jobs are handed to RQ.
    Answering 503 "nothing was stored" would have the school send it again: two
    incidents, two acknowledgements. It is a 201, and the relay hands the job on."""
    from sqlalchemy.orm import Session

    from helpdesk.services.outbox import relay

    from .conftest import PG_SERVER, terminate_connections

    killed: list[int] = []
    observer = sa.create_engine(f"{PG_SERVER}/{desk.database}", poolclass=sa.pool.NullPool)
    filed = sa.text("SELECT count(*) FROM incidents WHERE notes = 'lost after commit'")

    def kill_after_commit(session: Session) -> None:
        with observer.connect() as conn:
            committed = conn.execute(filed).scalar_one()
        if committed and not killed:  # the filing's commit: drop every connection to it
            killed.append(terminate_connections(desk.database))

    sa.event.listen(Session, "after_commit", kill_after_commit)
    try:
        # A revocation the rules fulfil and notify of: its jobs are dispatched after the
        # commit, so they meet the dead connection.
        body = {**REVOCATION, "notes": "lost after commit"}
        response = desk.client.post("/api/v1/incidents", json=body,
                                    headers=desk.actors.ashgrove.headers)  # fmt: skip
    finally:
        sa.event.remove(Session, "after_commit", kill_after_commit)
        with desk.app.app_context():
            db.engine.dispose()  # the pool's connections died with the kill
    assert killed and killed[0] >= 1
    assert response.status_code == 201, response.json
    with desk.app.app_context():
        stored = db.session.execute(
            sa.select(sa.func.count(Incident.id)).where(Incident.notes == "lost after commit")
        ).scalar_one()
        relay(now=utcnow() + timedelta(hours=1))
        db.session.remove()
    observer.dispose()
    assert stored == 1
    desk.work()
    # Its queue notice and its revocation notice, each once (relayed, not sent twice).
    ref = response.json["ref"]
    notices = [m.message["Subject"] for m in desk.mailbox.messages if ref in m.message["Subject"]]
    assert notices and len(notices) == len(set(notices)), notices
    assert desk.get(ref)["status"] == "resolved"
