"""The unit of work: every service that writes does it inside one.

``with unit_of_work():`` commits when the block ends, rolls back on any exception, and
then hands the jobs the committed work promised (outbox rows) to RQ — the shape of
cosmicpython's service layer. Nothing else in services, jobs or views commits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import after_this_request, has_request_context
from sqlalchemy.orm import Session

from ..extensions import db
from . import outbox


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One transaction: committed at the end, rolled back on error, outbox dispatched."""
    session = db.session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    outbox.dispatch_committed()


def after_response(work: Callable[[], None]) -> None:
    """Do ``work`` in a unit of work of its own once the response is made, so that its
    commit expires nothing the response is built from; outside a request, at once. If it
    fails, the answer is an error rather than a response without it."""

    def write() -> None:
        with unit_of_work():
            work()

    if not has_request_context():
        write()
        return

    @after_this_request
    def _after(response: Any) -> Any:
        write()
        return response
