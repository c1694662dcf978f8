"""A roster bundle with classes, for class resets: the sample has none, so the tests add
OneRoster classes.csv and enrollments.csv made from its users.

- ``cls-ash-oak`` "P4 Oak" at Ashgrove, taught by stf-2 (i.docherty), with every
  Ashgrove student;
- ``cls-mil-7m`` "7M Maths" at Millbrook, taught by stf-3 (h.price), with every
  Millbrook student.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from .conftest import ROSTER

OAK, SEVEN_M = "cls-ash-oak", "cls-mil-7m"
CLASSES = {OAK: ("P4 Oak", "org-ash", "stf-2"), SEVEN_M: ("7M Maths", "org-mil", "stf-3")}
STAMP = "2026-09-01T08:00:00.000Z"


def students_of(org: str) -> list[str]:
    with (ROSTER / "users.csv").open(encoding="utf-8") as users:
        return [r["sourcedId"] for r in csv.DictReader(users)
                if r["role"] == "student" and r["orgSourcedIds"] == org]  # fmt: skip


def bundle_with_classes(
    folder: Path, *, status: dict[str, str] | None = None, extra: list[dict[str, str]] = ()
) -> Path:
    """The sample bundle plus the classes; ``status`` sets an enrolment's status by its
    sourcedId (``enr-<class>-<user>``), ``extra`` adds enrolment rows as given."""
    bundle = folder / "roster-with-classes"
    shutil.rmtree(bundle, ignore_errors=True)
    shutil.copytree(ROSTER, bundle)
    with (bundle / "classes.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["sourcedId", "status", "dateLastModified", "title", "grades",
                         "courseSourcedId", "classCode", "classType", "location",
                         "schoolSourcedId", "termSourcedIds", "subjects", "subjectCodes",
                         "periods"])  # fmt: skip
        for sid, (title, org, _) in CLASSES.items():
            writer.writerow([sid, "active", STAMP, title, "", "", sid.upper(), "homeroom", "",
                             org, "", "", "", ""])  # fmt: skip
    fields = ["sourcedId", "status", "dateLastModified", "classSourcedId", "schoolSourcedId",
              "userSourcedId", "role", "primary", "beginDate", "endDate"]  # fmt: skip
    rows = []
    for sid, (_, org, teacher) in CLASSES.items():
        for user, role in [(teacher, "teacher"), *((s, "student") for s in students_of(org))]:
            key = f"enr-{sid}-{user}"
            rows.append({"sourcedId": key, "status": (status or {}).get(key, "active"),
                         "dateLastModified": STAMP, "classSourcedId": sid,
                         "schoolSourcedId": org, "userSourcedId": user, "role": role,
                         "primary": "true" if role == "teacher" else "false",
                         "beginDate": "2026-08-20", "endDate": "2027-06-30"})  # fmt: skip
    with (bundle / "enrollments.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        writer.writerows([*rows, *extra])
    return bundle
