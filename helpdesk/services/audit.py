"""The audit trail: the one writer of incident events (SPEC §4: who, when, from, to, why).

Events are appended and not read back where they are written, so each is one Core
INSERT in the caller's transaction; the incident must already be in the database
(flushed) when its event is recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..extensions import db
from ..models import utcnow
from ..models.incidents import INSERT_EVENTS


@dataclass(frozen=True)
class Event:
    """One thing that happened to an incident, as the timeline shows it."""

    incident_id: int
    kind: str
    before: str | None
    after: str | None
    message: str | None = None
    actor_id: int | None = None
    at: datetime | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id, "at": self.at or utcnow(),
            "actor_id": self.actor_id, "kind": self.kind, "from_status": self.before,
            "to_status": self.after, "message": self.message, "data": self.data,
        }  # fmt: skip


def record(*events: Event) -> None:
    """Append events to their incidents' timelines, in the current transaction."""
    record_all(events)


def record_all(events: Iterable[Event]) -> None:
    rows = [event.row() for event in events]
    if rows:
        db.session.execute(INSERT_EVENTS, rows)
