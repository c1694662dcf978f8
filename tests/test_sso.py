"""Staff single sign-on against a real OpenID provider: node-oidc-provider, started by
the suite on a free port. The provider says who signed in; only an existing, active
helpdesk user is let in, and no account is ever made by signing in.

Each sign-in goes the whole way a browser does: the helpdesk's redirect, the provider's
sign-in form, the code back to the callback, the code exchanged for tokens and the ID
token checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urljoin

import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import expect

from helpdesk.extensions import db
from helpdesk.models import User

from .browser import browser, check, live_server, new_page, tab_to
from .conftest import Actors, app_on_fresh_database
from .servers import OidcProvider
from .smtp import free_port

PROVIDER_NAME = "Ashgrove Learning Trust"
UNVOUCHED = "unvouched"  # a login whose email the provider does not confirm
UNVOUCHED_IN_WORDS = "unvouched-text"  # the same, the flag sent as a string
AGENT = "agent@its.example"  # a real user's address (tests/conftest.py), claimed unverified


@dataclass
class Desk:
    app: Flask
    base: str
    actors: Actors
    provider: OidcProvider


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with OidcProvider(f"{base}/sign-in/sso/callback", accounts={
        UNVOUCHED: {"email": AGENT, "email_verified": False},
        UNVOUCHED_IN_WORDS: {"email": AGENT, "email_verified": "false"},
    }) as provider, app_on_fresh_database(
        tmp_path_factory, PUBLIC_BASE_URL=base, OIDC_ISSUER=provider.issuer,
        OIDC_CLIENT_ID=provider.client_id, OIDC_CLIENT_SECRET=provider.client_secret,
        OIDC_PROVIDER_NAME=PROVIDER_NAME, RATELIMIT_STORAGE_URI="memory://",
    ) as (app, _, actors), live_server(app, port):  # fmt: skip
        yield Desk(app, base, actors, provider)


def sso_sign_in(desk: Desk, login: str) -> tuple[requests.Session, requests.Response]:
    """A browser's way through: to the provider, its sign-in form, and back."""
    browser_session = requests.Session()
    at_provider = browser_session.get(f"{desk.base}/sign-in/sso", timeout=10)
    assert at_provider.url.startswith(desk.provider.issuer + "/interaction/"), at_provider.url
    action = re.search(r'<form[^>]*action="([^"]+)"', at_provider.text).group(1)
    answer = browser_session.post(
        urljoin(at_provider.url, action), timeout=10,
        data={"prompt": "login", "login": login, "password": "whatever the provider asks"},
    )  # fmt: skip
    return browser_session, answer


def _users() -> int:
    return db.session.execute(sa.select(sa.func.count()).select_from(User)).scalar_one()


def test_an_agent_signs_in_through_the_provider_with_no_code_of_the_helpdesk(desk):
    email = desk.actors.agent.email
    browser_session, answer = sso_sign_in(desk, email)
    assert answer.url == f"{desk.base}/queue" and "Your queues" in answer.text
    assert f"Signed in as {email}" in answer.text
    # The provider's sign-in stands for the second step (its own MFA): no code asked.
    assert browser_session.get(f"{desk.base}/dashboard", timeout=10).status_code == 200


def test_where_they_were_going_survives_the_trip(desk):
    browser_session = requests.Session()
    at_provider = browser_session.get(f"{desk.base}/sign-in/sso?next=%2Fdashboard", timeout=10)
    action = re.search(r'<form[^>]*action="([^"]+)"', at_provider.text).group(1)
    answer = browser_session.post(urljoin(at_provider.url, action), timeout=10, data={
        "prompt": "login", "login": desk.actors.admin.email, "password": "x"})  # fmt: skip
    assert answer.url == f"{desk.base}/dashboard"


def test_no_account_is_made_for_someone_the_helpdesk_does_not_know(desk):
    with desk.app.app_context():
        before = _users()
    browser_session, answer = sso_sign_in(desk, "new.teacher@ashgrove.sch.example")
    assert answer.status_code == 403
    assert "no helpdesk account uses that address" in answer.text
    assert "new.teacher@ashgrove.sch.example" in answer.text
    assert browser_session.get(f"{desk.base}/queue", timeout=10).url.startswith(
        f"{desk.base}/sign-in"
    )
    with desk.app.app_context():
        assert _users() == before
        db.session.remove()


