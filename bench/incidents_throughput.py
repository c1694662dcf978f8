"""POST /api/v1/incidents throughput under gunicorn, against a bare Flask endpoint.

The service, a bare Flask JSON endpoint and a one-row marshmallow-and-insert endpoint
(calibration: how near the framework's floor one insert is) run at once
under the same gunicorn settings; wrk loads each in turn with the same
student_password_reset body, in interleaved rounds, and the median ratio is reported.
The service's side does everything a real filing does on PostgreSQL: token lookup,
validation, verification against the records, queue placement, the incident and its
audit events, one commit.

    python -m bench.incidents_throughput [--serving gthread|sync] [--rounds 3] [--seconds 10]

Needs wrk (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench.common import bench_environ, migrate, scratch_database, seed

ROOT = Path(__file__).resolve().parent.parent
# The same verified student every time: after the first, each filing repeats an open
# incident, so it is filed with force and a reason (the duplicate check, a link and its
# event; a forced one waits for a person, so no fulfilment is promised). Without force
# every request after the first would be a 409 refusal, which is not filing.
BODY = {
    "type": "student_password_reset",
    "student_id": "ASH240891",
    "student_name": "Isla Campbell",
    "birth_month_year": "042017",
    "force": True,
    "force_reason": "throughput benchmark: the same student each time",
}
SERVING = {
    # gunicorn's own recommendation for a CPU-light, database-bound app on 2 cores.
    "gthread": ["--workers", "2", "--worker-class", "gthread", "--threads", "4"],
    # The production command in the README: sync workers, (2 x cores) + 1 of them as
    # gunicorn's documentation recommends, one request per connection.
    "sync": ["--workers", str(2 * (os.cpu_count() or 1) + 1)],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(
    target: str, env: dict[str, str], serving: list[str]
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", *serving, "--log-level", "warning",
         "--bind", f"127.0.0.1:{port}", target],
        cwd=ROOT, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(base + "/", timeout=2)
            return server, base
        except requests.RequestException:  # not listening yet, or workers still booting
            time.sleep(0.2)
    server.kill()
    raise SystemExit(f"gunicorn {target} did not start")


def load(url: str, token: str, seconds: int, connections: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(json.dumps(BODY))}\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {token}"\n'
            "function response(status, headers, body)\n"
            '  if status ~= 201 then error("status " .. status) end\nend\n'
        )
    command = ["wrk", "-t", "1", "-c", str(connections), "-s", script.name, url]
    subprocess.run([*command[:1], "-d", "3s", *command[1:]], capture_output=True, check=True)
    done = subprocess.run([*command[:1], "-d", f"{seconds}s", *command[1:]],
                          capture_output=True, text=True, check=True)  # fmt: skip
    os.unlink(script.name)
    if "Non-2xx" in done.stdout:
        raise SystemExit(f"errors while loading {url}:\n{done.stdout}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    assert match, done.stdout
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--serving", choices=sorted(SERVING), default="gthread")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    targets = {
        "bare": "bench.bare_app:app",
        "one_row": "bench.one_row_app:app",
        "helpdesk": "wsgi:app",
    }
    rounds: list[dict[str, float]] = []
    with scratch_database() as url:
        migrate(url)
        environ = bench_environ(url)
        token = seed(environ)
        env = {**os.environ, **environ}
        servers = {
            name: serve(target, env, SERVING[args.serving]) for name, target in targets.items()
        }
        try:
            # Rounds interleave the three so that a noisy neighbour hits all of them alike.
            for _ in range(args.rounds):
                rounds.append({
                    name: load(base + "/api/v1/incidents", token, args.seconds,
                               args.connections)
                    for name, (_, base) in servers.items()
                })  # fmt: skip
        finally:
            for server, _ in servers.values():
                server.terminate()
                server.wait(timeout=10)
    print(f"gunicorn {' '.join(SERVING[args.serving])}; wrk -c {args.connections}, "
          f"{args.rounds} rounds of {args.seconds} s each, interleaved")  # fmt: skip
    print("round    bare req/s  one-row req/s  helpdesk req/s  one-row/bare  helpdesk/bare")
    for i, r in enumerate(rounds, 1):
        print(f"{i:>5} {r['bare']:>12.0f} {r['one_row']:>14.0f} {r['helpdesk']:>15.0f}"
              f" {r['one_row'] / r['bare']:>13.1%} {r['helpdesk'] / r['bare']:>14.1%}")  # fmt: skip
    ratio = statistics.median(r["helpdesk"] / r["bare"] for r in rounds)
    calibration = statistics.median(r["one_row"] / r["bare"] for r in rounds)
    # No target against the bare endpoint (filing is compared with django-helpdesk's ticket
    # creation instead, bench/README.md): it shows how near the framework's floor filing is.
    print(f"median: POST /incidents at {ratio:.1%} of the bare endpoint;"
          f" the one-row calibration endpoint at {calibration:.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
