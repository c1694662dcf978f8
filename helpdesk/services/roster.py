"""Import a OneRoster bundle: upsert on sourcedId, all in one transaction or not at all."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from typing import IO, Any

import sqlalchemy as sa
from flask import current_app

from ..domain.matching import name_key
from ..errors import InvalidInput
from ..extensions import db
from ..models import (
    Enrollment,
    Guardian,
    GuardianStudent,
    PortalAccount,
    Queue,
    RosterImport,
    School,
    SchoolClass,
    SlaPlan,
    Staff,
    Student,
    school_office_slug,
    utcnow,
)
from ..roster import (
    Bundle,
    BundleProblem,
    MalformedBundle,
    Opener,
    RejectedRow,
    parse_bundle,
    zip_opener,
)
from ..security import hash_pin, verify_pin
from .uow import unit_of_work

OFFICE_SLA_PLAN = "link-failure-5-days"
ENTITIES = ("schools", "staff", "students", "guardians", "portal_accounts", "classes",
            "enrollments")  # fmt: skip


@dataclass
class ImportReport:
    """What an import changed, per kind of record, and the rows it did not keep."""

    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {
            e: {"created": 0, "updated": 0, "unchanged": 0, "deactivated": 0} for e in ENTITIES
        }
    )
    rejected: list[RejectedRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "rejected": [asdict(r) for r in self.rejected]}


def schools() -> list[School]:
    """Every school on the records, by name."""
    return list(db.session.execute(sa.select(School).order_by(School.name)).scalars())


def staff_count() -> int:
    return int(db.session.execute(sa.select(sa.func.count(Staff.id))).scalar_one())


def import_zip(
    stream: IO[bytes], *, filename: str | None, actor_id: int | None = None
) -> ImportReport:
    """Import a bundle uploaded as a zip (the API and the admin page)."""
    if not zipfile.is_zipfile(stream):
        raise InvalidInput(
            "The bundle must be a zip of orgs.csv, users.csv, demographics.csv "
            "(and portal_accounts.csv).",
            code="malformed_bundle",
        )
    stream.seek(0)
    with zipfile.ZipFile(stream) as archive:
        return import_roster(zip_opener(archive), source=filename or "upload", actor_id=actor_id)


def import_roster(opener: Opener, *, source: str, actor_id: int | None = None) -> ImportReport:
    """Check the whole bundle, then apply it in one transaction; on any problem change nothing."""
    bundle = parse_bundle(opener)
    with unit_of_work():
        report = _apply(bundle)
        db.session.add(
            RosterImport(actor_id=actor_id, source=source[:255], report=report.to_dict())
        )
    return report


def _ids(model: Any, key: str = "sourced_id") -> dict[str, int]:
    column = getattr(model, key)
    return dict(db.session.execute(sa.select(column, model.id)).all())


def _apply(bundle: Bundle) -> ImportReport:
    report = ImportReport(rejected=list(bundle.rejected))
    school_ids = _sync_schools(bundle, report)
    _check_references(bundle, school_ids)
    # Each part of the bundle is dropped once stored: a large import then never holds
    # the parsed rows and their database form at the same time.
    _sync_rows(Staff, "staff", report, (
        (sid, {"school_id": school_ids[r.org], "role": r.role, "username": r.username,
               "given_name": r.given_name, "family_name": r.family_name, "email": r.email,
               "phone": r.phone, "active": r.active})
        for sid, r in _drain(bundle.staff)
    ))  # fmt: skip
    student_ids = _sync_rows(Student, "students", report, (
        (sid, {"school_id": school_ids[r.org], "student_number": r.student_number,
               "given_name": r.given_name, "middle_name": r.middle_name,
               "family_name": r.family_name, "family_name_key": name_key(r.family_name),
               "birth_date": r.birth_date, "postcode": r.postcode, "year_stage": r.year_stage,
               "email": r.email, "active": r.active})
        for sid, r in _drain(bundle.students)
    ))  # fmt: skip
    guardian_ids = _sync_rows(Guardian, "guardians", report, (
        (sid, {"given_name": r.given_name, "family_name": r.family_name, "email": r.email,
               "phone": r.phone, "postcode": r.postcode, "active": r.active})
        for sid, r in bundle.guardians.items()
    ))  # fmt: skip
    _sync_links(bundle, guardian_ids, student_ids)
    bundle.guardians.clear()
    _sync_accounts(bundle, guardian_ids, student_ids, report)
    _sync_classes(bundle, school_ids, student_ids, report)
    return report


def _sync_classes(
    bundle: Bundle, school_ids: dict[str, int], student_ids: dict[str, int],
    report: ImportReport,
) -> None:  # fmt: skip
    """Classes, then who teaches and who is in each: a ``tobedeleted`` enrolment
    deactivates it, and with it the teacher's reach over that student."""
    class_ids = _sync_rows(SchoolClass, "classes", report, (
        (sid, {"school_id": school_ids[r.school], "title": r.title, "class_code": r.class_code,
               "active": r.active})
        for sid, r in _drain(bundle.classes)
    ))  # fmt: skip
    if not bundle.enrollments:
        return
    staff_ids = _ids(Staff)
    _sync_rows(Enrollment, "enrollments", report, (
        (sid, {"class_id": class_ids[r.class_], "role": r.role,
               "staff_id": staff_ids[r.user] if r.role == "teacher" else None,
               "student_id": student_ids[r.user] if r.role == "student" else None,
               "active": r.active})
        for sid, r in _drain(bundle.enrollments)
    ))  # fmt: skip


