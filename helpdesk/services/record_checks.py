"""The record checks, one per incident type (SPEC §3): what an employee typed, against
the school's records.

Each returns a per-field result (``match`` / ``mismatch`` / ``not_found``) with a short
reason an employee can act on. Reasons never quote the stored record, so a failed check
reveals nothing the caller did not type.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import joinedload

from ..domain.matching import (
    full_name_matches,
    looks_like_nickname,
    name_key,
    names_match,
    phones_match,
    postcodes_match,
)
from ..extensions import db
from ..models import Guardian, GuardianStudent, PortalAccount, Student
from ..security import verify_pin
from .verification_result import MATCH, MISMATCH, NOT_FOUND, NoEmailOnFile, Verification


def _student_at(school_id: int, number: str) -> Student | None:
    return db.session.execute(
        sa.select(Student).where(
            Student.school_id == school_id,
            Student.student_number == number.strip().upper(),
            Student.active.is_(True),
        )
    ).scalar_one_or_none()


def _parent_account(number: str) -> PortalAccount | None:
    return db.session.execute(
        sa.select(PortalAccount)
        .options(joinedload(PortalAccount.guardian))
        .where(
            PortalAccount.account_number == number.strip().upper(),
            PortalAccount.portal == "parent",
            PortalAccount.active.is_(True),
        )
    ).scalar_one_or_none()


def _links_at_school(guardian_id: int, school_id: int) -> list[GuardianStudent]:
    return list(
        db.session.execute(
            sa.select(GuardianStudent)
            .join(Student, GuardianStudent.student_id == Student.id)
            .options(joinedload(GuardianStudent.student))
            .where(GuardianStudent.guardian_id == guardian_id, Student.school_id == school_id)
        ).scalars()
    )


def _guardians_of(student_id: int) -> list[GuardianStudent]:
    """The student's guardian links, each with its guardian loaded."""
    return list(
        db.session.execute(
            sa.select(GuardianStudent)
            .options(joinedload(GuardianStudent.guardian))
            .where(GuardianStudent.student_id == student_id)
        ).scalars()
    )


def _name_reason(typed: str, recorded: str, what: str) -> str:
    if looks_like_nickname(typed, recorded):
        return f"{what} differs: nickname?"
    return f"{what} differs from the school record"


def _require_email(guardian: Guardian, field_name: str) -> None:
    if not guardian.email:
        message = (
            "This parent has no email on file, so the result could not be sent. Add their "
            "email to the parent's information record first, then file again."
        )
        raise NoEmailOnFile(message, errors={"fields": {field_name: [message]}})


def _refuse_if_revoked(v: Verification, guardian: Guardian) -> None:
    if guardian.access_revoked_at is not None:
        v.fail("parent's portal access is revoked: an admin restores it before any reset")


# The busiest check: one prebuilt statement for the student and their portal account.
# Building a statement costs more than running it, so hot-path statements are built once.
_students, _accounts = Student.__table__.c, PortalAccount.__table__.c
# Table columns, not mapped attributes: a Core statement skips the ORM's execution path.
_STUDENT_WITH_ACCOUNT = (
    sa.select(
        _students.id, _students.given_name, _students.middle_name, _students.family_name,
        _students.birth_date, _accounts.id,
    )
    .select_from(Student.__table__.outerjoin(PortalAccount.__table__, sa.and_(
        _accounts.student_id == _students.id,
        _accounts.portal == "student",
        _accounts.active.is_(True),
    )))
    .where(
        _students.school_id == sa.bindparam("school_id"),
        _students.student_number == sa.bindparam("number"),
        _students.active.is_(True),
    )
)  # fmt: skip


_NO_SUCH_STUDENT = (
    "no student at your school with that number and birth month and year: check both on "
    "the student's record"
)
_NO_SUCH_ACCOUNT = (
    "no parent account with that number and PIN: check both on the parent's portal letter"
)


def _check_student_reset(school_id: int, data: dict[str, Any]) -> Verification:
    v = Verification()
    row = db.session.execute(
        _STUDENT_WITH_ACCOUNT,
        {"school_id": school_id, "number": data["student_id"].strip().upper()},
    ).first()
    born = row[4] if row is not None else None
    if row is None or born is None or data["birth_month_year"] != born.strftime("%m%Y"):
        # The birth month and year is the secret here: an unknown number and a wrong
        # birth month read the same, and nothing else is said, so neither can be guessed.
        v.set("student_id", NOT_FOUND, _NO_SUCH_STUDENT)
        v.set("birth_month_year", NOT_FOUND)
        v.set("student_name", NOT_FOUND)
        return v
    v.student_id, given, middle, family, _, v.account_id = row
    v.set("student_id", MATCH)
    v.set("birth_month_year", MATCH)
    if full_name_matches(data["student_name"], given, family, middle):
        v.set("student_name", MATCH)
    else:
        first = data["student_name"].split()[0] if data["student_name"].split() else ""
        v.set("student_name", MISMATCH, _name_reason(first, given, "name"))
    if v.account_id is None:
        v.fail("the student has no portal account")
    return v


