"""Incident bodies typed the way the sample roster has them (tests/data/roster/README.md)."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from .conftest import Actor


def file(client: FlaskClient, actor: Actor, **fields: Any) -> Any:
    """POST an incident and return the response."""
    return client.post("/api/v1/incidents", json=fields, headers=actor.headers)


# Filed although one is open for the same person: what a test that files the same
# family more than once adds (a filing without it is answered 409 "already open").
AGAIN = {"force": True, "force_reason": "a second one for the same person, on purpose"}

ISLA_RESET = {
    "type": "student_password_reset",
    "student_id": "ASH240891",
    "student_name": "Isla Campbell",
    "birth_month_year": "042017",
}
# More Ashgrove students, for a test that resets several at once (one open reset each).
RORY_RESET = {**ISLA_RESET, "student_id": "ASH595185", "student_name": "Rory Fraser",
              "birth_month_year": "022018"}  # fmt: skip
NIAMH_RESET = {**ISLA_RESET, "student_id": "ASH397962", "student_name": "Niamh Ross",
               "birth_month_year": "062019"}  # fmt: skip
FIONA_RESET = {
    "type": "parent_password_reset",
    "parent_name": "Fiona Campbell",
    "contact_phone": "07700 900101",
    "parent_pin": "596853",
    "parent_account_number": "P500001",
    "student_id": "ASH240891",
}

LINK_FAILURE = {
    "type": "portal_link_failure",
    "parent_given_name": "Fiona",
    "parent_family_name": "Campbell",
    "parent_postcode": "EH1 1YZ",
    "child_given_name": "Isla",
    "child_family_name": "Campbell",
    "child_birth_date": "2017-04-12",
    "child_year_stage": "P4",
}
REMINDER = {
    "type": "username_reminder",
    "parent_account_number": "P500001",
    "parent_name": "Fiona Campbell",
}
REVOCATION = {"type": "access_revocation", "guardian_id": "par-5-1", "reason": "court_order"}

# body, queue, priority, and status: the default rules fulfil student resets and
# revocations at once (auto_fulfil), and leave the rest with a person.
HAPPY = {
    "student_password_reset": (ISLA_RESET, "its-student-systems", "P3", "awaiting_fulfilment"),
    "parent_password_reset": (FIONA_RESET, "its-service-desk", "P3", "triaged"),
    "portal_link_failure": (LINK_FAILURE, "school-office-5231234", "P4", "triaged"),
    "username_reminder": (REMINDER, "its-service-desk", "P4", "triaged"),
    "access_revocation": (REVOCATION, "its-identity", "P1", "awaiting_fulfilment"),
}


def page_form(body: dict[str, Any]) -> dict[str, str]:
    """An API body as the report page's boxes send it: dates in day, month and year boxes."""
    form = {k: str(v) for k, v in body.items() if k != "type"}
    if "birth_month_year" in form:
        typed = form.pop("birth_month_year")
        form |= {"birth_month_year-month": typed[:2], "birth_month_year-year": typed[2:]}
    if "child_birth_date" in form:
        year, month, day = form.pop("child_birth_date").split("-")
        form |= {"child_birth_date-day": day, "child_birth_date-month": month,
                 "child_birth_date-year": year}  # fmt: skip
    return form
