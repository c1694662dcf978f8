"""Two-step sign-in: agents and admins give a code from an authenticator app after their
password (employees too where MFA_REQUIRED_ROLES says so), a code works once, recovery
codes stand in for a lost phone once each, and an admin's reset is in the access log.

(The set-up and code pages in a real browser, with axe-core, are in test_browser.py.)
"""

from __future__ import annotations

import re

import pyotp
import sqlalchemy as sa

from helpdesk.extensions import db
from helpdesk.models import AccessEntry, RecoveryCode, User
from helpdesk.services import two_step

from .test_pages import PASSWORD, csrf_token, set_password, signed_in
from .two_step import app_code, enrol


def _user(email: str) -> User:
    return db.session.execute(sa.select(User).where(User.email == email)).scalar_one()


def _password_only(app, email: str):
    """A browser that has given the right password and nothing more."""
    browser = app.test_client()
    form = {"email": email, "password": PASSWORD, "csrf_token": csrf_token(browser, "/sign-in")}
    answer = browser.post("/sign-in?next=%2Fdashboard", data=form)
    return browser, answer


def _send_code(browser, code: str):
    form = {"code": code, "csrf_token": csrf_token(browser, "/sign-in/code")}
    return browser.post("/sign-in/code", data=form)


def test_an_agent_sets_it_up_before_their_first_session(app, actors):
    agent = _user(actors.agent.email)
    from helpdesk.services import sign_in as sign_in_service

    sign_in_service.set_password(agent, PASSWORD)
    db.session.commit()
    browser, answer = _password_only(app, actors.agent.email)
    assert answer.status_code == 302 and answer.location == "/sign-in/set-up"
    assert browser.get("/queue").status_code == 302  # no session on a password alone
    page = browser.get("/sign-in/set-up")
    assert page.status_code == 200 and "<svg" in page.text
    key = re.search(r'id="secret-key">([A-Z2-7 ]+)<', page.text).group(1).replace(" ", "")
    reloaded = browser.get("/sign-in/set-up").text
    assert re.search(r'id="secret-key">([A-Z2-7 ]+)<', reloaded).group(1).replace(" ", "") == key
    form = {"code": "123456", "csrf_token": csrf_token(browser, "/sign-in/set-up")}
    if pyotp.TOTP(key).verify("123456", valid_window=1):
        form["code"] = "654321"
    wrong = browser.post("/sign-in/set-up", data=form)
    assert wrong.status_code == 422 and "not right" in wrong.text
    form = {"code": pyotp.TOTP(key).now(), "csrf_token": csrf_token(browser, "/sign-in/set-up")}
    done = browser.post("/sign-in/set-up", data=form)
    assert done.status_code == 200 and 'href="/dashboard"' in done.text  # where they were going
    codes = re.findall(r"<code>([A-Z2-9]{4}(?:-[A-Z2-9]{4}){3})</code>", done.text)
    assert len(set(codes)) == 10
    assert browser.get("/queue").status_code == 200
    # Kept only sealed and as digests: neither the key nor a recovery code is in the row.
    db.session.expire_all()
    stored = db.session.execute(sa.select(User.totp_sealed).where(User.id == agent.id)).scalar_one()
    digests = db.session.execute(
        sa.select(RecoveryCode.code_digest).where(RecoveryCode.user_id == agent.id)
    ).scalars().all()  # fmt: skip
    assert key not in stored and len(digests) == 10
    assert not any(code.replace("-", "") in " ".join(digests) for code in codes)
    entry = db.session.execute(
        sa.select(AccessEntry).where(AccessEntry.subject == f"user:{agent.id}")
    ).scalar_one()
    assert entry.action == "two_step_enrolled" and entry.actor_id == agent.id


def test_a_code_signs_in_once_and_wrong_codes_lock_the_account(app, actors):
    set_password(actors.identity.email)  # and enrolled, as the role needs
    user_id = _user(actors.identity.email).id
    browser, answer = _password_only(app, actors.identity.email)
    assert answer.location == "/sign-in/code"
    assert browser.get("/queue").status_code == 302
    code = app_code(user_id)
    assert _send_code(browser, code).location == "/dashboard"
    assert browser.get("/queue").status_code == 200
    # The same code again (a shoulder-surfer, a replayed form) is refused.
    again, _ = _password_only(app, actors.identity.email)
    replayed = _send_code(again, code)
    assert replayed.status_code == 422 and "not right" in replayed.text
    assert again.get("/queue").status_code == 302
    # Wrong codes count toward the lockout as wrong passwords do: then even a right one
    # is refused until the lock ends.
    for _ in range(int(app.config["SIGN_IN_MAX_FAILURES"]) - 1):
        assert _send_code(again, "000000" if code != "000000" else "111111").status_code == 422
    locked = _send_code(again, app_code(user_id))
    assert locked.status_code == 422 and "locked for a while" in locked.text
    assert again.get("/queue").status_code == 302


