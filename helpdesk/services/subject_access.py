"""Whose records staff read, and everything the service holds about one person.

Every time staff open an incident (a page or the API) or list incidents through the
API, whose details show a student's or a parent's records, the access log gets one
``read`` entry per person, naming them by their roster sourcedId. A school answering a
subject access request (UK GDPR art. 15) lists those reads on the admin page, and
``helpdesk data subject PERSON-ID`` exports what the service holds about the person as
JSON: their record, the incidents about them, the emails sent about them, and the
reads; never a secret (no PIN or password hash, no reset token, no sealed secret).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from ..errors import NotFound
from ..extensions import db
from ..models import (
    AccessEntry,
    Guardian,
    GuardianStudent,
    Incident,
    IncidentEvent,
    Notification,
    PortalAccount,
    School,
    Student,
    format_ref,
    utcnow,
)
from . import access_log
from .uow import after_response, unit_of_work
from .users import Principal


def subjects_of(incidents: Iterable[Incident]) -> dict[int, list[str]]:
    """The sourcedIds of the people each incident's records are about (its student and
    its parent, where the check matched them), in two queries for any number."""
    incidents = list(incidents)
    students = {i.student_id for i in incidents if i.student_id is not None}
    guardians = {i.guardian_id for i in incidents if i.guardian_id is not None}
    student_ids = dict(db.session.execute(
        sa.select(Student.id, Student.sourced_id).where(Student.id.in_(students))
    ).all()) if students else {}  # fmt: skip
    guardian_ids = dict(db.session.execute(
        sa.select(Guardian.id, Guardian.sourced_id).where(Guardian.id.in_(guardians))
    ).all()) if guardians else {}  # fmt: skip
    return {
        i.id: [s for s in (student_ids.get(i.student_id or 0),
                           guardian_ids.get(i.guardian_id or 0)) if s]
        for i in incidents
    }  # fmt: skip


def log_reads(reader: Principal, incidents: Iterable[Incident], *, via: str) -> None:
    """One ``read`` entry per person whose records these incidents show to ``reader``.

    In a request it is written once the response is made, in its own unit of work, so
    the reads' answer is built from the rows as they were read; if it cannot be written
    the answer is an error, not an unlogged read.
    """
    entries = [
        {"subject": subject, "incident_id": incident_id}
        for incident_id, subjects in subjects_of(incidents).items()
        for subject in subjects
    ]
    if not entries:
        return

    after_response(lambda: access_log.note_all("read", entries, actor_id=reader.id, via=via))


def reads_of(person_id: str) -> list[AccessEntry]:
    return access_log.entries_about(person_id.strip())


def export(person_id: str, *, actor_id: int | None) -> dict[str, Any]:
    """What the service holds about one student or parent, as plain data; the export is
    itself an entry of the access log (``exported``, by ``actor_id``)."""
    person_id = person_id.strip()
    student = db.session.execute(
        sa.select(Student).where(Student.sourced_id == person_id)
    ).scalar_one_or_none()
    guardian = db.session.execute(
        sa.select(Guardian).where(Guardian.sourced_id == person_id)
    ).scalar_one_or_none()
    if student is not None:
        kind, record = "student", _student(student)
        about, accounts = Incident.student_id == student.id, PortalAccount.student_id == student.id
    elif guardian is not None:
        kind, record = "parent", _guardian(guardian)
        about = Incident.guardian_id == guardian.id
        accounts = PortalAccount.guardian_id == guardian.id
    else:
        raise NotFound(f"No student or parent with sourcedId {person_id} in the records.")
    incidents = list(db.session.execute(
        sa.select(Incident).where(about).order_by(Incident.id)
    ).scalars())  # fmt: skip
    ids = [i.id for i in incidents]
    held: dict[str, Any] = {
        "sourced_id": person_id,
        "kind": kind,
        "exported_at": _plain(utcnow()),
        "record": record,
        "portal_accounts": [_account(a) for a in db.session.execute(
            sa.select(PortalAccount).where(accounts).order_by(PortalAccount.id)
        ).scalars()],
        "incidents": [_incident(i) for i in incidents],
        "emails": [_email(n) for n in db.session.execute(
            sa.select(Notification).where(Notification.incident_id.in_(ids))
            .order_by(Notification.id)
        ).scalars()] if ids else [],
        "reads": [_entry(e) for e in reads_of(person_id)],
    }  # fmt: skip
    with unit_of_work():
        access_log.note("exported", person_id, actor_id=actor_id)
    return held


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _school(school_id: int) -> str:
    return str(db.session.execute(sa.select(School.code).where(School.id == school_id))
               .scalar_one())  # fmt: skip


def _student(student: Student) -> dict[str, Any]:
    links = db.session.execute(
        sa.select(GuardianStudent, Guardian.sourced_id)
        .join(Guardian, Guardian.id == GuardianStudent.guardian_id)
        .where(GuardianStudent.student_id == student.id)
    ).all()  # fmt: skip
    return {
        "school": _school(student.school_id), "student_number": student.student_number,
        "given_name": student.given_name, "middle_name": student.middle_name,
        "family_name": student.family_name, "birth_date": _plain(student.birth_date),
        "postcode": student.postcode, "year": student.year_stage, "email": student.email,
        "active": student.active,
        "guardians": [{"sourced_id": sid, "main_contact": link.main_contact,
                       "parental_responsibility": link.parental_responsibility}
                      for link, sid in links],
    }  # fmt: skip


def _guardian(guardian: Guardian) -> dict[str, Any]:
    children = db.session.execute(
        sa.select(Student.sourced_id).join(GuardianStudent).where(
            GuardianStudent.guardian_id == guardian.id)
    ).scalars().all()  # fmt: skip
    return {
        "given_name": guardian.given_name, "family_name": guardian.family_name,
        "email": guardian.email, "phone": guardian.phone, "postcode": guardian.postcode,
        "active": guardian.active, "children": list(children),
        "portal_access_stopped_at": _plain(guardian.access_revoked_at),
        "portal_access_stopped_because": guardian.access_revoked_reason,
    }  # fmt: skip


def _account(account: PortalAccount) -> dict[str, Any]:
    # The username and the state of its password, never a hash, PIN or reset token.
    return {
        "portal": account.portal, "account_number": account.account_number,
        "username": account.username, "status": account.status,
        "password_set_at": _plain(account.password_set_at),
        "must_change_password": account.must_change_password,
    }  # fmt: skip


def _incident(incident: Incident) -> dict[str, Any]:
    events = db.session.execute(
        sa.select(IncidentEvent).where(IncidentEvent.incident_id == incident.id)
        .order_by(IncidentEvent.id)
    ).scalars()  # fmt: skip
    return {
        "ref": incident.ref, "type": incident.type, "status": incident.status,
        "school": incident.school_code, "filed_at": _plain(incident.created_at),
        "summary": incident.summary, "notes": incident.notes, "details": incident.details,
        "verification": incident.verification_summary,
        "purged_at": _plain(incident.purged_at),
        "timeline": [{"at": _plain(e.at), "by": e.actor.email if e.actor else "system",
                      "kind": e.kind, "from": e.from_status, "to": e.to_status,
                      "message": e.message} for e in events],
    }  # fmt: skip


def _email(note: Notification) -> dict[str, Any]:
    return {
        "incident": format_ref(note.incident_id), "what": note.template,
        "to": note.audience, "sent_to": note.sent_to, "state": note.state,
        "sent_at": _plain(note.sent_at),
    }  # fmt: skip


def _entry(entry: AccessEntry) -> dict[str, Any]:
    return {
        "at": _plain(entry.at), "by": entry.actor.email if entry.actor else "system",
        "action": entry.action,
        "incident": format_ref(entry.incident_id) if entry.incident_id else None,
        "via": entry.data.get("via"),
    }  # fmt: skip
