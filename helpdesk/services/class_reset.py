"""Class resets: a teacher resets the portal passwords of students of their own classes,
some or all at once, at the start of a term.

What the teacher may reach is the roster's: a class they have an active ``teacher``
enrolment in, at their own school, and the students with an active ``student``
enrolment in it. Anything else — another teacher's class, a student who left the class,
a made-up id — is "not found", as any record they may not see. The employee types
nothing about the students: each becomes its own ``student_password_reset``, filled in
from the roster and verified against it like any other, and the whole class is filed
in one commit or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from marshmallow import ValidationError

from ..errors import InvalidInput, NotFound
from ..extensions import db
from ..models import Enrollment, SchoolClass, Student, User
from ..schemas.incidents import load_incident
from . import filing
from .incidents import IncidentView
from .users import Principal

MAX_CLASS = 200  # more than any class; a bound on one request's work


@dataclass(frozen=True)
class TaughtClass:
    sourced_id: str
    title: str
    class_code: str | None
    students: int


def _staff_id(user: Principal) -> int | None:
    return db.session.execute(sa.select(User.staff_id).where(User.id == user.id)).scalar()


def _taught(user: Principal) -> sa.Select[Any]:
    """The ids of the active classes of the user's school they actively teach."""
    return (
        sa.select(SchoolClass.id)
        .join(Enrollment, Enrollment.class_id == SchoolClass.id)
        .where(Enrollment.staff_id == _staff_id(user), Enrollment.role == "teacher",
               Enrollment.active.is_(True), SchoolClass.active.is_(True),
               SchoolClass.school_id == user.school_id)
    )  # fmt: skip


def _in_class(taught: Any) -> sa.ColumnElement[bool]:
    """An enrolment row that puts a student in ``taught`` (the SchoolClass model, in a
    correlated query, or one class): active, of an active student of the class's own
    school — a roster that enrols another school's pupil gives no reach over them."""
    return sa.and_(Enrollment.class_id == taught.id, Enrollment.student_id == Student.id,
                   Enrollment.role == "student", Enrollment.active.is_(True),
                   Student.active.is_(True), Student.school_id == taught.school_id)  # fmt: skip


def classes_taught(user: Principal) -> list[TaughtClass]:
    """The user's classes with how many students are in each, by title."""
    if user.school_id is None:
        return []
    size = (
        sa.select(sa.func.count()).select_from(Enrollment).join(Student, Student.id ==
        Enrollment.student_id).where(_in_class(SchoolClass)).scalar_subquery()
    )  # fmt: skip
    rows = db.session.execute(
        sa.select(SchoolClass.sourced_id, SchoolClass.title, SchoolClass.class_code, size)
        .where(SchoolClass.id.in_(_taught(user))).order_by(SchoolClass.title)
    ).all()  # fmt: skip
    return [TaughtClass(sid, title, code, count) for sid, title, code, count in rows]


def class_of(user: Principal, class_id: str) -> tuple[SchoolClass, list[Student]]:
    """One of the user's classes and its students by family name, or NotFound."""
    found = db.session.execute(
        sa.select(SchoolClass).where(SchoolClass.sourced_id == class_id,
                                     SchoolClass.id.in_(_taught(user)))
    ).scalar_one_or_none() if user.school_id is not None else None  # fmt: skip
    if found is None:
        raise NotFound(f"No class {class_id} that you teach.")
    students = db.session.execute(
        sa.select(Student).join(Enrollment, Enrollment.student_id == Student.id)
        .where(_in_class(found))
        .order_by(Student.family_name, Student.given_name, Student.sourced_id)
    ).scalars().all()  # fmt: skip
    return found, list(students)


@dataclass(frozen=True)
class ClassResetDone:
    taught: SchoolClass
    filed: list[IncidentView]
    already_open: list[filing.Duplicate]  # chosen students whose reset was open: left out


def reset_class(user: Principal, class_id: str, students: list[str] | None) -> ClassResetDone:
    """One student password reset per chosen student (``None``: all of the class), in one
    commit. A student not in the class is NotFound; one the roster cannot vouch for (no
    birth date on record, or a number or name no reset form takes) is named, and nothing
    is filed; one whose reset is already open is left out, pointed at it."""
    taught, members = class_of(user, class_id)
    by_id = {s.sourced_id: s for s in members}
    chosen = list(by_id) if students is None else list(dict.fromkeys(students))
    if not chosen:
        raise InvalidInput("Choose at least one student of the class.", code="no_students")
    if len(chosen) > MAX_CLASS:
        raise InvalidInput(f"At most {MAX_CLASS} students at once.", code="too_many_students")
    strangers = [s for s in chosen if s not in by_id]
    if strangers:
        raise NotFound(f"No student {strangers[0]} in {taught.title} that you teach.")
    payloads = {s: _reset_of(by_id[s], taught) for s in chosen}
    unverifiable = [by_id[s] for s, payload in payloads.items() if not _checkable(payload)]
    if unverifiable:
        names = ", ".join(f"{s.full_name} ({s.student_number})" for s in unverifiable)
        raise InvalidInput(
            f"The school's records for {names} cannot be checked by a reset (no birth date, "
            "or a student number or name the reset form does not take). Leave them out, and "
            "ask the office to correct the record.",
            code="not_verifiable",
        )
    filed, already_open = filing.file_many(user, list(payloads.values()), taught.id)
    return ClassResetDone(taught, filed, already_open)


def _checkable(payload: dict[str, str]) -> bool:
    try:
        load_incident(payload)
    except ValidationError:
        return False
    return True


def _reset_of(student: Student, taught: SchoolClass) -> dict[str, str]:
    """A student reset as the roster describes the student: nothing typed."""
    return {
        "type": "student_password_reset",
        "student_id": student.student_number,
        "student_name": student.full_name,
        "birth_month_year": f"{student.birth_date:%m%Y}" if student.birth_date else "",
        "summary": f"Class reset: {taught.title}"[:200],
    }
