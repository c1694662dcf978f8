"""What the employee's form shows for each incident type: labels, hints in plain
language, and what to do next when a field does not match the school's records.

Which fields are required, and every check on them, come from the marshmallow schemas
the API uses (``helpdesk.schemas.incidents``): the page and the API cannot disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from marshmallow import ValidationError, fields

from ..schemas.incidents import INCIDENT_SCHEMAS, REVOCATION_REASONS


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    hint: str | None = None
    widget: str = "input"  # input, textarea, select, date (day, month, year), month_year
    width: int | None = None
    autocomplete: str = "off"
    inputmode: str | None = None
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class IncidentForm:
    kind: str
    title: str
    description: str
    fields: tuple[FormField, ...]

    def required(self, name: str) -> bool:
        field: fields.Field | None = INCIDENT_SCHEMAS[self.kind]._declared_fields.get(name)
        return bool(field and field.required)

    @property
    def labels(self) -> dict[str, str]:
        return {f.name: f.label for f in self.fields}


STUDENT_ID = FormField(
    "student_id", "Student number", "As it appears in the school's records, like ASH240891.",
    width=10,
)  # fmt: skip
ACCOUNT = FormField(
    "parent_account_number", "Parent account number",
    "From the letter the school sent the parent, like P500001.", width=10,
)  # fmt: skip
SUMMARY = FormField("summary", "Anything the ITS agent should know in one line", width=None)
NOTES = FormField("notes", "More detail", "Do not write the parent's PIN or any password here.",
                  widget="textarea")  # fmt: skip

_REASON_TEXT = {
    "court_order": "A court order",
    "parental_responsibility_questioned": "Parental responsibility is in question",
    "policy_breach": "A breach of the school's policy",
    "child_protection": "Child protection",
}

FORMS: dict[str, IncidentForm] = {
    form.kind: form
    for form in (
        IncidentForm(
            "student_password_reset",
            "Student password reset",
            "A student cannot sign in to the portal.",
            (
                STUDENT_ID,
                FormField("student_name", "Student's full name", "As on the school record."),
                FormField(
                    "birth_month_year",
                    "Birth month and year",
                    "For example, 4 2015 for April 2015.",
                    widget="month_year",
                ),
                SUMMARY,
                NOTES,
            ),
        ),
        IncidentForm(
            "parent_password_reset",
            "Parent password reset",
            "A parent or carer cannot sign in. The new password is emailed to the address on "
            "the parent's record, never to one typed here.",
            (
                FormField("parent_name", "Parent's full name", "As on the school record."),
                FormField(
                    "contact_phone",
                    "Contact phone",
                    "With the area code, like 07700 900123.",
                    width=20,
                    autocomplete="off",
                    inputmode="tel",
                ),
                FormField(
                    "parent_pin",
                    "Parent PIN",
                    "The 4 to 12 digit PIN from the school's letter. It is checked, never kept.",
                    width=10,
                    inputmode="numeric",
                ),
                ACCOUNT,
                FormField(
                    "student_id",
                    "Student number of one of their children",
                    "Like ASH240891.",
                    width=10,
                ),
                SUMMARY,
                NOTES,
            ),
        ),
        IncidentForm(
            "portal_link_failure",
            "Portal link failure",
            "A parent tried to link their account to their child and what they typed did not "
            "match the school's records.",
            (
                FormField("parent_given_name", "Parent's first name"),
                FormField("parent_family_name", "Parent's last name"),
                FormField("parent_postcode", "Parent's postcode", "Like EH1 1YZ.", width=10),
                FormField("child_given_name", "Child's first name"),
                FormField("child_family_name", "Child's last name"),
                FormField(
                    "child_birth_date",
                    "Child's date of birth",
                    "For example, 30 4 2015.",
                    widget="date",
                ),
                FormField("child_year_stage", "Child's class stage", "Like P4, S2 or Y7.", width=4),
                SUMMARY,
                NOTES,
            ),
        ),
        IncidentForm(
            "username_reminder",
            "Username reminder",
            "A parent has forgotten their portal username. It is emailed to the address on file.",
            (
                FormField("parent_name", "Parent's full name"),
                FormField(
                    "parent_account_number",
                    "Parent account number",
                    "Give this or the student number.",
                    width=10,
                ),
                FormField(
                    "student_id", "Student number", "Give this or the account number.", width=10
                ),
                SUMMARY,
                NOTES,
            ),
        ),
        IncidentForm(
            "access_revocation",
            "Revoke a parent's portal access",
            "Safeguarding: stop a parent or carer using the portal. Runs at once; an admin "
            "restores access.",
            (
                FormField(
                    "reason",
                    "Reason",
                    widget="select",
                    options=(
                        ("", "Choose a reason"),
                        *((r, _REASON_TEXT[r]) for r in REVOCATION_REASONS),
                    ),
                ),
                FormField(
                    "parent_account_number",
                    "Parent account number",
                    "Give this or the guardian's record id.",
                    width=10,
                ),
                FormField(
                    "guardian_id",
                    "Guardian record id",
                    "From the information system, if you have it.",
                ),
                FormField(
                    "student_id",
                    "Student number",
                    "For child protection: the child concerned. Leave empty for all of the "
                    "parent's children.",
                    width=10,
                ),
                SUMMARY,
                NOTES,
            ),
        ),
    )
}

_MISSING_MESSAGES = {"Missing data for required field.", "Must not be blank."}
_TOO_LONG = re.compile(r"^Longer than maximum length (\d+)\.$")


def friendly_errors(form: IncidentForm, messages: dict[str, Any]) -> dict[str, list[str]]:
    """The schema's messages per field, in the form's order, each saying what to do in
    words for people (GOV.UK style: 'Enter the parent account number', 'Enter the
    parent's full name in 200 characters or fewer')."""
    order = {f.name: i for i, f in enumerate(form.fields)}
    errors: dict[str, list[str]] = {}
    for name in sorted(messages, key=lambda n: order.get(n, len(order))):
        raw = messages[name]
        listed = raw if isinstance(raw, list) else [str(raw)]
        label = form.labels.get(name, name.replace("_", " ").capitalize())
        errors[name] = [_for_people(label, str(m)) for m in listed]
    return errors


def _for_people(label: str, message: str) -> str:
    lower = label[0].lower() + label[1:]
    if message in _MISSING_MESSAGES:
        return f"Enter the {lower}."
    too_long = _TOO_LONG.match(message)
    if too_long:
        return f"Enter the {lower} in {too_long.group(1)} characters or fewer."
    if message == "Not a valid string.":
        return f"Enter the {lower} as text."
    return f"{label}: {message[0].lower()}{message[1:]}"


# The boxes a date is typed in (GOV.UK's date input); the API takes one string.
DATE_PARTS = {"date": ("day", "month", "year"), "month_year": ("month", "year")}


def payload_from(form: IncidentForm, submitted: Any) -> dict[str, Any]:
    """The API body for what was typed: empty optional fields are left out; a date typed
    in boxes becomes the API's format (YYYY-MM-DD, or MMYYYY for a month and year)."""
    body: dict[str, Any] = {"type": form.kind}
    problems: dict[str, list[str]] = {}
    for field in form.fields:
        if field.widget in DATE_PARTS:
            value, problem = date_from_boxes(field, submitted)
            if problem:
                problems[field.name] = [problem]
        else:
            value = (submitted.get(field.name) or "").strip()
        if value or form.required(field.name):
            body[field.name] = value
    if problems:
        raise ValidationError(problems)
    return body


