"""Data kept only as long as needed: an ended incident's typed details are purged after its
retention period, on real PostgreSQL, leaving the audit skeleton (UK GDPR Art. 5(1)(c, e))."""

# ruff: noqa: F811 - the tests take the fulfilment tests' fixtures, imported by name
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from helpdesk.extensions import db
from helpdesk.models import parse_ref, utcnow
from helpdesk.scheduler import run_due
from helpdesk.services import retention
from helpdesk.services.transitions import close_quiet_resolved

from .samples import FIONA_RESET, LINK_FAILURE
from .test_fulfilment import Desk, desk, smtp, stack  # noqa: F401 - the fixtures

# Typed by the employee, found nowhere else: a misspelt name, a postcode, a comment.
TYPED = {**LINK_FAILURE, "parent_family_name": "Campbel-Quorrie", "parent_postcode": "ZE2 9QQ",
         "summary": "Mrs Campbel-Quorrie cannot link Isla",
         "notes": "Rang from 0131 496 0777"}  # fmt: skip
COMMENT = "Spoke to her at the gate; she spells it Quorrie"
# What the first test looks for; the other tests type other words.
TRACES = ("Quorrie", "ZE2 9QQ", "0131 496 0777", "she spells it")
OTHER = {**TYPED, "parent_family_name": "Campbel-Ystrad", "summary": "Ystrad", "notes": "Ystrad"}


def _rejected(desk: Desk, body: dict[str, Any] = OTHER) -> str:
    ref = desk.file(body)["ref"]
    comment = COMMENT if body is TYPED else "A comment"
    assert desk.act(desk.actors.agent, ref, "comment", message=comment).status_code == 200
    ended = desk.act(desk.actors.agent, ref, "reject", message=f"Not on file: {comment}")
    assert ended.status_code == 200, ended.json
    return ref


def _purge_in(desk: Desk, days: float) -> list[str]:
    """Purge as the scheduler would, ``days`` from now."""
    with desk.app.app_context():
        refs = retention.purge(now=utcnow() + timedelta(days=days))
        db.session.remove()
    return refs


@contextlib.contextmanager
def _retention(desk: Desk, value: str) -> Iterator[None]:
    from helpdesk.config import SETTINGS

    (setting,) = [s for s in SETTINGS if s.name == "RETENTION_DAYS"]
    default = desk.app.config["RETENTION_DAYS"]
    desk.app.config["RETENTION_DAYS"] = setting.read({"RETENTION_DAYS": value})
    try:
        yield
    finally:
        desk.app.config["RETENTION_DAYS"] = default


def _tables_holding(desk: Desk, text: str) -> list[str]:
    """Every table with a row whose text contains ``text`` (a scan of the database)."""
    with desk.app.app_context():
        found = [table.name for table in db.metadata.sorted_tables
                 if text in repr(db.session.execute(sa.select(table)).all())]  # fmt: skip
        db.session.remove()
    return found


def _cli(desk: Desk, *args: str) -> Any:
    with desk.app.app_context():
        result = desk.app.test_cli_runner().invoke(args=["data", *args])
        db.session.remove()
    return result


