"""The web service as the README serves it: gunicorn, several worker processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from .conftest import environ_for
from .smtp import free_port

ROOT = Path(__file__).resolve().parent.parent
HEALTHZ = 'helpdesk_http_requests_total{endpoint="ops.healthz",method="GET",status="200"}'


def _workers(master: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone since the listing
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == master:
                found.add(int(entry.name))
    return found


def _served(base: str) -> float:
    text = requests.get(base + "/metrics", timeout=10).text
    found = re.search(rf"^{re.escape(HEALTHZ)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def _healthz_answers(base: str, seconds: float) -> bool:
    """Ask /healthz until it answers 200 (a server still starting, or a worker that died
    under the request, fails this one attempt only); False when it never does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(base + "/healthz", timeout=10).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return False


def _wait_until(check: Any, what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


def test_metrics_count_every_worker_even_those_that_were_replaced(seeded_app, database_url,
                                                                  tmp_path):  # fmt: skip
    env = {**os.environ, **environ_for(database_url, tmp_path)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the server names its own
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "3", "--bind", f"127.0.0.1:{port}",
         "--log-level", "warning", "wsgi:app"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    answered = 0
    try:
        assert _healthz_answers(base, seconds=60), "gunicorn did not start"
        answered += 1
        for _ in range(10):
            assert requests.get(base + "/healthz", timeout=30).status_code == 200
            answered += 1
        _wait_until(lambda: len(_workers(server.pid)) == 3, "three workers", 60)
        # Every worker that served those goes away at once, as after a crash or OOM kill;
        # gunicorn starts new ones and the next requests wait for them (a request that
        # met a dying worker is refused, not counted, and sent again).
        first = _workers(server.pid)
        for pid in first:
            os.kill(pid, signal.SIGKILL)
        for _ in range(10):
            assert _healthz_answers(base, seconds=60)
            answered += 1
        assert not _workers(server.pid) & first
        # Whichever worker answers the scrape, it reports everything served.
        assert [_served(base) for _ in range(6)] == [answered] * 6
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
