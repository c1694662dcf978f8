"""The migrations build the schema from empty and match the models exactly."""

from __future__ import annotations

import pytest
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
