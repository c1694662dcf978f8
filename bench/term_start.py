"""The term-start peak: 2,000 student password resets filed over 10 minutes across 50
schools, with auto-assignment on, and how long each takes from filing to its one-time
password being accepted by the SMTP server.

A generated roster (bench.generate_roster: 50 schools, 3,000 students) gets one office
employee per school. The service desk's student queue (its-student-systems, where the
shipped rules send student resets, approved at once) assigns round robin among five
agents. Each reset is filed through the API (Flask's test client in this process, on
PostgreSQL) by its school's employee for a different student, at an even pace; two
`helpdesk worker` processes on real Redis fulfil them, and an aiosmtpd server in this
process timestamps each student's password email. At the end no incident of the
assigning queue may be without an assignee.

    python -m bench.term_start [--resets 2000] [--minutes 10]
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import time
from email.message import EmailMessage
from pathlib import Path

from bench.common import OUT, REDIS_URL, bench_environ, migrate, on_accept, scratch_database
from bench.fulfilment import start_workers
from bench.generate_roster import STAMP, generate

SCHOOLS = 50
QUEUE = "its-student-systems"
AGENTS = [f"agent{n}@its.bench.example" for n in range(5)]
SUBJECT = "New portal password for "  # a student's, to the filing employee


def bundle(
    schools: int = SCHOOLS, per_school: int = 60, name: str = "roster-term-start"
) -> tuple[Path, list[dict[str, str]]]:
    """The roster with an office employee per school; every student, with a birth date."""
    folder = generate(OUT / name, schools * per_school, schools=schools)
    with (folder / "users.csv").open(encoding="utf-8") as users:
        rows = list(csv.DictReader(users))
        header = list(rows[0])
    if not any(r["sourcedId"] == "stf-office-0" for r in rows):
        with (folder / "users.csv").open("a", newline="", encoding="utf-8") as users:
            writer = csv.DictWriter(users, fieldnames=header)
            for school in range(schools):
                writer.writerow(dict.fromkeys(header, "") | {
                    "sourcedId": f"stf-office-{school}", "status": "active",
                    "dateLastModified": STAMP, "enabledUser": "true",
                    "orgSourcedIds": f"org-{school}", "role": "teacher",
                    "username": f"office{school}", "givenName": "Office",
                    "familyName": f"School {school}", "identifier": f"STF-OFFICE-{school}",
                    "email": office_employee(school),
                })  # fmt: skip
    with (folder / "demographics.csv").open(encoding="utf-8") as rows_in:
        births = {r["sourcedId"]: r["birthDate"] for r in csv.DictReader(rows_in)}
    students = [r | {"birthDate": births[r["sourcedId"]]} for r in rows if r["role"] == "student"]
    return folder, students


def office_employee(school: int) -> str:
    return f"office@school{school}.bench.example"


def setup(environ: dict[str, str], folder: Path) -> dict[str, str]:
    """The roster, an employee per school and the assigning queue; tokens by school."""
    from helpdesk import create_app
    from helpdesk.extensions import db
    from helpdesk.roster import open_bundle
    from helpdesk.services import assignment
    from helpdesk.services.queues import add_member
    from helpdesk.services.roster import import_roster
    from helpdesk.services.users import create_user, issue_api_token

    app = create_app(environ)
    tokens = {}
    with app.app_context():
        import_roster(open_bundle(folder), source="bench")
        for school in range(SCHOOLS):
            create_user(
                office_employee(school), "employee", staff_sourced_id=f"stf-office-{school}"
            )
            tokens[f"org-{school}"] = issue_api_token(office_employee(school), "bench")
        for agent in AGENTS:
            create_user(agent, "agent")
            add_member(QUEUE, agent)
        assignment.set_mode(QUEUE, "round_robin")
        db.engine.dispose()
    return tokens


def reset_body(student: dict[str, str]) -> dict[str, str]:
    """A verified student reset for a row of the generated roster."""
    year, month, _day = student["birthDate"].split("-")
    return {"type": "student_password_reset", "student_id": student["identifier"],
            "student_name": f"{student['givenName']} {student['familyName']}",
            "birth_month_year": f"{month}{year}"}  # fmt: skip


def _unassigned(environ: dict[str, str]) -> tuple[int, int]:
    """(incidents in the assigning queue, of them without an assignee)."""
    import sqlalchemy as sa

    from helpdesk import create_app
    from helpdesk.extensions import db
    from helpdesk.models import Incident, Queue

    app = create_app(environ)
    with app.app_context():
        in_queue = sa.select(Queue.id).where(Queue.slug == QUEUE).scalar_subquery()
        total, bare = db.session.execute(
            sa.select(sa.func.count(), sa.func.count().filter(Incident.assignee_id.is_(None)))
            .where(Incident.queue_id == in_queue)
        ).one()  # fmt: skip
        db.engine.dispose()
    return int(total), int(bare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resets", type=int, default=2000)
    parser.add_argument("--minutes", type=float, default=10)
    args = parser.parse_args()

    import redis

    from helpdesk import create_app
    from tests.smtp import SmtpServer

    folder, students = bundle()
    chosen = students[: args.resets]
    assert len(chosen) == args.resets, f"the roster has {len(students)} students"
    with SmtpServer() as smtp, scratch_database() as url:
        arrivals: dict[str, float] = {}

        def seen(message: EmailMessage) -> None:
            body = message.get_body(preferencelist=("plain",))
            ref = re.search(r"\b(INC-\d+)\b", body.get_content() if body else "")
            if str(message["Subject"]).strip().startswith(SUBJECT) and ref:
                arrivals[ref.group(1)] = time.monotonic()
            smtp.mailbox.messages.clear()  # keep only the timestamps: 6,000 messages add up

        on_accept(smtp.mailbox, seen)
        environ = bench_environ(url, mail_port=smtp.port)
        redis.Redis.from_url(REDIS_URL).flushdb()
        migrate(url)
        tokens = setup(environ, folder)
        client = create_app(environ).test_client()
        workers = start_workers(environ)
        time.sleep(2)  # both workers up and idle
        filed_at: dict[str, float] = {}
        request_ms: list[float] = []
        gap = args.minutes * 60 / args.resets
        try:
            began = time.monotonic()
            for n, student in enumerate(chosen):
                due = began + n * gap
                if (wait := due - time.monotonic()) > 0:
                    time.sleep(wait)
                headers = {"Authorization": f"Bearer {tokens[student['orgSourcedIds']]}"}
                started = time.monotonic()
                answer = client.post("/api/v1/incidents", json=reset_body(student), headers=headers)
                assert answer.status_code == 201, answer.json
                filed_at[answer.json["ref"]] = time.monotonic()
                request_ms.append((filed_at[answer.json["ref"]] - started) * 1000)
            filing_took = time.monotonic() - began
            deadline = time.monotonic() + 600
            while not set(filed_at) <= set(arrivals):
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {len(set(filed_at) & set(arrivals))} of "
                                     f"{len(filed_at)} arrived")  # fmt: skip
                time.sleep(0.1)
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(timeout=30)
        total, bare = _unassigned(environ)
    waits = sorted(arrivals[ref] - at for ref, at in filed_at.items())
    p95 = waits[int(len(waits) * 0.95) - 1]
    print(f"term start: {args.resets} student resets across {SCHOOLS} schools over "
          f"{filing_took / 60:.1f} min, 2 workers, {QUEUE} assigning round robin:")  # fmt: skip
    print(f"  filing request: median {statistics.median(request_ms):.0f} ms, "
          f"max {max(request_ms):.0f} ms")  # fmt: skip
    print(f"  filed -> password accepted by SMTP: p50 {statistics.median(waits):.2f} s, "
          f"p95 {p95:.2f} s, max {waits[-1]:.2f} s")  # fmt: skip
    print(f"  {QUEUE}: {total} incidents, {bare} without an assignee")


if __name__ == "__main__":
    main()