def date_from_boxes(field: FormField, submitted: Any) -> tuple[str, str | None]:
    parts = {
        p: (submitted.get(f"{field.name}-{p}") or "").strip() for p in DATE_PARTS[field.widget]
    }
    if not any(parts.values()):
        return "", None
    missing = [p for p, v in parts.items() if not v]
    if missing:
        return "", f"Must include a {' and a '.join(missing)}."
    if not all(v.isascii() and v.isdigit() for v in parts.values()):
        return "", "Must be numbers, like 30 4 2015."
    if len(parts["year"]) != 4:
        return "", "The year must have 4 numbers, like 2015."
    if any(len(v) > 2 for p, v in parts.items() if p != "year"):
        return "", "Must be a real date." if "day" in parts else "The month is 1 to 12."
    day, month, year = int(parts.get("day", "1")), int(parts["month"]), int(parts["year"])
    try:
        date(year, month, day)
    except ValueError:
        return "", "Must be a real date." if "day" in parts else "The month is 1 to 12."
    if field.widget == "month_year":
        return f"{month:02d}{year}", None
    return f"{year}-{month:02d}-{day:02d}", None


def form_values(form: IncidentForm, typed: dict[str, Any]) -> dict[str, str]:
    """What the form's boxes show for values in the API's shape (filing again)."""
    values: dict[str, str] = {}
    for field in form.fields:
        value = typed.get(field.name)
        if not value:
            continue
        text = str(value)
        if field.widget == "date" and len(text) == 10:
            year, month, day = text.split("-")
            values |= {f"{field.name}-day": str(int(day)), f"{field.name}-month":
                       str(int(month)), f"{field.name}-year": year}  # fmt: skip
        elif field.widget == "month_year" and len(text) == 6:
            values |= {f"{field.name}-month": str(int(text[:2])), f"{field.name}-year": text[2:]}
        else:
            values[field.name] = text
    return values


# What an employee can do when a field does not match the record.
NEXT_STEPS = {
    "student_id": "Check the student number on the school record.",
    "student_name": "Ask for the name exactly as the school records it; if it changed, "
    "correct the record in the information system first.",
    "birth_month_year": "Check the birth month and year with the school record.",
    "parent_name": "Ask the parent to check the name on the school record; it must be the "
    "account holder's.",
    "contact_phone": "Ask the parent which number the school has; if it changed, update "
    "the school record first, then file again.",
    "parent_pin": "Ask the parent to read the PIN from the school's letter again.",
    "parent_account_number": "Check the account number in the school's letter.",
    "parent_given_name": "Ask the parent to check the name on the school record.",
    "parent_family_name": "Ask the parent to check the name on the school record.",
    "parent_postcode": "The address may have changed: update the school record, then ask "
    "the parent to try again.",
    "child_given_name": "Check the child's name as the school records it.",
    "child_family_name": "Check the child's name as the school records it.",
    "child_birth_date": "Check the child's date of birth with the school record.",
    "child_year_stage": "Check the child's class: the stage may have changed this year.",
}
REASON_STEPS = {
    "not the main contact": "Only the main contact can link the portal: ask the main "
    "contact, or update who that is on the school record.",
    "no parental responsibility": "The record shows no parental responsibility: check "
    "with the school's safeguarding lead before doing anything more.",
    "revoked": "This parent's access is revoked: only an admin can restore it.",
    "no portal account": "The student has no portal account yet: ask ITS to create one.",
}


def next_steps(verification: dict[str, Any]) -> list[str]:
    steps = [
        NEXT_STEPS[name]
        for name, result in verification.get("field_results", {}).items()
        if result.get("result") != "match" and name in NEXT_STEPS
    ]
    for reason in verification.get("reasons", []):
        steps += [step for key, step in REASON_STEPS.items() if key in reason]
    return list(dict.fromkeys(steps))
