"""A class reset's one message: the teacher gets every new password of the class as one
email of printable slips (HTML, and a PDF to print and cut), at their staff email on
file; a refused message is retried as a message and nobody is reset twice."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask
from pypdf import PdfReader

from helpdesk.extensions import db
from helpdesk.models import ClassReset, Fulfilment, PortalAccount, Student
from helpdesk.roster import open_bundle
from helpdesk.services.credentials import SignIn
from helpdesk.services.roster import import_roster

from .classes import OAK, bundle_with_classes, students_of
from .conftest import Actors, app_on_fresh_database
from .smtp import Received, SmtpServer
from .test_fulfilment import WORKER_REDIS, Desk, desk_environ, desk_on

TEACHER = "i.docherty@ashgrove.sch.example"  # stf-2's staff email, who teaches P4 Oak
PASSWORD_LINE = "One-time password:"


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory, smtp) -> Iterator[tuple[Flask, str, Actors]]:
    with app_on_fresh_database(tmp_path_factory, **desk_environ(smtp)) as made:
        app = made[0]
        with app.app_context():
            import_roster(open_bundle(bundle_with_classes(tmp_path_factory.mktemp("roster"))),
                          source="tests")  # fmt: skip
            db.session.remove()
        yield made


@pytest.fixture
def desk(stack, smtp) -> Iterator[Desk]:
    with desk_on(stack, smtp, WORKER_REDIS) as made:
        yield made


def _reset_class(desk: Desk, students: list[str] | None = None) -> list[dict]:
    body = {"all": True} if students is None else {"students": students}
    answer = desk.client.post(f"/api/v1/classes/{OAK}/resets", json=body,
                              headers=desk.actors.ashgrove_teacher.headers)  # fmt: skip
    assert answer.status_code == 201, answer.json
    return list(answer.json["incidents"])


def _slip_messages(desk: Desk) -> list[Received]:
    return [m for m in desk.mailbox.results_to(TEACHER) if "slips to print" in m.message["Subject"]]


def _passwords(message: Received) -> dict[str, str]:
    """Each slip's student number and one-time password, as the teacher reads them."""
    found, number = {}, None
    for line in message.text.splitlines():
        if "(" in line and line.rstrip().endswith(")") and not line.startswith(" "):
            number = line.rstrip()[:-1].rpartition("(")[2]
        elif line.strip().startswith(PASSWORD_LINE) and number:
            found[number] = line.split(PASSWORD_LINE, 1)[1].strip()
    return found


def _pdf_of(message: Received) -> str:
    (attached,) = [p for p in message.message.iter_attachments()
                   if p.get_content_type() == "application/pdf"]  # fmt: skip
    reader = PdfReader(io.BytesIO(attached.get_content()))
    return "\n".join(page.extract_text() for page in reader.pages)


def _account_number(desk: Desk, student_number: str) -> str:
    with desk.app.app_context():
        number = db.session.execute(
            sa.select(PortalAccount.account_number).join(Student, PortalAccount.student_id ==
            Student.id).where(Student.student_number == student_number)
        ).scalar_one()  # fmt: skip
        db.session.remove()
        return str(number)


def test_a_class_gets_one_message_of_slips_at_the_teachers_address_on_file(desk):
    filed = _reset_class(desk)
    desk.work()
    (message,) = _slip_messages(desk)
    assert message.rcpt_tos == [TEACHER]
    subject = f"New portal passwords for P4 Oak: {len(filed)} slips to print"
    assert message.message["Subject"] == subject
    passwords = _passwords(message)
    numbers = {i["details"]["student_id"] for i in filed}
    assert set(passwords) == numbers and len(filed) == len(students_of("org-ash"))
    # Nothing else reached the teacher: no email per student, no outcome per incident.
    assert desk.mailbox.results_to(TEACHER) == [message]
    # The same slips in the PDF, and each password is the one the portal now takes.
    pdf = _pdf_of(message)
    for number, password in passwords.items():
        assert number in pdf and password in pdf and password in message.html
        assert desk.sign_in(_account_number(desk, number), password) is SignIn.CHANGE_REQUIRED
    for incident in filed:
        after = desk.get(incident["ref"])
        assert after["status"] == "resolved"
        delivered = [e for e in desk.events(incident["ref"]) if e["kind"] == "delivered"]
        assert [e["message"] for e in delivered] == [
            "emailed to the filing employee's staff email on file, on the class's slips"
        ]
    # The secrets were kept sealed only until the message was accepted.
    for incident in filed:
        (fulfilment,) = desk.fulfilments(incident["ref"])
        assert (fulfilment.state, fulfilment.sealed_secret) == ("delivered", None)


