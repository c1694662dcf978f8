"""A PIN typed into an incident is checked and forgotten: never stored, logged or returned."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from helpdesk.extensions import db

from .samples import FIONA_RESET, file

PINS = ["596853", "918273", "5968531"]


def database_text() -> str:
    tables = (
        db.session.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        .scalars()
        .all()
    )
    return "\n".join(
        row
        for table in tables
        for row in db.session.execute(
            sa.text(f'SELECT row_to_json(t)::text FROM "{table}" t')
        ).scalars()
    )


@pytest.fixture
def sql_logging(caplog):
    """Log every SQL statement with its parameters; set before the test's connection opens."""
    caplog.set_level(logging.DEBUG)
    engine_logger = logging.getLogger("sqlalchemy.engine")
    engine_logger.setLevel(logging.INFO)
    yield
    engine_logger.setLevel(logging.WARNING)


def test_no_pin_reaches_the_database_the_logs_or_a_response(
    sql_logging, client, actors, caplog, capfd
):
    bodies = [
        file(client, actors.ashgrove, **FIONA_RESET),  # right PIN
        file(client, actors.ashgrove, **{**FIONA_RESET, "parent_pin": PINS[1]}),  # wrong
        file(
            client, actors.ashgrove, **{**FIONA_RESET, "parent_pin": PINS[2], "contact_phone": "x"}
        ),  # 422
        file(
            client,
            actors.millbrook,
            type="parent_password_reset",  # no email: 422
            parent_name="Gareth Hughes",
            contact_phone="07700 900301",
            parent_pin="123646",
            parent_account_number="P500007",
            student_id="MIL367459",
        ),
    ]
    assert [b.status_code for b in bodies] == [201, 201, 422, 422]
    refs = [b.json["ref"] for b in bodies[:2]]
    bodies += [client.get(f"/api/v1/incidents/{r}", headers=actors.agent.headers) for r in refs]
    bodies += [
        client.get(f"/api/v1/incidents/{r}/events", headers=actors.agent.headers) for r in refs
    ]
    bodies.append(client.get("/api/v1/incidents", headers=actors.agent.headers))

    assert any("INSERT INTO incidents" in r.getMessage() for r in caplog.records), (
        "SQL logging was not captured, so this test would prove nothing"
    )
    logged = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    out, err = capfd.readouterr()
    stored = database_text()
    for pin in [*PINS, "123646"]:
        assert pin not in stored
        assert pin not in logged
        assert pin not in out + err
        for body in bodies:
            assert pin not in body.get_data(as_text=True)
    details = db.session.execute(sa.text("SELECT details::text FROM incidents")).scalars().all()
    assert details and all("parent_pin" not in d for d in details)