def test_a_recovery_code_stands_in_for_the_phone_once(app, actors):
    user = _user(actors.agent.email)
    from helpdesk.services import sign_in as sign_in_service

    sign_in_service.set_password(user, PASSWORD)
    db.session.commit()
    codes = enrol(user.id)
    browser, _ = _password_only(app, actors.agent.email)
    used = _send_code(browser, codes[0].lower().replace("-", " "))  # as a person types it
    assert used.status_code == 302 and browser.get("/queue").status_code == 200
    again, _ = _password_only(app, actors.agent.email)
    assert _send_code(again, codes[0]).status_code == 422
    assert two_step.recovery_codes_left(user.id) == 9
    entry = db.session.execute(
        sa.select(AccessEntry).where(AccessEntry.action == "recovery_code_used")
    ).scalar_one()
    assert entry.subject == f"user:{user.id}" and entry.data == {"codes_left": 9}


def test_an_admin_resets_a_lost_second_factor_and_it_is_logged(app, actors):
    set_password(actors.agent.email)
    agent = _user(actors.agent.email)
    agent_browser = signed_in(app, actors.agent.email)
    assert agent_browser.get("/queue").status_code == 200
    admin = signed_in(app, actors.admin.email)
    admin_id = _user(actors.admin.email).id
    page = admin.get(f"/admin/users/{agent.id}")
    assert "Reset two-step sign-in" in page.text and "set up" in page.text
    token = csrf_token(admin, f"/admin/users/{agent.id}")
    done = admin.post(f"/admin/users/{agent.id}/two-step/reset", data={"csrf_token": token})
    assert done.status_code == 302
    assert "is reset" in admin.get(f"/admin/users/{agent.id}").text
    assert agent_browser.get("/queue").status_code == 302  # their sessions ended
    _, answer = _password_only(app, actors.agent.email)
    assert answer.location == "/sign-in/set-up"  # set up again, with a new key
    entry = db.session.execute(
        sa.select(AccessEntry).where(AccessEntry.action == "two_step_reset")
    ).scalar_one()
    assert (entry.actor_id, entry.subject) == (admin_id, f"user:{agent.id}")
    token = csrf_token(admin, f"/admin/users/{admin_id}")
    own = admin.post(f"/admin/users/{admin_id}/two-step/reset", data={"csrf_token": token})
    assert "Ask another admin" in admin.get(own.location).text


def test_employees_need_it_only_where_the_setting_says(app, actors):
    set_password(actors.ashgrove.email)
    _, answer = _password_only(app, actors.ashgrove.email)
    assert answer.location == "/dashboard"  # default: agents and admins only
    employee = signed_in(app, actors.ashgrove.email)
    assert employee.get("/incidents").status_code == 200
    app.config["MFA_REQUIRED_ROLES"] = frozenset({"employee", "agent", "admin"})
    try:
        # A session from before the requirement ends; the next sign-in sets it up.
        assert employee.get("/incidents").status_code == 302
        _, answer = _password_only(app, actors.ashgrove.email)
        assert answer.location == "/sign-in/set-up"
    finally:
        app.config["MFA_REQUIRED_ROLES"] = frozenset({"agent", "admin"})


def test_the_code_page_needs_a_right_password_first(app, client):
    answer = client.get("/sign-in/code")
    assert answer.status_code == 302 and answer.location == "/sign-in"
    assert client.get("/sign-in/set-up").location == "/sign-in"


def test_a_browser_on_the_wrong_second_step_is_sent_to_the_right_one(app, actors):
    set_password(actors.identity.email)  # enrolled
    browser, _ = _password_only(app, actors.identity.email)
    assert browser.get("/sign-in/set-up").location == "/sign-in/code"
    agent = _user(actors.agent.email)
    from helpdesk.services import sign_in as sign_in_service

    sign_in_service.set_password(agent, PASSWORD)  # not enrolled yet
    db.session.commit()
    other, _ = _password_only(app, actors.agent.email)
    assert other.get("/sign-in/code").location == "/sign-in/set-up"
    empty = other.post("/sign-in/set-up", data={"csrf_token": csrf_token(other, "/sign-in/set-up")})
    assert empty.status_code == 422 and "Enter the 6-digit code" in empty.text
