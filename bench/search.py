"""Finding an incident among 1,000,000 in PostgreSQL: with migration 0011's trigram
index, and without it (dropped, in the same run, on the same rows).

Incidents come from bench/pages.py's generator, with typed details (a student number
and a name) added, so that a search has text to read. Each search is the service's own
(list_incidents with ``q``, as an admin who sees everything), five times; the best and
median are reported, with the index's size and the time to build it.

    python -m bench.search [--incidents 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import sqlalchemy as sa

from bench.pages import generated
from helpdesk.models.incidents import search_text_sql

SEARCHES = {
    "no match": "zzzz",
    "a rare name": "Campbell12345",
    "a student number": "ASH000123",
    "a common name": "patel",
}


def typed_details() -> None:
    from helpdesk.extensions import db

    db.session.execute(sa.text("""
        UPDATE incidents SET details = json_build_object(
            'student_id', 'ASH' || lpad((id % 900000)::text, 6, '0'),
            'student_name', (ARRAY['Isla', 'Noah', 'Amara', 'Lewis', 'Zoë'])[1 + id % 5] || ' '
                || (ARRAY['Campbell', 'Patel', 'Nowak', 'MacLeod', 'Okafor'])[1 + (id / 5) % 5]
                || id::text)
    """))  # fmt: skip
    db.session.commit()
    db.session.execute(sa.text("ANALYZE incidents"))
    db.session.commit()


def timed() -> dict[str, tuple[float, float, int]]:
    from helpdesk.extensions import db
    from helpdesk.services.incidents import list_incidents
    from helpdesk.services.users import Principal

    admin = Principal(1, "admin@bench", "admin", None, None)
    out = {}
    for name, q in SEARCHES.items():
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            rows, _ = list_incidents(admin, {"q": q, "limit": 25})
            runs.append(time.perf_counter() - started)
            db.session.rollback()
        out[name] = (min(runs) * 1000, statistics.median(runs) * 1000, len(rows))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--incidents", type=int, default=1_000_000)
    args = parser.parse_args()
    from helpdesk.extensions import db

    with generated(args.incidents):
        # Typed details after the index exists, as a service's rows would have come.
        started = time.perf_counter()
        typed_details()
        print(f"typed details added in {time.perf_counter() - started:.0f} s")
        size = db.session.execute(
            sa.text("SELECT pg_size_pretty(pg_relation_size('ix_incidents_search'))")
        ).scalar_one()
        with_index = timed()
        db.session.execute(sa.text("DROP INDEX ix_incidents_search"))
        db.session.commit()
        without = timed()
        started = time.perf_counter()
        db.session.execute(sa.text(
            "CREATE INDEX ix_incidents_search ON incidents "
            f"USING gin ({search_text_sql()} gin_trgm_ops)"
        ))  # fmt: skip
        db.session.commit()
        built = time.perf_counter() - started
    print(f"trigram index: {size}, built in {built:.0f} s over the existing rows")
    print("search                 with index (best / median)   without (best / median)  found")
    for name in SEARCHES:
        (best, median, found), (best_no, median_no, _) = with_index[name], without[name]
        print(f"{name:<22} {best:>9.0f} / {median:>5.0f} ms {best_no:>16.0f} / {median_no:>5.0f} ms"
              f"  {found:>5}")  # fmt: skip


if __name__ == "__main__":
    main()
