"""State kept once per app (caches), created on first use and never at import."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import current_app

T = TypeVar("T")


def per_app(key: str, create: Callable[[], T]) -> T:
    """The current app's object under ``key``, made by ``create`` the first time."""
    state = current_app.extensions.get(key)
    if state is None:
        state = current_app.extensions[key] = create()
    return state
