"""The migrations build the schema from empty and match the models exactly."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade

from helpdesk import create_app
from helpdesk.extensions import db


def drift(app) -> list:
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
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
