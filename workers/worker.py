"""The RQ worker that runs the jobs inside the app: ``helpdesk worker``, and the embedded thread."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from flask import Flask
from rq import SimpleWorker, Worker
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from helpdesk.extensions import db
from helpdesk.redis_client import redis_for
from helpdesk.services.outbox import QUEUES

log = logging.getLogger(__name__)


class AppWorker(Worker):
    """An RQ worker whose jobs run in the app's context, with their own database connections."""

    app: Flask

    def main_work_horse(self, job: Any, queue: Any) -> Any:
        # A forked work-horse must not share the parent's pooled database sockets.
        with self.app.app_context():
            db.engine.dispose(close=False)
        return super().main_work_horse(job, queue)

    def perform_job(self, job: Any, queue: Any, execution: Any) -> bool:
        with self.app.app_context():
            try:
                return bool(super().perform_job(job, queue, execution))
            finally:
                db.session.remove()


class InProcessWorker(AppWorker, SimpleWorker):
    """The same worker without forking (tests, and the embedded thread)."""


class _ThreadWorker(InProcessWorker):
    def _install_signal_handlers(self) -> None:
        pass  # only the main thread may; the server's own handlers stop the process


def make_worker(
    app: Flask, queues: tuple[str, ...] = QUEUES, *, fork: bool = True, name: str | None = None
) -> AppWorker:
    cls: type[AppWorker] = AppWorker if fork else InProcessWorker
    worker = cls(list(queues), connection=redis_for(app), serializer=JSONSerializer, name=name)
    worker.app = app
    return worker


def start_embedded(app: Flask, poll_seconds: float = 1.0) -> threading.Thread:
    """Run jobs, retries and the periodic jobs in a thread, on the in-process Redis stand-in.

    The embedded default has no Redis server and no separate processes, so this one
    thread does what ``helpdesk worker`` and ``helpdesk scheduler`` do in production.
    """
    from helpdesk import scheduler

    def loop() -> None:
        connection = redis_for(app)
        worker = _ThreadWorker(
            list(QUEUES), connection=connection, serializer=JSONSerializer,
            name=f"embedded-{os.getpid()}",
        )  # fmt: skip
        worker.app = app
        retries = RQScheduler(list(QUEUES), connection=connection, serializer=JSONSerializer)
        last_run: dict[str, float] = {}
        while True:
            try:
                worker.work(burst=True, logging_level="WARNING")
                retries.acquire_locks()
                retries.enqueue_scheduled_jobs()
                with app.app_context():
                    try:
                        scheduler.run_due(last_run, time.monotonic())
                    finally:
                        db.session.remove()
            except Exception:
                log.exception("embedded worker: a pass failed; trying again")
            time.sleep(poll_seconds)

    thread = threading.Thread(target=loop, name="helpdesk-embedded-worker", daemon=True)
    thread.start()
    return thread
