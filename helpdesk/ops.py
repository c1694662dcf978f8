"""Health, readiness and Prometheus metrics for operators."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, g, request
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

from .extensions import db
from .models import Fulfilment, OutboxEntry, utcnow
from .models.fulfilment import LIVE_FULFILMENT_STATES
from .redis_client import get_redis

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
    return {"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503


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
