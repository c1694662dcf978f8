"""Filing incidents of every type through the API, and what the filer sees back."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from helpdesk.extensions import db
from helpdesk.models import Incident, IncidentEvent

from .samples import FIONA_RESET, HAPPY, ISLA_RESET, file


def incident_count() -> int:
    return db.session.execute(sa.select(sa.func.count(Incident.id))).scalar_one()


@pytest.mark.parametrize("kind", HAPPY)
def test_each_type_is_filed_verified_and_placed_in_its_queue(client, actors, kind):
    body, queue, priority, status = HAPPY[kind]
    response = file(client, actors.ashgrove, **body)
    assert response.status_code == 201, response.json
    incident = response.json
    assert incident["ref"].startswith("INC-")
    assert incident["type"] == kind
    assert incident["status"] == status
    assert incident["queue"] == queue
    assert incident["priority"] == priority
    assert incident["school"] == "5231234"
    assert incident["filer"] == actors.ashgrove.email
    assert incident["verification"]["outcome"] == "passed", incident["verification"]
    assert all(r["result"] == "match" for r in incident["verification"]["fields"].values())
    fetched = client.get(f"/api/v1/incidents/{incident['ref']}", headers=actors.ashgrove.headers)
    assert fetched.status_code == 200
    assert fetched.json["verification"] == incident["verification"]


REQUIRED = {
    "student_password_reset": ("student_id", "student_name", "birth_month_year"),
    "parent_password_reset": (
        "parent_name",
        "contact_phone",
        "parent_pin",
        "parent_account_number",
        "student_id",
    ),
    "portal_link_failure": (
        "parent_given_name",
        "parent_family_name",
        "parent_postcode",
        "child_given_name",
        "child_family_name",
        "child_birth_date",
        "child_year_stage",
    ),
    "username_reminder": ("parent_name",),
    "access_revocation": ("reason",),
}


@pytest.mark.parametrize(
    ("kind", "missing"), [(k, f) for k, fields in REQUIRED.items() for f in fields]
)
def test_each_missing_required_field_is_named_and_nothing_is_stored(client, actors, kind, missing):
    body = {k: v for k, v in HAPPY[kind][0].items() if k != missing}
    before = incident_count()
    response = file(client, actors.ashgrove, **body)
    assert response.status_code == 422
    assert response.json["code"] == "validation_failed"
    assert response.json["errors"]["fields"][missing] == ["Missing data for required field."]
    assert missing in response.json["message"]
    assert incident_count() == before


@pytest.mark.parametrize(
    ("kind", "alternatives"),
    [
        ("username_reminder", ("parent_account_number", "student_id")),
        ("access_revocation", ("guardian_id", "parent_account_number")),
    ],
)
def test_one_of_two_identifiers_is_required(client, actors, kind, alternatives):
    body = {k: v for k, v in HAPPY[kind][0].items() if k not in alternatives}
    response = file(client, actors.ashgrove, **body)
    assert response.status_code == 422
    assert set(alternatives) <= set(response.json["errors"]["fields"])


MALFORMED = [
    ("student_password_reset", "birth_month_year", "2017-04", "Use MMYYYY, e.g. 042015."),
    ("student_password_reset", "birth_month_year", "132017", "Use MMYYYY, e.g. 042015."),
    ("student_password_reset", "student_id", "ASH 240891!", "student number"),
    ("student_password_reset", "student_name", "   ", "Must not be blank."),
    ("parent_password_reset", "contact_phone", "call me", "phone number"),
    ("parent_password_reset", "parent_pin", "12ab", "4 to 12 digits"),
    ("parent_password_reset", "parent_account_number", "P5 00001", "account number"),
    ("portal_link_failure", "parent_postcode", "NOT A CODE", "UK postcode"),
    ("portal_link_failure", "child_birth_date", "12/04/2017", "2015-04-30"),
    ("portal_link_failure", "child_year_stage", "Year 4", "P4, S2 or Y7"),
    ("access_revocation", "reason", "angry_parent", "court_order"),
    ("student_password_reset", "summary", "x" * 201, "Longer than maximum length"),
    ("student_password_reset", "student_name", 42, "Not a valid string."),
]


@pytest.mark.parametrize(("kind", "field", "value", "hint"), MALFORMED)
def test_each_malformed_field_says_what_to_type(client, actors, kind, field, value, hint):
    before = incident_count()
    response = file(client, actors.ashgrove, **{**HAPPY[kind][0], field: value})
    assert response.status_code == 422
    (message,) = response.json["errors"]["fields"][field]
    assert hint in message
    assert incident_count() == before


def test_every_problem_is_listed_at_once(client, actors):
    response = file(
        client,
        actors.ashgrove,
        type="student_password_reset",
        birth_month_year="2017",
        student_id="",
    )
    assert set(response.json["errors"]["fields"]) == {
        "birth_month_year",
        "student_id",
        "student_name",
    }


@pytest.mark.parametrize("field", ["email", "recipient", "reply_to", "filer", "assignee"])
def test_an_unknown_field_is_refused_so_no_recipient_can_be_slipped_in(client, actors, field):
    before = incident_count()
    response = file(client, actors.ashgrove, **FIONA_RESET, **{field: "someone@else.example"})
    assert response.status_code == 422
    assert "address on file" in response.json["errors"]["fields"][field][0]
    assert incident_count() == before


def test_unknown_type_and_non_object_bodies_are_refused(client, actors):
    response = file(client, actors.ashgrove, type="printer_jam")
    assert response.status_code == 422
    assert "student_password_reset" in response.json["errors"]["fields"]["type"][0]
    for not_a_name in ({}, ["student_password_reset"], 7):  # found by fuzzing the API
        response = file(client, actors.ashgrove, type=not_a_name)
        assert response.status_code == 422
        assert "Use one of" in response.json["errors"]["fields"]["type"][0]
    response = client.post(
        "/api/v1/incidents",
        data="[1, 2]",
        content_type="application/json",
        headers=actors.ashgrove.headers,
    )
    assert response.status_code == 422


def test_a_nul_character_anywhere_is_refused_by_name_and_nothing_is_stored(client, actors):
    """PostgreSQL cannot hold U+0000 in text: found by fuzzing the API, it was a 500."""
    before = incident_count()
    response = file(client, actors.ashgrove, **ISLA_RESET, notes="call back\x00 later")
    assert response.status_code == 422
    assert response.json["code"] == "validation_failed"
    assert "NUL character" in response.json["errors"]["fields"]["notes"][0]
    listed = client.get("/api/v1/incidents?assignee=%00", headers=actors.agent.headers)
    assert listed.status_code == 422 and "assignee" in listed.json["errors"]["fields"]
    assert incident_count() == before


def test_the_school_comes_from_the_token_not_the_body(client, actors):
    response = file(client, actors.ashgrove, **ISLA_RESET, school="8864021")
    assert response.status_code == 422
    assert "5231234" in response.json["errors"]["fields"]["school"][0]
    assert file(client, actors.ashgrove, **ISLA_RESET, school="5231234").status_code == 201


def test_only_school_employees_file(client, actors):
    response = file(client, actors.agent, **ISLA_RESET)
    assert response.status_code == 403
    assert response.json["code"] == "forbidden"


def test_filing_writes_the_audit_trail(client, actors):
    ref = file(client, actors.ashgrove, **ISLA_RESET).json["ref"]
    events = client.get(f"/api/v1/incidents/{ref}/events", headers=actors.ashgrove.headers).json
    assert [(e["kind"], e["from_status"], e["to_status"], e["actor"]) for e in events] == [
        ("filed", None, "new", actors.ashgrove.email),
        ("routed", "new", "triaged", "system"),
        ("fulfil", "triaged", "awaiting_fulfilment", "system"),
    ]
    assert events[1]["data"]["queue"] == "its-student-systems"
    assert "auto_fulfil" in events[2]["message"]


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, 401),
        ({"Authorization": "Bearer hdk_not-a-token"}, 401),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
    ],
)
def test_requests_without_a_valid_token_are_refused(client, headers, code):
    response = client.get("/api/v1/incidents", headers=headers)
    assert response.status_code == code
    assert response.json["code"] == "unauthorized"
    assert "Bearer" in response.json["message"] or "token" in response.json["message"]


def test_openapi_documents_every_incident_type(client):
    spec = client.get("/api/v1/openapi.json").json
    schemas = spec["components"]["schemas"]
    for name in (
        "StudentPasswordReset",
        "ParentPasswordReset",
        "PortalLinkFailure",
        "UsernameReminder",
        "AccessRevocation",
    ):
        assert name in schemas
    assert "parent_pin" in schemas["ParentPasswordReset"]["properties"]
    assert {
        "/api/v1/incidents",
        "/api/v1/incidents/{ref}/transitions",
        "/api/v1/roster-imports",
    } <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_audit_events_cannot_be_changed_even_in_sql(client, actors):
    file(client, actors.ashgrove, **ISLA_RESET)
    event_id = db.session.execute(sa.select(sa.func.max(IncidentEvent.id))).scalar_one()
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), db.session.begin_nested():
        db.session.execute(
            sa.text("UPDATE incident_events SET message = 'edited' WHERE id = :id"),
            {"id": event_id},
        )


def test_an_incident_for_a_missing_queue_is_not_half_stored(client, actors):
    from helpdesk.models import Queue

    db.session.execute(
        sa.update(Queue).where(Queue.slug == "its-student-systems").values(active=False)
    )
    before = incident_count()
    events_before = db.session.execute(sa.select(sa.func.count(IncidentEvent.id))).scalar_one()
    response = file(client, actors.ashgrove, **ISLA_RESET)
    assert response.status_code == 422
    assert response.json["code"] == "unknown_queue"
    assert "its-student-systems" in response.json["message"]
    assert incident_count() == before
    assert db.session.execute(sa.select(sa.func.count(IncidentEvent.id))).scalar_one() == (
        events_before
    )