def test_a_refused_message_is_retried_as_a_message_and_nobody_is_reset_twice(desk):
    chosen = students_of("org-ash")[:3]
    filed = _reset_class(desk, chosen)
    desk.mailbox.refuse_once_for = {TEACHER}
    desk.work()
    (message,) = _slip_messages(desk)
    passwords = _passwords(message)
    assert len(passwords) == 3
    for incident in filed:
        kinds = [e["kind"] for e in desk.events(incident["ref"])]
        assert kinds.count("credential_set") == 1  # set once, before the refusal
        assert kinds.count("delivery_failed") == 1 and kinds[-1] == "delivered"
    for number, password in passwords.items():  # what was sent is what the portal holds
        assert desk.sign_in(_account_number(desk, number), password) is SignIn.CHANGE_REQUIRED


def test_a_student_who_cannot_be_reset_is_named_and_the_rest_get_their_slips(desk):
    chosen = students_of("org-ash")[:3]
    filed = _reset_class(desk, chosen)
    left = filed[0]["details"]["student_id"]
    with desk.app.app_context():  # the account leaves the records before the worker runs
        account = db.session.execute(
            sa.select(PortalAccount).join(Student, PortalAccount.student_id == Student.id)
            .where(Student.student_number == left)
        ).scalar_one()  # fmt: skip
        account.active = False
        db.session.commit()
        db.session.remove()
    try:
        desk.work()
    finally:
        with desk.app.app_context():
            db.session.execute(sa.update(PortalAccount).values(active=True))
            db.session.commit()
            db.session.remove()
    (message,) = _slip_messages(desk)
    assert set(_passwords(message)) == {i["details"]["student_id"] for i in filed[1:]}
    assert f"{filed[0]['ref']}: the portal account is no longer on the school's records" in (
        message.text
    )
    assert desk.get(filed[0]["ref"])["status"] == "triaged"  # back with ITS, not resolved
    assert desk.mailbox.results_to(TEACHER) == [message]


def test_after_the_last_refusal_the_class_goes_back_to_people_without_a_second_reset(desk):
    filed = _reset_class(desk, students_of("org-ash")[:2])
    desk.mailbox.refuse_to = {TEACHER}
    desk.work()
    assert _slip_messages(desk) == []
    for incident in filed:
        after = desk.get(incident["ref"])
        assert after["status"] == "triaged" and "fulfilment-failed" in after["tags"]
        kinds = [e["kind"] for e in desk.events(incident["ref"])]
        assert kinds.count("credential_set") == 1
        (fulfilment,) = desk.fulfilments(incident["ref"])
        assert (fulfilment.state, fulfilment.sealed_secret) == ("abandoned", None)
        assert "the class's slips could not be delivered after 4 attempts" in (
            fulfilment.last_error or ""
        )
    with desk.app.app_context():
        together = db.session.execute(sa.select(ClassReset).order_by(ClassReset.id.desc())
                                      .limit(1)).scalar_one()  # fmt: skip
        assert (together.state, together.attempts) == ("abandoned", 4)
        assert db.session.execute(
            sa.select(sa.func.count()).select_from(Fulfilment)
            .where(Fulfilment.class_reset_id == together.id)
        ).scalar_one() == 2  # fmt: skip
        db.session.remove()
