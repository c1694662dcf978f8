"""Fixtures: a real PostgreSQL database built by the migrations, real Redis, the sample roster.

The database is created fresh for each run and migrated once; each test then runs
inside a transaction that is rolled back, so services may commit freely.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from flask import Flask, g
from flask.testing import FlaskClient
from flask_migrate import upgrade

from helpdesk import create_app
from helpdesk.app_state import forget_caches
from helpdesk.extensions import db
from helpdesk.roster import open_bundle
from helpdesk.services.queues import add_member
from helpdesk.services.roster import import_roster
from helpdesk.services.users import create_user, issue_api_token

ROSTER = Path(__file__).parent / "data" / "roster"
PG_SERVER = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PEPPER = "test-pepper-not-secret"


def _admin_engine() -> sa.Engine:
    return sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for this run, dropped afterwards."""
    name = f"helpdesk_test_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_SERVER}: start it (see README, 'Tests') "
            f"or set TEST_POSTGRES_URL. ({exc.orig})",
            pytrace=False,
        )
    yield f"{PG_SERVER}/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def environ_for(database_url: str, instance: Path) -> dict[str, str]:
    """The environment of an app on ``database_url`` with real Redis."""
    return {
        "HELPDESK_ENV": "testing",
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": "test-secret-key",
        "PIN_PEPPER": PEPPER,
        "HELPDESK_INSTANCE": str(instance),
        # Many tests sign in from one address; the lockout per account still applies.
        "SIGN_IN_RATE_LIMIT": "10000 per minute",
    }


@dataclass
class Actor:
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Actors:
    ashgrove: Actor  # office administrator at Ashgrove Primary (stf-1)
    ashgrove_teacher: Actor  # teacher at Ashgrove (stf-2)
    millbrook: Actor  # Millbrook Academy (stf-3)
    kelvinside: Actor  # Kelvinside High (stf-4)
    agent: Actor
    identity: Actor
    admin: Actor


def _seed_actors() -> Actors:
    people = {
        "ashgrove": ("m.baillie@ashgrove.sch.example", "employee", "stf-1"),
        "ashgrove_teacher": ("i.docherty@ashgrove.sch.example", "employee", "stf-2"),
        "millbrook": ("h.price@millbrook.sch.example", "employee", "stf-3"),
        "kelvinside": ("r.menon@kelvinside.sch.example", "employee", "stf-4"),
        "agent": ("agent@its.example", "agent", None),
        "identity": ("identity@its.example", "agent", None),
        "admin": ("admin@its.example", "admin", None),
    }
    actors = {}
    for key, (email, role, staff) in people.items():
        create_user(email, role, staff_sourced_id=staff)
        actors[key] = Actor(email, issue_api_token(email, "tests"))
    # The service-desk agent works the desk, student systems and the school offices; the
    # identity agent works identity. Admins see every queue.
    for slug in (
        "its-service-desk",
        "its-student-systems",
        "school-office-5231234",
        "school-office-8864021",
        "school-office-5249876",
    ):
        add_member(slug, people["agent"][0])
    add_member("its-identity", people["identity"][0])
    return Actors(**actors)


@pytest.fixture(scope="session")
def seeded_app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """The app on the migrated test database, with the sample roster and users committed."""
    instance = tmp_path_factory.mktemp("instance")
    app = create_app(environ_for(database_url, instance))

    @app.before_request
    def _fresh_csrf_token() -> None:
        # Tests send requests inside one long app context (see ``app``), so ``g`` outlives
        # a request, which it never does when served; Flask-WTF caches the form token there.
        g.pop("csrf_token", None)

    with app.app_context():
        upgrade()
        import_roster(open_bundle(ROSTER), source="tests")
        app.extensions["test_actors"] = _seed_actors()
        db.session.remove()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _fresh_limits() -> None:
    """Each test starts with no failed record checks or sign-ins counted (they live in the
    test Redis database, which outlives a rolled-back test)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [
            *client.scan_iter("LIMITS*", count=1000),
            *client.scan_iter("helpdesk:verify:*", count=1000),
        ]
        if keys:
            client.delete(*keys)
    except redis.exceptions.ConnectionError:
        pass  # the tests that need Redis fail on their own, saying so
    finally:
        client.close()


@pytest.fixture
def app(seeded_app: Flask) -> Iterator[Flask]:
    """The app inside a transaction that is rolled back after the test."""
    # Rolled-back rule sets and plans must not outlive their test in the app's caches.
    forget_caches(seeded_app)
    with seeded_app.app_context():
        engines = db.engines
        engine = engines[None]
        connection = engine.connect()
        transaction = connection.begin()
        engines[None] = connection  # type: ignore[assignment]
        try:
            yield seeded_app
        finally:
            db.session.remove()
            transaction.rollback()
            connection.close()
            engines[None] = engine
            forget_caches(seeded_app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def actors(seeded_app: Flask) -> Actors:
    actors: Actors = seeded_app.extensions["test_actors"]
    return actors


@contextmanager
def app_on_fresh_database(
    tmp_path_factory: pytest.TempPathFactory, **environ: str
) -> Iterator[tuple[Flask, str, Actors]]:
    """An app on a database of its own, migrated and seeded, where every commit is real."""
    name = f"helpdesk_test_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = f"{PG_SERVER}/{name}"
    app = create_app(environ_for(url, tmp_path_factory.mktemp("instance")) | environ)
    try:
        with app.app_context():
            upgrade()
            import_roster(open_bundle(ROSTER), source="tests")
            actors = _seed_actors()
            db.session.remove()
        yield app, name, actors
    finally:
        with app.app_context():
            db.engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def committed_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, str, Actors]]:
    """An app on a database of its own where every commit is real (faults, workers)."""
    with app_on_fresh_database(tmp_path_factory) as made:
        yield made


def terminate_connections(database: str) -> int:
    """Kill every server process serving ``database``, as a database restart would."""
    admin = _admin_engine()
    with admin.connect() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": database},
        ).scalar_one()
    admin.dispose()
    return int(killed)


def _descendants(pid: int) -> dict[int, str]:
    """Every live process below ``pid`` (zombies, already ended, left out), with its
    command line."""
    found: dict[int, str] = {}
    stack = [pid]
    while stack:
        parent = stack.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                try:
                    state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
                    command = Path(f"/proc/{child}/cmdline").read_bytes()
                except OSError:
                    continue
                if state != "Z":
                    found[child] = command.replace(b"\0", b" ").decode(errors="replace")
                stack.append(child)
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The suite leaves nothing running: every server, worker and browser it started has
    ended by now (their fixtures stopped them); one still running fails the run."""
    import time

    if not Path("/proc/self/task").exists():
        return  # not Linux: nothing to read the process tree from
    deadline = time.monotonic() + 15
    while (left := _descendants(os.getpid())) and time.monotonic() < deadline:
        time.sleep(0.5)
    if left:
        listed = "\n".join(f"  {pid}: {command[:200]}" for pid, command in left.items())
        print(f"\nThe suite left processes it started running:\n{listed}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
