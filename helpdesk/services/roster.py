"""Import a OneRoster bundle: upsert on sourcedId, all in one transaction or not at all."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import current_app

from ..domain.matching import name_key
from ..extensions import db
from ..models import (
    Guardian,
    GuardianStudent,
    PortalAccount,
    Queue,
    RosterImport,
    School,
    Staff,
    Student,
    school_office_slug,
    utcnow,
)
from ..roster import Bundle, BundleProblem, MalformedBundle, RejectedRow, parse_bundle
from ..roster.bundle import Opener
from ..security import hash_pin, verify_pin

ENTITIES = ("schools", "staff", "students", "guardians", "portal_accounts")


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


def import_roster(opener: Opener, *, source: str, actor_id: int | None = None) -> ImportReport:
    """Check the whole bundle, then apply it in one transaction; on any problem change nothing."""
    bundle = parse_bundle(opener)
    try:
        report = _apply(bundle)
        db.session.add(
            RosterImport(actor_id=actor_id, source=source[:255], report=report.to_dict())
        )
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return report


def _ids(model: Any, key: str = "sourced_id") -> dict[str, int]:
    column = getattr(model, key)
    return dict(db.session.execute(sa.select(column, model.id)).all())


def _apply(bundle: Bundle) -> ImportReport:
    report = ImportReport(rejected=list(bundle.rejected))
    school_ids = _sync_schools(bundle, report)
    _check_references(bundle, school_ids)
    _sync_rows(
        Staff,
        "staff",
        report,
        {
            sid: {
                "school_id": school_ids[r.org],
                "role": r.role,
                "username": r.username,
                "given_name": r.given_name,
                "family_name": r.family_name,
                "email": r.email,
                "phone": r.phone,
                "active": r.active,
            }
            for sid, r in bundle.staff.items()
        },
    )
    student_ids = _sync_rows(
        Student,
        "students",
        report,
        {
            sid: {
                "school_id": school_ids[r.org],
                "student_number": r.student_number,
                "given_name": r.given_name,
                "middle_name": r.middle_name,
                "family_name": r.family_name,
                "family_name_key": name_key(r.family_name),
                "birth_date": r.birth_date,
                "postcode": r.postcode,
                "year_stage": r.year_stage,
                "active": r.active,
            }
            for sid, r in bundle.students.items()
        },
    )
    guardian_ids = _sync_rows(
        Guardian,
        "guardians",
        report,
        {
            sid: {
                "given_name": r.given_name,
                "family_name": r.family_name,
                "email": r.email,
                "phone": r.phone,
                "postcode": r.postcode,
                "active": r.active,
            }
            for sid, r in bundle.guardians.items()
        },
    )
    _sync_links(bundle, guardian_ids, student_ids)
    _sync_accounts(bundle, guardian_ids, student_ids, report)
    return report


def _sync_schools(bundle: Bundle, report: ImportReport) -> dict[str, int]:
    school_ids = _sync_rows(
        School,
        "schools",
        report,
        {
            sid: {"code": r.code, "name": r.name, "nation": r.nation, "active": r.active}
            for sid, r in bundle.schools.items()
        },
    )
    existing = set(db.session.execute(sa.select(Queue.slug)).scalars())
    for sid, row in bundle.schools.items():
        slug = school_office_slug(row.code)
        if slug not in existing:
            db.session.add(Queue(slug=slug, name=f"{row.name} office", school_id=school_ids[sid]))
    db.session.flush()
    return school_ids


def _check_references(bundle: Bundle, school_ids: dict[str, int]) -> None:
    """Links to records neither in the bundle nor already stored make the bundle malformed."""
    problems: list[BundleProblem] = []
    students = set(bundle.students) | set(_ids(Student))
    guardians = set(bundle.guardians) | set(_ids(Guardian))
    users = students | guardians | set(bundle.staff) | set(_ids(Staff))
    for file, rows in (("users.csv", bundle.staff), ("users.csv", bundle.students)):
        for sid, row in rows.items():
            if row.org not in school_ids:
                problems.append(
                    BundleProblem(
                        file,
                        None,
                        f"{sid} names org {row.org!r}, which is not a known school",
                        "orgSourcedIds",
                    )
                )
    for sid, guardian in bundle.guardians.items():
        for student in guardian.students:
            if student not in students:
                problems.append(
                    BundleProblem(
                        "users.csv",
                        guardian.row,
                        f"{sid} names student {student!r}, who is not in the bundle or the records",
                        "agentSourcedIds",
                    )
                )
    for sid, (row_number, _) in bundle.birth_dates.items():
        if sid not in users:
            problems.append(
                BundleProblem(
                    "demographics.csv",
                    row_number,
                    f"{sid!r} is not a user in the bundle or records",
                    "sourcedId",
                )
            )
    for account in bundle.accounts.values():
        owners = guardians if account.portal == "parent" else students
        if account.owner not in owners:
            kind = "guardian" if account.portal == "parent" else "student"
            problems.append(
                BundleProblem(
                    "portal_accounts.csv",
                    account.row,
                    f"owner {account.owner!r} is not a {kind} in the bundle or the records",
                    "sourcedId",
                )
            )
    if problems:
        raise MalformedBundle(problems)


def _sync_rows(
    model: Any,
    entity: str,
    report: ImportReport,
    incoming: dict[str, dict[str, Any]],
    key: str = "sourced_id",
) -> dict[str, int]:
    """Insert new rows, update changed ones, count the rest; return every key's id."""
    if not incoming:
        return _ids(model, key)
    columns = list(next(iter(incoming.values())))
    key_column = getattr(model, key)
    stored = {
        row[0]: row[1:]
        for row in db.session.execute(
            sa.select(key_column, model.id, *(getattr(model, c) for c in columns))
        )
    }
    counts = report.counts[entity]
    now = utcnow()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for k, values in incoming.items():
        current = stored.get(k)
        if current is None:
            inserts.append({key: k, **values, "updated_at": now})
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
    bulk_insert(model.__table__, inserts)
    if updates:
        db.session.execute(sa.update(model), updates)
    if inserts:
        return _ids(model, key)
    return {k: v[0] for k, v in stored.items()}


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
    gone = [k for k in stored if k not in wanted]
    table = GuardianStudent.__table__
    for chunk in _chunks(gone, 1000):
        db.session.execute(
            sa.delete(table).where(sa.tuple_(table.c.guardian_id, table.c.student_id).in_(chunk))
        )
    changed = [
        {"guardian_id": g, "student_id": s, "main_contact": m, "parental_responsibility": p}
        for (g, s), (m, p) in wanted.items()
        if (g, s) in stored and stored[(g, s)] != (m, p)
    ]
    if changed:
        db.session.execute(sa.update(GuardianStudent), changed)
    bulk_insert(
        table,
        [
            {"guardian_id": g, "student_id": s, "main_contact": m, "parental_responsibility": p}
            for (g, s), (m, p) in wanted.items()
            if (g, s) not in stored
        ],
    )


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

    def pin_hash_for(row: Any) -> str | None:
        if row.pin is None:
            return None
        current = stored_hashes.get(row.account_number)
        if current and verify_pin(pepper, row.account_number, current, row.pin):
            return current  # unchanged: keep the stored hash so the row compares equal
        return hash_pin(pepper, row.account_number, row.pin)

    rows = list(bundle.accounts.values())
    # argon2 releases the GIL, so threads hash on every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        hashes = list(pool.map(pin_hash_for, rows, chunksize=256))
    incoming = {}
    for row, pin_hash in zip(rows, hashes, strict=True):
        row.pin = None  # the clear PIN goes no further than this function
        is_parent = row.portal == "parent"
        incoming[row.account_number] = {
            "username": row.username,
            "portal": row.portal,
            "guardian_id": guardian_ids[row.owner] if is_parent else None,
            "student_id": None if is_parent else student_ids[row.owner],
            "pin_hash": pin_hash,
            "active": True,
        }
    _sync_rows(PortalAccount, "portal_accounts", report, incoming, key="account_number")


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def bulk_insert(table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows: PostgreSQL's COPY when available, executemany elsewhere."""
    if not rows:
        return
    connection = db.session.connection()
    if connection.dialect.name != "postgresql":
        connection.execute(sa.insert(table), rows)
        return
    # COPY skips the model's Python-side defaults, so apply them here.
    defaults = {
        c.name: _default_value(c.default)
        for c in table.columns
        if c.name not in rows[0] and c.default is not None and not c.primary_key
    }
    if defaults:
        rows = [{**defaults, **row} for row in rows]
    columns = list(rows[0])
    column_list = ", ".join(f'"{c}"' for c in columns)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor, cursor.copy(f'COPY "{table.name}" ({column_list}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def _default_value(default: Any) -> Any:
    """The value a column's Python-side default (a scalar or a callable) gives."""
    return default.arg(None) if default.is_callable else default.arg
