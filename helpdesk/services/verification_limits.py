"""Limits on failed record checks, so that filing incidents cannot be used to guess a record.

Every failed verification counts against the filing employee, their school and the
record it aimed at (a parent account, a student, a child) — a self-service attempt
against its client, typed email and typed account (``Attempt``) — in sliding windows kept in
the service's Redis (``REDIS_URL``; the in-process stand-in on the embedded default). The counts
are read *before* the records are: an attempt over any limit is refused with 429 and
the records are not looked at, so the right answer, once a limit is reached, is
refused like any other. A target that reaches its limit is also locked for
``VERIFY_LOCK_MINUTES``, which the identity queue is told of.

If Redis cannot be reached the counts are kept in this process's memory until it can:
the limits still hold, per process, and the log says so once per outage.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import fakeredis
import limits
from flask import current_app
from prometheus_client import Counter
from redis.exceptions import RedisError

from ..app_state import per_app
from ..domain.matching import name_key
from ..domain.moments import shown
from ..errors import DomainError
from ..redis_client import get_redis

REFUSED = Counter(
    "helpdesk_verification_refused_total",
    "Record checks refused because too many had failed",
    ["limit"],
)
LOCKS = Counter("helpdesk_verification_locks_total", "Records whose checks were locked")

# The queue told of a lock, and named in every refusal as the people to contact.
IDENTITY_QUEUE = "its-identity"
IDENTITY_TEAM = f"the identity team ({IDENTITY_QUEUE})"


class VerificationLimited(DomainError):
    """Too many record checks failed: nothing was checked or stored (HTTP 429)."""

    code = "verification_limited"
    status = 429

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.details["retry_after_seconds"])}


@dataclass(frozen=True)
class Target:
    """The record a check aims at, as typed: its counter key and how to name it."""

    key: str
    words: str  # "this parent account", for messages


def target_of(kind: str, school_id: int, data: dict[str, Any]) -> Target:
    """What record the typed details aim at, worked out from the typing alone."""

    def upper(name: str) -> str:
        return str(data.get(name) or "").strip().upper()

    if kind == "portal_link_failure":
        child = name_key(data["child_given_name"]) + "|" + name_key(data["child_family_name"])
        return Target(f"child:{school_id}:{child}", "this child")
    if data.get("parent_account_number"):
        return Target(f"account:{upper('parent_account_number')}", "this parent account")
    if data.get("guardian_id"):
        return Target(f"guardian:{str(data['guardian_id']).strip()}", "this parent")
    return Target(f"student:{school_id}:{upper('student_id')}", "this student")


# Which limits count a staff record check: which -> the setting giving its windows.
STAFF_LIMITS = {"employee": "VERIFY_LIMIT_PER_EMPLOYEE", "school": "VERIFY_LIMIT_PER_SCHOOL",
                "target": "VERIFY_LIMIT_PER_TARGET"}  # fmt: skip


@dataclass(frozen=True)
class Attempt:
    """Who is checking what: the counters an attempt is added to (the target's among
    them) and the settings that give each its windows."""

    target: Target
    counters: tuple[tuple[str, str], ...]  # (which, counter key), besides the target's
    limits: Mapping[str, str] = field(default_factory=lambda: STAFF_LIMITS)

    @classmethod
    def by_employee(cls, employee_id: int, school_id: int, target: Target) -> Attempt:
        """A filing employee's check: counted against them, their school and the target."""
        return cls(target, (("employee", f"employee:{employee_id}"),
                            ("school", f"school:{school_id}")))  # fmt: skip

    def counter_keys(self) -> dict[str, str]:
        return {**dict(self.counters), "target": self.target.key}


@dataclass(frozen=True)
class _Window:
    which: str  # employee, school or target
    amount: int
    seconds: int


def _windows(attempt: Attempt) -> list[_Window]:
    """The configured limits ("10 per hour; 30 per day"), as windows to count in."""
    return [
        _Window(which, item.amount, item.get_expiry())
        for which, name in attempt.limits.items()
        for item in limits.parse_many(current_app.config[name])
    ]


class _Counts:
    """Where failures are counted: the service's Redis, or this process's memory for a
    while after Redis does not answer."""

    RETRY_SECONDS = 15.0

    def __init__(self) -> None:
        self.memory = fakeredis.FakeRedis()
        self._down_until = 0.0
        self._lock = threading.Lock()

    def run(self, use: Any) -> Any:
        """``use(client)`` on Redis, or on memory while Redis is away."""
        if time.monotonic() >= self._down_until:
            try:
                return use(get_redis())
            except RedisError as error:
                with self._lock:
                    if time.monotonic() >= self._down_until:
                        current_app.logger.warning(
                            "verification limits: Redis unreachable (%s); counting in this "
                            "process's memory until it answers",
                            type(error).__name__,
                        )
                    self._down_until = time.monotonic() + self.RETRY_SECONDS
        return use(self.memory)


