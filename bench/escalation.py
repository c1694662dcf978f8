"""One SLA escalation pass over 1,000,000 open incidents in PostgreSQL, 1% of them breached.

Incidents are generated in SQL (generate_series) on a scratch database with the sample
roster; the pass is the scheduler's own (run_escalation_pass). Prints the time, the
breaches escalated and the plan of the query that finds them.

    python -m bench.escalation [--incidents 1000000] [--breached-percent 1]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import sqlalchemy as sa

from bench.common import ROSTER, bench_environ, migrate, scratch_database


def populate(count: int, breached_percent: float) -> None:
    from helpdesk.extensions import db

    # Every incident open and in the service desk; a deterministic 1% overdue on
    # resolution, the rest due over the coming weeks; response met, warnings sent.
    db.session.execute(sa.text("""
        INSERT INTO incidents (type, status, priority, school_id, filer_id, queue_id, details,
            verification, verification_results, created_at, updated_at, tags,
            sla_started_at, sla_paused_seconds, response_due_at, resolution_due_at,
            first_response_at, sla_warn_at, sla_warned_at)
        SELECT 'parent_password_reset', 'in_progress', 'P3', 1, 1,
            (SELECT id FROM queues WHERE slug = 'its-service-desk'), '{}', 'passed', '{}',
            now() - interval '10 days', now(), '[]', now() - interval '10 days', 0,
            now() - interval '9 days',
            CASE WHEN n % :every = 0 THEN now() - (n % 97) * interval '1 minute'
                 ELSE now() + (n % 20000) * interval '1 minute' END,
            now() - interval '9 days', now() - interval '1 day', now() - interval '1 day'
        FROM generate_series(1, :count) AS n
    """), {"count": count, "every": round(100 / breached_percent)})  # fmt: skip
    db.session.commit()
    db.session.execute(sa.text("ANALYZE incidents"))
    db.session.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument("--breached-percent", type=float, default=1.0)
    args = parser.parse_args()
    from helpdesk import create_app
    from helpdesk.extensions import db
    from helpdesk.roster import open_bundle
    from helpdesk.services.roster import import_roster
    from helpdesk.services.sla import _PASSES, run_escalation_pass
    from helpdesk.services.users import create_user

    with scratch_database() as url:
        migrate(url)
        app = create_app(bench_environ(url))
        with app.app_context():
            import_roster(open_bundle(ROSTER), source="bench")
            create_user("m.baillie@ashgrove.sch.example", "employee", staff_sourced_id="stf-1")
            started = time.perf_counter()
            populate(args.incidents, args.breached_percent)
            print(f"{args.incidents:,} open incidents written in "
                  f"{time.perf_counter() - started:.0f} s")  # fmt: skip
            due, _, pending = _PASSES[0]
            plan = db.session.execute(sa.text(
                f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT id FROM incidents WHERE "
                f"{pending} AND sla_paused_at IS NULL AND status IN ('new', 'triaged', "
                f"'in_progress', 'awaiting_fulfilment') AND {due} < :now "
                f"ORDER BY {due} LIMIT 500 FOR UPDATE SKIP LOCKED"
            ), {"now": datetime.now(UTC)}).scalars().all()  # fmt: skip
            db.session.rollback()
            started = time.perf_counter()
            report = run_escalation_pass()
            elapsed = time.perf_counter() - started
            print(f"escalation pass: {len(report.resolution_breaches):,} resolution breaches "
                  f"escalated in {elapsed:.2f} s (target: under 10 s)")  # fmt: skip
            started = time.perf_counter()
            again = run_escalation_pass()
            print(f"second pass: {len(again.resolution_breaches)} escalated in "
                  f"{time.perf_counter() - started:.3f} s")  # fmt: skip
            print("plan of the query that claims breaches:")
            print("\n".join("    " + line for line in plan))
            db.engine.dispose()


if __name__ == "__main__":
    main()
