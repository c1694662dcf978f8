"""The self-service recovery pages' audit trail: every attempt, matched or not."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .types import BigId, UTCDateTime, utcnow

# The user a self-service incident is filed by: it never signs in (migration 0024).
SELF_SERVICE_EMAIL = "self-service@helpdesk.invalid"


class RecoveryAttempt(db.Model):  # type: ignore[name-defined]
    """One try on a recovery page (``kind`` password or username), or a hand-over to the
    school. What was typed is not kept: only which fields matched the record the typing
    pointed at, for staff, and the records and incident it led to."""

    __tablename__ = "recovery_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    # matched, not_matched, limited (refused unread), already_open, handed_over
    outcome: Mapped[str] = mapped_column(sa.String(16))
    # A keyed digest of the client's address: attempts from one place can be told apart
    # without keeping where a parent was.
    client: Mapped[str] = mapped_column(sa.String(16))
    guardian_id: Mapped[int | None] = mapped_column(sa.ForeignKey("guardians.id"), index=True)
    portal_account_id: Mapped[int | None] = mapped_column(sa.ForeignKey("portal_accounts.id"))
    school_id: Mapped[int | None] = mapped_column(sa.ForeignKey("schools.id"))
    # Per field: {"result": match/mismatch/not_found, "reason": ...}; staff only.
    field_results: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    incident_id: Mapped[int | None] = mapped_column(sa.ForeignKey("incidents.id"), index=True)
    # A lock this attempt caused: the holders told of it (guardian ids), and when.
    locked_guardian_ids: Mapped[list[int] | None] = mapped_column(sa.JSON)
    notice_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
