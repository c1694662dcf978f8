"""Processes ride out outages: a real `helpdesk worker` and `helpdesk scheduler` keep
running while their own private Redis and PostgreSQL are killed and started again, and
carry on with the work once they are back. The machine's shared servers are not touched."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask_migrate import upgrade

from helpdesk import create_app
from helpdesk.extensions import db
from helpdesk.ops import live_workers
from helpdesk.roster import open_bundle
from helpdesk.scheduler import LEASE_KEY
from helpdesk.services.roster import import_roster

from .conftest import ROSTER, Actors, _seed_actors, environ_for
from .samples import ISLA_RESET
from .servers import PostgresServer, RedisServer
from .smtp import SmtpServer

FILER = "m.baillie@ashgrove.sch.example"


@dataclass
class Private:
    """A deployment of its own: PostgreSQL, Redis and SMTP that only these tests use."""

    postgres: PostgresServer
    redis: RedisServer
    smtp: SmtpServer
    app: Flask
    actors: Actors
    env: dict[str, str]
    logs: Path

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{args[0]}.log").open("wb")  # each test's processes afresh
        return subprocess.Popen([sys.executable, "-m", "helpdesk.cli", *args], env=self.env,
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def file_reset(self) -> str:
        for _ in range(3):  # after a database restart: 503 "send it again", as documented
            response = self.app.test_client().post(
                "/api/v1/incidents", json=ISLA_RESET, headers=self.actors.ashgrove.headers
            )
            if response.status_code != 503:
                break
        assert response.status_code == 201, response.json
        return str(response.json["ref"])

    def reset_emails(self) -> int:
        return len([m for m in self.smtp.mailbox.to(FILER) if "password" in m.message["Subject"]])


def wait_for(what: str, check, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def private(tmp_path_factory) -> Iterator[Private]:
    folder = tmp_path_factory.mktemp("private")
    postgres = PostgresServer().start()
    redis_server = RedisServer().start()
    with SmtpServer() as smtp:
        engine = sa.create_engine(postgres.url(), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE helpdesk"))
        engine.dispose()
        env = environ_for(postgres.url("helpdesk"), folder) | {
            "REDIS_URL": redis_server.url, "RATELIMIT_STORAGE_URI": redis_server.url,
            "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(smtp.port), "MAIL_TIMEOUT": "2",
            "JOB_RETRY_INTERVALS": "1,1,1", "OUTBOX_RELAY_AFTER_SECONDS": "1",
        }  # fmt: skip
        app = create_app(env)
        with app.app_context():
            upgrade()
            import_roster(open_bundle(ROSTER), source="tests")
            actors = _seed_actors()
            db.session.remove()
        keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}}
        try:
            yield Private(postgres, redis_server, smtp, app, actors, keep | env, folder)
        finally:
            with app.app_context():
                db.engine.dispose()
            redis_server.stop()
            postgres.close()


@pytest.fixture
def processes(private) -> Iterator[tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]]:
    worker = private.spawn("worker")
    scheduler = private.spawn("scheduler", "--tick", "0.5")
    client = redis.Redis.from_url(private.redis.url)
    try:  # stopped however this ends, so no later test meets them
        wait_for("the scheduler's lease", lambda: client.exists(LEASE_KEY))
        # A live worker, as /readyz counts them: an earlier test's stopped worker leaves
        # its key behind for a minute, marked with its death.
        wait_for("the worker", lambda: live_workers(client) > 0)
        client.close()
        yield worker, scheduler
    finally:
        for process in (worker, scheduler):
            process.send_signal(signal.SIGTERM)
        for process in (worker, scheduler):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_a_worker_and_a_scheduler_wait_for_redis_and_resume(private, processes):
    worker, scheduler = processes
    private.redis.stop()
    time.sleep(4)  # long enough for both to have tried and failed several times
    assert worker.poll() is None, private.log("worker")
    assert scheduler.poll() is None, private.log("scheduler")
    private.redis.start()  # a new, empty Redis on the same port
    client = redis.Redis.from_url(private.redis.url)
    wait_for("the scheduler to take its lease again", lambda: client.exists(LEASE_KEY))
    before = private.reset_emails()
    private.file_reset()
    wait_for("the reset email", lambda: private.reset_emails() == before + 1, 90)
    client.close()
    # One line for the outage in the scheduler's log, not one a tick.
    assert private.log("scheduler").count("lost Redis") == 1
    assert private.log("worker").count("could not connect to Redis") <= 1


def test_a_worker_and_a_scheduler_outlive_a_postgresql_restart(private, processes):
    worker, scheduler = processes
    private.postgres.stop()
    # The scheduler relays the outbox every 30 s: wait until it has met the outage.
    wait_for("the scheduler to meet the outage", lambda: "lost the database"
             in private.log("scheduler"), 45)  # fmt: skip
    assert scheduler.poll() is None, private.log("scheduler")
    assert worker.poll() is None, private.log("worker")
    private.postgres.start()
    wait_for("the scheduler to reconnect", lambda: "reconnected" in private.log("scheduler"), 45)
    before = private.reset_emails()
    private.file_reset()
    # The worker's pooled connection died with the server: at worst its first job fails,
    # and the retry (or the relay) delivers it.
    wait_for("the reset email", lambda: private.reset_emails() == before + 1, 90)
    assert worker.poll() is None and scheduler.poll() is None


def _gauge(text: str, name: str) -> float:
    import re

    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def test_readiness_and_metrics_say_when_no_scheduler_or_worker_runs(private):
    client = private.app.test_client()
    answer = client.get("/readyz")
    assert answer.status_code == 200  # the web itself can serve
    assert {"scheduler", "workers"} <= set(answer.json["degraded"])
    assert answer.json["background"]["mail"] == "ok"
    metrics = client.get("/metrics").text
    assert _gauge(metrics, "helpdesk_scheduler_up") == 0
    assert _gauge(metrics, "helpdesk_workers_up") == 0
    assert _gauge(metrics, "helpdesk_mail_up") == 1


def test_readiness_and_metrics_say_so_when_they_run(private, processes):
    client = private.app.test_client()
    answer = client.get("/readyz")
    assert answer.status_code == 200 and answer.json["degraded"] == []
    metrics = client.get("/metrics").text
    assert _gauge(metrics, "helpdesk_scheduler_up") == 1
    assert _gauge(metrics, "helpdesk_workers_up") == 1


def test_readiness_says_when_the_mail_server_cannot_be_reached(committed_app, tmp_path):
    from .conftest import PG_SERVER
    from .smtp import free_port

    _, database, _ = committed_app
    app = create_app(environ_for(f"{PG_SERVER}/{database}", tmp_path)
                     | {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(free_port())})  # fmt: skip
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 200
    assert "mail" in answer.json["degraded"]
    assert answer.json["background"]["mail"].startswith("unreachable")
    assert _gauge(app.test_client().get("/metrics").text, "helpdesk_mail_up") == 0
    with app.app_context():
        db.engine.dispose()


def test_signing_in_works_while_redis_is_away(private, tmp_path):
    from helpdesk.extensions import limiter

    from .test_pages import post_sign_in, set_password

    # Flask-Limiter keeps one storage per process, the last app's: this app's is the
    # private Redis, so the sign-in limit really counts there until it goes away.
    app = create_app(private.env)
    assert app.config["RATELIMIT_STORAGE_URI"] == private.redis.url
    with app.app_context():
        set_password(private.actors.agent.email)
        db.session.remove()
    private.redis.stop()
    try:
        browser = app.test_client()
        answer = post_sign_in(browser, private.actors.agent.email)
        assert answer.status_code == 302, answer.text
        assert browser.get("/queue").status_code == 200
    finally:
        private.redis.start()
        with app.app_context():
            limiter.reset()
            db.engine.dispose()
        create_app(private.env | {"RATELIMIT_STORAGE_URI": "memory://"})


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def test_a_killed_worker_leaves_no_child_behind(private):
    """RQ's scheduler runs in a child of the worker; an out-of-memory kill (SIGKILL) of the
    worker must not leave it running."""
    worker = private.spawn("worker")
    try:
        wait_for("the worker's scheduler child", lambda: _children(worker.pid), 30)
        (child,) = _children(worker.pid)
        worker.kill()
        worker.wait(timeout=10)
        wait_for("the orphaned child to end", lambda: not Path(f"/proc/{child}").exists()
                 or "State:\tZ" in Path(f"/proc/{child}/status").read_text(), 15)  # fmt: skip
    finally:
        if worker.poll() is None:
            worker.kill()


def test_an_outage_is_logged_once_whatever_is_logged_between_its_retries():
    """The worker's loop and its listener thread both report each retry; a line of the
    other thread's between two retries does not make the next one news."""
    from workers.worker import _OncePerOutage

    once = _OncePerOutage()

    def shown(message: str, at: float) -> bool:
        record = logging.LogRecord("rq.worker", logging.ERROR, __file__, 1, message, None, None)
        record.created = at
        return once.filter(record)

    lost = "Worker w: could not connect to Redis instance: refused retrying in 2 seconds..."
    assert shown(lost, 0.0)
    assert shown("Worker w: pubsub thread exiting on TimeoutError", 1.0)
    assert not shown(lost, 2.0) and not shown(lost, 4.0)
    assert shown(lost, 4.0 + _OncePerOutage.QUIET_SECONDS + 1)  # a new outage, minutes later
