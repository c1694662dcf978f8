"""The RQ worker that runs the jobs inside the app: ``helpdesk worker``, and the embedded thread."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from flask import Flask
from rq import Queue, SimpleWorker, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

from helpdesk.extensions import db
from helpdesk.redis_client import redis_for
from helpdesk.services.outbox import QUEUES

log = logging.getLogger(__name__)


class _InApp:
    """Runs each job inside the app's context and hands its session back afterwards."""

    app: Flask

    def perform_job(self, job: Any, queue: Any, execution: Any) -> bool:
        with self.app.app_context():
            try:
                return bool(super().perform_job(job, queue, execution))  # type: ignore[misc]
            finally:
                db.session.remove()

    def subscribe(self) -> None:
        """RQ's, but its listener thread reads for 1 s at a time instead of 60: stopping the
        worker closes that connection, which can wait out the read in progress, so a burst
        worker or a stopped one took up to a minute to return after its last job."""
        worker: Any = self
        worker.pubsub = worker.connection.pubsub()
        worker.pubsub.subscribe(**{worker.pubsub_channel_name: worker.handle_payload})
        worker.pubsub_thread = worker.pubsub.run_in_thread(
            sleep_time=1, daemon=True, exception_handler=worker._pubsub_exception_handler
        )


class AppWorker(_InApp, Worker):
    """RQ's forking worker (one work-horse per job), for ``helpdesk worker --fork``."""

    def main_work_horse(self, job: Any, queue: Any) -> Any:
        # A forked work-horse must not share the parent's pooled database sockets.
        with self.app.app_context():
            db.engine.dispose(close=False)
        return super().main_work_horse(job, queue)


class InProcessWorker(_InApp, SimpleWorker):
    """The same jobs without forking: ``helpdesk worker``, tests, and the embedded thread."""


class _ThreadWorker(InProcessWorker):
    # Signals belong to the main thread: time jobs out with a timer instead.
    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        pass  # only the main thread may; the server's own handlers stop the process


class _OncePerOutage(logging.Filter):
    """RQ logs an ERROR every second or two while Redis is away, from the worker's loop and
    from its listener thread: keep the first of an outage. An outage lasts while they keep
    coming, whatever else is logged between them (a line from the other thread used to end
    it, and the next retry was logged again)."""

    QUIET_SECONDS = 180.0  # longer than RQ's longest wait between retries (60 s)

    def __init__(self) -> None:
        super().__init__()
        self._last_lost = float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        if "could not connect to Redis" not in record.getMessage():
            return True
        first = record.created - self._last_lost > self.QUIET_SECONDS
        self._last_lost = record.created
        return first


_RQ_LOG = logging.getLogger("rq.worker")
if not any(isinstance(f, _OncePerOutage) for f in _RQ_LOG.filters):
    _RQ_LOG.addFilter(_OncePerOutage())


def make_worker(
    app: Flask, queues: tuple[str, ...] = QUEUES, *, fork: bool = True, name: str | None = None
) -> AppWorker | InProcessWorker:
    cls: type[AppWorker] | type[InProcessWorker] = AppWorker if fork else InProcessWorker
    worker = cls(list(queues), connection=redis_for(app), serializer=JSONSerializer, name=name)
    worker.app = app
    return worker


def _enqueue_due_retries(connection: Any) -> None:
    """RQ's scheduler, without its Lua locks (the in-process stand-in has no Lua)."""
    for name in QUEUES:
        registry = ScheduledJobRegistry(name, connection=connection, serializer=JSONSerializer)
        queue = Queue(name, connection=connection, serializer=JSONSerializer)
        for job_id in registry.get_jobs_to_schedule(int(time.time())):
            registry.remove(job_id)
            try:
                job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
            except NoSuchJobError:
                continue
            queue.enqueue_job(job)


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
        last_run: dict[str, float] = {}
        while True:
            try:
                worker.work(burst=True, logging_level="WARNING")
                _enqueue_due_retries(connection)
            except Exception:
                log.exception("embedded worker: running jobs failed; trying again")
            with app.app_context():
                try:
                    scheduler.run_due(last_run, time.monotonic())
                except Exception:
                    log.exception("embedded worker: a periodic job failed; trying again")
                finally:
                    db.session.remove()
            time.sleep(poll_seconds)

    thread = threading.Thread(target=loop, name=scheduler.EMBEDDED_THREAD, daemon=True)
    thread.start()
    return thread