def _counts() -> _Counts:
    return per_app("helpdesk_verification_limits", _Counts)


def _until(reset_time: float) -> str:
    moment = datetime.fromtimestamp(reset_time, UTC)
    return shown(moment, current_app.config["DISPLAY_TIMEZONE"])


def _refuse(which: str, attempt: Attempt, reset_time: float) -> VerificationLimited:
    REFUSED.labels(which).inc()
    counted = ", ".join(key for name, key in attempt.counters if name != which)
    current_app.logger.warning("record check refused: %s limit reached (%s)", which, counted)
    retry = max(1, int(reset_time - time.time()) + 1)
    until = _until(reset_time)
    whose = {
        "lock": f"Record checks for {attempt.target.words} are locked after repeated "
        f"failures. Try again after {until}.",
        "target": f"Too many record checks have failed for {attempt.target.words}. "
        f"Try again after {until}.",
        "employee": f"Too many of your record checks have failed. Try again after {until}.",
        "school": f"Too many record checks have failed at your school. Try again after {until}.",
    }.get(which, f"Too many checks have been tried. Try again after {until}.")
    return VerificationLimited(
        f"{whose} Nothing was checked or stored. If the details are right, contact "
        f"{IDENTITY_TEAM}, who can check them with the parent or student.",
        retry_after_seconds=retry,
        limit=which,
    )


_PREFIX = "helpdesk:verify:"


def _key(which: str, attempt: Attempt) -> str:
    return _PREFIX + attempt.counter_keys()[which]


def _lock_key(attempt: Attempt) -> str:
    return _PREFIX + "lock:" + attempt.target.key


def check_allowed(attempt: Attempt) -> int:
    """Refuse (VerificationLimited) an attempt over any limit, before any record is read.

    Returns how many checks of this target have failed in its window, so a caller can
    say less about each field once a target has been tried several times.
    """
    windows = _windows(attempt)

    def read(client: Any) -> int:
        now = time.time()
        pipe = client.pipeline(transaction=False)  # one round trip for every window
        pipe.pttl(_lock_key(attempt))
        for window in windows:
            pipe.zcount(_key(window.which, attempt), now - window.seconds, "+inf")
        locked_ms, *counts = pipe.execute()
        if locked_ms and locked_ms > 0:
            raise _refuse("lock", attempt, now + locked_ms / 1000)
        failed = 0
        for window, count in zip(windows, counts, strict=True):
            if count >= window.amount:
                frees_at = _frees_at(client, window, attempt, now, int(count))
                raise _refuse(window.which, attempt, frees_at)
            if window.which == "target":
                failed = max(failed, int(count))
        return failed

    result: int = _counts().run(read)
    return result


def _frees_at(client: Any, window: _Window, attempt: Attempt, now: float, count: int) -> float:
    """When the window next has room: as the failure that filled it leaves the window."""
    oldest = client.zrangebyscore(
        _key(window.which, attempt),
        now - window.seconds,
        "+inf",
        start=max(0, count - window.amount),
        num=1,
        withscores=True,
    )
    return (float(oldest[0][1]) if oldest else now) + window.seconds  # fmt: skip


@dataclass(frozen=True)
class Lock:
    """A target just locked: until when, for the audit trail and the identity queue."""

    target: str
    until: str


def count(attempt: Attempt) -> Lock | None:
    """Count an attempt (a staff check counts its failures only); lock its target when
    that reaches the target's limit."""
    windows = _windows(attempt)
    lock_seconds = max(1, int(current_app.config["VERIFY_LOCK_MINUTES"])) * 60

    def count(client: Any) -> Lock | None:
        now = time.time()
        member = f"{now:.6f}:{secrets.token_hex(4)}"
        pipe = client.pipeline(transaction=False)
        for which in attempt.counter_keys():
            longest = max((w.seconds for w in windows if w.which == which), default=0)
            key = _key(which, attempt)
            pipe.zadd(key, {member: now})
            pipe.zremrangebyscore(key, "-inf", now - longest)
            pipe.expire(key, longest + 1)
        targets = [w for w in windows if w.which == "target"]
        for window in targets:
            pipe.zcount(_key("target", attempt), now - window.seconds, "+inf")
        counted = pipe.execute()[-len(targets) :] if targets else []
        reached = any(n >= w.amount for n, w in zip(counted, targets, strict=True))
        if not reached or not client.set(_lock_key(attempt), "1", nx=True, ex=lock_seconds):
            return None
        LOCKS.inc()
        return Lock(attempt.target.words, _until(now + lock_seconds))

    found: Lock | None = _counts().run(count)
    return found


def forget() -> None:
    """Clear every count and lock (tests; an admin after a false alarm)."""
    for client in (get_redis(), _counts().memory):
        keys = list(client.scan_iter(_PREFIX + "*", count=1000))
        if keys:
            client.delete(*keys)
