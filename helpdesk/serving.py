"""gunicorn's hooks for the web service; ``gunicorn.conf.py`` at the top of the checkout
loads them, so ``gunicorn wsgi:app`` run from there uses them without a flag.

Each gunicorn worker is a process of its own and Prometheus counters live in process
memory: without these hooks a scrape of ``/metrics`` shows whichever worker answered it,
and rates jump whenever the load balancer picks another. prometheus-client's
multiprocess mode keeps every worker's values in files in one directory, and
``/metrics`` adds them up (``helpdesk.ops``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"  # read by helpdesk.ops too

# prometheus-client chooses where values live when it is first imported, which happens
# in each worker after the fork, so the directory must be named before then. An operator
# may name one; otherwise each server gets its own, removed when it stops.
_made_here = False
if not os.environ.get(MULTIPROC_DIR):
    os.environ[MULTIPROC_DIR] = tempfile.mkdtemp(prefix="helpdesk-metrics-")
    _made_here = True


def on_starting(server: Any) -> None:
    """Start from zero: files an earlier server left would be added to this one's."""
    directory = os.environ[MULTIPROC_DIR]
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))


def child_exit(server: Any, worker: Any) -> None:
    """A worker went away: its counts stay in the totals, its live gauges do not."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if _made_here:
        shutil.rmtree(os.environ[MULTIPROC_DIR], ignore_errors=True)
