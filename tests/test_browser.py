"""The pages in a real browser, as their users go through them.

An employee files a parent password reset (with a mistake first), an agent claims and
escalates it, an identity agent approves it, and the reset email arrives at the real
SMTP server at the parent's address on file. An admin edits the routing rules, meets
a YAML error, fixes it, dry-runs and saves. Every page visited passes axe-core with no
serious or critical violation, and is photographed at 1280 and 375 pixels wide.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyotp
import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import Browser, Page, expect

from helpdesk.extensions import db
from helpdesk.models import Incident, User, format_ref
from helpdesk.services.sign_in import set_password
from workers.worker import make_worker

from .browser import browser, check, live_server, new_page, ref_in, tab_to, type_into
from .conftest import REDIS_URL, Actors, app_on_fresh_database
from .smtp import SmtpServer
from .two_step import app_code, enrolled_where_required

WORKER_REDIS = REDIS_URL  # the database the suite is given (TEST_REDIS_URL), flushed first
PASSWORD = "correct horse battery staple"
FIONA = "fiona.campbell@mail.example"  # par-1-0's email on file


@dataclass
class Site:
    app: Flask
    base: str
    actors: Actors
    smtp: SmtpServer
    browser: Browser
    pages: dict[str, Page] = field(default_factory=dict)

    def sign_in(self, email: str) -> Page:
        page = new_page(self.browser)
        page.goto(f"{self.base}/sign-in")
        page.fill("#email", email)
        page.fill("#password", PASSWORD)
        page.click("button:has-text('Sign in')")
        if page.url.endswith("/sign-in/code"):  # agents and admins: the app's code next
            page.fill("#code", self.code_of(email))
            page.click("button:has-text('Continue')")
        expect(page.locator(".govuk-footer")).to_contain_text(f"Signed in as {email}")
        return page

    def code_of(self, email: str) -> str:
        """What the user's authenticator app shows now."""
        with self.app.app_context():
            user_id = db.session.execute(sa.select(User.id).where(User.email == email))
            code = app_code(user_id.scalar_one())
            db.session.remove()
        return code

    def signed_in(self, email: str) -> Page:
        """A page signed in as ``email``, kept for the module's later tests."""
        if email not in self.pages:
            self.pages[email] = self.sign_in(email)
        return self.pages[email]

    def work(self) -> None:
        make_worker(self.app, fork=False).work(burst=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with (
        SmtpServer() as smtp,
        app_on_fresh_database(
            tmp_path_factory,
            REDIS_URL=WORKER_REDIS,
            MAIL_SERVER="127.0.0.1",
            MAIL_PORT=str(smtp.port),
            MAIL_TIMEOUT="2",
            RATELIMIT_STORAGE_URI="memory://",
            SIGN_IN_RATE_LIMIT="1000 per minute",
        ) as (app, _, actors),
    ):
        redis.Redis.from_url(WORKER_REDIS).flushdb()
        with app.app_context():
            for user in db.session.execute(sa.select(User)).scalars():
                set_password(user, PASSWORD)
                db.session.commit()
                enrolled_where_required(user)
            db.session.remove()
        with live_server(app) as base, browser() as chromium:
            yield Site(app, base, actors, smtp, chromium)


def test_a_parent_reset_goes_from_the_school_office_to_the_parents_inbox(site: Site) -> None:
    # The employee signs in and reports the problem with the keyboard alone.
    employee = new_page(site.browser)
    employee.goto(f"{site.base}/sign-in")
    check(employee, "sign-in")
    type_into(employee, "#email", site.actors.ashgrove.email)
    type_into(employee, "#password", PASSWORD)
    employee.keyboard.press("Enter")
    expect(employee.locator("h1")).to_have_text("Your school's incidents")
    check(employee, "incidents-empty")

    employee.goto(f"{site.base}/report")
    check(employee, "report-type")
    tab_to(employee, "input[name=type]")
    employee.keyboard.press("ArrowDown")  # the second type: parent password reset
    employee.keyboard.press("Enter")
    expect(employee.locator("h1")).to_have_text("Parent password reset")
    type_into(employee, "#parent_name", "Fiona Campbell")
    type_into(employee, "#contact_phone", "07700 900101")
    type_into(employee, "#parent_pin", "596853")
    type_into(employee, "#student_id", "ASH240891")  # the account number is forgotten
    employee.keyboard.press("Enter")

    summary = employee.locator(".govuk-error-summary")
    expect(summary).to_contain_text("There is a problem")
    expect(summary).to_contain_text("Enter the parent account number.")
    expect(employee.locator("#parent_account_number-error")).to_be_visible()
    assert employee.input_value("#parent_pin") == "", "a PIN is never sent back to the page"
    check(employee, "report-form-errors")

    employee.click("text=Enter the parent account number.")
    assert employee.evaluate("location.hash") == "#parent_account_number"
    type_into(employee, "#parent_account_number", "P500001")
    type_into(employee, "#parent_pin", "596853")
    employee.keyboard.press("Enter")
    expect(employee.locator(".govuk-notification-banner")).to_contain_text("is filed")
    ref = ref_in(employee.url)
    expect(employee.locator("h1")).to_contain_text(ref)
    expect(employee.locator("main")).to_contain_text("Checked, not kept")
    assert "596853" not in employee.content()
    check(employee, "incident-employee")

    employee.click("nav >> text=Incidents")
    expect(employee.locator("table")).to_contain_text(ref)
    expect(employee.locator("table")).to_contain_text("ITS Service Desk")
    check(employee, "incidents")

    # The service-desk agent finds it in their queue, claims it and escalates it.
    agent = site.sign_in(site.actors.agent.email)
    expect(agent.locator("h1")).to_have_text("Your queues")
    expect(agent.locator("table")).to_contain_text(ref)
    check(agent, "queue")
    agent.click(f"a[href='/incidents/{ref}']")
    check(agent, "incident-agent")
    agent.click("button:has-text('Claim')")
    expect(agent.locator("h1")).to_contain_text("in progress")
    agent.select_option("#queue", "its-identity")
    agent.click("button:has-text('Escalate')")
    banner = agent.locator(".govuk-notification-banner")
    expect(banner).to_contain_text(f"{ref} is escalated to ITS Identity & Access")
    expect(banner).to_contain_text("left your queues")
    expect(agent.locator("h1")).to_have_text("Your queues")
    check(agent, "queue-after-escalating")

    # The identity agent approves the reset; the worker sets it and mails the parent.
    identity = site.sign_in(site.actors.identity.email)
    expect(identity.locator("table")).to_contain_text(ref)
    identity.click(f"a[href='/incidents/{ref}']")
    expect(identity.locator("main")).to_contain_text(
        "Moved from ITS Service Desk to ITS Identity & Access"
    )
    identity.click("button:has-text('Approve fulfilment')")
    expect(identity.locator("h1")).to_contain_text("awaiting fulfilment")
    site.work()

    delivered = site.smtp.mailbox.results_to(FIONA)
    assert len(delivered) == 1, [m.rcpt_tos for m in site.smtp.mailbox.messages]
    assert len(site.smtp.mailbox.notices_to(FIONA)) == 1  # and the holder's notice
    assert delivered[0].rcpt_tos == [FIONA]
    password = next(
        line.split(":", 1)[1].strip()
        for line in delivered[0].text.splitlines()
        if "password" in line.lower() and ":" in line
    )
    identity.reload()
    expect(identity.locator("main")).to_contain_text("delivered")
    assert password not in identity.content(), "an agent never sees the secret"
    check(identity, "incident-fulfilled")

    agent.goto(f"{site.base}/dashboard")
    expect(agent.locator("h1")).to_have_text("Dashboard")
    check(agent, "dashboard")
    # At a phone's width every chart label is whole and drawn at a readable size.
    agent.set_viewport_size({"width": 375, "height": 900})
    drawn = agent.evaluate("""() => [...document.querySelectorAll('svg.app-chart__svg text')]
        .map(t => ({right: t.getBoundingClientRect().right,
                    edge: t.closest('svg').getBoundingClientRect().right,
                    px: t.getBoundingClientRect().height}))""")
    assert drawn, "the dashboard draws its charts"
    for text in drawn:
        assert text["right"] <= text["edge"] + 0.5, "a label runs off its chart"
        assert text["px"] >= 14, f"chart text {text['px']:.0f}px high at 375 px wide"
    agent.set_viewport_size({"width": 1280, "height": 900})


def report_student_reset(site: Site, page: Page, name: str, summary: str = "") -> None:
    """Isla's student reset on the report page, under the name given."""
    page.goto(f"{site.base}/report/student_password_reset")
    page.fill("#student_id", "ASH240891")
    page.fill("#student_name", name)
    page.fill("#birth_month_year", "4")  # the month box, then the year's
    page.fill("#birth_month_year-year", "2017")
    page.fill("#summary", summary)
    page.click("button:has-text('Send')")


def test_a_failed_check_warns_and_filing_again_keeps_what_was_typed(site: Site) -> None:
    employee = site.signed_in(site.actors.ashgrove.email)
    report_student_reset(site, employee, "Isl Campbell")  # the record says Isla
    banner = employee.locator(".govuk-notification-banner")
    expect(banner).to_have_count(1)
    expect(banner).to_contain_text("Important")
    expect(banner).to_contain_text("did not match the school's records")
    assert "govuk-notification-banner--success" not in (banner.get_attribute("class") or "")
    expect(employee.locator(".govuk-warning-text")).to_contain_text("nickname?")
    assert "?." not in employee.locator("main").inner_text()
    check(employee, "incident-failed-check")
    employee.click("a:has-text('file it again')")
    expect(employee.locator("h1")).to_have_text("Student password reset")
    assert employee.input_value("#student_id") == "ASH240891"
    assert employee.input_value("#student_name") == "Isl Campbell"
    assert employee.input_value("#birth_month_year") == "4"
    assert employee.input_value("#birth_month_year-year") == "2017"
    check(employee, "report-form-filed-again")


def test_a_second_reset_for_a_student_points_at_the_open_one(site: Site) -> None:
    employee = site.signed_in(site.actors.ashgrove.email)

    def report_rory() -> None:
        employee.goto(f"{site.base}/report/student_password_reset")
        employee.fill("#student_id", "ASH595185")
        employee.fill("#student_name", "Rory Fraser")
        employee.fill("#birth_month_year", "2")
        employee.fill("#birth_month_year-year", "2018")
        employee.click("button:has-text('Send')")

    report_rory()
    first = employee.locator("h1").inner_text().split()[0]
    report_rory()
    banner = employee.locator("#already-open")
    expect(banner).to_contain_text(f"{first} is already open for this student")
    check(employee, "report-form-already-open")
    tab_to(employee, "#force")
    employee.keyboard.press("Space")
    employee.fill("#force_reason", "the first slip went through the wash")
    employee.click("button:has-text('Send')")
    expect(employee.locator("h1")).not_to_contain_text(first)
    expect(employee.locator("#links + ul")).to_contain_text(first)


def test_a_nul_character_keeps_the_form_and_what_else_was_typed(site: Site) -> None:
    employee = site.signed_in(site.actors.ashgrove.email)
    report_student_reset(site, employee, "Isla\x00 Campbell", "pasted from a spreadsheet")
    expect(employee.locator(".govuk-error-summary")).to_contain_text("cannot be stored")
    expect(employee.locator("#student_name-error")).to_be_visible()
    assert employee.input_value("#student_id") == "ASH240891"
    assert employee.input_value("#student_name") == "Isla Campbell"
    assert employee.input_value("#summary") == "pasted from a spreadsheet"
    check(employee, "report-form-nul")


def test_a_closure_day_added_by_mistake_is_removed(site: Site) -> None:
    admin = site.signed_in(site.actors.admin.email)
    admin.goto(f"{site.base}/admin/sla")
    admin.fill("#day", "2031-01-06")
    admin.fill("#reason", "Typed the wrong year")
    admin.click("button:has-text('Add closure day')")
    expect(admin.locator("table").last).to_contain_text("06 January 2031")
    admin.click("button:has-text('Remove 06 January 2031')")
    expect(admin.locator(".govuk-notification-banner")).to_contain_text(
        "06 January 2031 (Typed the wrong year) is no longer a closure day"
    )
    expect(admin.get_by_role("row", name=re.compile("06 January 2031"))).to_have_count(0)
    check(admin, "sla-closure-removed")


RULE_WITH_SYNTAX_ERROR = """\
- name: identity first
  conditions:
    all:
      - {field: type, op: eq, value: parent_password_reset
  actions:
    - route_to: its-identity
  stop: true
"""
RULE_WITH_UNKNOWN_OPERATOR = RULE_WITH_SYNTAX_ERROR.replace(
    "value: parent_password_reset", "value: parent_password_reset}"
).replace("op: eq", "op: equals")
GOOD_RULE = RULE_WITH_UNKNOWN_OPERATOR.replace("op: equals", "op: eq")


def test_an_admin_fixes_a_rule_dry_runs_it_and_saves_it(site: Site) -> None:
    admin = site.sign_in(site.actors.admin.email)
    admin.click("nav >> text=Rules")
    expect(admin.locator("h1")).to_have_text("Routing rules")
    check(admin, "rules")
    admin.click("text=Edit the rules")
    check(admin, "rules-edit")

    admin.fill("#rules", RULE_WITH_SYNTAX_ERROR)
    admin.click("button:has-text('Check and dry-run')")
    summary = admin.locator(".govuk-error-summary")
    expect(summary).to_contain_text("The rules were not saved")
    expect(summary).to_contain_text("Line 5")  # where the parser gave up
    check(admin, "rules-edit-yaml-error")

    admin.fill("#rules", RULE_WITH_UNKNOWN_OPERATOR)
    admin.click("button:has-text('Check and dry-run')")
    expect(summary).to_contain_text("Line 4: unknown operator 'equals'")

    admin.fill("#rules", GOOD_RULE)
    admin.select_option("#example_type", "parent_password_reset")
    admin.click("button:has-text('Check and dry-run')")
    result = admin.locator("#dry-run-result")
    expect(result).to_contain_text("identity first")
    expect(result).to_contain_text("its-identity")
    check(admin, "rules-dry-run")

    admin.fill("#note", "parent resets to identity")
    admin.click("button:has-text('Save as a new version')")
    expect(admin.locator(".govuk-notification-banner")).to_contain_text("saved as version 1")
    expect(admin.locator("table")).to_contain_text("parent resets to identity")
    check(admin, "rules-saved")


@pytest.mark.parametrize(
    ("who", "path"),
    [("admin", "/admin/queues"), ("admin", "/admin/sla"), ("admin", "/admin/users"),
     ("admin", "/admin/users/1"), ("admin", "/admin/roster"), ("admin", "/queue?status=closed"),
     ("admin", "/admin/portals"),
     ("ashgrove", "/report/portal_link_failure"), ("ashgrove", "/report/access_revocation"),
     ("ashgrove", "/queue"), ("ashgrove", "/incidents/INC-999999"), ("admin", "/nowhere"),
     ("admin", "/reset/not-a-real.token"), ("admin", "/invite/not-a-real.token"),
     ("agent", "/account/password"), ("agent", "/incidents?q=Campbell"),
     ("agent", "/incidents?q=C"), ("admin", "/recover/link")],
)  # fmt: skip
def test_every_other_page_passes_axe_at_both_widths(site: Site, who: str, path: str) -> None:
    page = site.signed_in(getattr(site.actors, who).email)
    page.goto(site.base + path)
    assert page.locator("h1").count() == 1
    name = re.sub(r"[^a-z0-9]+", "-", f"{who}{path}".lower()).strip("-")
    check(page, name)


def test_the_demo_mailbox_passes_axe_at_both_widths(site: Site, tmp_path) -> None:
    """The embedded default's mailbox, where a newcomer running `make run` sees a reset
    email arrive: its list and a message, on SQLite with mail captured as files."""
    from flask_migrate import upgrade

    from helpdesk import create_app
    from helpdesk.roster import open_bundle
    from helpdesk.services.roster import import_roster
    from helpdesk.services.users import create_user, issue_api_token

    from .conftest import ROSTER
    from .samples import ISLA_RESET

    app = create_app({"HELPDESK_INSTANCE": str(tmp_path)})
    with app.app_context():
        upgrade()
        import_roster(open_bundle(ROSTER), source="tests")
        create_user("m.baillie@ashgrove.sch.example", "employee", staff_sourced_id="stf-1")
        admin = create_user("admin@helpdesk.example", "admin")
        set_password(admin, PASSWORD)
        db.session.commit()
        token = issue_api_token("m.baillie@ashgrove.sch.example", "tests")
        filed = app.test_client().post(
            "/api/v1/incidents", json=ISLA_RESET, headers={"Authorization": f"Bearer {token}"}
        )
        assert filed.status_code == 201, filed.json
        make_worker(app, fork=False).work(burst=True)  # the reset and its outcome, as files
        db.session.remove()
    with live_server(app) as base:  # in the browser the module's other tests use
        page = new_page(site.browser)
        page.goto(f"{base}/dev/mail")  # the captured mail holds secrets: admins only
        expect(page.locator("h1")).to_have_text("Sign in")
        page.fill("#email", "admin@helpdesk.example")
        page.fill("#password", PASSWORD)
        page.click("button:has-text('Sign in')")
        # An admin's first sign-in sets up two-step sign-in, with the key as text too.
        expect(page.locator("h1")).to_have_text("Set up two-step sign-in")
        expect(page.locator(".app-qr svg title")).to_have_text("QR code for your authenticator app")
        check(page, "two-step-set-up")
        key = page.locator("#secret-key").inner_text().replace(" ", "")
        page.fill("#code", pyotp.TOTP(key).now())
        page.click("button:has-text('Continue')")
        expect(page.locator("h1")).to_have_text("Two-step sign-in is set up")
        assert page.locator("#recovery-codes li").count() == 10
        check(page, "recovery-codes")
        page.click("a:has-text('Continue')")
        expect(page.locator("h1")).to_have_text("Demo mailbox")
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        page.set_viewport_size({"width": 375, "height": 900})
        assert page.evaluate("document.documentElement.scrollWidth") <= 375, "fits a phone"
        page.set_viewport_size({"width": 1280, "height": 900})
        check(page, "demo-mailbox")
        page.click("text=New portal password for Isla Campbell (ASH240891)")
        expect(page.locator("body")).to_contain_text("One-time password")
        check(page, "demo-mailbox-message")


def test_an_agent_signs_in_with_the_code_from_their_app_using_the_keyboard(site: Site) -> None:
    email = site.actors.identity.email
    page = new_page(site.browser)
    page.goto(f"{site.base}/sign-in")
    type_into(page, "#email", email)
    type_into(page, "#password", PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Enter your code")
    check(page, "sign-in-code")
    type_into(page, "#code", "000000" if site.code_of(email) != "000000" else "111111")
    page.keyboard.press("Enter")
    expect(page.locator(".govuk-error-summary")).to_contain_text("That code is not right")
    check(page, "sign-in-code-wrong")
    type_into(page, "#code", site.code_of(email))
    page.keyboard.press("Enter")
    expect(page.locator(".govuk-footer")).to_contain_text(f"Signed in as {email}")
    page.close()


def test_the_reset_page_checks_its_link_first_and_lists_every_rule(site: Site) -> None:
    """A parent opens a reset link: a dead one says so before anything is typed; a live
    one shows the rules, lists every unmet one at once, and ends at the portal.

    (The site's parent portal keeps the shipped policy: at least 8 characters.)
    """
    from helpdesk.services.portals import update_policy

    from .samples import FIONA_RESET

    with site.app.app_context():
        update_policy(
            "parent",
            {"mode": "reset_link", "sign_in_url": "https://parents.portal.example/sign-in"},
        )
        db.session.remove()
    try:
        client = site.app.test_client()
        ref = client.post(
            "/api/v1/incidents", json=FIONA_RESET, headers=site.actors.ashgrove.headers
        ).json["ref"]
        identity = site.actors.identity.headers
        if client.get(f"/api/v1/incidents/{ref}", headers=identity).status_code == 404:
            # At the service desk (the rules test above may send parent resets straight
            # to identity): the desk escalates it first.
            escalated = client.post(
                f"/api/v1/incidents/{ref}/transitions",
                json={"action": "escalate"},
                headers=site.actors.agent.headers,
            )
            assert escalated.status_code == 200, escalated.json
        approved = client.post(
            f"/api/v1/incidents/{ref}/transitions", json={"action": "fulfil"}, headers=identity
        )
        assert approved.status_code == 200, approved.json
        site.work()
        found = re.search(r"/reset/(\S+)", site.smtp.mailbox.results_to(FIONA)[-1].text)
        assert found, "the reset link reached the parent's address on file"
        parent = new_page(site.browser)

        parent.goto(f"{site.base}/reset/not-a.real-link")
        expect(parent.locator("h1")).to_have_text("This link cannot be used")
        expect(parent.locator("input[type=password]")).to_have_count(0)
        check(parent, "reset-link-unusable")

        parent.goto(f"{site.base}/reset/{found.group(1)}")
        expect(parent.locator("#password-hint")).to_contain_text("at least 8 characters")
        check(parent, "reset-choose")
        parent.fill("#password", "short")
        parent.fill("#confirm", "shorter")
        parent.click("button:has-text('Set password')")
        summary = parent.locator(".govuk-error-summary")
        for unmet in ("Use at least 8 characters.", "Include a capital letter.",
                      "Include a digit.", "The two passwords are not the same."):  # fmt: skip
            expect(summary).to_contain_text(unmet)
        check(parent, "reset-choose-problems")
        parent.fill("#password", "Heather-Glen-42")
        parent.fill("#confirm", "Heather-Glen-42")
        parent.click("button:has-text('Set password')")
        expect(parent.locator("h1")).to_have_text("Your password has been changed")
        link = parent.locator("a:has-text('Sign in to the parent portal')")
        assert link.get_attribute("href") == "https://parents.portal.example/sign-in"
        check(parent, "reset-done")
        parent.reload()  # the form is sent again: the link is used now
        expect(parent.locator("h1")).to_have_text("This link cannot be used")
    finally:
        with site.app.app_context():
            update_policy("parent", {"mode": "one_time_password"})
            db.session.remove()


def test_an_agent_sorts_the_queue_works_several_at_once_and_assigns_one(site: Site) -> None:
    from helpdesk.services.queues import add_member

    from .samples import ISLA_RESET

    with site.app.app_context():
        add_member("its-service-desk", site.actors.identity.email)
        db.session.remove()
    client = site.app.test_client()
    refs = []
    for _ in range(3):  # failed checks: they stay with the service desk
        body = {**ISLA_RESET, "student_name": "Isl Campbell"}
        filed = client.post("/api/v1/incidents", json=body, headers=site.actors.ashgrove.headers)
        refs.append(filed.json["ref"])
    agent = site.signed_in(site.actors.agent.email)
    agent.goto(f"{site.base}/queue")
    agent.click("th >> text=Incident")  # sort by reference, then again: newest first
    expect(agent.locator("th[aria-sort=ascending]")).to_contain_text("Incident")
    agent.click("th >> text=Incident")
    expect(agent.locator("th[aria-sort=descending]")).to_contain_text("Incident")
    first = agent.locator("tbody tr").first
    expect(first).to_contain_text(refs[-1])
    expect(first).to_contain_text("Isl Campbell")
    check(agent, "queue-sorted")

    agent.check(f"#pick-{refs[-1]}")
    agent.check(f"#pick-{refs[-2]}")
    agent.select_option("#bulk_action", "claim")
    agent.click("button:has-text('Apply to the ticked incidents')")
    banner = agent.locator(".govuk-notification-banner")
    expect(banner).to_contain_text(f"2 incidents claimed by you: {refs[-1]}, {refs[-2]}.")
    expect(agent.locator("th[aria-sort=descending]")).to_contain_text("Incident")  # kept
    check(agent, "queue-bulk-claimed")

    agent.click(f"a[href='/incidents/{refs[0]}']")
    agent.select_option("#assignee", site.actors.identity.email)
    agent.click("button:has-text('Assign')")
    expect(agent.locator(".govuk-notification-banner")).to_contain_text(
        f"{refs[0]}: assigned to {site.actors.identity.email}."
    )
    expect(agent.locator("main")).to_contain_text(site.actors.identity.email)
    check(agent, "incident-assigned")

    agent.fill("#message-comment", "Rang the office.\nThey will call back after lunch.")
    agent.click("button:has-text('Add comment')")
    comment = agent.locator(".app-timeline__item", has_text="Rang the office.").locator(
        "p.app-lines"
    )
    assert comment.inner_text() == "Rang the office.\nThey will call back after lunch."


def test_cancelling_an_incident_asks_first(site: Site) -> None:
    from .samples import ISLA_RESET

    body = {**ISLA_RESET, "student_name": "Isl Campbell"}  # failed: it waits for a person
    client = site.app.test_client()
    ref = client.post("/api/v1/incidents", json=body, headers=site.actors.ashgrove.headers)
    ref = ref.json["ref"]
    employee = site.signed_in(site.actors.ashgrove.email)
    employee.goto(f"{site.base}/incidents/{ref}")
    employee.click("button:has-text('Cancel incident')")
    expect(employee.locator("h1")).to_have_text(f"Cancel {ref}?")
    check(employee, "confirm-cancel")
    employee.click("text=No, go back")
    expect(employee.locator("h1")).to_contain_text(ref)
    expect(employee.locator("h1")).not_to_contain_text("cancelled")
    employee.click("button:has-text('Cancel incident')")
    employee.click("button:has-text('Yes, cancel it')")
    expect(employee.locator(".govuk-notification-banner")).to_contain_text(f"{ref}: cancelled.")
    expect(employee.locator("h1")).to_contain_text("cancelled")


def test_the_queues_page_keeps_a_mistyped_email_beside_its_error(site: Site) -> None:
    admin = site.signed_in(site.actors.admin.email)
    admin.goto(f"{site.base}/admin/queues")
    admin.fill("#email-its-identity", "nobody@its.example")
    admin.locator("form", has=admin.locator("#email-its-identity")).locator("button").click()
    expect(admin.locator(".govuk-error-summary")).to_be_visible()
    assert admin.input_value("#email-its-identity") == "nobody@its.example"
    check(admin, "queues-error")
    admin.goto(f"{site.base}/admin/queues")
    remove = admin.locator("button:has-text('Remove')").first
    remove.click()
    expect(admin.locator("h1")).to_contain_text("Remove")
    check(admin, "confirm-remove-member")


def test_a_teacher_resets_some_then_all_of_a_class(site: Site, tmp_path) -> None:
    from helpdesk.roster import open_bundle
    from helpdesk.services.roster import import_roster

    from .classes import bundle_with_classes, students_of

    with site.app.app_context():
        import_roster(open_bundle(bundle_with_classes(tmp_path)), source="tests")
        db.session.remove()
    teacher = site.signed_in(site.actors.ashgrove_teacher.email)
    teacher.goto(f"{site.base}/classes")
    check(teacher, "classes")
    teacher.click("text=P4 Oak")
    expect(teacher.locator("h1")).to_have_text("P4 Oak")
    check(teacher, "class")
    # Nothing chosen: the page says what to do, and files nothing.
    teacher.click("button:has-text('Reset the chosen students')")
    expect(teacher.locator(".govuk-error-summary")).to_contain_text("Choose the students")
    check(teacher, "class-nothing-chosen")
    # Some, chosen with the keyboard.
    for box in ("#student-1", "#student-2"):
        tab_to(teacher, box)
        teacher.keyboard.press("Space")
    teacher.click("button:has-text('Reset the chosen students')")
    expect(teacher.locator(".govuk-panel__title")).to_have_text("2 password resets filed")
    assert teacher.locator("#filed tbody tr").count() == 2
    first_two = set(teacher.locator("#filed tbody tr a").all_inner_texts())
    check(teacher, "class-reset-done")
    # Then all of them.
    teacher.click("text=Back to P4 Oak")
    everyone = len(students_of("org-ash"))
    teacher.click(f"button:has-text('Reset all {everyone} students')")
    # The two just filed (and any another test left open) are left out, named with
    # their incidents; the rest are filed.
    expect(teacher.locator("#already-open")).to_be_visible()
    left_out = teacher.locator("#already-open + p + ul li")
    assert first_two <= set(teacher.locator("#already-open + p + ul a").all_inner_texts())
    expect(teacher.locator(".govuk-panel__title")).to_have_text(
        f"{everyone - left_out.count()} password resets filed"
    )
    check(teacher, "class-reset-some-already-open")
    # Another teacher's class is not there to open.
    answer = teacher.goto(f"{site.base}/classes/cls-mil-7m")
    assert answer is not None and answer.status == 404


def test_a_parent_recovers_their_username_then_asks_the_school_using_the_keyboard(
    site: Site,
) -> None:
    """The public self-service pages, keyboard only: a username recovery that matches
    reaches the address on file; a password recovery that does not is handed over to
    the school, and both answers read the same."""
    site.smtp.mailbox.reset()
    parent = new_page(site.browser)
    parent.goto(f"{site.base}/recover")
    check(parent, "recover-start")
    tab_to(parent, "a[href='/recover/username']")
    parent.keyboard.press("Enter")
    expect(parent.locator("h1")).to_have_text("Forgot your username?")
    parent.click("button:has-text('Continue')")  # nothing typed: every question says so
    expect(parent.locator(".govuk-error-summary")).to_contain_text("Enter email address.")
    check(parent, "recover-username-problems")
    type_into(parent, "#email", "FIONA.campbell@mail.example")
    type_into(parent, "#postcode", "eh1 1yz")
    type_into(parent, "#child_birth_date", "12")
    type_into(parent, "#child_birth_date-month", "4")
    type_into(parent, "#child_birth_date-year", "2017")
    parent.keyboard.press("Enter")
    expect(parent.locator("h1")).to_have_text("Check your email")
    matched_answer = parent.locator("#answer").inner_text()
    check(parent, "recover-sent")
    site.work()
    (reminder,) = [m for m in site.smtp.mailbox.messages if "fiona.campbell1" in m.text]
    assert reminder.rcpt_tos == [FIONA]

    parent.goto(f"{site.base}/recover/password")
    check(parent, "recover-password")
    type_into(parent, "#username", "fiona.campbell1")
    type_into(parent, "#email", FIONA)
    type_into(parent, "#postcode", "G1 1AA")  # moved house: the school has the old one
    parent.keyboard.press("Enter")
    expect(parent.locator("#answer")).to_have_text(matched_answer)
    tab_to(parent, "#ask-school")
    parent.keyboard.press("Enter")
    expect(parent.locator("h1")).to_have_text("Ask your child's school for help")
    check(parent, "recover-help")
    type_into(parent, "#parent_name", "Fiona Campbell")
    type_into(parent, "#child_name", "Isla Campbell")
    type_into(parent, "#contact_phone", "07700 900101")
    parent.keyboard.press("Enter")
    expect(parent.locator("h1")).to_have_text("Your request has been sent")
    expect(parent.locator("#answer")).to_contain_text("within 5 working days")
    assert "postcode" not in parent.content().lower()
    check(parent, "recover-handed-over")

    with site.app.app_context():
        handed_over = sa.select(Incident.id).where(Incident.type == "self_service_failed")
        ref = format_ref(db.session.execute(handed_over).scalar_one())
        db.session.remove()
    office = site.signed_in(site.actors.ashgrove.email)
    office.goto(f"{site.base}/incidents/{ref}")
    expect(office.locator("#self-service")).to_have_text("From self-service")
    expect(office.locator("main")).to_contain_text("the postcode differs")
    check(office, "incident-from-self-service")
