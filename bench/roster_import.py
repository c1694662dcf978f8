"""Import a generated 100,000-student bundle into PostgreSQL: seconds and peak memory.

Each import runs in its own process and reports its own peak resident memory
(the interpreter, Flask and SQLAlchemy included). The
second import of the same bundle measures the all-unchanged path (every PIN verified).

    python -m bench.roster_import [--students 100000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.common import OUT, bench_environ, migrate, scratch_database
from bench.generate_roster import generate

CHILD = """
import json, resource, sys, time
from helpdesk import create_app
from helpdesk.roster import open_bundle
from helpdesk.services.roster import import_roster
app = create_app(json.loads(sys.argv[1]))
with app.app_context():
    started = time.perf_counter()
    report = import_roster(open_bundle(sys.argv[2]), source="bench")
    elapsed = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": elapsed, "counts": report.counts, "peak_rss_mib": peak}))
"""


def run_import(environ: dict[str, str], bundle: Path) -> dict:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(environ), str(bundle)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    result: dict = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = wall
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=100_000)
    args = parser.parse_args()
    bundle = OUT / f"roster-{args.students // 1000}k"
    if not (bundle / "users.csv").exists():
        generate(bundle, args.students)
    with scratch_database() as url:
        migrate(url)
        environ = bench_environ(url)
        first = run_import(environ, bundle)
        again = run_import(environ, bundle)
    counts = first["counts"]
    print(f"bundle: {args.students:,} students, {counts['guardians']['created']:,} guardians, "
          f"{counts['portal_accounts']['created']:,} portal accounts")  # fmt: skip
    print(f"first import:  {first['seconds']:.1f} s in the import, {first['wall_seconds']:.1f} s "
          f"wall with start-up; peak RSS {first['peak_rss_mib']:.0f} MiB")  # fmt: skip
    print(f"re-import (all unchanged): {again['seconds']:.1f} s, peak RSS "
          f"{again['peak_rss_mib']:.0f} MiB; unchanged students "
          f"{again['counts']['students']['unchanged']:,}")  # fmt: skip
    print("targets: under 60 s and 500 MiB for the first import")


if __name__ == "__main__":
    main()
