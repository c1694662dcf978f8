"""Verification against the sample roster's hand-written edge-case families (README there)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from helpdesk.extensions import db
from helpdesk.models import Incident, Student

from .samples import AGAIN, FIONA_RESET, ISLA_RESET, LINK_FAILURE, file
from .test_incidents_api import incident_count


def birth_date_of(sourced_id: str) -> str:
    return (
        db.session.execute(sa.select(Student.birth_date).where(Student.sourced_id == sourced_id))
        .scalar_one()
        .isoformat()
    )


def results(response):
    assert response.status_code == 201, response.json
    return response.json["verification"]


def field_result(response, name):
    return results(response)["fields"][name]


@pytest.mark.parametrize(
    "typed",
    ["Isla Campbell", "isla campbell", "  ISLA   CAMPBELL ", "Campbell Isla"],
)
def test_student_name_is_case_and_space_insensitive(client, actors, typed):
    response = file(client, actors.ashgrove, **{**ISLA_RESET, "student_name": typed})
    assert results(response)["outcome"] == "passed"


def test_accented_and_gaelic_names_match_typed_without_accents(client, actors):
    # Family 2: Zoë Ní Bhriain at Kelvinside, born 2011-11.
    response = file(
        client,
        actors.kelvinside,
        type="student_password_reset",
        student_id="KEL941235",
        student_name="Zoe Ni Bhriain",
        birth_month_year="112011",
    )
    assert results(response)["outcome"] == "passed"
    response = file(
        client,
        actors.kelvinside,
        type="parent_password_reset",
        parent_name="MAIRE NIBHRIAIN",
        contact_phone="+44 7700 900201",
        parent_pin="066172",
        parent_account_number="p500005",
        student_id="KEL900875",
    )
    assert results(response)["outcome"] == "passed"


def test_hyphen_and_apostrophe_do_not_matter_but_a_nickname_is_flagged(client, actors):
    # Family 6: Alexander O'Neill-Kerr; typed as "Alex" the reason suggests a nickname.
    base = {
        **LINK_FAILURE,
        "parent_given_name": "Catriona",
        "parent_family_name": "ONeill Kerr",
        "parent_postcode": "ka71uj",
        "child_given_name": "Alexander",
        "child_family_name": "o'neill-kerr",
        "child_birth_date": birth_date_of("stu-6-0"),
        "child_year_stage": "S4",
    }
    assert results(file(client, actors.kelvinside, **base))["outcome"] == "passed"
    nickname = file(client, actors.kelvinside, **{**base, "child_given_name": "Alex"})
    assert field_result(nickname, "child_given_name") == {
        "result": "mismatch",
        "reason": "name differs: nickname?",
    }
    assert results(nickname)["outcome"] == "failed"


def test_wrong_birth_month_fails_without_revealing_the_record(client, actors):
    response = file(client, actors.ashgrove, **{**ISLA_RESET, "birth_month_year": "052017"})
    verification = results(response)
    assert verification["outcome"] == "failed"
    # A wrong birth month reads exactly as an unknown student number: neither is told.
    unknown = file(client, actors.ashgrove, **{**ISLA_RESET, "student_id": "ASH000001"})
    assert results(unknown) == verification
    assert {r["result"] for r in verification["fields"].values()} == {"not_found"}
    assert "042017" not in response.get_data(as_text=True)
    # A failed check still files, for a person to look at on the service desk.
    assert response.json["queue"] == "its-service-desk"


def test_a_student_of_another_school_is_not_found(client, actors):
    # Jack Hughes is at Millbrook; Ashgrove's office cannot reach him.
    response = file(
        client,
        actors.ashgrove,
        type="student_password_reset",
        student_id="MIL367459",
        student_name="Jack Hughes",
        birth_month_year="062012",
    )
    assert field_result(response, "student_id")["result"] == "not_found"
    assert "Hughes" not in str(results(response)["reasons"])


@pytest.mark.parametrize(
    ("change", "field", "result"),
    [
        ({"contact_phone": "07700 900999"}, "contact_phone", "mismatch"),
        ({"parent_name": "Fiona Smith"}, "parent_name", "mismatch"),
        ({"student_id": "ASH999999"}, "student_id", "not_found"),
        ({"student_id": "ASH595185"}, "student_id", "mismatch"),  # Rory Fraser: not her child
        ({"parent_account_number": "P999999"}, "parent_account_number", "not_found"),
    ],
)
def test_parent_reset_mismatches(client, actors, change, field, result):
    response = file(client, actors.ashgrove, **{**FIONA_RESET, **change})
    assert field_result(response, field)["result"] == result
    assert results(response)["outcome"] == "failed"


def test_an_unknown_account_and_a_wrong_pin_fail_alike(client, actors):
    unknown = file(client, actors.ashgrove, **{**FIONA_RESET, "parent_account_number": "P999999"})
    assert {r["result"] for r in results(unknown)["fields"].values()} == {"not_found"}
    # A wrong PIN says nothing about the PIN, nor about the fields it guards.
    wrong_pin = file(
        client, actors.ashgrove, **{**FIONA_RESET, "parent_pin": "000000", "parent_name": "X Y"}
    )
    assert results(wrong_pin) == results(unknown)


def test_parent_without_an_email_on_file_is_refused_until_one_is_added(client, actors):
    # Family 3: Gareth Hughes has no email on file.
    before = incident_count()
    response = file(
        client,
        actors.millbrook,
        type="parent_password_reset",
        parent_name="Gareth Hughes",
        contact_phone="07700 900301",
        parent_pin="123646",
        parent_account_number="P500007",
        student_id="MIL367459",
    )
    assert response.status_code == 422
    assert response.json["code"] == "no_email_on_file"
    assert "information record" in response.json["message"]
    assert "parent_account_number" in response.json["errors"]["fields"]
    assert incident_count() == before


def test_carer_without_parental_responsibility_cannot_be_reset(client, actors):
    # Family 4: Raj Kapoor is Priya's second carer without parental responsibility.
    response = file(
        client,
        actors.millbrook,
        type="parent_password_reset",
        parent_name="Raj Kapoor",
        contact_phone="07700 900402",
        parent_pin="471325",
        parent_account_number="P500010",
        student_id="MIL619501",
    )
    student = field_result(response, "student_id")
    assert student["result"] == "mismatch"
    assert "parental responsibility" in student["reason"]
    assert results(response)["outcome"] == "failed"


def link_failure_for(guardian_given, guardian_family, **overrides):
    return {
        **LINK_FAILURE,
        "parent_given_name": guardian_given,
        "parent_family_name": guardian_family,
        **overrides,
    }


def test_link_failure_by_a_parent_who_is_not_the_main_contact(client, actors):
    # Family 1: Alasdair Campbell has responsibility but is not the main contact.
    response = file(client, actors.ashgrove, **link_failure_for("Alasdair", "Campbell"))
    verification = results(response)
    assert verification["outcome"] == "failed"
    assert "parent is not the main contact" in verification["reasons"]
    assert all(r["result"] == "match" for r in verification["fields"].values())
    assert response.json["queue"] == "school-office-5231234"


@pytest.mark.parametrize(
    ("override", "field", "reason"),
    [
        ({"parent_postcode": "G1 1AA"}, "parent_postcode", "postcode differs: address changed?"),
        ({"child_year_stage": "P5"}, "child_year_stage", "year/stage differs"),
        ({"child_birth_date": "2017-04-13"}, "child_birth_date", "date of birth differs"),
        ({"child_given_name": "Islay"}, "child_given_name", "nickname?"),
        ({"child_given_name": "Mhairi"}, "child_given_name", "name differs from the school"),
    ],
)
def test_link_failure_reasons_an_employee_can_act_on(client, actors, override, field, reason):
    response = file(client, actors.ashgrove, **{**LINK_FAILURE, **override})
    result = field_result(response, field)
    assert result["result"] == "mismatch"
    assert reason in result["reason"]


def test_link_failure_for_an_unknown_child_or_parent(client, actors):
    unknown_child = file(
        client,
        actors.ashgrove,
        **{
            **LINK_FAILURE,
            "child_given_name": "Nobody",
            "child_family_name": "Known",
            "child_birth_date": "2001-01-01",
        },
    )
    assert field_result(unknown_child, "child_given_name")["result"] == "not_found"
    stranger = file(client, actors.ashgrove, **link_failure_for("Zed", "Stranger"))
    assert field_result(stranger, "parent_family_name")["result"] == "not_found"
    assert "no guardian of that name" in field_result(stranger, "parent_family_name")["reason"]


def test_link_failure_by_a_carer_without_responsibility(client, actors):
    born = birth_date_of("stu-4-0")
    response = file(
        client,
        actors.millbrook,
        **{
            **LINK_FAILURE,
            "parent_given_name": "Raj",
            "parent_family_name": "Kapoor",
            "parent_postcode": "DD1 4HN",
            "child_given_name": "Priya",
            "child_family_name": "Patel",
            "child_birth_date": born,
            "child_year_stage": "Y7",
        },
    )
    assert "parent has no parental responsibility for this child" in results(response)["reasons"]


def test_username_reminder_by_student_number_finds_the_parent(client, actors):
    response = file(
        client,
        actors.ashgrove,
        type="username_reminder",
        student_id="ASH240891",
        parent_name="Alasdair Campbell",
    )
    assert results(response)["outcome"] == "passed"
    wrong = file(
        client,
        actors.ashgrove,
        type="username_reminder",
        student_id="ASH240891",
        parent_name="Someone Else",
    )
    assert field_result(wrong, "parent_name")["result"] == "mismatch"


def test_username_reminder_for_a_parent_without_email_is_refused(client, actors):
    response = file(
        client,
        actors.millbrook,
        type="username_reminder",
        parent_account_number="P500007",
        parent_name="Gareth Hughes",
    )
    assert response.status_code == 422
    assert response.json["code"] == "no_email_on_file"


def test_child_protection_revocation_covers_every_guardian_of_the_child(client, actors):
    # Family 5: Rory Fraser has two guardians; both lose access pending investigation.
    response = file(
        client,
        actors.ashgrove,
        type="access_revocation",
        guardian_id="par-5-0",
        reason="child_protection",
    )
    assert results(response)["outcome"] == "passed"
    assert response.json["priority"] == "P1"
    stored = db.session.execute(
        sa.select(Incident).where(Incident.id == int(response.json["ref"][4:]))
    ).scalar_one()
    assert stored.verification_results["revocation_targets"] == 2
    single = file(
        client,
        actors.ashgrove,
        type="access_revocation",
        guardian_id="par-5-0",
        reason="court_order",
        **AGAIN,  # the first is still open
    )
    assert results(single)["outcome"] == "passed"


def test_revocation_of_a_guardian_of_another_school_is_not_found(client, actors):
    response = file(
        client,
        actors.millbrook,
        type="access_revocation",
        guardian_id="par-5-0",
        reason="policy_breach",
    )
    assert field_result(response, "guardian_id")["result"] == "not_found"
