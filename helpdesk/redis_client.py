"""The Redis connection: a real server when REDIS_URL is set, an in-process stand-in otherwise."""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, current_app

# The embedded default's worker thread and the first web request ask for the client at
# the same moment: without the lock each could make a stand-in server of its own, and
# jobs enqueued on one would wait forever for a worker reading the other.
_LOCK = threading.Lock()


def redis_for(app: Flask) -> Any:
    """One client per app, created on first use (never at import or app creation)."""
    client = app.extensions.get("helpdesk_redis")
    if client is not None:
        return client
    with _LOCK:
        client = app.extensions.get("helpdesk_redis")
        if client is None:
            url = app.config.get("REDIS_URL")
            if url:
                import redis

                client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
            else:
                import fakeredis

                # One fake server per process, so the in-process worker thread shares it.
                client = fakeredis.FakeRedis(server=_fake_server())
            app.extensions["helpdesk_redis"] = client
    return client


def get_redis() -> Any:
    return redis_for(current_app._get_current_object())  # type: ignore[attr-defined]


_FAKE_SERVER: Any = None


def _fake_server() -> Any:
    """The process's one stand-in server (called with ``_LOCK`` held)."""
    global _FAKE_SERVER
    if _FAKE_SERVER is None:
        import fakeredis

        _FAKE_SERVER = fakeredis.FakeServer()
    return _FAKE_SERVER
