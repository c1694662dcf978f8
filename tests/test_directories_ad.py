"""Resets that reach Active Directory: Samba provisioned as a domain controller by the
suite (its own folder and address, LDAPS with the suite's certificate). Both portals'
passwords live there; AD's own answers to a bind say whether a password is right, must
be changed (773), or belongs to a disabled account (533)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ldap3
import pytest
import sqlalchemy as sa

from helpdesk.extensions import db
from helpdesk.models import PortalAccount
from helpdesk.services.portals import update_policy

from .conftest import REDIS_URL
from .samples import ISLA_RESET, REVOCATION
from .servers import SAMBA_BASE, SAMBA_REALM, SambaDC
from .smtp import SmtpServer
from .test_directories import directory_stack, retry_now
from .test_fulfilment import FILER, Desk, assert_secret_nowhere, desk_on, one_time_password

OLD = {"icampbell1": "Old-Isla-Pass-1", "steven.fraser5": "Old-Steven-Pass-1"}


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="module")
def samba() -> Iterator[SambaDC]:
    dc = SambaDC().start()
    try:
        for name, password in OLD.items():
            dc.add_user(name, password)
        yield dc
    finally:
        dc.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, smtp, samba) -> Iterator[Any]:
    environ = {f"{portal}_DIRECTORY_{what}": value for portal in ("STUDENT", "PARENT")
               for what, value in (("SECRET", samba.admin_password),
                                   ("CA_FILE", str(samba.ca_file)))}  # fmt: skip
    policy = {"store": "active_directory", "url": samba.url,
              "bind_dn": f"Administrator@{SAMBA_REALM.lower()}",
              "base_dn": f"CN=Users,{SAMBA_BASE}", "min_length": 12}  # fmt: skip
    policies = {"student": policy, "parent": policy}
    with directory_stack(tmp_path_factory, smtp, environ, policies) as made:
        yield made


@pytest.fixture
def desk(stack, smtp) -> Iterator[Desk]:
    with desk_on(stack, smtp, REDIS_URL) as made:
        yield made


def student_emails(desk: Desk) -> list[Any]:
    return [m for m in desk.mailbox.to(FILER) if "portal password" in m.message["Subject"]]


def domain(samba: SambaDC, **values: str) -> None:
    """Change the domain's own password and lockout policy, as its admin would."""
    conn = samba.admin()
    conn.modify(SAMBA_BASE, {k: [(ldap3.MODIFY_REPLACE, [v])] for k, v in values.items()})
    assert conn.result["result"] == 0, conn.result
    conn.unbind()


def test_a_student_reset_sets_a_password_ad_takes_and_makes_change_at_sign_in(desk, samba, caplog):
    ref = desk.file(ISLA_RESET)["ref"]  # fulfilled at once by the shipped rules
    desk.work()
    (message,) = student_emails(desk)
    secret = one_time_password(message)
    assert samba.bind_result("icampbell1", secret) == "773"  # right, and must be changed
    assert samba.bind_result("icampbell1", OLD["icampbell1"]) == "52e"  # the old: wrong
    assert samba.attribute("icampbell1", "pwdLastSet") == ["0"]
    assert desk.get(ref)["status"] == "resolved"
    assert_secret_nowhere(desk, secret, caplog)
    assert_secret_nowhere(desk, samba.admin_password, caplog)  # the bind password
    OLD["icampbell1"] = secret


def test_a_reset_unlocks_an_account_locked_by_failed_sign_ins(desk, samba):
    domain(samba, lockoutThreshold="3", lockOutObservationWindow="-6000000000",
           lockoutDuration="-6000000000")  # fmt: skip
    try:
        for _ in range(4):
            samba.bind_result("icampbell1", "not-the-password")
        assert samba.bind_result("icampbell1", OLD["icampbell1"]) == "775"  # locked out
        desk.file(ISLA_RESET)
        desk.work()
        secret = one_time_password(student_emails(desk)[0])
        assert samba.bind_result("icampbell1", secret) == "773"  # unlocked, must change
        OLD["icampbell1"] = secret
    finally:
        domain(samba, lockoutThreshold="0")


