"""Parse a OneRoster bundle into checked rows, listing every problem with file, row and column.

A bundle is a folder or a zip file holding ``orgs.csv``, ``users.csv``,
``demographics.csv`` and optionally ``portal_accounts.csv`` (SPEC §2), ``classes.csv``
and ``enrollments.csv`` (OneRoster 1.1: who teaches and who is in each class). Nothing here
touches the database: references to records that only exist in the database are
checked by the import service with the same ``BundleProblem`` shape.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO

from ..domain.addresses import UnusableAddress, checked_address
from ..errors import InvalidInput
from ..models.records import NATIONS

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


@dataclass(frozen=True)
class BundleProblem:
    file: str
    row: int | None  # line number in the file, the header being line 1
    message: str
    column: str | None = None

    def __str__(self) -> str:
        where = self.file + (f" row {self.row}" if self.row else "")
        where += f" column {self.column}" if self.column else ""
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class RejectedRow:
    file: str
    row: int
    reason: str


class MalformedBundle(InvalidInput):
    """The bundle cannot be imported; nothing was changed."""

    code = "malformed_bundle"

    def __init__(self, problems: list[BundleProblem]) -> None:
        shown = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(
            f"The roster bundle was not imported and nothing changed: {shown}{more}.",
            problems=[
                {"file": p.file, "row": p.row, "column": p.column, "message": p.message}
                for p in problems
            ],
        )
        self.problems = problems


@dataclass(slots=True)
class SchoolRow:
    sourced_id: str
    code: str
    name: str
    nation: str
    active: bool


@dataclass(slots=True)
class StaffRow:
    sourced_id: str
    org: str
    role: str
    username: str | None
    given_name: str
    family_name: str
    email: str | None
    phone: str | None
    active: bool
    row: int = 0


@dataclass(slots=True)
class StudentRow:
    sourced_id: str
    org: str
    student_number: str
    given_name: str
    middle_name: str | None
    family_name: str
    postcode: str | None
    year_stage: str | None
    active: bool
    row: int = 0
    birth_date: date | None = None
    email: str | None = None  # the student's own, where the school gives pupils one


@dataclass(slots=True)
class GuardianRow:
    sourced_id: str
    given_name: str
    family_name: str
    email: str | None
    phone: str | None
    postcode: str | None
    main_contact: bool
    parental_responsibility: bool
    students: tuple[str, ...]
    active: bool
    row: int = 0


@dataclass(slots=True)
class AccountRow:
    account_number: str
    owner: str
    username: str
    portal: str
    pin: str | None  # in clear only between reading the file and hashing it
    row: int = 0


@dataclass(slots=True)
class ClassRow:
    sourced_id: str
    school: str
    title: str
    class_code: str | None
    active: bool
    row: int = 0


@dataclass(slots=True)
class EnrollmentRow:
    sourced_id: str
    class_: str
    user: str
    role: str  # teacher or student
    active: bool
    row: int = 0


@dataclass
class Bundle:
    schools: dict[str, SchoolRow] = field(default_factory=dict)
    staff: dict[str, StaffRow] = field(default_factory=dict)
    students: dict[str, StudentRow] = field(default_factory=dict)
    guardians: dict[str, GuardianRow] = field(default_factory=dict)
    accounts: dict[str, AccountRow] = field(default_factory=dict)
    classes: dict[str, ClassRow] = field(default_factory=dict)
    enrollments: dict[str, EnrollmentRow] = field(default_factory=dict)
    birth_dates: dict[str, tuple[int, date]] = field(default_factory=dict)
    rejected: list[RejectedRow] = field(default_factory=list)


Opener = Callable[[str], IO[str] | None]


def open_bundle(path: str | Path) -> Opener:
    """A function that opens one CSV of the bundle at ``path`` (folder or zip), or None."""
    path = Path(path)
    if path.is_dir():

        def from_dir(name: str) -> IO[str] | None:
            file = path / name
            return file.open(encoding="utf-8-sig", newline="") if file.is_file() else None

        return from_dir
    if zipfile.is_zipfile(path):
        return zip_opener(zipfile.ZipFile(path))
    raise InvalidInput(
        f"{path} is neither a folder nor a zip file: give the folder holding orgs.csv, "
        "users.csv and demographics.csv, or a zip of them.",
        code="malformed_bundle",
    )


# A zip is checked before anything is inflated: a few hundred kilobytes can hold
# gigabytes ("zip bomb"). The sizes checked are the archive's own, which zipfile also
# holds each member to as it inflates it. 100,000 students with their families come to
# about 60 MB of CSV.
MAX_ZIP_MEMBERS = 50
MAX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024


def zip_opener(archive: zipfile.ZipFile) -> Opener:
    members = [info for info in archive.infolist() if not info.is_dir()]
    if len(members) > MAX_ZIP_MEMBERS:
        raise MalformedBundle([BundleProblem(
            "zip", None, f"holds {len(members)} files; a roster bundle has at most "
            f"{MAX_ZIP_MEMBERS}: zip only the bundle's CSV files")])  # fmt: skip
    total = sum(info.file_size for info in members)
    if total > MAX_UNCOMPRESSED_BYTES:
        raise MalformedBundle([BundleProblem(
            "zip", None, f"would unpack to {total // 2**20} MiB; a roster bundle may unpack "
            f"to at most {MAX_UNCOMPRESSED_BYTES // 2**20} MiB")])  # fmt: skip
    # Files may sit at the top of the zip or inside one folder.
    by_name = {Path(info.filename).name: info.filename for info in members}

    def from_zip(name: str) -> IO[str] | None:
        if name not in by_name:
            return None
        return io.TextIOWrapper(archive.open(by_name[name]), encoding="utf-8-sig", newline="")

    return from_zip


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
