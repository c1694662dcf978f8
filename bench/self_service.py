"""A parent's self-service password recovery: from submitting the page to the one-time
password accepted by the SMTP server, with two RQ workers; beside it, how long the page
takes to answer a match and a mismatch (they must not differ).

A generated roster (bench.generate_roster, 400 students); each round takes parents with
an email and a portal account on file, and submits "Forgot your password?" for each with
their details (Flask's test client in this process, on PostgreSQL), alternating with a
mistyped postcode for the same parent. Two `helpdesk worker` processes on real Redis
fulfil the matches; an aiosmtpd server in this process timestamps each email.

    python -m bench.self_service [--parents 60]
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
from bench.generate_roster import generate

SUBJECT = "portal password"  # the one-time password's email


def parents(folder: Path, wanted: int) -> list[dict[str, str]]:
    """Parents with an email on file and a parent portal account: what each would type.
    Addresses with non-ASCII local parts are left out: the mail server here does not
    offer SMTPUTF8, so those results are given back to a person (bench/README.md)."""
    with (folder / "portal_accounts.csv").open(encoding="utf-8") as rows:
        usernames = {r["sourcedId"]: r["username"] for r in csv.DictReader(rows)
                     if r["portal"] == "parent"}  # fmt: skip
    with (folder / "users.csv").open(encoding="utf-8") as rows:
        found = [{"username": usernames[r["sourcedId"]], "email": r["email"],
                  "postcode": r["metadata.postcode"]}
                 for r in csv.DictReader(rows)
                 if r["role"] == "parent" and r["email"] and r["email"].isascii()
                 and r["sourcedId"] in usernames
                 and r["metadata.parentalResponsibility"] == "true"]  # fmt: skip
    return found[:wanted]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parents", type=int, default=60)
    args = parser.parse_args()

    import redis

    from helpdesk import create_app
    from helpdesk.extensions import db
    from helpdesk.roster import open_bundle
    from helpdesk.services.roster import import_roster
    from tests.smtp import SmtpServer

    folder = generate(OUT / "roster-self-service", 400)
    typed = parents(folder, args.parents)
    with SmtpServer() as smtp, scratch_database() as url:
        accepted: dict[str, float] = {}  # address -> when its password email was accepted

        def seen(message: EmailMessage) -> None:
            if SUBJECT in str(message["Subject"]):
                accepted[str(message["To"])] = time.monotonic()

        on_accept(smtp.mailbox, seen)
        environ = bench_environ(url, mail_port=smtp.port) | {
            f"SELF_SERVICE_LIMIT_PER_{name}": "100000 per hour"
            for name in ("CLIENT", "EMAIL", "TARGET")
        }
        redis.Redis.from_url(REDIS_URL).flushdb()
        migrate(url)
        app = create_app(environ)
        with app.app_context():
            import_roster(open_bundle(folder), source="bench")
            db.session.remove()
        workers = start_workers(environ)
        time.sleep(2)  # both workers up and idle
        client = app.test_client()
        page = client.get("/recover/password").text
        found = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert found, "the page has no CSRF token"
        token = found.group(1)
        submitted: dict[str, float] = {}
        match_answer, mismatch_answer = [], []
        try:
            for parent in typed:
                for wrong in (True, False):
                    body = {**parent, "csrf_token": token}
                    if wrong:
                        body["postcode"] = "ZZ9 9ZZ"
                    started = time.monotonic()
                    answer = client.post("/recover/password", data=body)
                    took = time.monotonic() - started
                    assert answer.status_code == 303, answer.text
                    (mismatch_answer if wrong else match_answer).append(took)
                    if not wrong:
                        submitted[parent["email"]] = started
            deadline = time.monotonic() + 300
            while len(accepted) < len(submitted):
                if time.monotonic() > deadline:
                    missing = sorted(set(submitted) - set(accepted))
                    raise SystemExit(f"{len(missing)} emails did not arrive: {missing}")
                time.sleep(0.05)
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(timeout=30)
    delivered = sorted(accepted[a] - submitted[a] for a in submitted)
    p95 = delivered[int(0.95 * (len(delivered) - 1))]
    floor = app.config["SELF_SERVICE_ANSWER_MS"]
    print(f"self-service password recovery, {len(submitted)} parents, 2 workers:")
    print(f"  page answer (least {floor} ms): match median "
          f"{statistics.median(match_answer) * 1000:.0f} ms, mismatch median "
          f"{statistics.median(mismatch_answer) * 1000:.0f} ms")  # fmt: skip
    print(
        f"  submit -> one-time password accepted by SMTP: p50 "
        f"{statistics.median(delivered):.2f} s, p95 {p95:.2f} s, max {delivered[-1]:.2f} s"
    )


if __name__ == "__main__":
    main()