def _check_parent_reset(school_id: int, data: dict[str, Any]) -> Verification:
    v = Verification()
    account = _parent_account(data["parent_account_number"])
    pin_ok = verify_pin(
        current_app.config["PIN_PEPPER"],
        data["parent_account_number"].strip().upper(),
        account.pin_hash if account else None,
        data["parent_pin"],
    )
    guardian = account.guardian if account else None
    links = _links_at_school(guardian.id, school_id) if guardian else []
    if account is None or guardian is None or not links or not pin_ok:
        # Unknown here, a parent of another school only, or a wrong PIN: one answer for
        # all, and nothing said of the other fields, so the PIN cannot be guessed.
        v.set("parent_account_number", NOT_FOUND, _NO_SUCH_ACCOUNT)
        for name in ("parent_pin", "parent_name", "contact_phone", "student_id"):
            v.set(name, NOT_FOUND)
        return v
    _require_email(guardian, "parent_account_number")
    v.account_id, v.guardian_id = account.id, guardian.id
    v.set("parent_account_number", MATCH)
    v.set("parent_pin", MATCH)
    _refuse_if_revoked(v, guardian)
    if full_name_matches(data["parent_name"], guardian.given_name, guardian.family_name):
        v.set("parent_name", MATCH)
    else:
        v.set("parent_name", MISMATCH, "parent name differs from the account holder's record")
    if phones_match(data["contact_phone"], guardian.phone):
        v.set("contact_phone", MATCH)
    else:
        v.set("contact_phone", MISMATCH, "contact phone differs: number changed?")
    _check_child_link(v, school_id, data["student_id"], links)
    return v


def _check_child_link(
    v: Verification, school_id: int, student_number: str, links: list[GuardianStudent]
) -> None:
    student = _student_at(school_id, student_number)
    if student is None:
        v.set("student_id", NOT_FOUND, "no student with that number at your school")
        return
    link = next((link for link in links if link.student_id == student.id), None)
    if link is None:
        v.set("student_id", MISMATCH, "this parent is not linked to that student")
        return
    v.student_id = student.id
    if not link.parental_responsibility:
        v.set(
            "student_id",
            MISMATCH,
            "parent has no parental responsibility for this child: they cannot be given access",
        )
        return
    v.set("student_id", MATCH)


def _check_link_failure(school_id: int, data: dict[str, Any]) -> Verification:
    v = Verification()
    born: date = data["child_birth_date"]
    candidates = (
        db.session.execute(
            sa.select(Student)
            .where(
                Student.school_id == school_id,
                Student.active.is_(True),
                sa.or_(
                    Student.birth_date == born,
                    Student.family_name_key == name_key(data["child_family_name"]),
                ),
            )
            .limit(200)
        )
        .scalars()
        .all()
    )

    def score(s: Student) -> int:
        return (
            names_match(data["child_given_name"], s.given_name)
            + names_match(data["child_family_name"], s.family_name)
            + (s.birth_date == born)
        )

    best = max(candidates, key=score, default=None)
    if best is None or score(best) < 2:
        reason = "no child at your school matches the name and date of birth given"
        for name in (
            "child_given_name",
            "child_family_name",
            "child_birth_date",
            "child_year_stage",
        ):
            v.set(name, NOT_FOUND, reason)
        for name in ("parent_given_name", "parent_family_name", "parent_postcode"):
            v.set(name, NOT_FOUND)
        return v
    child = best
    v.student_id = child.id
    _compare_name(v, "child_given_name", data["child_given_name"], child.given_name, "name")
    _compare_name(
        v, "child_family_name", data["child_family_name"], child.family_name, "family name"
    )
    if child.birth_date == born:
        v.set("child_birth_date", MATCH)
    else:
        v.set("child_birth_date", MISMATCH, "date of birth differs from the school record")
    if name_key(data["child_year_stage"]) == name_key(child.year_stage or ""):
        v.set("child_year_stage", MATCH)
    else:
        v.set("child_year_stage", MISMATCH, "year/stage differs: check the child's class")
    _check_link_parent(v, child, data)
    return v


def _compare_name(v: Verification, name: str, typed: str, recorded: str, what: str) -> None:
    if names_match(typed, recorded):
        v.set(name, MATCH)
    else:
        v.set(name, MISMATCH, _name_reason(typed, recorded, what))


