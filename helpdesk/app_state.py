"""State kept once per app, created on first use and never at import: the caches.

A ``TTLCache`` keeps one loaded value per app (so per process) for a number of seconds
its app's config says, then loads it again. Every cache is one of these, so what each
keeps, for how long, and how it is forgotten reads the same everywhere; tests forget
them all with ``forget_caches``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from flask import Flask, current_app

T = TypeVar("T")

_CACHES = "helpdesk_caches"


def per_app(key: str, create: Callable[[], T]) -> T:
    """The current app's object under ``key``, made by ``create`` the first time."""
    state = current_app.extensions.get(key)
    if state is None:
        state = current_app.extensions[key] = create()
    return state


@dataclass
class _Slot:
    value: Any = None
    loaded_at: float = float("-inf")
    lock: threading.Lock = field(default_factory=threading.Lock)


class TTLCache(Generic[T]):
    """A value ``load`` makes, kept per app for ``ttl`` seconds (a number, or the name of a
    config setting read at each use), then loaded again.

    ``load`` is given the value it made last time (None the first time), so it can keep it
    when a cheap check shows nothing changed.
    """

    def __init__(self, name: str, load: Callable[[T | None], T], ttl: str | float) -> None:
        self.name = name
        self.load = load
        self.ttl = ttl

    def get(self) -> T:
        slot = self._slot()
        if time.monotonic() - slot.loaded_at >= self._seconds():
            with slot.lock:  # one thread loads; the others wait and take its value
                if time.monotonic() - slot.loaded_at >= self._seconds():
                    slot.value = self.load(slot.value)
                    slot.loaded_at = time.monotonic()
        value: T = slot.value
        return value

    def forget(self) -> None:
        """Load again at the next use (in this process: others wait out their ttl)."""
        self._slot().loaded_at = float("-inf")

    def _slot(self) -> _Slot:
        slots: dict[str, _Slot] = per_app(_CACHES, dict)
        slot = slots.get(self.name)
        if slot is None:
            slot = slots.setdefault(self.name, _Slot())
        return slot

    def _seconds(self) -> float:
        if isinstance(self.ttl, str):
            return float(current_app.config[self.ttl])
        return self.ttl


def forget_caches(app: Flask) -> None:
    """Forget every cache of the app (tests: what a rolled-back test loaded must go)."""
    app.extensions.pop(_CACHES, None)