def test_after_the_retention_period_typed_details_are_gone_and_the_skeleton_stays(desk):
    ref = _rejected(desk, TYPED)
    assert _tables_holding(desk, "Quorrie") == ["incidents", "incident_events"]
    before = [(e["kind"], e["actor"], e["from_status"], e["to_status"]) for e in desk.events(ref)]
    assert "0 incident(s) would be purged." in _cli(desk, "purge", "--dry-run").output

    with _retention(desk, "0"):  # due at once
        dry = _cli(desk, "purge", "--dry-run")
        assert dry.exit_code == 0, dry.output
        assert f"{ref}  portal_link_failure  ended" in dry.output
        assert "1 incident(s) would be purged." in dry.output
        assert _tables_holding(desk, "Quorrie") == ["incidents", "incident_events"]  # as was
        done = _cli(desk, "purge")
    assert done.exit_code == 0, done.output
    assert f"1 incident(s) purged: {ref}" in done.output
    for trace in TRACES:
        assert _tables_holding(desk, trace) == [], trace
    incident = desk.get(ref)
    assert incident["summary"] is None and incident["notes"] is None
    assert incident["verification"]["outcome"] == "failed"  # the outcome stays
    assert incident["status"] == "rejected" and incident["filer"] == desk.actors.ashgrove.email
    events = desk.events(ref)
    after = [(e["kind"], e["actor"], e["from_status"], e["to_status"]) for e in events]
    assert after[:-1] == before  # who, when, which transitions: all kept
    assert after[-1] == ("purged", "system", "rejected", "rejected")
    assert events[-1]["message"] == ("what was typed about people was removed, 0 days after "
                                     "the incident ended")  # fmt: skip
    found = desk.client.get("/api/v1/incidents", query_string={"q": "Quorrie"},
                            headers=desk.actors.agent.headers)  # fmt: skip
    assert found.json["items"] == []  # the search forgets the words too
    assert ref not in _purge_in(desk, 400)  # once


def test_an_incident_within_its_period_or_still_open_keeps_its_details(desk):
    recent = _rejected(desk)
    still_open = desk.file(OTHER)["ref"]
    assert recent not in _purge_in(desk, 29.9)
    assert desk.get(recent)["summary"] == OTHER["summary"]
    purged = _purge_in(desk, 400)
    assert recent in purged and still_open not in purged  # the open one, never
    assert desk.get(still_open)["notes"] == OTHER["notes"]


def test_a_revocation_keeps_its_reason_category_not_its_words(desk):
    body = {"type": "access_revocation", "guardian_id": "par-5-0", "reason": "court_order",
            "notes": "Order 77/P from the sheriff court"}  # fmt: skip
    ref = desk.file(body)["ref"]
    desk.work()
    assert desk.get(ref)["status"] == "resolved"
    with desk.app.app_context():
        close_quiet_resolved(now=utcnow() + timedelta(days=8))
        db.session.remove()
    assert desk.get(ref)["status"] == "closed"
    assert ref not in _purge_in(desk, 30)  # it ended 8 days from now: not yet
    assert ref in _purge_in(desk, 39)
    incident = desk.get(ref)
    assert incident["details"]["reason"] == "court_order"
    assert incident["notes"] is None
    assert _tables_holding(desk, "Order 77/P") == []


@pytest.mark.parametrize("period", ["0", "60; portal_link_failure=0"])
def test_the_period_is_a_setting_per_type_and_the_scheduler_purges(desk, period):
    ref = _rejected(desk)
    other = _rejected(desk, {**FIONA_RESET, "summary": "Ystrad again"})
    with _retention(desk, period), desk.app.app_context():
        ran = dict(run_due({}, 0.0))
        db.session.remove()
    assert ref in ran["retention-purge"]
    assert (other in ran["retention-purge"]) is (";" not in period)  # 60 days for its type
    assert desk.get(ref)["summary"] is None


def test_the_trail_may_forget_words_but_never_who_when_or_what(desk):
    ref = _rejected(desk)
    incident_id = parse_ref(ref)
    changes = {
        "message = 'edited'": "append-only",
        "at = at - interval '1 day', message = NULL, data = '{}'": "append-only",
        "kind = 'resolve', message = NULL, data = '{}'": "append-only",
    }
    with desk.app.app_context():
        for change, refusal in changes.items():
            with pytest.raises(sa.exc.DBAPIError, match=refusal):
                update = f"UPDATE incident_events SET {change} WHERE incident_id = :id"
                db.session.execute(sa.text(update), {"id": incident_id})
            db.session.rollback()
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            db.session.execute(sa.text("DELETE FROM incident_events WHERE incident_id = :id"),
                               {"id": incident_id})  # fmt: skip
        db.session.rollback()
        db.session.remove()
