"""Flask extensions, created unbound here and bound to an app in ``create_app``."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_mail import Mail
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names so that migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Objects stay usable after commit: views serialise what the service just wrote
# without a second round trip. "create_savepoint" only matters when the session is
# bound to a connection that is already in a transaction (the test suite does this).
db = SQLAlchemy(
    model_class=Base,
    session_options={"expire_on_commit": False, "join_transaction_mode": "create_savepoint"},
)
migrate = Migrate(compare_type=True, render_as_batch=True)
mail = Mail()
# Limits are declared on the views that need them (the public reset page); storage is
# RATELIMIT_STORAGE_URI: Redis in production, memory on the embedded default.
limiter = Limiter(key_func=get_remote_address, default_limits=[])
# Every form on the pages carries a CSRF token; the API (bearer tokens, no cookies) is exempt.
csrf = CSRFProtect()


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def serialise_sqlite_writes(engine: sa.Engine) -> None:
    """Make the embedded SQLite safe for the web thread and the worker thread at once.

    SQLite refuses, without waiting, a read transaction that later wants to write while
    another connection writes ("database is locked"). Taking the write lock when each
    transaction begins (BEGIN IMMEDIATE) makes the second writer wait its turn instead;
    WAL lets readers carry on meanwhile.
    """

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy, not the driver, begins
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.close()
        # SQLite's own lower() folds ASCII only; a search (ILIKE is lower() LIKE lower()
        # here) must find "Ísla" from "ísla" as PostgreSQL does.
        dbapi_connection.create_function("lower", 1, _lower, deterministic=True)

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
