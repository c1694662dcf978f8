"""Resets that reach the real directory: the parent portal's passwords in a private
OpenLDAP (slapd with ppolicy, over LDAPS with its own CA), set by a real RQ worker,
emailed through a real SMTP server, and checked by binding to the directory itself.
SCIM 2.0 and Active Directory follow the same shape in their own modules."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import ldap3
import pytest
import sqlalchemy as sa
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy.orm import Session

from helpdesk.extensions import db
from helpdesk.models import PortalAccount, parse_ref
from helpdesk.services.portals import update_policy

from .conftest import REDIS_URL, app_on_fresh_database
from .samples import FIONA_RESET, REMINDER, REVOCATION
from .servers import SLAPD_BASE, SLAPD_SERVICE, SlapdServer
from .smtp import SmtpServer
from .test_fulfilment import FIONA, Desk, assert_secret_nowhere, desk_on, one_time_password

SERVICE_PASSWORD = "helpdesk-bind-" + os.urandom(6).hex()
OLD = {"fiona.campbell1": "Old-Fiona-1", "lorna.fraser5": "Old-Lorna-1",
       "steven.fraser5": "Old-Steven-1"}  # fmt: skip
PEOPLE = [
    {"uid": uid, "cn": uid, "sn": uid.split(".")[-1], "password": password}
    for uid, password in OLD.items()
]


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="module")
def slapd() -> Iterator[SlapdServer]:
    server = SlapdServer(PEOPLE, SERVICE_PASSWORD).start()
    try:
        yield server
    finally:
        server.close()


@contextlib.contextmanager
def directory_stack(
    tmp_path_factory: Any,
    smtp: SmtpServer,
    environ: dict[str, str],
    policies: dict[str, dict[str, Any]],
) -> Iterator[Any]:
    """A stack of its own whose portals keep their passwords in a directory: ``environ``
    holds the directory's secrets, ``policies`` each portal's store settings."""
    secrets = pytest.MonkeyPatch()
    for name, value in environ.items():
        secrets.setenv(name, value)
    try:
        with app_on_fresh_database(
            tmp_path_factory, REDIS_URL=REDIS_URL, MAIL_SERVER="127.0.0.1",
            MAIL_PORT=str(smtp.port), MAIL_TIMEOUT="2", JOB_RETRY_INTERVALS="60,60,60",
            RATELIMIT_STORAGE_URI="memory://", PUBLIC_BASE_URL="https://help.example.org",
        ) as made:  # fmt: skip
            with made[0].app_context():
                for portal, policy in policies.items():
                    update_policy(portal, policy)
                db.session.remove()
            yield made
    finally:
        secrets.undo()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, smtp, slapd) -> Iterator[Any]:
    environ = {"PARENT_DIRECTORY_SECRET": SERVICE_PASSWORD,
               "PARENT_DIRECTORY_CA_FILE": str(slapd.ca_file)}  # fmt: skip
    policy = {"store": "ldap", "url": slapd.url, "bind_dn": SLAPD_SERVICE,
              "base_dn": f"ou=people,{SLAPD_BASE}", "password_change": "exop"}  # fmt: skip
    with directory_stack(tmp_path_factory, smtp, environ, {"parent": policy}) as made:
        yield made


@pytest.fixture
def desk(stack, smtp) -> Iterator[Desk]:
    with desk_on(stack, smtp, REDIS_URL) as made:
        yield made


def approved_reset(desk: Desk, body: dict[str, Any] = FIONA_RESET) -> str:
    ref = str(desk.file(body)["ref"])
    assert desk.approve_parent_reset(ref).status_code == 200
    return ref


def retry_now(desk: Desk) -> None:
    """Run the retries RQ has scheduled for later, now (their backoff, skipped)."""
    from rq import Queue
    from rq.job import Job

    for name in ("fulfilment", "mail", "revocations"):
        registry = ScheduledJobRegistry(name, connection=desk.redis, serializer=JSONSerializer)
        queue = Queue(name, connection=desk.redis, serializer=JSONSerializer)
        for job_id in registry.get_job_ids():
            registry.remove(job_id)
            queue.enqueue_job(Job.fetch(job_id, connection=desk.redis, serializer=JSONSerializer))
    desk.work()


def reset_emails(desk: Desk) -> list[Any]:
    return [m for m in desk.mailbox.results_to(FIONA) if "password" in m.message["Subject"]]


def test_a_parent_reset_sets_a_one_time_password_that_works_in_the_directory(desk, slapd,
                                                                             caplog):  # fmt: skip
    ref = approved_reset(desk)
    desk.work()
    (message,) = reset_emails(desk)
    secret = one_time_password(message)
    assert slapd.bind_result("fiona.campbell1", secret) == 0  # the directory takes it
    assert slapd.bind_result("fiona.campbell1", OLD["fiona.campbell1"]) == 49  # the old: not
    assert slapd.attribute("fiona.campbell1", "pwdReset") == ["TRUE"]  # must change it
    assert desk.get(ref)["status"] == "resolved"
    with desk.app.app_context():
        account = db.session.execute(
            sa.select(PortalAccount).where(PortalAccount.account_number == "P500001")
        ).scalar_one()
        assert account.password_hash is None  # the helpdesk keeps no copy
        db.session.remove()
    assert_secret_nowhere(desk, secret, caplog)
    assert_secret_nowhere(desk, SERVICE_PASSWORD, caplog)
    OLD["fiona.campbell1"] = secret


def test_a_reset_clears_a_lock_left_by_failed_sign_ins(desk, slapd):
    locked = {"pwdAccountLockedTime": [(ldap3.MODIFY_REPLACE, ["20261201090000Z"])]}
    slapd.modify("fiona.campbell1", locked)  # as five failed sign-ins leave it
    approved_reset(desk)
    desk.work()
    assert slapd.attribute("fiona.campbell1", "pwdAccountLockedTime") == []
    secret = one_time_password(reset_emails(desk)[0])
    assert slapd.bind_result("fiona.campbell1", secret) == 0
    OLD["fiona.campbell1"] = secret


def test_a_revocation_disables_the_entry_and_a_restore_enables_it(desk, slapd):
    assert slapd.bind_result("steven.fraser5", OLD["steven.fraser5"]) == 0
    filed = desk.file(REVOCATION)
    desk.work()
    assert desk.get(filed["ref"])["status"] == "resolved"
    assert slapd.attribute("steven.fraser5", "pwdAccountLockedTime") == ["000001010000Z"]
    assert slapd.bind_result("steven.fraser5", OLD["steven.fraser5"]) == 49
    with desk.app.app_context():
        restored = desk.app.test_cli_runner().invoke(
            args=["access", "restore", "par-5-1", "--admin", desk.actors.admin.email]
        )
        db.session.remove()
    assert restored.exit_code == 0, restored.output
    assert slapd.bind_result("steven.fraser5", OLD["steven.fraser5"]) == 0


def test_a_username_reminder_reads_the_username_from_the_directory(desk, slapd):
    # The roster still says fiona.campbell1; the directory knows her by a new name.
    conn = slapd.admin()
    conn.modify_dn(f"uid=fiona.campbell1,ou=people,{SLAPD_BASE}", "uid=fiona.c")
    conn.unbind()
    try:
        with desk.app.app_context():
            update_policy("parent", {"find": "(&(objectClass=inetOrgPerson)(cn={username}))"})
            db.session.remove()
        ref = desk.file(REMINDER)["ref"]
        assert desk.act(desk.actors.agent, ref, "fulfil").status_code == 200
        desk.work()
        (message,) = desk.mailbox.results_to(FIONA)
        assert "fiona.c" in message.text and "fiona.campbell1" not in message.text
    finally:
        conn = slapd.admin()
        conn.modify_dn(f"uid=fiona.c,ou=people,{SLAPD_BASE}", "uid=fiona.campbell1")
        conn.unbind()
        with desk.app.app_context():
            update_policy("parent", {"find": None})
            db.session.remove()


@pytest.mark.parametrize("username", ["*)(uid=*", "*", "fiona.campbell1)(uid=*", 'x")(|(uid=*'])
def test_a_hostile_roster_username_matches_nothing(desk, slapd, username):
    desk.sql(sa.update(PortalAccount).where(PortalAccount.account_number == "P500001")
             .values(username=username))  # fmt: skip
    ref = approved_reset(desk)
    desk.work()
    (fulfilment,) = desk.fulfilments(ref)
    assert fulfilment.state == "abandoned"
    assert "no entry in the parent directory matches" in fulfilment.last_error
    assert reset_emails(desk) == []
    for uid in OLD:  # no entry was touched
        assert slapd.attribute(uid, "pwdReset") in ([], ["TRUE"] if uid == "fiona.campbell1"
                                                    else [])  # fmt: skip
        assert slapd.bind_result(uid, OLD[uid]) == 0


def test_no_entry_or_two_fail_visibly_and_send_nothing(desk, slapd):
    conn = slapd.admin()
    conn.add(f"ou=old,{SLAPD_BASE}", "organizationalUnit", {"ou": "old"})
    conn.add(f"uid=fiona.campbell1,ou=old,{SLAPD_BASE}", "inetOrgPerson",
             {"uid": "fiona.campbell1", "cn": "old", "sn": "old"})  # fmt: skip
    try:
        with desk.app.app_context():
            update_policy("parent", {"base_dn": SLAPD_BASE})  # both people and old
            db.session.remove()
        ref = approved_reset(desk)
        desk.work()
        (fulfilment,) = desk.fulfilments(ref)
        assert fulfilment.state == "abandoned"
        assert "2 entries in the parent directory match" in fulfilment.last_error
        incident = desk.get(ref, desk.actors.identity)
        assert incident["fulfilment"]["state"] == "abandoned"
        assert "2 entries" in incident["fulfilment"]["reason"]
        assert reset_emails(desk) == []
        assert slapd.bind_result("fiona.campbell1", OLD["fiona.campbell1"]) == 0
    finally:
        conn.delete(f"uid=fiona.campbell1,ou=old,{SLAPD_BASE}")
        conn.delete(f"ou=old,{SLAPD_BASE}")
        conn.unbind()
        with desk.app.app_context():
            update_policy("parent", {"base_dn": f"ou=people,{SLAPD_BASE}"})
            db.session.remove()


def test_a_directory_down_before_the_set_sends_nothing_then_exactly_one_email(desk, slapd):
    slapd.stop()
    try:
        ref = approved_reset(desk)
        desk.work()
        (fulfilment,) = desk.fulfilments(ref)
        assert fulfilment.state == "directory_failed"
        assert "did not answer" in fulfilment.last_error
        assert reset_emails(desk) == []
        event = desk.events(ref)[-1]
        assert event["kind"] == "directory_failed" and "nothing was sent" in event["message"]
        metrics = desk.client.get("/metrics").text
        assert 'helpdesk_fulfilments_in_flight{state="directory_failed"} 1.0' in metrics
        readiness = desk.client.get("/readyz").json
        assert "directory:parent" in readiness["degraded"]
    finally:
        slapd.start()
    retry_now(desk)
    (message,) = reset_emails(desk)
    secret = one_time_password(message)
    assert slapd.bind_result("fiona.campbell1", secret) == 0
    assert desk.get(ref)["status"] == "resolved"
    assert "directory:parent" not in desk.client.get("/readyz").json["degraded"]
    OLD["fiona.campbell1"] = secret


def test_a_directory_gone_between_the_set_and_the_send_still_sends_the_secret_it_holds(desk, slapd):
    desk.mailbox.refuse = 1  # the first send fails, after the directory took the password
    ref = approved_reset(desk)
    desk.work()
    (fulfilment,) = desk.fulfilments(ref)
    assert fulfilment.state == "delivery_failed"
    slapd.stop()
    try:
        retry_now(desk)  # the send needs the mail server only
    finally:
        slapd.start()
    (message,) = reset_emails(desk)
    secret = one_time_password(message)
    assert slapd.bind_result("fiona.campbell1", secret) == 0
    OLD["fiona.campbell1"] = secret


def test_a_worker_that_dies_after_the_directory_took_a_password_sets_a_fresh_one(desk, slapd):
    """The process ends between the directory's acceptance and the commit that records
    it: the next attempt sets a new password, and that is the one emailed."""
    from helpdesk.services import fulfilment_run as fulfilment_service

    ref = approved_reset(desk)
    (pending,) = desk.fulfilments(ref)

    def die_at_commit(session: Session) -> None:
        raise SystemExit("the worker died")  # the transaction is never committed

    with desk.app.app_context():
        sa.event.listen(Session, "before_commit", die_at_commit)
        try:
            with pytest.raises(SystemExit):
                fulfilment_service.run(pending.id)
        finally:
            sa.event.remove(Session, "before_commit", die_at_commit)
            db.session.rollback()
            db.session.remove()
    taken = slapd.attribute("fiona.campbell1", "pwdChangedTime")
    assert taken  # the directory changed the password, the helpdesk recorded nothing
    (still,) = desk.fulfilments(ref)
    assert still.state == "pending"
    desk.work()
    (message,) = reset_emails(desk)
    secret = one_time_password(message)
    assert slapd.bind_result("fiona.campbell1", secret) == 0
    OLD["fiona.campbell1"] = secret
    assert parse_ref(ref)


def test_admins_see_each_portals_store_and_whether_its_secret_is_set_never_the_secret(desk, slapd):
    from .test_pages import signed_in

    with desk.app.app_context():
        admin = signed_in(desk.app, desk.actors.admin.email)
        page = admin.get("/admin/portals").text
        cli = desk.app.test_cli_runner().invoke(args=["portals", "list"]).output
        db.session.remove()
    assert "LDAP" in page and slapd.url in page and "set (PARENT_DIRECTORY_SECRET)" in page
    assert "this helpdesk&#39;s database" in page or "this helpdesk's database" in page
    assert f"ldap at {slapd.url}" in cli and "PARENT_DIRECTORY_SECRET set" in cli
    for shown in (page, cli):
        assert SERVICE_PASSWORD not in shown


def test_certificates_are_checked_and_starttls_works(desk, slapd, monkeypatch):
    from helpdesk.services.stores.base import DirectoryUnavailable
    from helpdesk.services.stores.ldap import LdapStore

    with desk.app.app_context():
        from helpdesk.services.credentials import policy_row
        from helpdesk.services.stores.base import settings_for

        settings = settings_for(policy_row("parent"))
        db.session.remove()
    LdapStore(settings).check()  # LDAPS, with the directory's CA
    from dataclasses import replace

    with pytest.raises(DirectoryUnavailable):  # the system's CAs do not know this one
        LdapStore(replace(settings, ca_file=None)).check()
    start_tls = replace(settings, url=f"ldap://127.0.0.1:{slapd.plain_port}", start_tls=True)
    LdapStore(start_tls).check()
    with pytest.raises(DirectoryUnavailable):
        LdapStore(replace(start_tls, ca_file=None)).check()


def test_a_reset_link_sets_the_holders_choice_in_the_directory_under_both_policies(desk, slapd):
    import re

    from .test_fulfilment import reset_link

    with desk.app.app_context():
        update_policy("parent", {"mode": "reset_link", "min_length": 12})
        db.session.remove()
    try:
        ref = approved_reset(desk)
        desk.work()
        (message,) = desk.mailbox.results_to(FIONA)
        token = reset_link(message)
        page = desk.client
        shown = page.get(f"/reset/{token}")
        csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', shown.text).group(1)

        def choose(password: str) -> Any:
            return page.post(f"/reset/{token}", data={"csrf_token": csrf, "password": password,
                                                      "confirm": password})  # fmt: skip

        assert "Use at least 12 characters." in choose("Short-1").text  # the portal's rule
        chosen = "Heather-Glen-42"
        done = choose(chosen)
        assert done.status_code == 200 and "has been changed" in done.text
        assert slapd.bind_result("fiona.campbell1", chosen) == 0
        assert slapd.attribute("fiona.campbell1", "pwdReset") == []  # the holder's own choice
        OLD["fiona.campbell1"] = chosen
        assert desk.get(ref)["status"] == "resolved"
        # The directory's own rule: ppolicy's pwdInHistory refuses the password in use.
        from helpdesk.services.credentials import PasswordRejected, store_for

        with desk.app.app_context():
            account = db.session.execute(sa.select(PortalAccount).where(
                PortalAccount.account_number == "P500001")).scalar_one()  # fmt: skip
            with pytest.raises(PasswordRejected, match="portal refused"):
                store_for("parent").set_password(account, chosen)
            db.session.remove()
    finally:
        with desk.app.app_context():
            update_policy("parent", {"mode": "one_time_password", "min_length": 8})
            db.session.remove()


def test_a_replace_of_user_password_works_as_password_modify_does(desk, slapd):
    with desk.app.app_context():
        update_policy("parent", {"password_change": "replace"})
        db.session.remove()
    try:
        approved_reset(desk)
        desk.work()
        secret = one_time_password(reset_emails(desk)[0])
        assert slapd.bind_result("fiona.campbell1", secret) == 0
        assert slapd.attribute("fiona.campbell1", "pwdReset") == ["TRUE"]
        OLD["fiona.campbell1"] = secret
    finally:
        with desk.app.app_context():
            update_policy("parent", {"password_change": "exop"})
            db.session.remove()
