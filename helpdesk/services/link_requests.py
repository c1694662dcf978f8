"""A parent asks, on a public page, to link their portal account to a child; the child's
school approves or rejects it within five working days (the shipped rules' P4 at the
school office). The parent is identified by their account's username and the email on
file; the child's details are checked against the school's records, the per-field
reasons kept for staff. The parent reads only "sent to the school" or, for any mismatch,
"did not match our records"; the decision reaches them at the address on file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from ..domain.lifecycle import LINK_REQUEST
from ..domain.matching import names_match
from ..domain.recovery import LINK
from ..extensions import db
from ..models import Guardian, GuardianStudent, PortalAccount, School, Student
from . import filing, verification_limits
from .self_service import (
    Found,
    allowed,
    filer_for,
    record_attempt,
    typed_value,
)
from .uow import unit_of_work
from .verification_result import MATCH, MISMATCH, NOT_FOUND, Verification


@dataclass(frozen=True)
class Asked:
    """What the parent is told: sent to ``school``, or (school None) not matched."""

    school: str | None


def schools() -> list[tuple[str, str]]:
    """The schools a parent can choose from: (code, name), by name."""
    rows = db.session.execute(
        sa.select(School.code, School.name).where(School.active.is_(True)).order_by(School.name)
    )
    return [(code, name) for code, name in rows]


def request_link(typed: dict[str, Any], client: str) -> Asked:
    """Check, record and, for an identified parent, file the request for the school."""
    attempt = allowed(LINK, typed, client)
    account = _account(typed)
    school = db.session.execute(
        sa.select(School).where(School.code == typed["school"], School.active.is_(True))
    ).scalar_one_or_none()
    verification_limits.count(attempt)
    with unit_of_work():
        if account is None or account.guardian is None or school is None:
            record_attempt(LINK, "not_matched", client, None)
            return Asked(None)
        check = _check_child(account, school, typed)
        found = Found(check, account, account.guardian, school)
        row = record_attempt(LINK, "matched" if check.passed else "not_matched", client, found)
        details = {"recovery": LINK, "parent_name": account.guardian.full_name,
                   "child_given_name": typed["child_given_name"],
                   "child_family_name": typed["child_family_name"],
                   "child_birth_date": typed["child_birth_date"].isoformat()}  # fmt: skip
        summary = "Asks to link their parent portal account to a child (self-service)"
        filer = filer_for(school)
        prepared = filing.decide(filer, LINK_REQUEST, {"summary": summary}, details, check)
        row.incident_id = filing.write(filer, prepared).incident.id
    return Asked(school.name if check.passed else None)


def _account(typed: dict[str, Any]) -> PortalAccount | None:
    """The active parent account whose username and email on file were both typed."""
    return db.session.execute(
        sa.select(PortalAccount).join(Guardian, PortalAccount.guardian_id == Guardian.id)
        .where(sa.func.lower(PortalAccount.username) == typed_value(typed, "username"),
               sa.func.lower(Guardian.email) == typed_value(typed, "email"),
               PortalAccount.portal == "parent", PortalAccount.active.is_(True),
               Guardian.active.is_(True))
        .order_by(PortalAccount.id).limit(1)
    ).scalar_one_or_none()  # fmt: skip


def _check_child(account: PortalAccount, school: School, typed: dict[str, Any]) -> Verification:
    assert account.guardian is not None
    v = Verification(guardian_id=account.guardian.id, account_id=account.id)
    v.set("username", MATCH)
    v.set("email", MATCH)
    born: date = typed["child_birth_date"]
    given, family = typed["child_given_name"], typed["child_family_name"]
    candidates = list(db.session.execute(
        sa.select(Student).where(Student.school_id == school.id, Student.active.is_(True),
                                 Student.birth_date == born)
    ).scalars())  # fmt: skip
    child = next((c for c in candidates if names_match(family, c.family_name)), None)
    if child is None:
        reason = f"no child at {school.name} with that family name and date of birth"
        v.set("child_family_name", NOT_FOUND, reason)
        v.set("child_birth_date", NOT_FOUND)
        v.set("child_given_name", NOT_FOUND)
        return v
    v.student_id = child.id
    v.set("child_family_name", MATCH)
    v.set("child_birth_date", MATCH)
    if names_match(given, child.given_name):
        v.set("child_given_name", MATCH)
    else:
        v.set("child_given_name", MISMATCH, "the child's first name differs: nickname?")
    linked = db.session.get(GuardianStudent, (account.guardian.id, child.id))
    if linked is not None:
        v.fail("this parent is already linked to this child")
    return v
