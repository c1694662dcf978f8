"""Shared by the benchmarks: a throw-away PostgreSQL database and a migrated app on it."""

from __future__ import annotations

import email
import email.policy
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import sqlalchemy as sa

PG_SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
OUT = Path(__file__).parent / "out"
ROSTER = Path(__file__).resolve().parent.parent / "tests" / "data" / "roster"


@contextmanager
def scratch_database() -> Iterator[str]:
    """Create an empty database, yield its URL, drop it afterwards."""
    name = f"helpdesk_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def bench_environ(database_url: str, mail_port: int | None = None) -> dict[str, str]:
    """The app's settings on ``database_url``; sending by SMTP to 127.0.0.1:``mail_port``
    when given (the benchmarks' own aiosmtpd server)."""
    OUT.mkdir(exist_ok=True)
    mail = {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(mail_port), "MAIL_TIMEOUT": "5"}
    return (mail if mail_port else {}) | {
        "HELPDESK_ENV": "production",
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": "bench-secret-key-not-for-production",
        "PIN_PEPPER": "bench-pepper",
        "HELPDESK_INSTANCE": str(OUT / "instance"),
        "LOG_LEVEL": "WARNING",
    }


def on_accept(mailbox: Any, seen: Callable[[EmailMessage], None]) -> None:
    """Call ``seen`` with each message the benchmark's SMTP server accepts, as it does."""
    original = mailbox.handle_DATA

    async def accepted(server: Any, session: Any, envelope: Any) -> str:
        answer: str = await original(server, session, envelope)
        seen(email.message_from_bytes(envelope.content, policy=email.policy.default))  # type: ignore[arg-type]
        return answer

    mailbox.handle_DATA = accepted


def migrate(database_url: str) -> None:
    from flask_migrate import upgrade

    from helpdesk import create_app

    app = create_app(bench_environ(database_url))
    with app.app_context():
        upgrade()
        from helpdesk.extensions import db

        db.engine.dispose()


def seed(
    environ: dict[str, str], roster: Path = ROSTER,
    employee: str = "m.baillie@ashgrove.sch.example", staff_sourced_id: str = "stf-1",
) -> str:  # fmt: skip
    """Load a roster (the sample's by default) and an employee on one of its staff records;
    return the employee's token."""
    from helpdesk import create_app
    from helpdesk.extensions import db
    from helpdesk.roster import open_bundle
    from helpdesk.services.roster import import_roster
    from helpdesk.services.users import create_user, issue_api_token

    app = create_app(environ)
    with app.app_context():
        import_roster(open_bundle(roster), source="bench")
        create_user(employee, "employee", staff_sourced_id=staff_sourced_id)
        token = issue_api_token(employee, "bench")
        db.engine.dispose()
    return token