def test_a_revocation_disables_the_account_and_a_restore_enables_it(desk, samba):
    assert samba.bind_result("steven.fraser5", OLD["steven.fraser5"]) == "ok"
    desk.file(REVOCATION)
    desk.work()
    flags = int(samba.attribute("steven.fraser5", "userAccountControl")[0])
    assert flags & 0x2
    assert samba.bind_result("steven.fraser5", OLD["steven.fraser5"]) == "533"  # disabled
    with desk.app.app_context():
        restored = desk.app.test_cli_runner().invoke(
            args=["access", "restore", "par-5-1", "--admin", desk.actors.admin.email]
        )
        db.session.remove()
    assert restored.exit_code == 0, restored.output
    assert samba.bind_result("steven.fraser5", OLD["steven.fraser5"]) == "ok"


def test_a_password_the_domain_refuses_is_a_visible_failure_with_its_reason(desk, samba):
    domain(samba, minPwdLength="30")  # stricter than the portal's 12
    try:
        ref = desk.file(ISLA_RESET)["ref"]
        desk.work()
        (fulfilment,) = desk.fulfilments(ref)
        assert fulfilment.state == "abandoned"  # no endless retry
        assert "the domain's password policy refused the password" in fulfilment.last_error
        assert student_emails(desk) == []
        assert samba.bind_result("icampbell1", OLD["icampbell1"]) == "773"  # unchanged
    finally:
        domain(samba, minPwdLength="7")


def test_an_account_missing_from_the_domain_sends_nothing(desk, samba):
    desk.sql(sa.update(PortalAccount).where(PortalAccount.account_number == "S700000")
             .values(username="*"))  # fmt: skip
    ref = desk.file(ISLA_RESET)["ref"]
    desk.work()
    (fulfilment,) = desk.fulfilments(ref)
    assert fulfilment.state == "abandoned"
    assert "no entry in the student directory matches" in fulfilment.last_error
    assert student_emails(desk) == []


def test_the_domain_controller_down_before_the_set_then_exactly_one_email(desk, samba):
    samba.stop()
    try:
        ref = desk.file(ISLA_RESET)["ref"]
        desk.work()
        (fulfilment,) = desk.fulfilments(ref)
        assert fulfilment.state == "directory_failed"
        assert student_emails(desk) == []
    finally:
        samba.start()
    retry_now(desk)
    (message,) = student_emails(desk)
    secret = one_time_password(message)
    assert samba.bind_result("icampbell1", secret) == "773"
    assert desk.get(ref)["status"] == "resolved"
    OLD["icampbell1"] = secret


def test_two_entries_matching_send_nothing(desk, samba):
    samba.add_user("icampbell1-old", "Old-Isla-Pass-2")
    with desk.app.app_context():
        update_policy("student", {"find": "(&(objectClass=user)(|(sAMAccountName={username})"
                                          "(sAMAccountName={username}-old)))"})  # fmt: skip
        db.session.remove()
    try:
        ref = desk.file(ISLA_RESET)["ref"]
        desk.work()
        (fulfilment,) = desk.fulfilments(ref)
        assert fulfilment.state == "abandoned"
        assert "2 entries in the student directory match" in fulfilment.last_error
        assert student_emails(desk) == []
    finally:
        with desk.app.app_context():
            update_policy("student", {"find": None})
            db.session.remove()


def test_the_domain_controller_gone_between_the_set_and_the_send(desk, samba):
    desk.mailbox.refuse = 1
    ref = desk.file(ISLA_RESET)["ref"]
    desk.work()
    (fulfilment,) = desk.fulfilments(ref)
    assert fulfilment.state == "delivery_failed"
    samba.stop()
    try:
        retry_now(desk)
    finally:
        samba.start()
    (message,) = student_emails(desk)
    secret = one_time_password(message)
    assert samba.bind_result("icampbell1", secret) == "773"
    OLD["icampbell1"] = secret
