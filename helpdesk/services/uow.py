"""The unit of work: every service that writes does it inside one.

``with unit_of_work():`` commits when the block ends, rolls back on any exception, and
then hands the jobs the committed work promised (outbox rows) to RQ — the shape of
cosmicpython's service layer. Nothing else in services, jobs or views commits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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
