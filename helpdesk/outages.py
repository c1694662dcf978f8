"""Riding out an outage of Redis or the database: wait, reconnect with backoff, resume.

``helpdesk worker`` and ``helpdesk scheduler`` are long-lived; when Redis or PostgreSQL
goes away they must neither exit nor spin. Each wraps its loop in an ``Outage``, which
logs once when the outage starts and once when it ends, waits with capped exponential
backoff in between, and counts outages for the metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import sqlalchemy as sa
from prometheus_client import Counter
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

# What an outage looks like from here: a server that refuses, drops or stops answering.
TRANSIENT: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    ConnectionError,
    TimeoutError,
)

OUTAGES = Counter(
    "helpdesk_process_outages_total",
    "Times a worker or scheduler lost Redis or the database and waited for it",
    ["process"],
)


class Outage:
    """Backoff and logging for one process's outages (one at a time)."""

    def __init__(
        self, process: str, *, first: float = 0.5, most: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:  # fmt: skip
        self.process, self.first, self.most, self.sleep = process, first, most, sleep
        self.delay = first
        self.started: float | None = None

    def wait(self, error: BaseException) -> None:
        """An attempt failed with ``error``: say so once per outage, then wait a while."""
        if self.started is None:
            self.started = time.monotonic()
            OUTAGES.labels(self.process).inc()
            log.warning(
                "%s: lost %s (%s); waiting and reconnecting", self.process, _what(error),
                type(error).__name__, extra={"event": "outage_started"},
            )  # fmt: skip
        self.sleep(self.delay)
        self.delay = min(self.delay * 2, self.most)

    def over(self) -> None:
        """An attempt worked: end the outage, if there was one."""
        if self.started is not None:
            log.warning(
                "%s: reconnected after %.0f s", self.process, time.monotonic() - self.started,
                extra={"event": "outage_ended"},
            )  # fmt: skip
            self.started = None
        self.delay = self.first


def _what(error: BaseException) -> str:
    if isinstance(error, sa.exc.DBAPIError):
        return "the database"
    if isinstance(error, RedisConnectionError | RedisTimeoutError):
        return "Redis"
    return "a server"
