"""The embedded default a newcomer runs: SQLite, in-process Redis stand-in, no configuration.

These run the real commands in subprocesses, as the README's run command does.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyotp
import pytest
import requests

from .samples import AGAIN, FIONA_RESET, ISLA_RESET

pytestmark = pytest.mark.embedded

HELPDESK = [sys.executable, "-m", "helpdesk.cli"]


def embedded_env(instance: Path) -> dict[str, str]:
    keep = {"PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "TMPDIR"}
    env = {k: v for k, v in os.environ.items() if k in keep}
    return env | {"HELPDESK_INSTANCE": str(instance)}


def helpdesk(instance: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HELPDESK, *args],
        env=embedded_env(instance),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`helpdesk db upgrade`, `helpdesk demo`, then `helpdesk run` on a free port."""
    instance = tmp_path_factory.mktemp("embedded")
    upgraded = helpdesk(instance, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    loaded = helpdesk(instance, "demo")
    assert loaded.returncode == 0, loaded.stderr
    printed = re.findall(r"(\S+@\S+).*?\n\s+password: (\S+)\n\s+token: (\S+)", loaded.stdout)
    tokens = {email: token for email, _, token in printed}
    passwords = {email: password for email, password, _ in printed}
    port = free_port()
    server = subprocess.Popen(
        [*HELPDESK, "run", "--port", str(port)],
        env=embedded_env(instance),
        stdout=(instance / "server.out").open("wb"),
        stderr=(instance / "server.log").open("wb"),
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"{base}/healthz", timeout=1)
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("helpdesk run did not start on the embedded default")
            time.sleep(0.2)
    yield base, tokens, instance, passwords
    server.terminate()
    server.wait(timeout=10)


def test_the_demo_prints_a_token_for_each_demo_user(demo):
    _, tokens, instance, _ = demo
    assert {
        "admin@helpdesk.example",
        "agent@helpdesk.example",
        "identity@helpdesk.example",
        "m.baillie@ashgrove.sch.example",
        "h.price@millbrook.sch.example",
        "r.menon@kelvinside.sch.example",
    } <= set(tokens)
    assert (instance / "helpdesk.sqlite3").is_file()


def test_the_service_is_ready_on_sqlite_with_its_redis_stand_in(demo):
    base, _, _, _ = demo
    ready = requests.get(f"{base}/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
    # The worker thread of `helpdesk run` does the worker's and the scheduler's work.
    assert ready.json()["degraded"] == []


def test_a_parent_reset_is_filed_and_checked_on_the_embedded_default(demo):
    base, tokens, _, _ = demo
    headers = {"Authorization": f"Bearer {tokens['m.baillie@ashgrove.sch.example']}"}
    response = requests.post(
        f"{base}/api/v1/incidents",
        headers=headers,
        timeout=10,
        json=FIONA_RESET,
    )
    assert response.status_code == 201, response.text
    assert response.json()["verification"]["outcome"] == "passed"
    assert response.json()["queue"] == "its-service-desk"
    agent = {"Authorization": f"Bearer {tokens['agent@helpdesk.example']}"}
    claimed = requests.post(
        f"{base}/api/v1/incidents/{response.json()['ref']}/transitions",
        json={"action": "claim"},
        headers=agent,
        timeout=10,
    )
    assert claimed.json()["status"] == "in_progress"


def test_running_the_demo_twice_keeps_the_records_and_users(demo):
    _, _, instance, passwords = demo
    again = helpdesk(instance, "demo")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("token:") == 6
    # Each run prints new passwords (only their hashes are kept): the old ones stop working.
    fresh = dict(re.findall(r"(\S+@\S+).*?\n\s+password: (\S+)", again.stdout))
    assert set(fresh) == set(passwords) and not set(fresh.values()) & set(passwords.values())
    passwords.update(fresh)


def test_an_approved_reset_arrives_in_the_captured_mailbox_with_no_worker_to_start(demo):
    """`helpdesk run` alone runs the job: the email lands in instance/mail/ as a file."""
    import email
    import email.policy

    base, tokens, instance, passwords = demo
    ref = requests.post(
        f"{base}/api/v1/incidents",
        headers={"Authorization": f"Bearer {tokens['m.baillie@ashgrove.sch.example']}"},
        json={**FIONA_RESET, **AGAIN},  # the module's first test left hers open
        timeout=10,
    ).json()["ref"]
    for who, body in (
        ("agent@helpdesk.example", {"action": "escalate"}),
        ("identity@helpdesk.example", {"action": "fulfil"}),
    ):
        moved = requests.post(
            f"{base}/api/v1/incidents/{ref}/transitions",
            json=body,
            headers={"Authorization": f"Bearer {tokens[who]}"},
            timeout=10,
        )
        assert moved.status_code == 200, moved.text
    deadline = time.monotonic() + 30  # the job runs within a second or two
    admin = {"Authorization": f"Bearer {tokens['admin@helpdesk.example']}"}
    while requests.get(f"{base}/api/v1/incidents/{ref}", headers=admin,
                       timeout=10).json()["status"] != "resolved":  # fmt: skip
        assert time.monotonic() < deadline, (
            "the embedded worker did not fulfil the reset:\n"
            + (instance / "server.log").read_text()[-4000:]
        )
        time.sleep(0.3)

    def captured() -> list[email.message.EmailMessage]:
        return [
            email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in sorted((instance / "mail").glob("*.eml"))
        ]

    # The filer's acknowledgement waits on the mail queue, served after the fulfilment one.
    while not [m for m in captured() if m["Subject"] == f"{ref}: received"]:
        assert time.monotonic() < deadline, "the acknowledgement was not sent"
        time.sleep(0.3)
    mails = captured()
    resets = [m for m in mails if m["Subject"] == "Your new portal password"]
    assert [m["To"] for m in resets] == ["fiona.campbell@mail.example"]
    received = [m for m in mails if m["Subject"] == f"{ref}: received"]
    assert [m["To"] for m in received] == ["m.baillie@ashgrove.sch.example"]  # the filer
    # The demo mailbox page shows the newcomer what arrived, once signed in as the admin.
    assert "sign-in" in requests.get(f"{base}/dev/mail", timeout=10).url
    admin = signed_in_session(base, "admin@helpdesk.example", passwords[
        "admin@helpdesk.example"])  # fmt: skip
    mailbox = admin.get(f"{base}/dev/mail", timeout=10).text
    assert "fiona.campbell@mail.example" in mailbox and "Your new portal password" in mailbox
    agent = signed_in_session(base, "agent@helpdesk.example", passwords[
        "agent@helpdesk.example"])  # fmt: skip
    assert agent.get(f"{base}/dev/mail", timeout=10).status_code == 403


# A person signs in a few times a day; these tests several times a minute, and a code
# works once: each demo user signs in once per server, and the tests share the session.
_SESSIONS: dict[tuple[str, str], requests.Session] = {}


def signed_in_session(base: str, email: str, password: str) -> requests.Session:
    if (base, email) in _SESSIONS:
        return _SESSIONS[base, email]
    session = requests.Session()
    page = session.get(f"{base}/sign-in", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = session.post(
        f"{base}/sign-in",
        timeout=10,
        data={"email": email, "password": password, "csrf_token": token},
    )
    if "Set up two-step sign-in" in answer.text:  # agents and admins, as the README says
        key = re.search(r'id="secret-key">([A-Z2-7 ]+)<', answer.text).group(1)
        token = re.search(r'name="csrf_token" value="([^"]+)"', answer.text).group(1)
        code = pyotp.TOTP(key.replace(" ", "")).now()
        answer = session.post(f"{base}/sign-in/set-up", timeout=10,
                              data={"code": code, "csrf_token": token})  # fmt: skip
        assert "Your recovery codes" in answer.text, answer.text[:500]
        answer = session.get(f"{base}/", timeout=10)
    assert answer.ok and "Sign out" in answer.text, answer.text[:500]
    _SESSIONS[base, email] = session
    return session


def test_staff_sign_in_to_the_pages_on_the_embedded_default(demo):
    base, _, _, passwords = demo
    email = "agent@helpdesk.example"
    session = signed_in_session(base, email, passwords[email])
    assert "Your queues" in session.get(f"{base}/", timeout=10).text
    assert session.get(f"{base}/static/govuk/govuk-frontend.min.css", timeout=10).ok


def test_the_dashboard_counts_a_resolution_on_sqlite(demo):
    """SQLite has no percentile function: the median time to resolve is worked out apart."""
    base, tokens, _, passwords = demo
    filer = {"Authorization": f"Bearer {tokens['m.baillie@ashgrove.sch.example']}"}
    ref = requests.post(f"{base}/api/v1/incidents", headers=filer, json=ISLA_RESET,
                        timeout=10).json()["ref"]  # fmt: skip
    deadline = time.monotonic() + 30  # fulfilled at once by the worker thread
    while requests.get(f"{base}/api/v1/incidents/{ref}", headers=filer,
                       timeout=10).json()["status"] != "resolved":  # fmt: skip
        assert time.monotonic() < deadline, "the student reset was not fulfilled"
        time.sleep(0.3)
    email = "agent@helpdesk.example"
    session = signed_in_session(base, email, passwords[email])
    page = session.get(f"{base}/dashboard", timeout=10)
    assert page.status_code == 200
    assert "Student password reset" in page.text  # in the median time to resolve chart


def test_the_server_says_where_it_serves_and_logs_json_without_terminal_colours(demo):
    base, _, instance, _ = demo
    requests.get(f"{base}/sign-in", timeout=10)
    requests.get(f"{base}/nowhere", timeout=10)  # a 404: coloured by the dev server
    assert f"Serving {base}/" in (instance / "server.out").read_text()
    time.sleep(0.5)
    lines = [line for line in (instance / "server.log").read_text().splitlines() if line]
    assert any('"GET /nowhere HTTP/1.1\\" 404' in line or "GET /nowhere" in line
               for line in lines)  # fmt: skip
    assert not [line for line in lines if "\x1b[" in line or "\\u001b" in line]
    for line in lines:
        assert json.loads(line)["message"] is not None


def test_the_embedded_worker_thread_runs_without_errors(demo):
    """Its jobs, retries and periodic jobs all work on the in-process Redis stand-in."""
    _, _, instance, _ = demo
    time.sleep(2.5)  # a couple of passes of the worker thread
    log = (instance / "server.log").read_text()
    assert '"level": "ERROR"' not in log, log[-3000:]


def test_the_web_and_the_worker_thread_share_one_in_process_redis(tmp_path, monkeypatch):
    """The worker thread and the first request ask for Redis at once; both must get the
    same stand-in server, or jobs the web enqueues never reach the worker."""
    import threading

    from helpdesk import create_app, redis_client

    monkeypatch.setattr(redis_client, "_FAKE_SERVER", None)
    app = create_app({"HELPDESK_INSTANCE": str(tmp_path)})
    start = threading.Barrier(8)
    clients = []

    def ask() -> None:
        start.wait()
        clients.append(redis_client.redis_for(app))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    clients[0].rpush("queue", "job")
    assert all(client.lrange("queue", 0, -1) == [b"job"] for client in clients)


@pytest.fixture(scope="module")
def sqlite_app(tmp_path_factory):
    """An app on the embedded default in this process, migrated, with the sample roster and
    an employee at Ashgrove: (app, the employee's API headers)."""
    from flask_migrate import upgrade

    from helpdesk import create_app
    from helpdesk.extensions import db
    from helpdesk.roster import open_bundle
    from helpdesk.services.roster import import_roster
    from helpdesk.services.users import create_user, issue_api_token

    from .conftest import ROSTER

    app = create_app({"HELPDESK_INSTANCE": str(tmp_path_factory.mktemp("sqlite"))})
    with app.app_context():
        upgrade()
        import_roster(open_bundle(ROSTER), source="tests")
        create_user("m.baillie@ashgrove.sch.example", "employee", staff_sourced_id="stf-1")
        token = issue_api_token("m.baillie@ashgrove.sch.example", "tests")
        db.session.remove()
    return app, {"Authorization": f"Bearer {token}"}


def test_the_dashboard_counts_days_as_its_readers_live_them_on_sqlite(sqlite_app):
    """SQLite knows no time zones: the days are worked out apart, and must agree."""
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from helpdesk.extensions import db
    from helpdesk.models import Incident, parse_ref
    from helpdesk.services import reports

    app, headers = sqlite_app
    with app.app_context():
        filed = app.test_client().post("/api/v1/incidents", json=FIONA_RESET, headers=headers)
        assert filed.status_code == 201, filed.json
        # Resolved at 00:30 BST on 2 July, which is still 1 July in UTC.
        resolved = {
            "status": "resolved",
            "resolved_at": datetime(2026, 7, 1, 23, 30, tzinfo=UTC),
            "resolution_due_at": datetime(2026, 7, 2, 8, 0, tzinfo=UTC),
        }
        incident_id = parse_ref(filed.json["ref"])
        db.session.execute(sa.update(Incident).where(Incident.id == incident_id).values(resolved))
        db.session.commit()
        figures = reports.dashboard(now=datetime(2026, 7, 5, 12, 0, tzinfo=UTC))
        db.session.remove()
    by_day = {day: (in_time, resolved) for day, in_time, resolved in figures.compliance_by_day}
    assert (by_day["01 Jul"], by_day["02 Jul"]) == ((0, 0), (1, 1))


def test_finding_incidents_by_what_was_typed_on_sqlite(sqlite_app):
    """The typed names and numbers are read out of the JSON details by SQLite's functions."""
    app, headers = sqlite_app
    client = app.test_client()
    with app.app_context():
        ref = client.post("/api/v1/incidents", json=ISLA_RESET, headers=headers).json["ref"]

        def found(q):
            answer = client.get("/api/v1/incidents", query_string={"q": q}, headers=headers)
            return {item["ref"] for item in answer.json["items"]}

        assert ref in found("isla campbell") and ref in found("ash240891")
        accented = {**ISLA_RESET, "student_name": "Ísla Campbell", **AGAIN}
        other = client.post("/api/v1/incidents", json=accented, headers=headers).json["ref"]
        assert found("ísla") == {other}  # SQLite's own lower() folds ASCII only
        assert found("nobody by this name") == set()


def test_a_parent_recovers_their_username_on_the_embedded_default(demo):
    """The public self-service page on SQLite with the in-process queue: the username
    lands in the captured mailbox, addressed to the email on file."""
    import email
    import email.policy

    base, _, instance, _ = demo
    session = requests.Session()
    page = session.get(f"{base}/recover/username", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    typed = {"email": "FIONA.campbell@mail.example", "postcode": "EH1 1YZ",
             "child_birth_date-day": "12", "child_birth_date-month": "4",
             "child_birth_date-year": "2017", "csrf_token": token}  # fmt: skip
    answer = session.post(f"{base}/recover/username", data=typed, timeout=10)
    assert answer.ok and "Check your email" in answer.text
    deadline = time.monotonic() + 30
    while True:
        mails = [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                 for path in sorted((instance / "mail").glob("*.eml"))]  # fmt: skip
        reminders = [m for m in mails if m["Subject"] == "Your portal username"]
        if reminders:
            break
        assert time.monotonic() < deadline, (instance / "server.log").read_text()[-4000:]
        time.sleep(0.3)
    assert [m["To"] for m in reminders] == ["fiona.campbell@mail.example"]
    assert "fiona.campbell1" in reminders[0].get_body(("plain",)).get_content()
