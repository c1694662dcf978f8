"""One filing path on every database: each incident type filed on PostgreSQL and on the
embedded SQLite writes the same rows — the incident, its timeline, its notifications,
its fulfilment and the outbox promises."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from helpdesk import create_app
from helpdesk.extensions import db
from helpdesk.models import Fulfilment, Incident, IncidentEvent, Notification, OutboxEntry
from helpdesk.roster import open_bundle
from helpdesk.services.roster import import_roster
from helpdesk.services.users import create_user, issue_api_token

from .conftest import ROSTER
from .samples import HAPPY

pytestmark = pytest.mark.embedded

_INCIDENT = ("type", "status", "priority", "summary", "notes", "details", "verification",
             "verification_results", "tags", "rule_set_version", "sla_paused_seconds")  # fmt: skip


def written(incident_id: int) -> dict[str, Any]:
    """What a filing wrote, without ids and clocks (they differ by database and moment)."""
    incident = db.session.get(Incident, incident_id)
    assert incident is not None
    events = db.session.execute(
        sa.select(IncidentEvent).where(IncidentEvent.incident_id == incident_id)
        .order_by(IncidentEvent.id)
    ).scalars()  # fmt: skip
    notes = db.session.execute(
        sa.select(Notification).where(Notification.incident_id == incident_id)
        .order_by(Notification.id)
    ).scalars()  # fmt: skip
    work = list(db.session.execute(
        sa.select(Fulfilment).where(Fulfilment.incident_id == incident_id)).scalars())  # fmt: skip
    promised = db.session.execute(
        sa.select(OutboxEntry.job, OutboxEntry.queue, OutboxEntry.state).where(
            sa.or_(
                sa.and_(OutboxEntry.job == "deliver_email",
                        OutboxEntry.target_id.in_([n.id for n in db.session.execute(
                            sa.select(Notification).where(
                                Notification.incident_id == incident_id)).scalars()])),
                OutboxEntry.target_id.in_([f.id for f in work]) & (
                    OutboxEntry.job != "deliver_email"),
            )
        ).order_by(OutboxEntry.id)
    ).all()  # fmt: skip
    return {
        "incident": {name: getattr(incident, name) for name in _INCIDENT}
        | {"queue": incident.queue_slug, "school": incident.school_code,
           "filer": incident.filer_email, "has_deadlines": incident.resolution_due_at is not None},
        "events": [(e.kind, e.from_status, e.to_status, e.message, e.actor_id is not None,
                    e.data) for e in events],
        "notifications": [(n.template, n.audience, n.context, n.state) for n in notes],
        "fulfilments": [(f.kind, f.state, f.mode, f.portal_account_id is not None) for f in work],
        "outbox": [tuple(row) for row in promised],
    }  # fmt: skip


@pytest.fixture(scope="module")
def sqlite_app(tmp_path_factory) -> Iterator[tuple[Flask, str]]:
    app = create_app({"HELPDESK_INSTANCE": str(tmp_path_factory.mktemp("embedded"))})
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        import_roster(open_bundle(ROSTER), source="tests")
        create_user("m.baillie@ashgrove.sch.example", "employee", staff_sourced_id="stf-1")
        token = issue_api_token("m.baillie@ashgrove.sch.example", "tests")
        db.session.remove()
    yield app, token
    with app.app_context():
        db.engine.dispose()


@pytest.mark.parametrize("kind", sorted(HAPPY))
def test_each_type_writes_the_same_rows_on_postgresql_and_sqlite(app, actors, sqlite_app, kind):
    body = {**HAPPY[kind][0], "summary": "portable", "notes": "the same on both"}
    on_postgres = app.test_client().post("/api/v1/incidents", json=body,
                                         headers=actors.ashgrove.headers)  # fmt: skip
    assert on_postgres.status_code == 201, on_postgres.json
    postgres = written(int(on_postgres.json["ref"][4:]))
    lite, token = sqlite_app
    with lite.app_context():
        bearer = {"Authorization": f"Bearer {token}"}
        on_sqlite = lite.test_client().post("/api/v1/incidents", json=body, headers=bearer)
        assert on_sqlite.status_code == 201, on_sqlite.json
        sqlite = written(int(on_sqlite.json["ref"][4:]))
        db.session.remove()
    assert sqlite == postgres
    assert postgres["events"][0][0] == "filed" and postgres["events"][1][0] == "routed"