def _drain(rows: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Yield and remove each entry, so memory is given back as the rows are stored."""
    while rows:
        yield rows.popitem()


def _sync_schools(bundle: Bundle, report: ImportReport) -> dict[str, int]:
    school_ids = _sync_rows(School, "schools", report, (
        (sid, {"code": r.code, "name": r.name, "nation": r.nation, "active": r.active})
        for sid, r in bundle.schools.items()
    ))  # fmt: skip
    existing = set(db.session.execute(sa.select(Queue.slug)).scalars())
    # A school office checks link failures within five working days; what it cannot fix
    # goes to the service desk.
    plan_id = db.session.execute(
        sa.select(SlaPlan.id).where(SlaPlan.slug == OFFICE_SLA_PLAN)
    ).scalar_one_or_none()
    desk_id = db.session.execute(
        sa.select(Queue.id).where(Queue.slug == "its-service-desk")
    ).scalar_one_or_none()
    for sid, row in bundle.schools.items():
        slug = school_office_slug(row.code)
        if slug not in existing:
            db.session.add(Queue(
                slug=slug, name=f"{row.name} office", school_id=school_ids[sid],
                sla_plan_id=plan_id, escalation_queue_id=desk_id,
            ))  # fmt: skip
    db.session.flush()
    return school_ids


def _check_references(bundle: Bundle, school_ids: dict[str, int]) -> None:
    """Links to records neither in the bundle nor already stored make the bundle malformed."""
    problems: list[BundleProblem] = []

    def problem(file: str, row: int | None, message: str, column: str) -> None:
        problems.append(BundleProblem(file, row, message, column))

    students = set(bundle.students) | set(_ids(Student))
    guardians = set(bundle.guardians) | set(_ids(Guardian))
    users = students | guardians | set(bundle.staff) | set(_ids(Staff))
    for rows in (bundle.staff, bundle.students):
        for sid, row in rows.items():
            if row.org not in school_ids:
                message = f"{sid} names org {row.org!r}, which is not a known school"
                problem("users.csv", row.row, message, "orgSourcedIds")
    for sid, guardian in bundle.guardians.items():
        for student in guardian.students:
            if student not in students:
                message = f"{sid} names student {student!r}, who is not in the bundle or records"
                problem("users.csv", guardian.row, message, "agentSourcedIds")
    for sid, (row_number, _) in bundle.birth_dates.items():
        if sid not in users:
            message = f"{sid!r} is not a user in the bundle or records"
            problem("demographics.csv", row_number, message, "sourcedId")
    for account in bundle.accounts.values():
        parent = account.portal == "parent"
        if account.owner not in (guardians if parent else students):
            kind = "guardian" if parent else "student"
            message = f"owner {account.owner!r} is not a {kind} in the bundle or the records"
            problem("portal_accounts.csv", account.row, message, "sourcedId")
    classes = set(bundle.classes) | set(_ids(SchoolClass))
    staff = set(bundle.staff) | set(_ids(Staff))
    for sid, taught in bundle.classes.items():
        if taught.school not in school_ids:
            message = f"{sid} names school {taught.school!r}, which is not a known school"
            problem("classes.csv", taught.row, message, "schoolSourcedId")
    for sid, enrolment in bundle.enrollments.items():
        if enrolment.class_ not in classes:
            message = f"{sid} names class {enrolment.class_!r}, not in the bundle or records"
            problem("enrollments.csv", enrolment.row, message, "classSourcedId")
        if enrolment.user not in (staff if enrolment.role == "teacher" else students):
            kind = "member of staff" if enrolment.role == "teacher" else "student"
            message = f"{sid} names {kind} {enrolment.user!r}, not in the bundle or records"
            problem("enrollments.csv", enrolment.row, message, "userSourcedId")
    if problems:
        raise MalformedBundle(problems)


def _sync_rows(
    model: Any,
    entity: str,
    report: ImportReport,
    incoming: Iterable[tuple[str, dict[str, Any]]],
    key: str = "sourced_id",
) -> dict[str, int]:
    """Insert new rows, update changed ones, count the rest; return every key's id."""
    key_column = getattr(model, key)
    stored: dict[str, Any] | None = None
    counts = report.counts[entity]
    now = utcnow()
    updates: list[dict[str, Any]] = []
    with Inserter(model.__table__) as inserter:
        for k, values in incoming:
            if stored is None:  # the columns are known once the first row is seen
                columns = list(values)
                stored = {
                    row[0]: row[1:]
                    for row in db.session.execute(
                        sa.select(key_column, model.id, *(getattr(model, c) for c in columns))
                    )
                }
            current = stored.pop(k, None)
            if current is None:
                inserter.add({key: k, **values, "updated_at": now})
                counts["created"] += 1
                continue
            before = dict(zip(columns, current[1:], strict=True))
            if before == values:
                counts["unchanged"] += 1
                continue
            updates.append({"id": current[0], **values, "updated_at": now})
            if before.get("active") and not values.get("active", True):
                counts["deactivated"] += 1
            else:
                counts["updated"] += 1
    for chunk in _chunks(updates, 5000):
        db.session.execute(sa.update(model), chunk)
    return _ids(model, key)


def _sync_links(bundle: Bundle, guardian_ids: dict[str, int], student_ids: dict[str, int]) -> None:
    """Each guardian's links become exactly those the bundle names for them."""
    wanted: dict[tuple[int, int], tuple[bool, bool]] = {}
    for sid, g in bundle.guardians.items():
        for student in g.students:
            wanted[(guardian_ids[sid], student_ids[student])] = (
                g.main_contact,
                g.parental_responsibility,
            )
    touched = {guardian_ids[sid] for sid in bundle.guardians}
    stored = {
        (gid, stid): (main, pr)
        for gid, stid, main, pr in db.session.execute(
            sa.select(
                GuardianStudent.guardian_id,
                GuardianStudent.student_id,
                GuardianStudent.main_contact,
                GuardianStudent.parental_responsibility,
            )
        )
        if gid in touched
    }
    table = GuardianStudent.__table__
    gone = [k for k in stored if k not in wanted]
    for chunk in _chunks(gone, 1000):
        db.session.execute(
            sa.delete(table).where(sa.tuple_(table.c.guardian_id, table.c.student_id).in_(chunk))
        )
    changed = []
    with Inserter(table) as inserter:
        for pair, flags in wanted.items():
            row = {"guardian_id": pair[0], "student_id": pair[1], "main_contact": flags[0],
                   "parental_responsibility": flags[1]}  # fmt: skip
            if pair not in stored:
                inserter.add(row)
            elif stored[pair] != flags:
                changed.append(row)
    for chunk in _chunks(changed, 5000):
        db.session.execute(sa.update(GuardianStudent), chunk)


def _sync_accounts(
    bundle: Bundle,
    guardian_ids: dict[str, int],
    student_ids: dict[str, int],
    report: ImportReport,
) -> None:
    pepper = current_app.config["PIN_PEPPER"]
    stored_hashes = dict(
        db.session.execute(sa.select(PortalAccount.account_number, PortalAccount.pin_hash)).all()
    )

    def pin_hash_for(row: Any) -> str:
        current = stored_hashes.get(row.account_number)
        if current and verify_pin(pepper, row.account_number, current, row.pin):
            return current  # unchanged: keep the stored hash so the row compares equal
        return hash_pin(pepper, row.account_number, row.pin)

    rows = list(bundle.accounts.values())
    bundle.accounts.clear()
    with_pin = [row for row in rows if row.pin is not None]
    # argon2 releases the GIL, so one thread per core, each with its share of the rows.
    cores = os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=cores) as pool:
        shares = pool.map(
            lambda share: [pin_hash_for(row) for row in share],
            [with_pin[i::cores] for i in range(cores)],
        )
        hashes = dict(zip(
            (row.account_number for i in range(cores) for row in with_pin[i::cores]),
            (h for share in shares for h in share),
            strict=True,
        ))  # fmt: skip
    for row in with_pin:
        row.pin = None  # the clear PIN goes no further than this function

    def incoming() -> Iterator[tuple[str, dict[str, Any]]]:
        for row in rows:
            parent = row.portal == "parent"
            yield (
                row.account_number,
                {
                    "username": row.username,
                    "portal": row.portal,
                    "guardian_id": guardian_ids[row.owner] if parent else None,
                    "student_id": None if parent else student_ids[row.owner],
                    "pin_hash": hashes.get(row.account_number),
                    "active": True,
                },
            )

    _sync_rows(PortalAccount, "portal_accounts", report, incoming(), key="account_number")


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Inserter:
    """Insert rows as they come: into PostgreSQL's COPY, or in batches elsewhere."""

    BATCH = 1000

    def __init__(self, table: sa.Table) -> None:
        self.table = table
        self.columns: list[str] = []
        self.defaults: dict[str, Any] = {}
        self.pending: list[dict[str, Any]] = []
        self._copy: Any = None
        self._stack = ExitStack()

    def __enter__(self) -> Inserter:
        return self

    def add(self, row: dict[str, Any]) -> None:
        if not self.columns:
            self._start(row)
        if self._copy is not None:
            self._copy.write_row([row.get(c, self.defaults.get(c)) for c in self.columns])
            return
        self.pending.append({**self.defaults, **row})
        if len(self.pending) >= self.BATCH:
            self._flush()

    def _start(self, row: dict[str, Any]) -> None:
        # COPY and executemany skip the model's Python-side defaults, so apply them here.
        self.defaults = {
            c.name: _default_value(c.default)
            for c in self.table.columns
            if c.name not in row and c.default is not None and not c.primary_key
        }
        self.columns = [*row, *self.defaults]
        connection = db.session.connection()
        if connection.dialect.name == "postgresql":
            driver = connection.connection.driver_connection
            cursor = self._stack.enter_context(driver.cursor())  # type: ignore[union-attr]
            names = ", ".join(f'"{c}"' for c in self.columns)
            self._copy = self._stack.enter_context(
                cursor.copy(f'COPY "{self.table.name}" ({names}) FROM STDIN')
            )

    def _flush(self) -> None:
        if self.pending:
            db.session.connection().execute(sa.insert(self.table), self.pending)
            self.pending = []

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self._flush()
        finally:
            self._stack.__exit__(*exc)  # type: ignore[arg-type]


def _default_value(default: Any) -> Any:
    """The value a column's Python-side default (a scalar or a callable) gives."""
    return default.arg(None) if default.is_callable else default.arg