def _check_link_parent(v: Verification, child: Student, data: dict[str, Any]) -> None:
    links = _guardians_of(child.id)
    given, family = data["parent_given_name"], data["parent_family_name"]

    def closeness(link: GuardianStudent) -> int:
        g = link.guardian
        return (
            2 * names_match(family, g.family_name)
            + names_match(given, g.given_name)
            + looks_like_nickname(given, g.given_name)
        )

    link = max(links, key=closeness, default=None)
    if link is None or closeness(link) == 0:
        reason = "no guardian of that name is linked to this child"
        v.set("parent_given_name", NOT_FOUND, reason)
        v.set("parent_family_name", NOT_FOUND, reason)
        v.set("parent_postcode", NOT_FOUND)
        return
    g = link.guardian
    v.guardian_id = g.id
    _compare_name(v, "parent_given_name", given, g.given_name, "parent name")
    _compare_name(v, "parent_family_name", family, g.family_name, "parent family name")
    if postcodes_match(data["parent_postcode"], g.postcode):
        v.set("parent_postcode", MATCH)
    elif not g.postcode:
        v.set("parent_postcode", MISMATCH, "the school record has no postcode for this parent")
    else:
        v.set("parent_postcode", MISMATCH, "postcode differs: address changed?")
    if not link.parental_responsibility:
        v.fail("parent has no parental responsibility for this child")
    elif not link.main_contact:
        v.fail("parent is not the main contact")


def _check_username_reminder(school_id: int, data: dict[str, Any]) -> Verification:
    v = Verification()
    if data.get("parent_account_number"):
        account = _parent_account(data["parent_account_number"])
        guardian = account.guardian if account else None
        if account is None or guardian is None or not _links_at_school(guardian.id, school_id):
            v.set("parent_account_number", NOT_FOUND, "no parent account with that number")
            v.set("parent_name", NOT_FOUND)
            return v
        v.set("parent_account_number", MATCH)
        if full_name_matches(data["parent_name"], guardian.given_name, guardian.family_name):
            v.set("parent_name", MATCH)
        else:
            v.set("parent_name", MISMATCH, "parent name differs from the account holder's record")
        _require_email(guardian, "parent_account_number")
        v.account_id, v.guardian_id = account.id, guardian.id
        _refuse_if_revoked(v, guardian)
        return v
    student = _student_at(school_id, data["student_id"])
    if student is None:
        v.set("student_id", NOT_FOUND, "no student with that number at your school")
        v.set("parent_name", NOT_FOUND)
        return v
    v.student_id = student.id
    v.set("student_id", MATCH)
    links = _guardians_of(student.id)
    link = next(
        (
            link
            for link in links
            if full_name_matches(
                data["parent_name"], link.guardian.given_name, link.guardian.family_name
            )
        ),
        None,
    )
    if link is None:
        v.set("parent_name", MISMATCH, "no parent of that name is linked to this child")
        return v
    v.set("parent_name", MATCH)
    if not link.parental_responsibility:
        v.fail("parent has no parental responsibility for this child")
    _require_email(link.guardian, "parent_name")
    v.guardian_id = link.guardian.id
    _refuse_if_revoked(v, link.guardian)
    v.account_id = (
        db.session.execute(
            sa.select(PortalAccount.id).where(
                PortalAccount.guardian_id == link.guardian.id,
                PortalAccount.portal == "parent",
                PortalAccount.active.is_(True),
            )
        )
        .scalars()
        .first()
    )
    if v.account_id is None:
        v.fail("the parent has no portal account")
    return v


def _check_revocation(school_id: int, data: dict[str, Any]) -> Verification:
    v = Verification()
    guardian: Guardian | None
    if data.get("guardian_id"):
        key = "guardian_id"
        guardian = db.session.execute(
            sa.select(Guardian).where(Guardian.sourced_id == data["guardian_id"])
        ).scalar_one_or_none()
    else:
        key = "parent_account_number"
        account = _parent_account(data["parent_account_number"])
        guardian = account.guardian if account else None
    links = _links_at_school(guardian.id, school_id) if guardian else []
    if guardian is None or not links:
        v.set(key, NOT_FOUND, "no parent with that record at your school")
        return v
    v.guardian_id = guardian.id
    v.set(key, MATCH)
    children = [link.student for link in links]
    if data.get("student_id"):
        chosen = [c for c in children if c.student_number == data["student_id"].strip().upper()]
        if not chosen:
            v.set("student_id", MISMATCH, "this parent is not linked to that student")
            return v
        v.set("student_id", MATCH)
        children = chosen
        v.student_id = chosen[0].id
    targets = {guardian.id}
    if data["reason"] == "child_protection":
        # Every guardian of the child loses access until the investigation ends.
        targets.update(
            db.session.execute(
                sa.select(GuardianStudent.guardian_id).where(
                    GuardianStudent.student_id.in_([c.id for c in children])
                )
            ).scalars()
        )
    v.extra["revocation_targets"] = len(targets)
    v.extra["revocation_guardian_ids"] = sorted(targets)
    return v


CHECKS = {
    "student_password_reset": _check_student_reset,
    "parent_password_reset": _check_parent_reset,
    "portal_link_failure": _check_link_failure,
    "username_reminder": _check_username_reminder,
    "access_revocation": _check_revocation,
}