@pytest.mark.parametrize("login", [UNVOUCHED, UNVOUCHED_IN_WORDS])
def test_an_email_the_provider_does_not_vouch_for_signs_nobody_in(desk, login):
    browser_session, answer = sso_sign_in(desk, login)  # claims the agent's address
    assert answer.status_code == 403 and "did not confirm an email address" in answer.text
    assert "/sign-in" in browser_session.get(f"{desk.base}/queue", timeout=10).url


def test_a_deactivated_user_is_refused_as_a_stranger_is(desk):
    email = desk.actors.ashgrove_teacher.email
    with desk.app.app_context():
        db.session.execute(sa.update(User).where(User.email == email).values(active=False))
        db.session.commit()
    try:
        _, answer = sso_sign_in(desk, email)
        assert answer.status_code == 403 and "no helpdesk account uses" in answer.text
    finally:
        with desk.app.app_context():
            db.session.execute(sa.update(User).where(User.email == email).values(active=True))
            db.session.commit()
            db.session.remove()


def _callback_for(desk: Desk, login: str) -> tuple[requests.Session, str]:
    """Through the provider by hand, stopping at the address it sends the browser back to
    (the helpdesk's callback, with the code and state)."""
    browser_session = requests.Session()
    at_provider = browser_session.get(f"{desk.base}/sign-in/sso", timeout=10)
    action = re.search(r'<form[^>]*action="([^"]+)"', at_provider.text).group(1)
    location = browser_session.post(urljoin(at_provider.url, action), timeout=10, data={
        "prompt": "login", "login": login, "password": "x"},
        allow_redirects=False).headers["Location"]  # fmt: skip
    while not location.startswith(desk.base):
        answer = browser_session.get(urljoin(desk.provider.issuer, location),
                                     allow_redirects=False, timeout=10)  # fmt: skip
        location = answer.headers["Location"]
    return browser_session, location


def test_a_callback_that_did_not_start_here_signs_nobody_in(desk):
    """A code and state made for another browser (a login CSRF) are refused."""
    _, callback = _callback_for(desk, desk.actors.agent.email)
    victim = requests.Session()
    answer = victim.get(callback, timeout=10)
    assert answer.status_code == 403 and "did not sign you in" in answer.text
    assert "/sign-in" in victim.get(f"{desk.base}/queue", timeout=10).url


def test_a_provider_that_stops_answering_gets_a_clear_answer_and_passwords_still_work(desk):
    browser_session, callback = _callback_for(desk, desk.actors.agent.email)
    desk.provider.stop()  # the code cannot be exchanged now
    try:
        answer = browser_session.get(callback, timeout=30)
        assert answer.status_code == 403
        assert f"{PROVIDER_NAME} did not answer" in answer.text
        assert 'name="password"' in answer.text  # the password form is right there
        assert "/sign-in" in browser_session.get(f"{desk.base}/queue", timeout=10).url
    finally:
        desk.provider.start()


def test_signing_in_through_the_provider_in_a_browser(desk):
    with browser() as chromium:
        page = new_page(chromium)
        page.goto(f"{desk.base}/sign-in")
        expect(page.locator("#sso")).to_have_text(f"Sign in with {PROVIDER_NAME}")
        check(page, "sign-in-with-sso")
        tab_to(page, "#sso")  # by keyboard
        page.keyboard.press("Enter")
        page.wait_for_url(f"{desk.provider.issuer}/interaction/**")
        page.fill("input[name=login]", desk.actors.identity.email)
        page.fill("input[name=password]", "whatever the provider asks")
        page.click("button[type=submit]")
        expect(page.locator(".govuk-footer")).to_contain_text(
            f"Signed in as {desk.actors.identity.email}"
        )
        check(page, "queue-after-sso")
        # A stranger is told what to do, on an accessible page.
        other = new_page(chromium)
        other.goto(f"{desk.base}/sign-in/sso")
        other.fill("input[name=login]", "stranger@ashgrove.sch.example")
        other.fill("input[name=password]", "x")
        other.click("button[type=submit]")
        expect(other.locator(".govuk-error-summary")).to_contain_text(
            "no helpdesk account uses that address"
        )
        check(other, "sign-in-sso-refused")
