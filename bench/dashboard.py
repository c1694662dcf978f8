"""The dashboard's figures over a large history: aggregated in the database, against the
same figures worked out in Python from the rows (how the dashboard first did it).

Run once on the code before the dashboard's indexes too (see bench/README.md): the
breach count and the window read were sequential scans.

1,000,000 incidents (bench/pages.py's generator), the resolved and closed ones (four in
five) resolved at moments spread over the last two years, so the dashboard's 30-day
window holds about 4% of them, as in a service that has run for a while. Both ways run
five times each, interleaved, in one process on the same database; the medians and their
ratio are reported, and the two must agree.

    python -m bench.dashboard [--incidents 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from bench.pages import generated


def spread_resolutions() -> int:
    from helpdesk.extensions import db

    db.session.execute(sa.text("""
        UPDATE incidents SET
            resolved_at = now() - ((id * 7919) % (730 * 1440)) * interval '1 minute',
            created_at = now() - ((id * 7919) % (730 * 1440)) * interval '1 minute'
                - (id % 900) * interval '1 minute',
            resolution_due_at = now() - ((id * 7919) % (730 * 1440)) * interval '1 minute'
                + ((id % 7) - 3) * interval '2 hours'
        WHERE status IN ('resolved', 'closed')
    """))  # fmt: skip
    db.session.commit()
    db.session.execute(sa.text("ANALYZE incidents"))
    db.session.commit()
    return int(db.session.execute(sa.text(
        "SELECT count(*) FROM incidents WHERE resolved_at >= now() - interval '30 days'"
    )).scalar_one())  # fmt: skip


def in_python(now: datetime) -> tuple[list[tuple[str, int, int]], list[tuple[str, float, int]]]:
    """The first dashboard: the same open-work and breach counts, then the window's rows
    read into Python and counted there."""
    from helpdesk.extensions import db
    from helpdesk.models import Incident
    from helpdesk.services.reports import breaches_since, open_work_by_queue

    local = ZoneInfo("Europe/London")  # the dashboard's days: DISPLAY_TIMEZONE's default
    today = now.astimezone(local).date()
    first = today - timedelta(days=29)
    open_work_by_queue()
    breaches_since(datetime.combine(today, clock(0), tzinfo=local))
    since = datetime.combine(first, clock(0), tzinfo=local)
    rows = db.session.execute(
        sa.select(Incident.type, Incident.created_at, Incident.resolved_at,
                  Incident.resolution_due_at).where(Incident.resolved_at >= since)
    ).all()  # fmt: skip
    days = {first + timedelta(days=n): [0, 0] for n in range(30)}
    durations: dict[str, list[float]] = {}
    for kind, created, resolved_at, due in rows:
        durations.setdefault(kind, []).append((resolved_at - created).total_seconds() / 3600)
        day = resolved_at.astimezone(local).date()
        if due is not None and day in days:
            days[day][1] += 1
            days[day][0] += resolved_at <= due
    return (
        [(day.strftime("%d %b"), t[0], t[1]) for day, t in days.items()],
        sorted((k, statistics.median(h), len(h)) for k, h in durations.items()),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--incidents", type=int, default=1_000_000)
    args = parser.parse_args()
    from helpdesk.extensions import db
    from helpdesk.services.reports import dashboard

    with generated(args.incidents):
        in_window = spread_resolutions()
        print(f"{in_window:,} of them resolved in the last 30 days")
        timings: dict[str, list[float]] = {"database": [], "python": []}
        answers: dict[str, Any] = {}
        for _ in range(5):
            now = datetime.now(UTC)
            started = time.perf_counter()
            figures = dashboard(now)
            timings["database"].append(time.perf_counter() - started)
            answers["database"] = (figures.compliance_by_day, figures.median_hours_by_type)
            db.session.rollback()
            started = time.perf_counter()
            answers["python"] = in_python(now)
            timings["python"].append(time.perf_counter() - started)
            db.session.rollback()
        by_day, medians = answers["database"]
        assert by_day == answers["python"][0], "the per-day counts differ"
        assert [(k, round(m, 6), n) for k, m, n in medians] == [
            (k, round(m, 6), n) for k, m, n in answers["python"][1]
        ], "the medians differ"
    database, python = (statistics.median(timings[k]) * 1000 for k in ("database", "python"))
    print(
        f"dashboard figures, median of 5: in the database {database:.0f} ms, "
        f"in Python from the rows {python:.0f} ms; ratio {python / database:.1f}x"
    )


if __name__ == "__main__":
    main()
