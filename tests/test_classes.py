"""Classes from the roster and class resets: a teacher resets some or all of their own
class's students in one call, each its own verified incident, all in one commit or
none; nobody reaches a student outside their classes by any route."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from helpdesk.extensions import db
from helpdesk.models import Enrollment, Incident, SchoolClass, Student
from helpdesk.roster import MalformedBundle, open_bundle
from helpdesk.services.roster import import_roster

from .classes import OAK, SEVEN_M, STAMP, bundle_with_classes, students_of
from .samples import ISLA_RESET, RORY_RESET, file

ASHGROVE_STUDENTS = students_of("org-ash")


@pytest.fixture
def classes(app, tmp_path):
    return import_roster(open_bundle(bundle_with_classes(tmp_path)), source="tests")


def _incidents() -> int:
    return db.session.execute(sa.select(sa.func.count()).select_from(Incident)).scalar_one()


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


def test_a_teacher_resets_some_of_their_class_each_as_its_own_verified_incident(
    client, actors, classes
):
    teacher = actors.ashgrove_teacher.headers
    listed = client.get("/api/v1/classes", headers=teacher).json
    assert listed == [{"id": OAK, "title": "P4 Oak", "class_code": OAK.upper(),
                       "students": len(ASHGROVE_STUDENTS)}]  # fmt: skip
    roster = client.get(f"/api/v1/classes/{OAK}", headers=teacher).json["students"]
    chosen = [s["id"] for s in roster[:2]]
    answer = client.post(f"/api/v1/classes/{OAK}/resets", json={"students": chosen},
                         headers=teacher)  # fmt: skip
    assert answer.status_code == 201, answer.json
    filed = answer.json["incidents"]
    assert len(filed) == 2
    numbers = {s["student_number"] for s in roster[:2]}
    assert {i["details"]["student_id"] for i in filed} == numbers
    for incident in filed:
        # Routed and fulfilled as a single reset is (samples: its-student-systems, at once).
        assert incident["type"] == "student_password_reset"
        assert incident["verification"]["outcome"] == "passed"
        assert (incident["queue"], incident["status"]) == (
            "its-student-systems",
            "awaiting_fulfilment",
        )
        assert incident["fulfilment"] is not None
        assert incident["filer"] == actors.ashgrove_teacher.email
    single = file(client, actors.ashgrove, **RORY_RESET).json
    assert (single["queue"], single["status"]) == ("its-student-systems", "awaiting_fulfilment")
    # A student of the class reset filed alone while theirs is open: pointed at it.
    (isla,) = [i for i in filed if i["details"]["student_id"] == ISLA_RESET["student_id"]]
    again = file(client, actors.ashgrove, **ISLA_RESET)
    assert (again.status_code, again.json["open"]) == (409, isla["ref"])
    twice = client.post(f"/api/v1/classes/{OAK}/resets", json={"students": chosen},
                        headers=teacher)  # fmt: skip
    assert twice.status_code == 409 and set(twice.json["open_refs"]) == {i["ref"] for i in filed}
    assert "Nothing new was filed" in twice.json["message"]
    # The whole class: those with one open are left out, pointed at it; the rest filed.
    everyone = client.post(f"/api/v1/classes/{OAK}/resets", json={"all": True},
                           headers=teacher)  # fmt: skip
    assert everyone.status_code == 201, everyone.json
    open_ones = [*filed, single]  # Rory's single reset is open too
    assert {o["ref"] for o in everyone.json["already_open"]} == {i["ref"] for i in open_ones}
    assert {o["student"] for o in everyone.json["already_open"]} == {
        i["details"]["student_name"] for i in open_ones}  # fmt: skip
    assert len(everyone.json["incidents"]) == len(ASHGROVE_STUDENTS) - 3


def test_all_of_a_class_is_filed_in_one_call(client, actors, classes):
    answer = client.post(f"/api/v1/classes/{OAK}/resets", json={"all": True},
                         headers=actors.ashgrove_teacher.headers)  # fmt: skip
    assert answer.status_code == 201, answer.json
    assert len(answer.json["incidents"]) == len(ASHGROVE_STUDENTS)
    assert len({i["ref"] for i in answer.json["incidents"]}) == len(ASHGROVE_STUDENTS)


def test_nobody_reaches_a_student_outside_their_classes(client, actors, classes):
    teacher = actors.ashgrove_teacher.headers
    before = _incidents()
    # Another school's student, by a crafted id, in the teacher's own class: 404.
    millbrook = students_of("org-mil")[0]
    crafted = client.post(
        f"/api/v1/classes/{OAK}/resets",
        json={"students": [ASHGROVE_STUDENTS[0], millbrook]},
        headers=teacher,
    )
    assert crafted.status_code == 404 and millbrook in crafted.json["message"]
    # Another teacher's class, and a class of no one: 404 alike, to list or to reset.
    for other in (SEVEN_M, "cls-nowhere"):
        assert client.get(f"/api/v1/classes/{other}", headers=teacher).status_code == 404
        assert client.post(f"/api/v1/classes/{other}/resets", json={"all": True},
                           headers=teacher).status_code == 404  # fmt: skip
    # A colleague at the same school who teaches no class sees none and resets none.
    office = actors.ashgrove.headers
    assert client.get("/api/v1/classes", headers=office).json == []
    assert client.post(f"/api/v1/classes/{OAK}/resets", json={"all": True},
                       headers=office).status_code == 404  # fmt: skip
    assert _incidents() == before


def test_a_student_who_left_the_class_is_out_of_reach(client, actors, tmp_path, app):
    leaving = f"enr-{OAK}-{ASHGROVE_STUDENTS[0]}"
    import_roster(open_bundle(bundle_with_classes(
        tmp_path, status={leaving: "tobedeleted"})), source="tests")  # fmt: skip
    teacher = actors.ashgrove_teacher.headers
    roster = client.get(f"/api/v1/classes/{OAK}", headers=teacher).json["students"]
    assert ASHGROVE_STUDENTS[0] not in [s["id"] for s in roster]
    answer = client.post(
        f"/api/v1/classes/{OAK}/resets", json={"students": [ASHGROVE_STUDENTS[0]]}, headers=teacher
    )
    assert answer.status_code == 404


def test_a_class_is_filed_whole_or_not_at_all(client, actors, classes):
    teacher = actors.ashgrove_teacher.headers
    before = _incidents()
    unknown_birth = ASHGROVE_STUDENTS[1]
    db.session.execute(sa.update(Student).where(Student.sourced_id == unknown_birth)
                       .values(birth_date=None))  # fmt: skip
    refused = client.post(f"/api/v1/classes/{OAK}/resets", json={"all": True}, headers=teacher)
    assert refused.status_code == 422 and "no birth date" in refused.json["message"]
    assert _incidents() == before
    # A student whose record checks are locked stops the whole class, before any write.
    locked = ASHGROVE_STUDENTS[0]
    number = db.session.execute(
        sa.select(Student.student_number).where(Student.sourced_id == locked)
    ).scalar_one()
    wrong = {"type": "student_password_reset", "student_id": number,
             "student_name": "Nobody Atall", "birth_month_year": "011999"}  # fmt: skip
    tries: list[int] = []
    while len(tries) < 10 and 429 not in tries:  # 5 failures a day lock a record
        tries.append(client.post("/api/v1/incidents", json=wrong, headers=teacher).status_code)
    assert tries[-1] == 429, tries
    before = _incidents()
    others = [s for s in ASHGROVE_STUDENTS if s != unknown_birth]
    answer = client.post(f"/api/v1/classes/{OAK}/resets", json={"students": others},
                         headers=teacher)  # fmt: skip
    assert answer.status_code == 429
    assert _incidents() == before


def test_a_reset_request_says_what_to_send(client, actors, classes):
    teacher = actors.ashgrove_teacher.headers
    for body in ({}, {"students": []}, {"students": ["x"], "all": True}, {"everyone": True}):
        answer = client.post(f"/api/v1/classes/{OAK}/resets", json=body, headers=teacher)
        assert answer.status_code == 422, body


def test_another_schools_pupil_enrolled_in_a_class_is_not_reached(client, actors, tmp_path, app):
    millbrook = students_of("org-mil")[0]
    stray = {"sourcedId": "enr-stray", "status": "active", "dateLastModified": STAMP,
             "classSourcedId": OAK, "schoolSourcedId": "org-ash", "userSourcedId": millbrook,
             "role": "student", "primary": "", "beginDate": "", "endDate": ""}  # fmt: skip
    import_roster(open_bundle(bundle_with_classes(tmp_path, extra=[stray])), source="tests")
    teacher = actors.ashgrove_teacher.headers
    assert client.get("/api/v1/classes", headers=teacher).json[0]["students"] == len(
        ASHGROVE_STUDENTS)  # fmt: skip
    answer = client.post(f"/api/v1/classes/{OAK}/resets", json={"students": [millbrook]},
                         headers=teacher)  # fmt: skip
    assert answer.status_code == 404


def test_a_record_no_reset_form_takes_is_named_not_a_500(client, actors, classes):
    odd = ASHGROVE_STUDENTS[2]
    db.session.execute(sa.update(Student).where(Student.sourced_id == odd)
                       .values(student_number="ASH 240/891"))  # fmt: skip
    before = _incidents()
    answer = client.post(f"/api/v1/classes/{OAK}/resets", json={"all": True},
                         headers=actors.ashgrove_teacher.headers)  # fmt: skip
    assert answer.status_code == 422 and "ASH 240/891" in answer.json["message"]
    assert _incidents() == before
