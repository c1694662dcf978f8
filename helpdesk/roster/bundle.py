"""Parse a OneRoster bundle into checked rows, listing every problem with file, row and column.

A bundle is a folder or a zip file holding ``orgs.csv``, ``users.csv``,
``demographics.csv`` and optionally ``portal_accounts.csv`` (SPEC §2), ``classes.csv``
and ``enrollments.csv`` (OneRoster 1.1: who teaches and who is in each class). Nothing here
touches the database: references to records that only exist in the database are
checked by the import service with the same ``BundleProblem`` shape.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from datetime import date, datetime

from ..domain.addresses import UnusableAddress, checked_address
from ..models.records import NATIONS
from .files import Opener
from .rows import (
    AccountRow,
    Bundle,
    BundleProblem,
    ClassRow,
    EnrollmentRow,
    GuardianRow,
    MalformedBundle,
    RejectedRow,
    SchoolRow,
    StaffRow,
    StudentRow,
)

REQUIRED_COLUMNS = {
    "orgs.csv": ("sourcedId", "status", "name", "type", "identifier", "metadata.nation"),
    "users.csv": (
        "sourcedId",
        "status",
        "orgSourcedIds",
        "role",
        "username",
        "givenName",
        "familyName",
        "identifier",
        "email",
        "phone",
        "agentSourcedIds",
        "metadata.postcode",
        "metadata.yearStage",
        "metadata.mainContact",
        "metadata.parentalResponsibility",
    ),
    "demographics.csv": ("sourcedId", "status", "birthDate"),
    "portal_accounts.csv": ("sourcedId", "accountNumber", "username", "pin", "portal"),
    "classes.csv": ("sourcedId", "status", "title", "classCode", "schoolSourcedId"),
    "enrollments.csv": (
        "sourcedId",
        "status",
        "classSourcedId",
        "schoolSourcedId",
        "userSourcedId",
        "role",
    ),
}
OPTIONAL_FILES = frozenset({"portal_accounts.csv", "classes.csv", "enrollments.csv"})
ENROLLED_ROLES = frozenset({"teacher", "student"})
STATUSES = frozenset({"active", "tobedeleted"})
STAFF_ROLES = frozenset({"teacher", "administrator"})
GUARDIAN_ROLES = frozenset({"parent", "guardian"})
_PIN = re.compile(r"^\d{4,12}$")


def _not_utf8(raw: bytes) -> str:
    """What to tell someone whose file is not UTF-8, naming the encoding it looks like."""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        found = "UTF-16 (Excel's 'Unicode Text')"
    else:
        try:
            raw.decode("cp1252")
            found = "Windows-1252 or Latin-1 (Excel's plain 'CSV')"
        except UnicodeDecodeError:
            found = "an encoding other than UTF-8"
    return (
        f"is saved as {found}, but UTF-8 is needed: save it again as 'CSV UTF-8 (Comma "
        "delimited)', or export it from the school's MIS as UTF-8"
    )


class _Reader:
    """Collects problems while rows are read, so that one pass reports all of them."""

    def __init__(self, opener: Opener) -> None:
        self.opener = opener
        self.problems: list[BundleProblem] = []

    def problem(self, file: str, row: int | None, message: str, column: str | None = None) -> None:
        self.problems.append(BundleProblem(file, row, message, column))

    def rows(self, name: str) -> Iterator[tuple[int, dict[str, str]]]:
        handle = self.opener(name)
        if handle is None:
            if name not in OPTIONAL_FILES:
                self.problem(name, None, "file is missing from the bundle")
            return
        with handle:
            reader = csv.DictReader(handle)
            try:
                header = reader.fieldnames or []
                missing = [c for c in REQUIRED_COLUMNS[name] if c not in header]
                for column in missing:
                    self.problem(name, 1, "required column is missing", column)
                if missing:
                    return
                for number, row in enumerate(reader, start=2):
                    if None in row:
                        self.problem(name, number, "row has more values than the header")
                        continue
                    if None in row.values():
                        given = sum(value is not None for value in row.values())
                        self.problem(
                            name, number,
                            f"row has {given} values but the header has {len(header)}",
                        )  # fmt: skip
                        continue
                    nul = [column for column, value in row.items() if value and "\x00" in value]
                    for column in nul:
                        self.problem(name, number, "contains a NUL character (U+0000)", column)
                    if nul:
                        continue
                    yield number, row
            except UnicodeDecodeError as exc:
                self.problem(name, reader.line_num or 1, _not_utf8(exc.object))
            except csv.Error as exc:
                self.problem(name, reader.line_num, f"cannot be read as CSV ({exc})")

    def status(self, name: str, number: int, row: dict[str, str]) -> bool:
        status = row["status"].strip() or "active"
        if status not in STATUSES:
            self.problem(name, number, f"status {status!r} is not active or tobedeleted", "status")
        if "dateLastModified" in row and row["dateLastModified"].strip():
            try:
                datetime.fromisoformat(row["dateLastModified"].strip().replace("Z", "+00:00"))
            except ValueError:
                self.problem(
                    name,
                    number,
                    f"{row['dateLastModified']!r} is not an ISO 8601 date-time",
                    "dateLastModified",
                )
        return status != "tobedeleted"

    def flag(self, name: str, number: int, row: dict[str, str], column: str) -> bool:
        value = row[column].strip().lower()
        if value not in {"", "true", "false"}:
            self.problem(name, number, f"{row[column]!r} is not true or false", column)
        return value == "true"

    def email(self, name: str, number: int, row: dict[str, str]) -> str | None:
        value = row["email"].strip()
        if not value:
            return None
        try:
            return checked_address(value)
        except UnusableAddress as error:
            self.problem(name, number, str(error), "email")
            return value

    def unique(self, seen: dict[str, int], name: str, number: int, key: str, column: str) -> bool:
        if not key:
            self.problem(name, number, "is empty", column)
            return False
        if key in seen:
            self.problem(name, number, f"{key!r} is repeated (first on row {seen[key]})", column)
            return False
        seen[key] = number
        return True


def _blank(value: str) -> str | None:
    return value.strip() or None


def parse_bundle(opener: Opener) -> Bundle:
    """Read and check every file of the bundle; raise ``MalformedBundle`` listing all problems."""
    reader = _Reader(opener)
    bundle = Bundle()
    _read_orgs(reader, bundle)
    _read_users(reader, bundle)
    _read_demographics(reader, bundle)
    _read_accounts(reader, bundle)
    _read_classes(reader, bundle)
    _read_enrollments(reader, bundle)
    if reader.problems:
        raise MalformedBundle(reader.problems)
    return bundle


def _read_orgs(reader: _Reader, bundle: Bundle) -> None:
    seen: dict[str, int] = {}
    for number, row in reader.rows("orgs.csv"):
        sid = row["sourcedId"].strip()
        if not reader.unique(seen, "orgs.csv", number, sid, "sourcedId"):
            continue
        active = reader.status("orgs.csv", number, row)
        if row["type"].strip() != "school":
            bundle.rejected.append(
                RejectedRow("orgs.csv", number, f"org type {row['type'].strip()!r} is not a school")
            )
            continue
        nation = row["metadata.nation"].strip().upper()
        if nation not in NATIONS:
            reader.problem(
                "orgs.csv",
                number,
                f"{nation!r} is not one of {', '.join(NATIONS)}",
                "metadata.nation",
            )
        code = row["identifier"].strip()
        if not code:
            reader.problem("orgs.csv", number, "a school needs its identifier", "identifier")
        bundle.schools[sid] = SchoolRow(sid, code, row["name"].strip(), nation, active)


def _read_users(reader: _Reader, bundle: Bundle) -> None:
    seen: dict[str, int] = {}
    for number, row in reader.rows("users.csv"):
        sid = row["sourcedId"].strip()
        if not reader.unique(seen, "users.csv", number, sid, "sourcedId"):
            continue
        active = reader.status("users.csv", number, row)
        role = row["role"].strip()
        orgs = [o.strip() for o in row["orgSourcedIds"].split(",") if o.strip()]
        given, family = row["givenName"].strip(), row["familyName"].strip()
        if not given or not family:
            reader.problem("users.csv", number, "givenName and familyName are both needed")
        if role in GUARDIAN_ROLES:
            students = tuple(s.strip() for s in row["agentSourcedIds"].split(",") if s.strip())
            bundle.guardians[sid] = GuardianRow(
                sid,
                given,
                family,
                reader.email("users.csv", number, row),
                _blank(row["phone"]) or _blank(row.get("sms", "")),
                _blank(row["metadata.postcode"]),
                reader.flag("users.csv", number, row, "metadata.mainContact"),
                reader.flag("users.csv", number, row, "metadata.parentalResponsibility"),
                students,
                active,
                number,
            )
            continue
        if role not in STAFF_ROLES and role != "student":
            bundle.rejected.append(
                RejectedRow(
                    "users.csv",
                    number,
                    f"role {role!r} is not kept (only student, parent, guardian, teacher, "
                    "administrator)",
                )
            )
            continue
        if not orgs:
            reader.problem("users.csv", number, "names no org", "orgSourcedIds")
            continue
        if role == "student":
            number_id = row["identifier"].strip().upper()
            if not number_id:
                reader.problem(
                    "users.csv",
                    number,
                    "a student needs the school's student number",
                    "identifier",
                )
            bundle.students[sid] = StudentRow(
                sid,
                orgs[0],
                number_id,
                given,
                _blank(row.get("middleName", "")),
                family,
                _blank(row["metadata.postcode"]),
                _blank(row["metadata.yearStage"]),
                active,
                number,
                email=reader.email("users.csv", number, row),
            )
        else:
            bundle.staff[sid] = StaffRow(
                sid,
                orgs[0],
                role,
                _blank(row["username"]),
                given,
                family,
                reader.email("users.csv", number, row),
                _blank(row["phone"]),
                active,
                number,
            )


def _read_demographics(reader: _Reader, bundle: Bundle) -> None:
    seen: dict[str, int] = {}
    for number, row in reader.rows("demographics.csv"):
        sid = row["sourcedId"].strip()
        if not reader.unique(seen, "demographics.csv", number, sid, "sourcedId"):
            continue
        reader.status("demographics.csv", number, row)
        raw = row["birthDate"].strip()
        if not raw:
            continue
        try:
            born = date.fromisoformat(raw)
        except ValueError:
            reader.problem(
                "demographics.csv", number, f"{raw!r} is not a date like 2015-04-30", "birthDate"
            )
            continue
        bundle.birth_dates[sid] = (number, born)
        if sid in bundle.students:
            bundle.students[sid].birth_date = born


def _read_accounts(reader: _Reader, bundle: Bundle) -> None:
    seen: dict[str, int] = {}
    for number, row in reader.rows("portal_accounts.csv"):
        account = row["accountNumber"].strip().upper()
        if not reader.unique(seen, "portal_accounts.csv", number, account, "accountNumber"):
            continue
        portal = row["portal"].strip()
        if portal not in {"parent", "student"}:
            reader.problem(
                "portal_accounts.csv", number, f"{portal!r} is not parent or student", "portal"
            )
        pin = row["pin"].strip() or None
        if pin is not None and not _PIN.match(pin):
            # Never echo the value: it is a secret even when malformed.
            reader.problem("portal_accounts.csv", number, "PIN must be 4 to 12 digits", "pin")
        username = row["username"].strip()
        if not username:
            reader.problem("portal_accounts.csv", number, "is empty", "username")
        bundle.accounts[account] = AccountRow(
            account, row["sourcedId"].strip(), username, portal, pin, number
        )


def _read_classes(reader: _Reader, bundle: Bundle) -> None:
    seen: dict[str, int] = {}
    for number, row in reader.rows("classes.csv"):
        sid = row["sourcedId"].strip()
        if not reader.unique(seen, "classes.csv", number, sid, "sourcedId"):
            continue
        active = reader.status("classes.csv", number, row)
        title = row["title"].strip()
        if not title:
            reader.problem("classes.csv", number, "a class needs its title", "title")
        school = row["schoolSourcedId"].strip()
        if not school:
            reader.problem("classes.csv", number, "names no school", "schoolSourcedId")
        bundle.classes[sid] = ClassRow(sid, school, title, _blank(row["classCode"]), active,
                                       number)  # fmt: skip


def _read_enrollments(reader: _Reader, bundle: Bundle) -> None:
    seen: dict[str, int] = {}
    for number, row in reader.rows("enrollments.csv"):
        sid = row["sourcedId"].strip()
        if not reader.unique(seen, "enrollments.csv", number, sid, "sourcedId"):
            continue
        active = reader.status("enrollments.csv", number, row)
        role = row["role"].strip()
        if role not in ENROLLED_ROLES:
            bundle.rejected.append(RejectedRow(
                "enrollments.csv", number,
                f"role {role!r} is not kept (only teacher and student enrolments)",
            ))  # fmt: skip
            continue
        class_, user = row["classSourcedId"].strip(), row["userSourcedId"].strip()
        if not class_:
            reader.problem("enrollments.csv", number, "names no class", "classSourcedId")
        if not user:
            reader.problem("enrollments.csv", number, "names no user", "userSourcedId")
        bundle.enrollments[sid] = EnrollmentRow(sid, class_, user, role, active, number)
