"""The periodic jobs and the loop that runs them: ``helpdesk scheduler``.

One scheduler is active at a time (a lease in Redis, renewed each tick); the jobs are
also safe without it, since each claims its rows in the database.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .extensions import db
from .outages import TRANSIENT, Outage
from .redis_client import get_redis
from .services.outbox import relay
from .services.retention import purge
from .services.sla import run_escalation_pass
from .services.transitions import close_quiet_resolved

log = logging.getLogger(__name__)
LEASE_KEY = "helpdesk:scheduler:leader"
# The embedded default's `helpdesk run` does the worker's and the scheduler's work in a
# thread of its own, by this name (workers/worker.py), holding no lease.
EMBEDDED_THREAD = "helpdesk-embedded-worker"


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    every_seconds: int
    run: Callable[[], Any]


PERIODIC = (
    PeriodicJob("outbox-relay", 30, relay),
    PeriodicJob("sla-escalation", 60, run_escalation_pass),
    PeriodicJob("close-quiet-resolved", 15 * 60, close_quiet_resolved),
    PeriodicJob("retention-purge", 60 * 60, purge),
)


class Lease:
    """Leadership among schedulers: held while renewed, lost to another when it lapses."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds
        self.token = secrets.token_hex(8)

    def hold(self) -> bool:
        redis = get_redis()
        if redis.set(LEASE_KEY, self.token, nx=True, ex=self.seconds):
            return True
        if redis.get(LEASE_KEY) == self.token.encode():
            redis.expire(LEASE_KEY, self.seconds)
            return True
        return False

    def release(self) -> None:
        redis = get_redis()
        if redis.get(LEASE_KEY) == self.token.encode():
            redis.delete(LEASE_KEY)


def run_due(last_run: dict[str, float], now: float) -> list[tuple[str, Any]]:
    """Run every job whose interval has passed; return what each reported."""
    done = []
    for job in PERIODIC:
        if now - last_run.get(job.name, float("-inf")) >= job.every_seconds:
            result = job.run()
            last_run[job.name] = now
            log.info("periodic job %s ran", job.name, extra={"event": job.name})
            done.append((job.name, result))
    return done


def loop(tick_seconds: float = 5.0, stop: Callable[[], bool] = lambda: False) -> None:
    """Hold the lease and run what is due, every tick, until ``stop``; outlive outages."""
    lease = Lease(int(max(30, tick_seconds * 6)))
    last_run: dict[str, float] = {}
    outage = Outage("scheduler")
    try:
        while not stop():
            try:
                if lease.hold():
                    run_due(last_run, time.monotonic())
                outage.over()
            except TRANSIENT as error:
                _drop_session()
                outage.wait(error)  # a job cut short runs again: each claims its rows
                continue
            time.sleep(tick_seconds)
    finally:
        with contextlib.suppress(*TRANSIENT):
            lease.release()


def _drop_session() -> None:
    """Forget a session whose connection died, so the next tick takes a fresh one."""
    with contextlib.suppress(Exception):
        db.session.rollback()
    db.session.remove()
