"""A OneRoster bundle's rows once read and checked, and the problems found on the way.

Plain values: nothing here reads files or touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from ..errors import InvalidInput


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
