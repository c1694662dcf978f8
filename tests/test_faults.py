"""Faults in the services around the app: nothing half-stored, and a clear answer."""

from __future__ import annotations

import sqlalchemy as sa

from helpdesk.extensions import db
from helpdesk.models import Incident

from .conftest import terminate_connections
from .samples import AGAIN, ISLA_RESET, file


def stored_incidents(app) -> int:
    with app.app_context():
        count = db.session.execute(sa.select(sa.func.count(Incident.id))).scalar_one()
        db.session.remove()
        return int(count)


def test_a_database_restart_costs_one_clear_503_and_loses_nothing(committed_app):
    app, database, actors = committed_app
    client = app.test_client()
    assert file(client, actors.ashgrove, **ISLA_RESET, **AGAIN).status_code == 201
    before = stored_incidents(app)
    assert terminate_connections(database) >= 1

    first = file(client, actors.ashgrove, **ISLA_RESET, **AGAIN)
    assert first.status_code == 503
    assert first.json["code"] == "database_unavailable"
    assert "nothing was stored" in first.json["message"]
    assert first.headers["Retry-After"] == "2"
    assert stored_incidents(app) == before

    again = file(client, actors.ashgrove, **ISLA_RESET, **AGAIN)
    assert again.status_code == 201, again.json
    assert stored_incidents(app) == before + 1


def test_a_missing_queue_stores_nothing_when_filing_commits_for_real(committed_app):
    from helpdesk.models import Queue

    app, _, actors = committed_app
    client = app.test_client()

    def set_active(active: bool) -> None:
        with app.app_context():
            db.session.execute(
                sa.update(Queue).where(Queue.slug == "its-student-systems").values(active=active)
            )
            db.session.commit()

    before = stored_incidents(app)
    set_active(False)
    try:
        response = file(client, actors.ashgrove, **ISLA_RESET, **AGAIN)
    finally:
        set_active(True)
    assert response.status_code == 422
    assert response.json["code"] == "unknown_queue"
    assert stored_incidents(app) == before
    with app.app_context():
        orphans = db.session.execute(sa.text(
            "SELECT count(*) FROM incident_events e LEFT JOIN incidents i "
            "ON i.id = e.incident_id WHERE i.id IS NULL"
        )).scalar_one()  # fmt: skip
        db.session.remove()
    assert orphans == 0
    assert file(client, actors.ashgrove, **ISLA_RESET, **AGAIN).status_code == 201
