"""Health, readiness and Prometheus metrics for operators."""

from __future__ import annotations

import os
import smtplib
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .app_state import TTLCache
from .extensions import db
from .models import Fulfilment, OutboxEntry, PortalPolicy, utcnow
from .models.fulfilment import LIVE_FULFILMENT_STATES
from .redis_client import get_redis
from .scheduler import EMBEDDED_THREAD, LEASE_KEY
from .services.credentials import DirectoryRefused, DirectoryUnavailable, store_for

bp = Blueprint("ops", __name__)

REQUESTS = Counter(
    "helpdesk_http_requests_total", "HTTP requests served", ["endpoint", "method", "status"]
)
LATENCY = Histogram("helpdesk_http_request_seconds", "Time to serve a request", ["endpoint"])


@bp.get("/healthz")
def healthz() -> Any:
    """The process is up."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> Any:
    """The database and Redis both answer."""
    checks: dict[str, str] = {}
    try:
        db.session.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except sa.exc.SQLAlchemyError as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        get_redis().ping()
        checks["redis"] = "ok"
    except Exception as exc:  # any client error means "not ready"
        checks["redis"] = f"unreachable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    # What the web can serve without, but an operator must hear of: no scheduler (no relay,
    # escalation or closing) and no mail server (resets wait). Reported, not failed on:
    # taking every web process out of service would not bring either back.
    background = background_checks()
    body = {"status": "ready" if ready else "not_ready", "checks": checks,
            "background": background,
            "degraded": sorted(k for k, v in background.items() if v != "ok")}  # fmt: skip
    return body, 200 if ready else 503


def background_checks() -> dict[str, str]:
    """The scheduler's lease, live workers and the mail server, each "ok" or what is wrong."""
    found: dict[str, str] = {}
    if any(t.name == EMBEDDED_THREAD and t.is_alive() for t in threading.enumerate()):
        found["scheduler"] = found["workers"] = "ok"  # the embedded default's worker thread
    else:
        found.update(_worker_and_scheduler())
    found["mail"] = _mail_server()
    found.update(_directories())
    return found


def live_workers(redis: Any) -> int:
    """RQ workers alive now. RQ keeps a stopped worker's hash a minute, marked with its
    death; a live one's is renewed by its heartbeat (and comes back by itself after a
    Redis restart). Beside each hash, ``rq:worker:NAME:executions`` lists the jobs it is
    running: not a worker."""
    return sum(
        1 for key in redis.scan_iter("rq:worker:*", count=100)
        if redis.type(key) in (b"hash", "hash") and not redis.hexists(key, "death")
    )  # fmt: skip


def _worker_and_scheduler() -> dict[str, str]:
    """Whether a scheduler holds the lease and a worker is registered, as Redis says."""
    found: dict[str, str] = {}
    try:
        redis = get_redis()
        found["scheduler"] = "ok" if redis.exists(LEASE_KEY) else "no scheduler holds the lease"
        found["workers"] = "ok" if live_workers(redis) else "no worker is running"
    except Exception as exc:  # any client error: Redis is away, reported above
        found["scheduler"] = found["workers"] = f"unknown: Redis unreachable ({type(exc).__name__})"
    return found


def _directories() -> dict[str, str]:
    """Each portal's directory, when its passwords live in one: does it answer our bind?"""
    found: dict[str, str] = {}
    for row in db.session.execute(sa.select(PortalPolicy).where(PortalPolicy.store != "sql")
                                  ).scalars():  # fmt: skip
        try:
            store_for(row.portal).check()
            found[f"directory:{row.portal}"] = "ok"
        except (DirectoryUnavailable, DirectoryRefused) as error:
            found[f"directory:{row.portal}"] = f"unreachable: {error}"
    db.session.rollback()  # a read: end it
    return found


def _check_mail_server(previous: str | None) -> str:
    config = current_app.config
    server = config.get("MAIL_SERVER")
    if not server:
        return "ok"  # mail is captured to files
    timeout = min(2.0, float(config["MAIL_TIMEOUT"]))
    try:
        with smtplib.SMTP(server, int(config["MAIL_PORT"]), timeout=timeout) as host:
            host.noop()
        return "ok"
    except (smtplib.SMTPException, OSError) as exc:
        return f"unreachable: {type(exc).__name__}"


# Whether the mail server answers, asked at most every 15 s per process.
_MAIL_SERVER: TTLCache[str] = TTLCache("mail_server", _check_mail_server, 15.0)


def _mail_server() -> str:
    return _MAIL_SERVER.get()


@bp.get("/metrics")
def metrics() -> Response:
    # The request counters — every gunicorn worker's, added up, when served by gunicorn
    # (helpdesk.serving) — then the work in flight as the database has it.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        served = CollectorRegistry()
        multiprocess.MultiProcessCollector(served)
        requests = generate_latest(served)
    else:
        requests = generate_latest()
    backlog = CollectorRegistry(auto_describe=False)
    backlog.register(_Backlog(utcnow()))
    return Response(requests + generate_latest(backlog), mimetype=CONTENT_TYPE_LATEST)


class _Backlog(Collector):
    """Work promised and not yet done: what an operator alerts on when a worker, Redis or
    the mail server is away. Read from partial indexes, so a scrape stays cheap."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def collect(self) -> Iterator[GaugeMetricFamily]:
        outbox = OutboxEntry.__table__
        overdue = outbox.c.relay_after < self.now
        pending, late = db.session.execute(
            sa.select(sa.func.count(), sa.func.count().filter(overdue)).where(
                outbox.c.state == "pending"
            )
        ).one()
        jobs = GaugeMetricFamily(
            "helpdesk_outbox_pending",
            "Jobs promised and not yet done; overdue ones are past their relay deadline",
            labels=["overdue"],
        )
        jobs.add_metric(["false"], int(pending) - int(late))
        jobs.add_metric(["true"], int(late))
        yield jobs
        work = GaugeMetricFamily(
            "helpdesk_fulfilments_in_flight",
            "Resets, reminders and revocations approved and not yet delivered, by state",
            labels=["state"],
        )
        counts = dict(
            db.session.execute(
                sa.select(Fulfilment.state, sa.func.count())
                .where(Fulfilment.state.in_(LIVE_FULFILMENT_STATES))
                .group_by(Fulfilment.state)
            ).all()
        )
        for state in LIVE_FULFILMENT_STATES:
            work.add_metric([state], int(counts.get(state, 0)))
        yield work
        db.session.rollback()  # a read: end it
        directories = GaugeMetricFamily(
            "helpdesk_directory_up",
            "1 when the portal's directory answers the helpdesk's bind, 0 when not",
            labels=["portal"],
        )
        for name, text in background_checks().items():
            if name.startswith("directory:"):
                directories.add_metric([name.partition(":")[2]], 1 if text == "ok" else 0)
                continue
            up = GaugeMetricFamily(
                f"helpdesk_{name}_up",
                f"1 when {_BACKGROUND_WORDS[name]}, 0 when not (see /readyz for why)",
            )
            up.add_metric([], 1 if text == "ok" else 0)
            yield up
        yield directories


_BACKGROUND_WORDS = {
    "scheduler": "a scheduler holds the lease",
    "workers": "at least one worker is registered in Redis",
    "mail": "the mail server answers",
}


def init_metrics(app: Flask) -> None:
    @app.before_request
    def _start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        endpoint = request.endpoint or "unmatched"
        started = g.get("request_started")
        if started is not None:
            LATENCY.labels(endpoint).observe(time.perf_counter() - started)
        REQUESTS.labels(endpoint, request.method, response.status_code).inc()
        return response
