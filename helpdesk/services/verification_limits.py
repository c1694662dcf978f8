"""Limits on failed record checks, so that filing incidents cannot be used to guess a record.

Every failed verification counts against the filing employee, their school and the
record it aimed at (a parent account, a student, a child), in sliding windows kept in
Redis (``RATELIMIT_STORAGE_URI``; process memory on the embedded default). The counts
are read *before* the records are: an attempt over any limit is refused with 429 and
the records are not looked at, so the right answer, once a limit is reached, is
refused like any other. A target that reaches its limit is also locked for
``VERIFY_LOCK_MINUTES``, which the identity queue is told of.

If Redis cannot be reached the counts are kept in this process's memory until it can:
the limits still hold, per process, and the log says so once per outage.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import limits
from flask import current_app
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from prometheus_client import Counter
from redis.exceptions import RedisError

from ..app_state import per_app
from ..domain.matching import name_key
from ..domain.moments import shown
from ..errors import DomainError

REFUSED = Counter(
    "helpdesk_verification_refused_total",
    "Record checks refused because too many had failed",
    ["limit"],
)
LOCKS = Counter("helpdesk_verification_locks_total", "Records whose checks were locked")

IDENTITY_TEAM = "the identity team (its-identity)"


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


@dataclass(frozen=True)
class Attempt:
    """Who is checking what: the three things failures are counted against."""

    employee_id: int
    school_id: int
    target: Target

    def keys(self) -> dict[str, str]:
        return {
            "employee": f"employee:{self.employee_id}",
            "school": f"school:{self.school_id}",
            "target": self.target.key,
        }


class _FallbackStorage:
    """Redis when it answers; this process's memory for a while after it does not."""

    RETRY_SECONDS = 15.0

    def __init__(self, uri: str) -> None:
        primary = storage_from_string(uri)
        assert isinstance(primary, Storage)  # a synchronous storage: not "async+redis://"
        self.primary = primary
        self.memory = MemoryStorage()
        self._down_until = 0.0
        self._lock = threading.Lock()

    def run(self, use: Any) -> Any:
        """``use(limiter)`` on Redis, or on memory while Redis is away."""
        if time.monotonic() >= self._down_until:
            try:
                return use(MovingWindowRateLimiter(self.primary))
            except RedisError as error:
                with self._lock:
                    if time.monotonic() >= self._down_until:
                        current_app.logger.warning(
                            "verification limits: Redis unreachable (%s); counting in this "
                            "process's memory until it answers",
                            type(error).__name__,
                        )
                    self._down_until = time.monotonic() + self.RETRY_SECONDS
        return use(MovingWindowRateLimiter(self.memory))


def _storage() -> _FallbackStorage:
    return per_app(
        "helpdesk_verification_limits",
        lambda: _FallbackStorage(current_app.config["RATELIMIT_STORAGE_URI"]),
    )


def _limits() -> dict[str, list[limits.RateLimitItem]]:
    config = current_app.config
    return {
        "employee": limits.parse_many(config["VERIFY_LIMIT_PER_EMPLOYEE"]),
        "school": limits.parse_many(config["VERIFY_LIMIT_PER_SCHOOL"]),
        "target": limits.parse_many(config["VERIFY_LIMIT_PER_TARGET"]),
    }


def _lock_item() -> limits.RateLimitItem:
    minutes = max(1, int(current_app.config["VERIFY_LOCK_MINUTES"]))
    return limits.RateLimitItemPerMinute(1, minutes)


def _until(reset_time: float) -> str:
    moment = datetime.fromtimestamp(reset_time, UTC)
    return shown(moment, current_app.config["DISPLAY_TIMEZONE"])


def _refuse(which: str, attempt: Attempt, reset_time: float) -> VerificationLimited:
    REFUSED.labels(which).inc()
    current_app.logger.warning(
        "record check refused: %s limit reached (employee %s, school %s)",
        which, attempt.employee_id, attempt.school_id,
    )  # fmt: skip
    retry = max(1, int(reset_time - time.time()) + 1)
    until = _until(reset_time)
    whose = {
        "lock": f"Record checks for {attempt.target.words} are locked after repeated "
        f"failures. Try again after {until}.",
        "target": f"Too many record checks have failed for {attempt.target.words}. "
        f"Try again after {until}.",
        "employee": f"Too many of your record checks have failed. Try again after {until}.",
        "school": f"Too many record checks have failed at your school. Try again after {until}.",
    }[which]
    return VerificationLimited(
        f"{whose} Nothing was checked or stored. If the details are right, contact "
        f"{IDENTITY_TEAM}, who can check them with the parent or student.",
        retry_after_seconds=retry,
        limit=which,
    )


def check_allowed(attempt: Attempt) -> int:
    """Refuse (VerificationLimited) an attempt over any limit, before any record is read.

    Returns how many checks of this target have failed in its window, so a caller can
    say less about each field once a target has been tried several times.
    """
    keys = attempt.keys()
    lock = _lock_item()

    def read(limiter: MovingWindowRateLimiter) -> int:
        if not limiter.test(lock, "verify-lock", keys["target"]):
            stats = limiter.get_window_stats(lock, "verify-lock", keys["target"])
            raise _refuse("lock", attempt, stats.reset_time)
        failed = 0
        for which, items in _limits().items():
            for item in items:
                if not limiter.test(item, "verify", keys[which]):
                    stats = limiter.get_window_stats(item, "verify", keys[which])
                    raise _refuse(which, attempt, stats.reset_time)
                if which == "target":
                    used = item.amount - limiter.get_window_stats(item, "verify", keys[which])[1]
                    failed = max(failed, used)
        return failed

    result: int = _storage().run(read)
    return result


@dataclass(frozen=True)
class Lock:
    """A target just locked: until when, for the audit trail and the identity queue."""

    target: str
    until: str


def record_failure(attempt: Attempt) -> Lock | None:
    """Count a failed check; lock its target when that reaches the target's limit."""
    keys = attempt.keys()
    lock = _lock_item()

    def count(limiter: MovingWindowRateLimiter) -> Lock | None:
        for which, items in _limits().items():
            for item in items:
                limiter.hit(item, "verify", keys[which])
        reached = any(
            limiter.get_window_stats(item, "verify", keys["target"]).remaining == 0
            for item in _limits()["target"]
        )
        if not reached or not limiter.hit(lock, "verify-lock", keys["target"]):
            return None
        LOCKS.inc()
        stats = limiter.get_window_stats(lock, "verify-lock", keys["target"])
        return Lock(attempt.target.words, _until(stats.reset_time))

    found: Lock | None = _storage().run(count)
    return found


def forget() -> None:
    """Clear every count and lock (tests; an admin after a false alarm)."""
    storage = _storage()
    storage.memory.reset()
    storage.primary.reset()
