"""Classes from the roster: classes.csv and enrollments.csv imported with the rest of
the bundle, all or nothing, with the same report and errors."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from helpdesk.extensions import db
from helpdesk.models import Enrollment, SchoolClass
from helpdesk.roster import MalformedBundle, open_bundle
from helpdesk.services.roster import import_roster

from .classes import OAK, STAMP, bundle_with_classes, students_of

ASHGROVE_STUDENTS = students_of("org-ash")


def test_classes_and_enrolments_are_imported_and_a_leaving_enrolment_ends(app, tmp_path):
    report = import_roster(open_bundle(bundle_with_classes(tmp_path)), source="tests")
    assert report.counts["classes"]["created"] == 2
    assert report.counts["enrollments"]["created"] == (
        2 + len(ASHGROVE_STUDENTS) + len(students_of("org-mil"))
    )
    leaving = f"enr-{OAK}-{ASHGROVE_STUDENTS[0]}"
    again = import_roster(open_bundle(bundle_with_classes(
        tmp_path, status={leaving: "tobedeleted"})), source="tests")  # fmt: skip
    assert again.counts["enrollments"]["deactivated"] == 1
    assert (
        db.session.execute(
            sa.select(Enrollment.active).where(Enrollment.sourced_id == leaving)
        ).scalar_one()
        is False
    )


def test_a_bad_enrolment_is_reported_by_row_and_column_and_nothing_changes(app, tmp_path):
    stranger = {"sourcedId": "enr-x", "status": "active", "dateLastModified": STAMP,
                "classSourcedId": "cls-nowhere", "schoolSourcedId": "org-ash",
                "userSourcedId": "stu-nobody", "role": "student", "primary": "",
                "beginDate": "", "endDate": ""}  # fmt: skip
    aide = {**stranger, "sourcedId": "enr-aide", "classSourcedId": OAK,
            "userSourcedId": "stf-1", "role": "aide"}  # fmt: skip
    with pytest.raises(MalformedBundle) as refused:
        import_roster(open_bundle(bundle_with_classes(tmp_path, extra=[stranger, aide])),
                      source="tests")  # fmt: skip
    where = {(p.file, p.column) for p in refused.value.problems}
    assert where == {("enrollments.csv", "classSourcedId"), ("enrollments.csv", "userSourcedId")}
    assert all(p.row and p.row > 1 for p in refused.value.problems)
    assert db.session.execute(sa.select(sa.func.count()).select_from(SchoolClass)).scalar() == 0
    report = import_roster(open_bundle(bundle_with_classes(tmp_path, extra=[aide])),
                           source="tests")  # fmt: skip
    assert [r.file for r in report.rejected if "aide" in r.reason] == ["enrollments.csv"]
