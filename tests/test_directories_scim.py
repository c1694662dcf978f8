"""Resets that reach a SCIM 2.0 service provider: scim2-server, in memory, behind a small
WSGI app of the tests that can answer 503, on a free port. The parent portal's
passwords live there; a real RQ worker sets them and a real SMTP server takes the email."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from helpdesk.extensions import db
from helpdesk.models import PortalAccount
from helpdesk.services.portals import update_policy

from .conftest import REDIS_URL
from .samples import FIONA_RESET, REVOCATION
from .servers import ScimServer
from .smtp import SmtpServer
from .test_directories import directory_stack, reset_emails, retry_now
from .test_fulfilment import Desk, assert_secret_nowhere, desk_on, one_time_password

TOKEN = "scim-token-" + os.urandom(8).hex()
USERS = {"fiona.campbell1": "Old-Fiona-1", "lorna.fraser5": "Old-Lorna-1",
         "steven.fraser5": "Old-Steven-1"}  # fmt: skip


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="module")
def scim() -> Iterator[ScimServer]:
    server = ScimServer(TOKEN)
    for user_name, password in USERS.items():
        server.add_user(user_name, password)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, smtp, scim) -> Iterator[Any]:
    policies = {"parent": {"store": "scim", "url": scim.url}}
    environ = {"PARENT_DIRECTORY_SECRET": TOKEN}
    with directory_stack(tmp_path_factory, smtp, environ, policies) as made:
        yield made


@pytest.fixture
def desk(stack, smtp, scim) -> Iterator[Desk]:
    scim.failing = False
    with desk_on(stack, smtp, REDIS_URL) as made:
        yield made
    scim.failing = False


def approved(desk: Desk) -> str:
    ref = str(desk.file(FIONA_RESET)["ref"])
    assert desk.approve_parent_reset(ref).status_code == 200
    return ref


def test_a_reset_sets_the_password_at_the_provider(desk, scim, caplog):
    ref = approved(desk)
    desk.work()
    (message,) = reset_emails(desk)
    secret = one_time_password(message)
    assert scim.password_is("fiona.campbell1", secret)
    assert not scim.password_is("fiona.campbell1", USERS["fiona.campbell1"])
    assert desk.get(ref)["status"] == "resolved"
    assert_secret_nowhere(desk, secret, caplog)
    assert_secret_nowhere(desk, TOKEN, caplog)
    USERS["fiona.campbell1"] = secret


def test_a_revocation_deactivates_the_user_and_a_restore_activates_it(desk, scim):
    desk.file(REVOCATION)
    desk.work()
    assert scim.user("steven.fraser5")["active"] is False
    with desk.app.app_context():
        restored = desk.app.test_cli_runner().invoke(
            args=["access", "restore", "par-5-1", "--admin", desk.actors.admin.email]
        )
        db.session.remove()
    assert restored.exit_code == 0, restored.output
    assert scim.user("steven.fraser5")["active"] is True


@pytest.mark.parametrize(
    "username", ['x" or userName pr or "', 'fiona.campbell1" or "1" eq "1', "\\", '"']
)
def test_a_hostile_roster_username_matches_nothing(desk, scim, username):
    desk.sql(sa.update(PortalAccount).where(PortalAccount.account_number == "P500001")
             .values(username=username))  # fmt: skip
    ref = approved(desk)
    desk.work()
    (fulfilment,) = desk.fulfilments(ref)
    assert fulfilment.state == "abandoned"
    assert "no entry in the parent directory matches" in fulfilment.last_error
    assert reset_emails(desk) == []
    for user_name, password in USERS.items():
        assert scim.password_is(user_name, password)  # nobody's password changed


def test_a_provider_answering_503_sends_nothing_then_exactly_one_email(desk, scim):
    scim.failing = True
    ref = approved(desk)
    desk.work()
    (fulfilment,) = desk.fulfilments(ref)
    assert fulfilment.state == "directory_failed"
    assert "503" in fulfilment.last_error and "down for maintenance" in fulfilment.last_error
    assert reset_emails(desk) == []
    assert "directory:parent" in desk.client.get("/readyz").json["degraded"]
    scim.failing = False
    retry_now(desk)
    (message,) = reset_emails(desk)
    secret = one_time_password(message)
    assert scim.password_is("fiona.campbell1", secret)
    USERS["fiona.campbell1"] = secret


def test_the_providers_own_error_is_the_reason(desk, scim):
    # A provider that refuses (here: the user was deleted there) says why, in its words.
    user = scim.user("lorna.fraser5")
    scim.request("DELETE", f"/Users/{user['id']}")
    try:
        from .test_fulfilment import LORNA_RESET

        ref = str(desk.file(LORNA_RESET)["ref"])
        assert desk.approve_parent_reset(ref).status_code == 200
        desk.work()
        (fulfilment,) = desk.fulfilments(ref)
        assert fulfilment.state == "abandoned"
        assert "no entry in the parent directory" in fulfilment.last_error
    finally:
        scim.add_user("lorna.fraser5", USERS["lorna.fraser5"])


def test_two_users_matching_send_nothing(desk, scim):
    scim.add_user("fiona.campbell1-old", "Old-Fiona-2")
    with desk.app.app_context():
        update_policy("parent", {"find": 'userName sw "{username}"'})
        db.session.remove()
    try:
        ref = approved(desk)
        desk.work()
        (fulfilment,) = desk.fulfilments(ref)
        assert fulfilment.state == "abandoned"
        assert "2 entries in the parent directory match" in fulfilment.last_error
        assert reset_emails(desk) == []
    finally:
        with desk.app.app_context():
            update_policy("parent", {"find": None})
            db.session.remove()


def test_the_provider_gone_between_the_set_and_the_send(desk, scim):
    desk.mailbox.refuse = 1
    ref = approved(desk)
    desk.work()
    (fulfilment,) = desk.fulfilments(ref)
    assert fulfilment.state == "delivery_failed"
    scim.failing = True
    retry_now(desk)  # the send needs the mail server only
    scim.failing = False
    (message,) = reset_emails(desk)
    secret = one_time_password(message)
    assert scim.password_is("fiona.campbell1", secret)
    USERS["fiona.campbell1"] = secret
