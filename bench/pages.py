"""The agents' queue view with 1,000,000 incidents in PostgreSQL, served by gunicorn.

Incidents are generated in SQL (generate_series) over the sample roster's schools and
the six ITS and office queues: a fifth open, the rest resolved or closed, deadlines
spread over weeks and some queues' incidents without one. A signed-in agent who works
five queues asks for the first page and for the 500th (following the "Next page" links
to reach it), each ``--requests`` times in turn with a bare Flask page served the same
way; p50/p95 of each are printed, with the plan of the page-500 query.

    python -m bench.pages [--incidents 1000000] [--requests 200]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
import sqlalchemy as sa

from bench.common import ROSTER, bench_environ, migrate, scratch_database
from bench.incidents_throughput import SERVING, serve

AGENT = "agent@its.example"
PASSWORD = "bench agent passphrase"
AGENT_QUEUES = ("its-service-desk", "its-student-systems", "school-office-5231234",
                "school-office-8864021", "school-office-5249876")  # fmt: skip


def populate(count: int) -> None:
    from helpdesk.extensions import db

    db.session.execute(sa.text("""
        INSERT INTO incidents (type, status, priority, school_id, filer_id, queue_id, details,
            verification, verification_results, created_at, updated_at, tags,
            sla_started_at, sla_paused_seconds, response_due_at, resolution_due_at)
        SELECT (ARRAY['student_password_reset', 'parent_password_reset',
                      'portal_link_failure', 'username_reminder'])[1 + n % 4],
            CASE WHEN n % 5 = 0 THEN (ARRAY['triaged', 'in_progress', 'awaiting_reply',
                                            'awaiting_fulfilment'])[1 + (n / 5) % 4]
                 WHEN n % 5 = 1 THEN 'resolved' ELSE 'closed' END,
            'P3', schools.id, 1, queues.id, '{}', 'passed', '{}',
            now() - (n % 40000) * interval '1 minute', now(), '[]',
            now() - (n % 40000) * interval '1 minute', 0, now(),
            CASE WHEN n % 97 = 0 THEN NULL
                 ELSE now() + ((n::bigint * 7919) % 60000 - 5000) * interval '1 minute' END
        FROM generate_series(1, :count) AS n
        JOIN LATERAL (SELECT id FROM schools ORDER BY id OFFSET n % 3 LIMIT 1) schools ON true
        JOIN LATERAL (SELECT id FROM queues ORDER BY id OFFSET n % 6 LIMIT 1) queues ON true
    """), {"count": count})  # fmt: skip
    db.session.commit()
    db.session.execute(sa.text("ANALYZE incidents"))
    db.session.commit()


@contextmanager
def generated(count: int) -> Iterator[dict[str, str]]:
    """A scratch database with the sample roster, the agent and ``count`` generated
    incidents; yields the app's environment, inside the app's context."""
    from helpdesk import create_app
    from helpdesk.extensions import db

    with scratch_database() as url:
        migrate(url)
        environ = bench_environ(url)
        with create_app(environ).app_context():
            seed_agent()
            started = time.perf_counter()
            populate(count)
            print(f"{count:,} incidents generated in {time.perf_counter() - started:.0f} s")
            try:
                yield environ
            finally:
                db.session.remove()
                db.engine.dispose()


def seed_agent() -> None:
    from helpdesk.extensions import db
    from helpdesk.roster import open_bundle
    from helpdesk.services.queues import add_member
    from helpdesk.services.roster import import_roster
    from helpdesk.services.sign_in import set_password
    from helpdesk.services.users import create_user

    import_roster(open_bundle(ROSTER), source="bench")
    create_user("m.baillie@ashgrove.sch.example", "employee", staff_sourced_id="stf-1")
    agent = create_user(AGENT, "agent")
    set_password(agent, PASSWORD)
    db.session.commit()
    for slug in AGENT_QUEUES:
        add_member(slug, AGENT)


def signed_in(base: str) -> requests.Session:
    # Production cookies are Secure; this plain-HTTP loopback client sends them anyway.
    session = requests.Session()
    form = session.get(f"{base}/sign-in", timeout=10)
    session.cookies.clear()
    session.headers["Cookie"] = f"helpdesk_session={form.cookies['helpdesk_session']}"
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, "no CSRF token on the sign-in page"
    answer = session.post(
        f"{base}/sign-in", data={"email": AGENT, "password": PASSWORD,
                                 "csrf_token": token.group(1)},
        timeout=10, allow_redirects=False,
    )  # fmt: skip
    cookie = answer.cookies.get("helpdesk_session")
    assert cookie, "the agent did not sign in"
    session.cookies.clear()
    session.headers["Cookie"] = f"helpdesk_session={cookie}"
    assert "Your queues" in session.get(f"{base}/queue", timeout=10).text
    return session


def next_page(html: str) -> str:
    found = re.search(r'rel="next" href="([^"]+)"', html)
    assert found, "no next page"
    return found.group(1).replace("&amp;", "&")


def timed(session: requests.Session, url: str, times: int) -> list[float]:
    spent = []
    for _ in range(times):
        start = time.perf_counter()
        answer = session.get(url, timeout=30)
        spent.append((time.perf_counter() - start) * 1000)
        assert answer.status_code == 200, answer.status_code
    return spent


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def plan_of_page(cursor: str) -> str:
    """EXPLAIN ANALYZE of the statements one queue-view page runs, from the cursor."""
    from helpdesk.extensions import db
    from helpdesk.models import User
    from helpdesk.services.users import Principal
    from helpdesk.services.worklist import Filters, worklist

    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor_: Any, statement: str, params: Any, *rest: Any) -> None:
        if "UNION ALL" in statement:
            captured.append((statement, params))

    user = db.session.execute(sa.select(User).where(User.email == AGENT)).scalar_one()
    engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        worklist(Principal(user.id, user.email, user.role, None, None), Filters(), cursor)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    statement, params = captured[0]
    raw = db.session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, params)
        return "\n".join(row[0] for row in cur.fetchall())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--serving", choices=sorted(SERVING), default="gthread")
    args = parser.parse_args()
    with generated(args.incidents) as environ:
        # The page is measured, not signing in: no second step for the agent, and a sign-in
        # limit the walk cannot reach.
        env = {**os.environ, **environ, "SIGN_IN_RATE_LIMIT": "1000 per minute",
               "MFA_REQUIRED_ROLES": "none"}  # fmt: skip
        helpdesk, base = serve("wsgi:app", env, SERVING[args.serving])
        bare, bare_base = serve("bench.bare_app:app", env, SERVING[args.serving])
        try:
            session = signed_in(base)
            first = f"{base}/queue"
            url, walked = first, []
            for _ in range(499):  # the "Next page" links, as an agent would follow them
                start = time.perf_counter()
                html = session.get(url, timeout=30).text
                walked.append((time.perf_counter() - start) * 1000)
                url = base + next_page(html)
            page_500 = url
            # A column sort is an ORDER BY over every open incident of the agent's queues
            # (no keyset seek): the assignee's, with its join, is the dearest.
            sorted_ = f"{base}/queue?sort=assignee"
            figures: dict[str, list[float]] = {
                "bare": [],
                "first": [],
                "page 500": [],
                "sorted by assignee": [],
            }
            for _ in range(args.requests // 20):  # interleaved, so drift hits all alike
                figures["bare"] += timed(requests.Session(), f"{bare_base}/page", 20)
                figures["first"] += timed(session, first, 20)
                figures["page 500"] += timed(session, page_500, 20)
                figures["sorted by assignee"] += timed(session, sorted_, 20)
        finally:
            for server in (helpdesk, bare):
                server.terminate()
                server.wait(timeout=10)
        print(f"queue view, {args.serving} workers, {args.requests} requests each, sequential:")
        for name, values in figures.items():
            print(
                f"  {name:<9} p50 {statistics.median(values):6.1f} ms   p95 {p95(values):6.1f} ms"
            )
        print(f"  pages 1-499 walked: p50 {statistics.median(walked):.1f} ms, "
              f"p95 {p95(walked):.1f} ms")  # fmt: skip
        cursor = page_500.split("cursor=", 1)[1].split("&", 1)[0]
        print("\nplan of the page-500 seek:\n" + plan_of_page(requests.utils.unquote(cursor)))


if __name__ == "__main__":
    main()
