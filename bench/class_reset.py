"""A class reset of 35 students: the request that files them, and the time until the
teacher's one message of slips (every student's one-time password) has been accepted by
the SMTP server, with two RQ workers.

A generated roster (bench.generate_roster, one school) gets a teacher and a class of 35
of its students (classes.csv, enrollments.csv); the teacher resets all of them through
the API (Flask's test client in this process, on PostgreSQL), and two `helpdesk worker`
processes on real Redis fulfil them, an aiosmtpd server in this process timestamping
each message. The same run files 35 single student resets one after another, for the
side-by-side figure (each round waits for the last round's incidents to be resolved, so
none is refused as already open).

    python -m bench.class_reset [--rounds 5]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from bench.common import OUT, REDIS_URL, bench_environ, migrate, on_accept, scratch_database
from bench.fulfilment import start_workers
from bench.generate_roster import STAMP, generate

CLASS_SIZE = 35
TEACHER = "t.bench@school0.example"
SLIPS = "New portal passwords for 7B"  # the class's one message, to the teacher


def bundle() -> tuple[Path, list[dict[str, str]]]:
    """The generated roster with a teacher and one class; the class's students."""
    folder = generate(OUT / "roster-class", 400)
    with (folder / "users.csv").open(encoding="utf-8") as users:
        rows = list(csv.DictReader(users))
        header = list(rows[0])
    students = [r for r in rows if r["role"] == "student" and r["orgSourcedIds"] == "org-0"]
    pupils = students[:CLASS_SIZE]
    if not any(r["sourcedId"] == "stf-bench" for r in rows):
        teacher = dict.fromkeys(header, "") | {
            "sourcedId": "stf-bench", "status": "active", "dateLastModified": STAMP,
            "enabledUser": "true", "orgSourcedIds": "org-0", "role": "teacher",
            "username": "t.bench", "givenName": "Tam", "familyName": "Bench",
            "identifier": "STF-BENCH", "email": TEACHER,
        }  # fmt: skip
        with (folder / "users.csv").open("a", newline="", encoding="utf-8") as users:
            csv.DictWriter(users, fieldnames=header).writerow(teacher)
    with (folder / "classes.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["sourcedId", "status", "dateLastModified", "title", "classCode",
                         "schoolSourcedId"])  # fmt: skip
        writer.writerow(["cls-bench", "active", STAMP, "7B", "7B", "org-0"])
    with (folder / "enrollments.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["sourcedId", "status", "dateLastModified", "classSourcedId",
                         "schoolSourcedId", "userSourcedId", "role"])  # fmt: skip
        writer.writerow(["enr-t", "active", STAMP, "cls-bench", "org-0", "stf-bench", "teacher"])
        for pupil in pupils:
            writer.writerow([f"enr-{pupil['sourcedId']}", "active", STAMP, "cls-bench", "org-0",
                             pupil["sourcedId"], "student"])  # fmt: skip
    return folder, pupils


def setup(environ: dict[str, str], folder: Path) -> str:
    """The roster with its class, the teacher's account, and student resets fulfilled at
    once (the shipped rules do); returns the teacher's token."""
    from helpdesk import create_app
    from helpdesk.extensions import db
    from helpdesk.roster import open_bundle
    from helpdesk.services.roster import import_roster
    from helpdesk.services.users import create_user, issue_api_token

    app = create_app(environ)
    with app.app_context():
        import_roster(open_bundle(folder), source="bench")
        create_user(TEACHER, "employee", staff_sourced_id="stf-bench")
        token = issue_api_token(TEACHER, "bench")
        db.engine.dispose()
    return token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import redis

    from helpdesk import create_app
    from tests.smtp import SmtpServer

    folder, pupils = bundle()
    with SmtpServer() as smtp, scratch_database() as url:
        slips: list[float] = []  # when each class's message was accepted

        def seen(message: EmailMessage) -> None:
            if str(message["Subject"]).startswith(SLIPS):
                slips.append(time.monotonic())

        on_accept(smtp.mailbox, seen)
        environ = bench_environ(url, mail_port=smtp.port)
        redis.Redis.from_url(REDIS_URL).flushdb()
        migrate(url)
        token = setup(environ, folder)
        app = create_app(environ)
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        workers = start_workers(environ)
        time.sleep(2)  # both workers up and idle
        filed, delivered, singles = [], [], []
        try:
            for _ in range(args.rounds):
                started = time.monotonic()
                answer = client.post("/api/v1/classes/cls-bench/resets", json={"all": True},
                                     headers=headers)  # fmt: skip
                filed.append(time.monotonic() - started)
                assert answer.status_code == 201, answer.json
                refs = [incident["ref"] for incident in answer.json["incidents"]]
                assert len(refs) == CLASS_SIZE
                deadline = time.monotonic() + 300
                while len(slips) <= len(delivered):
                    if time.monotonic() > deadline:
                        raise SystemExit("the class's slips did not arrive")
                    time.sleep(0.02)
                delivered.append(slips[-1] - started)
                _resolved(client, headers, refs)
                started = time.monotonic()
                singles_refs = []
                for pupil in pupils:
                    body = _single(folder, pupil)
                    single = client.post("/api/v1/incidents", json=body, headers=headers)
                    assert single.status_code == 201, single.json
                    singles_refs.append(single.json["ref"])
                singles.append(time.monotonic() - started)
                _resolved(client, headers, singles_refs)  # before the next class reset
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(timeout=30)
    print(f"class reset of {CLASS_SIZE}, {args.rounds} rounds, 2 workers:")
    print(f"  filed (one request):         median {statistics.median(filed) * 1000:.0f} ms, "
          f"max {max(filed) * 1000:.0f} ms")  # fmt: skip
    print(f"  {CLASS_SIZE} single resets filed:    median "
          f"{statistics.median(singles) * 1000:.0f} ms")  # fmt: skip
    print(f"  the class's one message of {CLASS_SIZE} slips accepted by SMTP: median "
          f"{statistics.median(delivered):.1f} s, max {max(delivered):.1f} s")  # fmt: skip


def _resolved(client: Any, headers: dict[str, str], refs: list[str]) -> None:
    """Wait until every one of ``refs`` is resolved (its result delivered)."""
    deadline = time.monotonic() + 300
    for ref in refs:
        while client.get(f"/api/v1/incidents/{ref}", headers=headers).json["status"] != (
            "resolved"
        ):
            if time.monotonic() > deadline:
                raise SystemExit(f"{ref} was not resolved")
            time.sleep(0.05)


_BIRTHS: dict[str, str] = {}


def _single(folder: Path, pupil: dict[str, str]) -> dict[str, str]:
    """A single student reset as an employee would type it, from the same records."""
    if not _BIRTHS:
        with (folder / "demographics.csv").open(encoding="utf-8") as rows:
            _BIRTHS.update({r["sourcedId"]: r["birthDate"] for r in csv.DictReader(rows)})
    year, month, _day = _BIRTHS[pupil["sourcedId"]].split("-")
    return {"type": "student_password_reset", "student_id": pupil["identifier"],
            "student_name": f"{pupil['givenName']} {pupil['familyName']}",
            "birth_month_year": f"{month}{year}"}  # fmt: skip


if __name__ == "__main__":
    main()
