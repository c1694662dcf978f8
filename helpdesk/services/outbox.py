"""The transactional outbox: a job is promised in the database, then handed to RQ.

``promise`` writes the row inside the caller's transaction, so the change and the
promise of its job commit or vanish together. ``dispatch`` enqueues after the commit;
if Redis is away the request still succeeds and ``relay`` (a periodic job, and
``helpdesk outbox relay``) enqueues the row once it is back. Jobs are named by dotted
path, so this package never imports ``workers``; their ids are derived from the
outbox id, and the jobs are idempotent, so a row enqueued twice does its work once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

import sqlalchemy as sa
from flask import current_app
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy.orm import Session

from ..extensions import db
from ..models import OutboxEntry, utcnow
from ..models.fulfilment import outbox_job_id
from ..redis_client import get_redis

log = logging.getLogger(__name__)

# Queues named for their purpose; a worker serves them in this order.
QUEUES = ("revocations", "fulfilment", "mail")
_TO_DISPATCH = "outbox_to_dispatch"  # what this session promised, in Session.info
_ALIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


class Promise(NamedTuple):
    """An outbox row as dispatch needs it, kept from when it was promised."""

    id: int
    job: str
    target_id: int
    queue: str

    @property
    def job_id(self) -> str:
        return outbox_job_id(self.id)


class _Promised(Protocol):
    @property
    def job(self) -> str: ...
    @property
    def target_id(self) -> int: ...
    @property
    def queue(self) -> str: ...
    @property
    def job_id(self) -> str: ...


# Core, not the ORM: a promise is one row written beside other changes, and a flush of
# its own per promise cost more than the INSERT (bench/README.md, fulfilment).
_INSERT_PROMISE = sa.insert(OutboxEntry.__table__).returning(OutboxEntry.__table__.c.id)


def promise(job: str, target_id: int, queue: str) -> int:
    """Record, in the current transaction, that ``workers.jobs.<job>(target_id)`` must run."""
    now = utcnow()
    entry_id: int = db.session.execute(
        _INSERT_PROMISE,
        {"job": job, "target_id": target_id, "queue": queue, "state": "pending",
         "created_at": now, "relay_after": relay_after(now), "enqueues": 0},
    ).scalar_one()  # fmt: skip
    pending: list[Promise] = db.session.info.setdefault(_TO_DISPATCH, [])
    pending.append(Promise(entry_id, job, target_id, queue))  # no read-back to dispatch it
    return entry_id


def dispatch_committed() -> int:
    """Enqueue what this session promised and has committed; the relay covers any failure."""
    promised: list[Promise] = db.session.info.pop(_TO_DISPATCH, [])
    if not promised:
        return 0
    sent = 0
    try:
        # Nothing is written back: a promise stays pending until its job completes it,
        # and the relay asks RQ, not the row, whether its job is alive.
        for entry in promised:
            enqueue(entry)
            sent += 1
    except RedisError as error:
        _deferred(error)
    return sent


_OUTBOX = OutboxEntry.__table__


def _deferred(error: RedisError) -> None:
    log.warning(
        "Redis unavailable; the outbox relay will enqueue the job later (%s)",
        type(error).__name__,
        extra={"event": "outbox_deferred"},
    )


@sa.event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous_transaction: Any) -> None:
    # What a rolled-back transaction promised was never committed: nothing to dispatch.
    session.info.pop(_TO_DISPATCH, None)


def rq_queue(name: str) -> Queue:
    return Queue(name, connection=get_redis(), serializer=JSONSerializer)


def retry_intervals() -> list[int]:
    raw = str(current_app.config["JOB_RETRY_INTERVALS"])
    return [int(part) for part in raw.split(",") if part.strip()]


def attempts_allowed() -> int:
    """How many times a job is tried in all: once, then once per retry interval."""
    return len(retry_intervals()) + 1


def enqueue(entry: _Promised) -> Job:
    """Hand one outbox row to RQ: ids only, so nothing sensitive reaches Redis or its logs.

    One Redis round trip: RQ queues its writes (the queue's registration, the job, the
    push) on the pipeline it is given, run here as one MULTI/EXEC.
    """
    intervals = retry_intervals()
    config = current_app.config
    with get_redis().pipeline() as pipe:
        job = rq_queue(entry.queue).enqueue(
            f"workers.jobs.{entry.job}",
            entry.target_id,
            job_id=entry.job_id,
            description=f"{entry.job}({entry.target_id})",
            job_timeout=int(config["JOB_TIMEOUT_SECONDS"]),
            result_ttl=3600,
            failure_ttl=7 * 24 * 3600,
            retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
            pipeline=pipe,
        )
        pipe.execute()
    return job


# Prebuilt and on the table, not the mapped class: an ORM-enabled UPDATE first works out
# which loaded objects it must synchronise, which cost more than the statement.
_COMPLETE = (
    sa.update(_OUTBOX)
    .where(
        _OUTBOX.c.job == sa.bindparam("kept_job"),
        _OUTBOX.c.target_id == sa.bindparam("kept_target"),
        _OUTBOX.c.state == "pending",
    )
    .values(state="done", done_at=sa.bindparam("kept_at"))
)


def complete(job: str, target_id: int, now: datetime | None = None) -> None:
    """Mark the promise kept (in the job's own transaction): the relay leaves it alone."""
    kept = {"kept_job": job, "kept_target": target_id, "kept_at": now or utcnow()}
    db.session.execute(_COMPLETE, kept)


def relay_after(now: datetime) -> datetime:
    """When the relay may enqueue a promise made at ``now`` again, if its job is not done."""
    return now + timedelta(seconds=float(current_app.config["OUTBOX_RELAY_AFTER_SECONDS"]))


def relay(now: datetime | None = None, batch: int = 200) -> list[int]:
    """Enqueue promised jobs that are past their deadline and not alive in RQ; return their ids.

    Rows are claimed with ``FOR UPDATE SKIP LOCKED``, so two relays never take the same
    one. A job whose worker died mid-way is first given back by RQ's own started-job
    registry cleanup (retried if it has retries left).
    """
    now = now or utcnow()
    redis = get_redis()
    for name in QUEUES:
        StartedJobRegistry(name, connection=redis, serializer=JSONSerializer).cleanup()
    claim = (
        sa.select(OutboxEntry)
        .where(OutboxEntry.state == "pending", OutboxEntry.relay_after < now)
        .order_by(OutboxEntry.relay_after)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    from .uow import unit_of_work  # the unit of work dispatches through this module

    relayed = []
    with unit_of_work():
        for entry in db.session.execute(claim).scalars():
            entry.relay_after = relay_after(now)
            if _alive(entry):
                continue
            enqueue(entry)
            entry.enqueues += 1
            entry.enqueued_at = now
            relayed.append(entry.id)
    if relayed:
        log.info("outbox relay enqueued %d jobs", len(relayed), extra={"event": "outbox_relay"})
    return relayed


def _alive(entry: OutboxEntry) -> bool:
    try:
        job = Job.fetch(entry.job_id, connection=get_redis(), serializer=JSONSerializer)
    except NoSuchJobError:
        return False
    return job.get_status(refresh=False) in _ALIVE
