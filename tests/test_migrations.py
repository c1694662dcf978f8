"""The migrations build the schema from empty and match the models exactly."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade

from helpdesk import create_app
from helpdesk.extensions import db

# PostgreSQL only, on an expression with an operator class (pg_trgm), so not declared on
# the model; test_a_search_reads_the_trigram_index proves it exists and is the one used.
MIGRATION_ONLY = {"ix_incidents_search"}


def _declared(obj, name, type_, reflected, compare_to) -> bool:
    return not (type_ == "index" and name in MIGRATION_ONLY)


def drift(app) -> list:
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": _declared}
        )
        return compare_metadata(context, db.metadata)


def test_postgresql_schema_matches_the_models(seeded_app):
    assert drift(seeded_app) == []


@pytest.mark.embedded
def test_sqlite_schema_builds_from_empty_and_matches_the_models(tmp_path):
    app = create_app({"HELPDESK_INSTANCE": str(tmp_path)})
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    with app.app_context():
        upgrade()
    assert drift(app) == []
    with app.app_context():
        db.engine.dispose()


def test_a_search_reads_the_trigram_index(app):
    """A search for a rare word is answered from migration 0011's index, not by reading
    every incident: the query spells the index's expression exactly."""
    import sqlalchemy as sa

    from helpdesk.models import Incident
    from helpdesk.services.incidents import text_matches

    db.session.execute(sa.text("SET LOCAL enable_seqscan = off"))  # a tiny table: force the choice
    query = sa.select(Incident.id).where(text_matches("Zebedee"))
    compiled = query.compile(db.engine, compile_kwargs={"literal_binds": True})
    plan = "\n".join(db.session.execute(sa.text(f"EXPLAIN {compiled}")).scalars())
    assert "ix_incidents_search" in plan, plan


FIRST_REVISION = "e5e9e4f878de"  # 0001_initial_schema


def _a_value(column: sa.Column, now: Any) -> Any:
    """A value of the column's type, for a row written at the first schema."""
    kind = column.type
    if isinstance(kind, sa.JSON):
        return {"kept": True}
    if isinstance(kind, sa.Boolean):
        return False
    if isinstance(kind, sa.Integer):
        return 1
    if isinstance(kind, sa.DateTime):
        return now
    if isinstance(kind, sa.Date):
        return now.date()
    return f"kept-{column.name}"[: getattr(kind, "length", None) or 64]


def test_a_database_holding_data_upgrades_from_the_first_migration_and_keeps_it(tmp_path):
    """A row in every table of 0001's schema, then `db upgrade` to head: every row is
    still there with what it held, and the models read them."""
    from datetime import UTC, datetime

    from .conftest import PG_SERVER, _admin_engine, environ_for

    name = f"helpdesk_upgrade_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    app = create_app(environ_for(f"{PG_SERVER}/{name}", tmp_path))
    now = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
    try:
        with app.app_context():
            upgrade(revision=FIRST_REVISION)
            old = sa.MetaData()
            old.reflect(db.engine)
            written: dict[str, dict[str, Any]] = {}
            with db.engine.begin() as conn:
                for table in old.sorted_tables:
                    if table.name == "alembic_version":
                        continue
                    row = {
                        c.name: _a_value(c, now)
                        for c in table.columns
                        if c.foreign_keys or (not c.primary_key and not c.nullable)
                    }
                    if table.name == "portal_accounts":
                        row["guardian_id"] = None  # one owner: the student
                    row = {k: (1 if table.columns[k].foreign_keys and v is not None else v)
                           for k, v in row.items()}  # fmt: skip
                    conn.execute(table.insert().values(**row))
                    written[table.name] = row
            upgrade()  # to head
            new = sa.MetaData()
            new.reflect(db.engine)
            with db.engine.connect() as conn:
                for table_name, row in written.items():
                    stored = conn.execute(sa.select(new.tables[table_name])).mappings().all()
                    # Later migrations may add rows of their own (the ITS queues): ours
                    # is still there, as written.
                    kept = [r for r in stored if all(r[k] == v for k, v in row.items())]
                    assert len(kept) == 1, (table_name, row, stored)
            from helpdesk.models import Incident

            incident = db.session.get(Incident, 1)
            assert incident is not None and incident.ref == "INC-000001"
            assert incident.details == {"kept": True}
            db.session.remove()
            db.engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_a_dump_restored_into_a_fresh_database_is_served(tmp_path_factory, tmp_path):
    """docs/operations.md's backup and restore: pg_dump's custom format, pg_restore into
    an empty database, and the service answers from it with what was filed."""
    import shutil
    import subprocess

    from .conftest import PG_SERVER, _admin_engine, app_on_fresh_database, environ_for
    from .samples import ISLA_RESET, file

    if shutil.which("pg_dump") is None:
        pytest.fail("pg_dump is missing: Debian: apt-get install postgresql-client")
    plain = PG_SERVER.replace("+psycopg", "")
    dump = tmp_path / "helpdesk.dump"
    with app_on_fresh_database(tmp_path_factory) as (app, name, actors):
        ref = file(app.test_client(), actors.ashgrove, **ISLA_RESET).json["ref"]
        with app.app_context():
            db.engine.dispose()
        subprocess.run(["pg_dump", "--format=custom", f"--file={dump}", f"{plain}/{name}"],
                       check=True, timeout=120)  # fmt: skip
    restored = f"helpdesk_restored_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{restored}"'))
    try:
        subprocess.run(["pg_restore", "--no-owner", f"--dbname={plain}/{restored}", str(dump)],
                       check=True, timeout=120)  # fmt: skip
        app = create_app(environ_for(f"{PG_SERVER}/{restored}", tmp_path))
        with app.app_context():
            upgrade()  # a no-op: the dump is of the current schema
        answer = app.test_client().get(f"/api/v1/incidents/{ref}", headers=actors.ashgrove.headers)
        assert answer.status_code == 200, answer.json
        assert answer.json["ref"] == ref and "ASH240891" in str(answer.json)
        assert app.test_client().get("/healthz").status_code == 200
        with app.app_context():
            db.engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)'))
        admin.dispose()
