"""Importing OneRoster bundles: all or nothing, with a report a person can act on."""

from __future__ import annotations

import csv
import io
import shutil
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from helpdesk.extensions import db
from helpdesk.models import Guardian, PortalAccount, Student
from helpdesk.roster import MalformedBundle, open_bundle
from helpdesk.security import verify_pin
from helpdesk.services.roster import import_roster

from .conftest import PEPPER, ROSTER
from .samples import ISLA_RESET, file

RECORD_TABLES = (
    "schools",
    "staff",
    "students",
    "guardians",
    "guardian_students",
    "portal_accounts",
    "queues",
)


def snapshot() -> dict[str, list[tuple]]:
    return {
        t: [tuple(r) for r in db.session.execute(sa.text(f"SELECT * FROM {t} ORDER BY 1, 2"))]
        for t in RECORD_TABLES
    }


class EditableBundle:
    """A copy of the sample bundle whose CSV files a test can change row by row."""

    def __init__(self, path: Path) -> None:
        shutil.copytree(ROSTER, path)
        self.path = path

    def rows(self, name: str) -> tuple[list[str], list[dict[str, str]]]:
        with (self.path / name).open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            return list(reader.fieldnames or []), list(reader)

    def write(self, name: str, header: list[str], rows: list[dict[str, str]]) -> None:
        with (self.path / name).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, header, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    def edit(self, name: str, sourced_id: str, **changes: str) -> None:
        header, rows = self.rows(name)
        for row in rows:
            if row["sourcedId"] == sourced_id:
                row.update(changes)
        self.write(name, header, rows)

    def append(self, file_name: str, values: dict[str, str]) -> None:
        header, rows = self.rows(file_name)
        self.write(file_name, header, [*rows, {h: values.get(h, "") for h in header}])

    def zip(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for file in self.path.iterdir():
                archive.write(file, f"roster/{file.name}")
        return buffer.getvalue()

    def load(self):
        return import_roster(open_bundle(self.path), source="test")


@pytest.fixture
def bundle(app, tmp_path) -> EditableBundle:
    return EditableBundle(tmp_path / "roster")


NEW_SCHOOL = {
    "sourcedId": "org-new",
    "status": "active",
    "name": "New School",
    "type": "school",
    "identifier": "9990001",
    "metadata.nation": "WLS",
}


def test_reimporting_the_sample_changes_nothing(bundle):
    before = snapshot()
    report = bundle.load()
    assert report.counts["students"] == {
        "created": 0,
        "updated": 0,
        "unchanged": 47,
        "deactivated": 0,
    }
    assert report.counts["guardians"]["unchanged"] == 53
    assert report.counts["portal_accounts"]["unchanged"] == 100
    assert snapshot()["guardians"] == before["guardians"]


def test_a_changed_email_updates_the_address_on_file(bundle):
    bundle.edit("users.csv", "par-3-0", email="gareth.hughes@mail.example")
    report = bundle.load()
    assert report.counts["guardians"]["updated"] == 1
    assert report.counts["guardians"]["unchanged"] == 52
    email = db.session.execute(
        sa.select(Guardian.email).where(Guardian.sourced_id == "par-3-0")
    ).scalar_one()
    assert email == "gareth.hughes@mail.example"


def test_a_students_own_email_is_kept_for_notices_and_checked_like_any_other(bundle):
    bundle.edit("users.csv", "stu-1-0", email="isla.campbell@pupils.ashgrove.sch.example")
    assert bundle.load().counts["students"]["updated"] == 1
    email = db.session.execute(
        sa.select(Student.email).where(Student.sourced_id == "stu-1-0")
    ).scalar_one()
    assert email == "isla.campbell@pupils.ashgrove.sch.example"
    bundle.edit("users.csv", "stu-1-0", email="isla at home")
    with pytest.raises(MalformedBundle) as raised:
        bundle.load()
    assert [str(p) for p in raised.value.problems] == [
        "users.csv row 6 column email: 'isla at home' is not an email address: An email "
        "address must have an @-sign."
    ]


def test_tobedeleted_deactivates_the_record(client, actors, bundle):
    bundle.edit("users.csv", "stu-1-0", status="tobedeleted")
    report = bundle.load()
    assert report.counts["students"]["deactivated"] == 1
    active = db.session.execute(
        sa.select(Student.active).where(Student.sourced_id == "stu-1-0")
    ).scalar_one()
    assert active is False
    response = file(client, actors.ashgrove, **ISLA_RESET)
    assert response.json["verification"]["fields"]["student_id"]["result"] == "not_found"


def test_new_records_are_created_with_an_office_queue_per_school(bundle):
    bundle.append("orgs.csv", NEW_SCHOOL)
    bundle.append(
        "users.csv",
        {
            "sourcedId": "stu-new",
            "status": "active",
            "orgSourcedIds": "org-new",
            "role": "student",
            "givenName": "Nia",
            "familyName": "Evans",
            "identifier": "new001",
            "metadata.yearStage": "Y3",
        },
    )
    report = bundle.load()
    assert report.counts["schools"]["created"] == 1
    assert report.counts["students"]["created"] == 1
    slugs = {row[0] for row in db.session.execute(sa.text("SELECT slug FROM queues"))}
    assert "school-office-9990001" in slugs
    number = db.session.execute(
        sa.select(Student.student_number).where(Student.sourced_id == "stu-new")
    ).scalar_one()
    assert number == "NEW001"


def test_rows_of_roles_not_kept_are_reported_not_imported(bundle):
    bundle.append(
        "users.csv",
        {
            "sourcedId": "aide-1",
            "status": "active",
            "orgSourcedIds": "org-ash",
            "role": "aide",
            "givenName": "Ann",
            "familyName": "Aide",
        },
    )
    report = bundle.load()
    (rejected,) = report.rejected
    assert (rejected.file, rejected.row) == ("users.csv", 106)
    assert "'aide'" in rejected.reason


def test_pins_are_stored_only_as_hashes_that_verify(app):
    with (ROSTER / "portal_accounts.csv").open() as handle:
        pins = {r["accountNumber"]: r["pin"] for r in csv.DictReader(handle) if r["pin"]}
    stored = dict(
        db.session.execute(sa.select(PortalAccount.account_number, PortalAccount.pin_hash)).all()
    )
    dump = "\n".join(str(row) for rows in snapshot().values() for row in rows)
    for account, pin in pins.items():
        assert pin not in dump
        assert stored[account].startswith("$argon2id$")
        assert verify_pin(PEPPER, account, stored[account], pin)
        assert not verify_pin(PEPPER, account, stored[account], "000000")


def _drop_column(bundle: EditableBundle, name: str, column: str) -> None:
    header, rows = bundle.rows(name)
    bundle.write(name, [h for h in header if h != column], rows)


MALFORMED = {
    "missing file": (
        lambda b: (b.path / "demographics.csv").unlink(),
        "demographics.csv: file is missing from the bundle",
    ),
    "missing column": (
        lambda b: _drop_column(b, "orgs.csv", "metadata.nation"),
        "orgs.csv row 1 column metadata.nation: required column is missing",
    ),
    "bad date": (
        lambda b: b.edit("demographics.csv", "stu-2-0", birthDate="2011-13-03"),
        "demographics.csv row 3 column birthDate: '2011-13-03' is not a date",
    ),
    "bad timestamp": (
        lambda b: b.edit("users.csv", "stu-1-0", dateLastModified="yesterday"),
        "users.csv row 6 column dateLastModified: 'yesterday' is not an ISO 8601",
    ),
    "unknown org": (
        lambda b: b.edit("users.csv", "stu-1-0", orgSourcedIds="org-zzz"),
        "stu-1-0 names org 'org-zzz', which is not a known school",
    ),
    "duplicate id": (
        lambda b: b.append(
            "users.csv",
            {
                "sourcedId": "stu-1-0",
                "status": "active",
                "role": "student",
                "orgSourcedIds": "org-ash",
                "givenName": "Dup",
                "familyName": "Licate",
                "identifier": "X1",
            },
        ),
        "users.csv row 106 column sourcedId: 'stu-1-0' is repeated (first on row 6)",
    ),
    "broken agent link": (
        lambda b: b.edit("users.csv", "par-1-0", agentSourcedIds="stu-1-0,stu-nobody"),
        "users.csv row 7 column agentSourcedIds: par-1-0 names student 'stu-nobody'",
    ),
    "unknown nation": (
        lambda b: b.edit("orgs.csv", "org-ash", **{"metadata.nation": "FRA"}),
        "orgs.csv row 2 column metadata.nation: 'FRA' is not one of SCT, ENG, WLS, NIR",
    ),
    "bad flag": (
        lambda b: b.edit("users.csv", "par-1-0", **{"metadata.mainContact": "yes"}),
        "users.csv row 7 column metadata.mainContact: 'yes' is not true or false",
    ),
    "bad email": (
        lambda b: b.edit("users.csv", "par-1-0", email="fiona at mail"),
        "users.csv row 7 column email: 'fiona at mail' is not an email address",
    ),
    "nul character": (  # PostgreSQL cannot store it: it was a database error
        lambda b: b.edit("users.csv", "par-1-0", givenName="Fi\x00ona"),
        "users.csv row 7 column givenName: contains a NUL character (U+0000)",
    ),
    "account owner unknown": (
        lambda b: b.edit("portal_accounts.csv", "par-1-0", sourcedId="par-nobody"),
        "portal_accounts.csv row 3 column sourcedId: owner 'par-nobody' is not a guardian",
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_bundle_changes_nothing_and_says_what_is_wrong(bundle, case):
    break_it, expected = MALFORMED[case]
    # A valid change alongside the fault must not be applied either.
    bundle.append("orgs.csv", NEW_SCHOOL)
    bundle.edit("users.csv", "par-3-0", email="new@mail.example")
    break_it(bundle)
    before = snapshot()
    with pytest.raises(MalformedBundle) as raised:
        bundle.load()
    assert any(expected in str(p) for p in raised.value.problems), raised.value.problems
    assert "nothing changed" in raised.value.message
    assert snapshot() == before


def test_a_malformed_pin_is_reported_without_echoing_it(bundle):
    bundle.edit("portal_accounts.csv", "par-1-0", pin="59x853")
    with pytest.raises(MalformedBundle) as raised:
        bundle.load()
    (problem,) = raised.value.problems
    assert str(problem) == "portal_accounts.csv row 3 column pin: PIN must be 4 to 12 digits"
    assert "59x853" not in raised.value.message


def test_every_problem_is_listed_in_one_pass(bundle):
    bundle.edit("demographics.csv", "stu-2-0", birthDate="soon")
    bundle.edit("orgs.csv", "org-mil", **{"metadata.nation": "USA"})
    bundle.edit("users.csv", "par-1-0", **{"metadata.parentalResponsibility": "maybe"})
    with pytest.raises(MalformedBundle) as raised:
        bundle.load()
    assert {p.file for p in raised.value.problems} == {"demographics.csv", "orgs.csv", "users.csv"}


def upload(client, actor, content: bytes, filename: str = "roster.zip"):
    return client.post(
        "/api/v1/roster-imports",
        headers=actor.headers,
        data={"bundle": (io.BytesIO(content), filename)},
        content_type="multipart/form-data",
    )


def test_admin_imports_a_zip_through_the_api(client, actors, bundle):
    bundle.edit("users.csv", "par-3-0", email="g.hughes@mail.example")
    response = upload(client, actors.admin, bundle.zip())
    assert response.status_code == 201, response.json
    assert response.json["counts"]["guardians"]["updated"] == 1


def test_the_api_refuses_a_malformed_bundle_with_its_problems(client, actors, bundle):
    bundle.edit("users.csv", "stu-1-0", orgSourcedIds="org-zzz")
    before = snapshot()
    response = upload(client, actors.admin, bundle.zip())
    assert response.status_code == 422
    assert response.json["code"] == "malformed_bundle"
    assert response.json["problems"][0]["column"] == "orgSourcedIds"
    assert snapshot() == before
    not_zip = upload(client, actors.admin, b"sourcedId,status\n", "orgs.csv")
    assert not_zip.status_code == 422
    assert "zip" in not_zip.json["message"]


def test_only_admins_import(client, actors, bundle):
    for actor in (actors.ashgrove, actors.agent):
        assert upload(client, actor, bundle.zip()).status_code == 403


def test_the_cli_reports_problems_and_exits_non_zero(app, bundle):
    bundle.edit("users.csv", "par-1-0", agentSourcedIds="stu-nobody")
    result = app.test_cli_runner().invoke(args=["roster", "import", str(bundle.path)])
    assert result.exit_code == 1
    assert "nothing changed" in result.output
    assert "stu-nobody" in result.output
    ok = app.test_cli_runner().invoke(args=["roster", "import", str(ROSTER)])
    assert ok.exit_code == 0, ok.output
    assert "students: created 0, updated 0, unchanged 47" in ok.output


# -- Hostile and careless bundles ----------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "named"),
    [("utf-16", "UTF-16"), ("latin-1", "Latin-1"), ("cp1252", "Windows-1252")],
)
def test_a_file_not_in_utf8_is_refused_naming_its_encoding(client, actors, bundle, encoding, named):
    bundle.edit("users.csv", "par-1-0", givenName="Fióna")
    bundle.edit("users.csv", "par-2-0", familyName="O\u2019Brien" if encoding == "cp1252" else "X")
    users = bundle.path / "users.csv"
    users.write_bytes(users.read_text(encoding="utf-8").encode(encoding))
    before = snapshot()
    response = upload(client, actors.admin, bundle.zip())
    assert response.status_code == 422, response.json
    (problem,) = response.json["problems"]
    assert problem["file"] == "users.csv"
    assert named in problem["message"] and "UTF-8 is needed" in problem["message"]
    assert snapshot() == before


def test_a_row_shorter_than_its_header_is_refused_with_its_row(client, actors, bundle):
    users = bundle.path / "users.csv"
    users.write_text(users.read_text(encoding="utf-8") + "par-9-9,active,2026-09-01\n")
    before = snapshot()
    response = upload(client, actors.admin, bundle.zip())
    assert response.status_code == 422, response.json
    (problem,) = response.json["problems"]
    assert problem["file"] == "users.csv" and problem["row"] > 1
    assert "3 values but the header has" in problem["message"]
    assert snapshot() == before


def test_a_zip_of_too_many_files_is_refused_before_unpacking(client, actors):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for number in range(60):
            archive.writestr(f"f{number}.csv", "x")
    response = upload(client, actors.admin, buffer.getvalue())
    assert response.status_code == 422
    assert "holds 60 files" in response.json["message"]


BOMB_IMPORT = """
import json, sys
from helpdesk import create_app
from helpdesk.errors import DomainError
from helpdesk.services.roster import import_zip

app = create_app()
with app.app_context(), open(sys.argv[1], "rb") as stream:
    try:
        import_zip(stream, filename="bomb.zip")
        outcome = "imported"
    except DomainError as error:
        outcome = error.message
# VmHWM is this process's own peak (ru_maxrss carries the parent's across exec).
with open("/proc/self/status") as status:
    peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"outcome": outcome, "peak_mib": peak_kib / 1024}))
"""


def test_a_zip_bomb_is_refused_before_it_is_inflated_and_memory_stays_small(database_url, tmp_path):
    import json
    import os
    import subprocess
    import sys

    from .conftest import environ_for

    bomb = tmp_path / "bomb.zip"
    # Real columns and rows, so that a reader that inflated it would parse every row.
    header = (ROSTER / "users.csv").read_bytes().splitlines(keepends=True)[0]
    row = b"stu-x,active,2026-09-01T08:00:00.000Z,true,org-ash,student,x,,A,B,,X,,,,,,,,P4,,\n"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("roster/users.csv", "w", force_zip64=True) as member:
            member.write(header)
            block = row * (1_000_000 // len(row))
            for _ in range(400):  # 400 MB of CSV
                member.write(block)
        for name in ("orgs.csv", "demographics.csv"):
            archive.writestr(f"roster/{name}", "sourcedId,status\n")
    assert bomb.stat().st_size < 2 * 1024 * 1024
    env = {**os.environ, **environ_for(database_url, tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", BOMB_IMPORT, str(bomb)], env=env, capture_output=True,
        text=True, timeout=120, check=True,
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "would unpack to 381 MiB" in result["outcome"], result  # 400 MB
    assert result["peak_mib"] < 200, result
