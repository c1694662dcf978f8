"""Incidents and their append-only audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .queues import Queue
from .records import School
from .types import BigId, UTCDateTime, utcnow
from .users import User

REF_PREFIX = "INC-"

# What a search looks in besides the reference, summary and notes: what was typed about
# whom. Never a secret: the PIN is checked and forgotten, so it is not there to find.
SEARCHED_DETAILS = (
    "student_id", "student_name", "parent_name", "parent_given_name", "parent_family_name",
    "child_given_name", "child_family_name", "parent_account_number", "contact_phone",
)  # fmt: skip


def search_text_sql(table: str = "") -> str:
    """The text a search reads, as one SQL expression. On PostgreSQL a trigram index
    (migration 0011) is built on exactly this expression, so a query that spells it the
    same way (constants inline, not bound) is answered from the index."""
    at = f"{table}." if table else ""
    parts = [f"coalesce({at}summary, '')", f"coalesce({at}notes, '')"]
    parts += [f"coalesce({at}details ->> '{key}', '')" for key in SEARCHED_DETAILS]
    return "(" + " || ' ' || ".join(parts) + ")"


def format_ref(incident_id: int) -> str:
    return f"{REF_PREFIX}{incident_id:06d}"


def parse_ref(ref: str) -> int | None:
    """The id inside an ``INC-000123`` reference, or None when it is not one."""
    if not ref.upper().startswith(REF_PREFIX):
        return None
    digits = ref[len(REF_PREFIX) :]
    if not digits.isdigit() or len(digits) > 18:
        return None
    return int(digits)


def verification_summary(outcome: str, results: dict[str, Any] | None) -> dict[str, Any]:
    """The outcome and per-field results, without internal record ids."""
    results = results or {}
    return {
        "outcome": outcome,
        "field_results": results.get("fields", {}),
        "reasons": results.get("reasons", []),
    }


# The statuses whose SLA clock runs, and the indexed deadlines the escalation pass reads.
OPEN_STATUS_SQL = "('new', 'triaged', 'in_progress', 'awaiting_fulfilment')"
_RUNNING_CLOCK = f"sla_paused_at IS NULL AND status IN {OPEN_STATUS_SQL}"
# Open in the employee's sense (a person or a job still owes an answer): what a new
# incident for the same person would duplicate.
UNFINISHED_SQL = (
    "status IN ('new', 'triaged', 'in_progress', 'awaiting_reply', 'awaiting_fulfilment')"
)
_CLOCKS = {
    "resolution_due_at": "resolution_breached_at IS NULL",
    "response_due_at": "response_breached_at IS NULL AND first_response_at IS NULL",
    "sla_warn_at": "sla_warned_at IS NULL",
}


# The detail that says who an incident is about, the first its type has (the last: a
# portal link failure's parent, given name first); the queue sorts by the same.
ABOUT_FIELDS = ("student_name", "parent_name", "parent_given_name")


class Incident(db.Model):  # type: ignore[name-defined]
    """One request for help with a portal account, filed by a school employee."""

    __tablename__ = "incidents"
    __table_args__ = (
        sa.Index("ix_incidents_school_id_id", "school_id", "id"),
        sa.Index("ix_incidents_queue_id_status_id", "queue_id", "status", "id"),
        sa.Index("ix_incidents_status_id", "status", "id"),
        # The agents' queue view: per queue and status, by deadline (keyset pages).
        sa.Index("ix_incidents_worklist", "queue_id", "status", "resolution_due_at", "id"),
        # The escalation pass reads only open incidents whose clock can still breach.
        *(
            sa.Index(
                f"ix_incidents_{column}_open",
                column,
                postgresql_where=sa.text(f"{condition} AND {_RUNNING_CLOCK}"),
                sqlite_where=sa.text(f"{condition} AND {_RUNNING_CLOCK}"),
            )
            for column, condition in _CLOCKS.items()
        ),
        # The dashboard: the last 30 days of resolutions and today's breaches. Partial, so
        # a filing (not resolved, not breached) never touches them.
        *(
            sa.Index(
                f"ix_incidents_{column}",
                column,
                postgresql_where=sa.text(f"{column} IS NOT NULL"),
                sqlite_where=sa.text(f"{column} IS NOT NULL"),
            )
            for column in ("resolved_at", "resolution_breached_at", "response_breached_at")
        ),
        # Filing's duplicate check: the earliest unfinished incident of one account or
        # guardian, read in id order so that it stops at the first (however many there are).
        *(
            sa.Index(
                f"ix_incidents_unfinished_{column}",
                column,
                "id",
                postgresql_where=sa.text(UNFINISHED_SQL),
                sqlite_where=sa.text(UNFINISHED_SQL),
            )
            for column in ("portal_account_id", "guardian_id")
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(40))
    status: Mapped[str] = mapped_column(sa.String(32))
    priority: Mapped[str | None] = mapped_column(sa.String(2))
    school_id: Mapped[int] = mapped_column(sa.ForeignKey("schools.id"))
    filer_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    queue_id: Mapped[int | None] = mapped_column(sa.ForeignKey("queues.id"))
    assignee_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), index=True)
    summary: Mapped[str | None] = mapped_column(sa.String(200))
    notes: Mapped[str | None] = mapped_column(sa.Text)
    # What the employee typed, minus secrets (the PIN is checked, never kept).
    details: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    verification: Mapped[str] = mapped_column(sa.String(8))
    verification_results: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    # The records the verification resolved, when it could.
    student_id: Mapped[int | None] = mapped_column(sa.ForeignKey("students.id"))
    guardian_id: Mapped[int | None] = mapped_column(sa.ForeignKey("guardians.id"))
    portal_account_id: Mapped[int | None] = mapped_column(sa.ForeignKey("portal_accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When what was typed about people was removed, its retention period over.
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What routing decided: the rule-set version that ran, tags it added, and where an
    # escalation (by hand or on an SLA breach) sends the incident.
    rule_set_version: Mapped[int | None] = mapped_column()
    tags: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    escalation_queue_id: Mapped[int | None] = mapped_column(sa.ForeignKey("queues.id"))
    # The SLA clock (business time): started at filing, paused while awaiting a reply,
    # deadlines from the current queue's plan; a breach is escalated once, then recorded.
    sla_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sla_paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sla_paused_seconds: Mapped[int] = mapped_column(default=0)
    response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sla_warn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sla_warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    response_breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution_breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Closed by an agent as the same request as another: the one it was merged into.
    merged_into_id: Mapped[int | None] = mapped_column(sa.ForeignKey("incidents.id"))

    school: Mapped[School] = relationship(lazy="joined", innerjoin=True)
    queue: Mapped[Queue | None] = relationship(foreign_keys=[queue_id], lazy="joined")
    escalation_queue: Mapped[Queue | None] = relationship(foreign_keys=[escalation_queue_id])
    filer: Mapped[User] = relationship(foreign_keys=[filer_id], lazy="joined", innerjoin=True)
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id], lazy="joined")

    @property
    def ref(self) -> str:
        return format_ref(self.id)

    @property
    def verification_summary(self) -> dict[str, Any]:
        return verification_summary(self.verification, self.verification_results)

    @property
    def school_code(self) -> str:
        return self.school.code

    @property
    def merged_into_ref(self) -> str | None:
        return format_ref(self.merged_into_id) if self.merged_into_id else None

    @property
    def queue_slug(self) -> str | None:
        return self.queue.slug if self.queue else None

    @property
    def filer_email(self) -> str:
        return self.filer.email

    @property
    def assignee_email(self) -> str | None:
        return self.assignee.email if self.assignee else None

    @property
    def about(self) -> str | None:
        """Who the incident is about, as the employee typed it (never a record's value)."""
        details = self.details or {}
        for name in ABOUT_FIELDS[:-1]:
            if details.get(name):
                return str(details[name])
        given, family = details.get("parent_given_name"), details.get("parent_family_name")
        return " ".join(str(p) for p in (given, family) if p) or None


class IncidentEvent(db.Model):  # type: ignore[name-defined]
    """One entry of an incident's audit trail: who did what, when, from which state to which."""

    __tablename__ = "incident_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    incident_id: Mapped[int] = mapped_column(sa.ForeignKey("incidents.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(sa.String(32))
    from_status: Mapped[str | None] = mapped_column(sa.String(32))
    to_status: Mapped[str | None] = mapped_column(sa.String(32))
    message: Mapped[str | None] = mapped_column(sa.Text)
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)

    incident: Mapped[Incident] = relationship()
    actor: Mapped[User | None] = relationship(lazy="joined")


class IncidentLink(db.Model):  # type: ignore[name-defined]
    """Two incidents about the same request: linked by an agent, or by a filing made
    despite an open one (``kind`` "related"), or one merged into the other ("merged")."""

    __tablename__ = "incident_links"
    __table_args__ = (sa.UniqueConstraint("incident_id", "other_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    incident_id: Mapped[int] = mapped_column(sa.ForeignKey("incidents.id"))
    other_id: Mapped[int] = mapped_column(sa.ForeignKey("incidents.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@event.listens_for(IncidentEvent, "before_update")
@event.listens_for(IncidentEvent, "before_delete")
def _events_are_append_only(mapper: Any, connection: Any, target: IncidentEvent) -> None:
    raise RuntimeError("incident events are append-only")


# Events are appended and rarely read back where they are written: one prebuilt Core
# INSERT (a row, or a list of rows) costs a fraction of a unit of work per event.
INSERT_EVENTS = sa.insert(IncidentEvent.__table__)
