"""What one filing costs the web process, in instructions and statements, the same on a
busy machine as on a quiet one.

Timings on this shared machine move by a third between runs; the instructions a filing
executes do not. This files through Flask's test client on PostgreSQL and counts, under
valgrind's callgrind, the instructions of the filings alone (collection is switched on
after a warm-up and off before the process ends), and, outside the count, the
statements one filing sends. PostgreSQL's own work is not counted: the statements stand
for it.

By default it files the throughput bench's body: the same student every time, so each
is forced (the duplicate check finds the open one, links to it, and the incident waits
for a person). ``--fresh`` files a different student of a generated school each time,
as a school does: verified, approved by the rules and fulfilled at once.

    python -m bench.filing_cost [--filings 100] [--fresh]

Needs valgrind (Debian: apt-get install valgrind). About a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Any

from bench.common import bench_environ, migrate, scratch_database, seed
from bench.incidents_throughput import BODY
from bench.term_start import bundle, office_employee, reset_body

WARM_UP = 30


def _filings(database_url: str, token: str, count: int, bodies: list[Any]) -> None:
    """In the process callgrind runs: warm up, count the statements of one filing, then
    switch collection on for ``count`` filings (body after body, the last repeated)."""
    import sqlalchemy as sa

    from helpdesk import create_app
    from helpdesk.extensions import db

    environ = bench_environ(database_url)
    app = create_app(environ)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}

    sending = iter(bodies)
    body = BODY

    def file() -> None:
        nonlocal body
        body = next(sending, body)
        answer = client.post("/api/v1/incidents", json=body, headers=headers)
        assert answer.status_code == 201, answer.get_data(as_text=True)

    for _ in range(WARM_UP):
        file()
    with app.app_context():
        engine = db.engine
    sent: list[str] = []

    def statement(conn, cursor, text, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        sent.append(text.split(None, 1)[0].upper())

    def transaction(conn) -> None:  # type: ignore[no-untyped-def]
        sent.append("BEGIN")

    def commit(conn) -> None:  # type: ignore[no-untyped-def]
        sent.append("COMMIT")

    listeners = (("before_cursor_execute", statement), ("begin", transaction),
                 ("commit", commit))  # fmt: skip
    for name, listener in listeners:
        sa.event.listen(engine, name, listener)
    file()
    for name, listener in listeners:
        sa.event.remove(engine, name, listener)
    print(json.dumps({"statements": sent}), flush=True)
    control = ["callgrind_control", "--instr=on", str(os.getpid())]
    subprocess.run(control, check=True, capture_output=True)
    for _ in range(count):
        file()
    subprocess.run([*control[:1], "--instr=off", str(os.getpid())], check=True,
                   capture_output=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--filings", type=int, default=100)
    parser.add_argument("--fresh", action="store_true", help="a different student each time")
    parser.add_argument("--child", nargs=3, metavar=("DATABASE_URL", "TOKEN", "BODIES"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.child:
        url, token, bodies = args.child
        with open(bodies, encoding="utf-8") as sent:
            _filings(url, token, args.filings, json.load(sent))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed: apt-get install valgrind")
    with scratch_database() as url, tempfile.TemporaryDirectory() as scratch:
        migrate(url)
        bodies: list[Any] = [BODY]
        if args.fresh:  # one school's students, each filed once
            folder, students = bundle(schools=1, per_school=WARM_UP + 1 + args.filings,
                                      name="roster-filing-cost")  # fmt: skip
            token = seed(bench_environ(url), folder, office_employee(0), "stf-office-0")
            bodies = [reset_body(student) for student in students]
        else:
            token = seed(bench_environ(url))
        with open(f"{scratch}/bodies.json", "w", encoding="utf-8") as sent:
            json.dump(bodies, sent)
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             f"--callgrind-out-file={scratch}/callgrind.out",
             sys.executable, "-m", "bench.filing_cost", "--filings", str(args.filings),
             "--child", url, token, f"{scratch}/bodies.json"],
            capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"},
        )  # fmt: skip
    collected = re.search(r"Collected : (\d+)", run.stderr)
    found = re.search(r'^\{"statements".*$', run.stdout, re.MULTILINE)
    if run.returncode != 0 or collected is None or found is None:
        raise SystemExit(f"the filings did not run under callgrind:\n{run.stderr[-3000:]}")
    sent = json.loads(found.group(0))["statements"]
    per_filing = int(collected.group(1)) / args.filings
    what = "a fresh student reset" if args.fresh else "one forced student reset"
    print(f"{what}, {args.filings} counted after {WARM_UP} to warm up:")
    print(f"  {per_filing / 1e6:.2f} million instructions in the web process")
    print(f"  {len(sent)} round trips to PostgreSQL: {' '.join(sent)}")


if __name__ == "__main__":
    main()
