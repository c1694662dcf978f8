"""Reads are audited: each time staff open an incident (a page or the API) or list
incidents through the API, the access log names who read whose records; an admin lists
the reads of one person, and `helpdesk data subject PERSON-ID` exports what the service
holds about them, never a secret."""

from __future__ import annotations

import json

import sqlalchemy as sa

from helpdesk.extensions import db
from helpdesk.models import AccessEntry, User

from .samples import FIONA_RESET, ISLA_RESET, file
from .test_pages import csrf_token, signed_in

ISLA, FIONA = "stu-1-0", "par-1-0"  # the sample roster's sourcedIds


def _reads(subject: str) -> list[tuple[str, str | None, str]]:
    rows = db.session.execute(
        sa.select(User.email, AccessEntry.incident_id, AccessEntry.data)
        .join(User, User.id == AccessEntry.actor_id)
        .where(AccessEntry.subject == subject, AccessEntry.action == "read")
        .order_by(AccessEntry.id)
    ).all()  # fmt: skip
    return [(email, incident_id, data["via"]) for email, incident_id, data in rows]


def test_opening_an_incident_records_who_read_whose_records(app, client, actors):
    filed = file(client, actors.ashgrove, **FIONA_RESET).json
    incident_id = int(filed["ref"].removeprefix("INC-"))
    assert _reads(FIONA) == [] and _reads(ISLA) == []  # filing is not reading
    agent = signed_in(app, actors.agent.email)
    assert agent.get(f"/incidents/{filed['ref']}").status_code == 200
    seen_by_page = (actors.agent.email, incident_id, "page")
    assert _reads(FIONA) == [seen_by_page] and _reads(ISLA) == [seen_by_page]
    assert client.get(f"/api/v1/incidents/{filed['ref']}",
                      headers=actors.agent.headers).status_code == 200  # fmt: skip
    assert _reads(FIONA)[-1] == (actors.agent.email, incident_id, "api")
    # A list through the API carries every incident's details: each one is a read.
    listed = client.get("/api/v1/incidents", headers=actors.admin.headers)
    assert filed["ref"] in [item["ref"] for item in listed.json["items"]]
    assert _reads(FIONA)[-1] == (actors.admin.email, incident_id, "api")
    # Someone who may not see it reads nothing, and nothing is recorded.
    before = len(_reads(FIONA))
    other = client.get(f"/api/v1/incidents/{filed['ref']}", headers=actors.millbrook.headers)
    assert other.status_code == 404 and len(_reads(FIONA)) == before


def test_an_admin_lists_the_reads_of_one_person_and_downloads_what_is_held(app, client, actors):
    ref = file(client, actors.ashgrove, **ISLA_RESET).json["ref"]
    agent = signed_in(app, actors.agent.email)
    agent.get(f"/incidents/{ref}")
    assert agent.get(f"/admin/people?person={ISLA}").status_code == 403
    admin = signed_in(app, actors.admin.email)
    page = admin.get(f"/admin/people?person={ISLA}")
    assert page.status_code == 200
    assert actors.agent.email in page.text and ref in page.text and "a page" in page.text
    download = admin.post("/admin/people/export", data={
        "person": ISLA, "csrf_token": csrf_token(admin, "/admin/people")})  # fmt: skip
    assert download.status_code == 200
    assert download.headers["Content-Disposition"] == f'attachment; filename="subject-{ISLA}.json"'
    held = download.json
    assert held["record"]["student_number"] == "ASH240891"
    assert [i["ref"] for i in held["incidents"]] == [ref]
    assert held["reads"][0]["by"] == actors.agent.email
    exported = db.session.execute(
        sa.select(AccessEntry.actor_id).where(AccessEntry.action == "exported",
                                              AccessEntry.subject == ISLA)
    ).scalar_one()  # fmt: skip
    assert (
        exported
        == db.session.execute(
            sa.select(User.id).where(User.email == actors.admin.email)
        ).scalar_one()
    )
    missing = admin.post("/admin/people/export", data={
        "person": "nobody-here", "csrf_token": csrf_token(admin, "/admin/people")})  # fmt: skip
    assert missing.status_code == 404 and "No student or parent" in missing.text


def test_the_subject_export_on_the_command_line_holds_no_secret(app, client, actors):
    ref = file(client, actors.ashgrove, **FIONA_RESET).json["ref"]
    client.get(f"/api/v1/incidents/{ref}", headers=actors.agent.headers)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["data", "subject", FIONA, "--by", actors.admin.email])
    assert result.exit_code == 0, result.output
    held = json.loads(result.output)
    assert held["kind"] == "parent" and held["record"]["email"] == "fiona.campbell@mail.example"
    assert ISLA in held["record"]["children"]
    assert [i["ref"] for i in held["incidents"]] == [ref]
    assert held["incidents"][0]["timeline"][0]["kind"] == "filed"
    assert [r["by"] for r in held["reads"]] == [actors.agent.email]
    assert {a["account_number"] for a in held["portal_accounts"]} >= {"P500001"}
    # Never a secret: not the PIN that was typed, nor any hash or token.
    assert FIONA_RESET["parent_pin"] not in result.output
    for word in ("pin_hash", "password_hash", "reset_token", "sealed", "$argon2"):
        assert word not in result.output
    unknown = runner.invoke(args=["data", "subject", "nobody-here"])
    assert unknown.exit_code == 1 and "No student or parent" in unknown.output
