"""The access log: the one writer of what staff read of people's records and did to
accounts' sign-in (UK GDPR art. 30 and subject access; OWASP ASVS 16.2).

An incident's own timeline says what happened to the incident; this log says who looked
at whose records and who changed whose second factor, so that a school answering a
subject access request can list every read of one person's records. Entries are appended
in the caller's transaction and never changed.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..extensions import db
from ..models import AccessEntry, utcnow

_INSERT = sa.insert(AccessEntry.__table__)


def user_subject(user_id: int) -> str:
    """How a staff account is named as the subject of an entry."""
    return f"user:{user_id}"


def note(
    action: str,
    subject: str,
    *,
    actor_id: int | None,
    incident_id: int | None = None,
    **data: Any,
) -> None:
    """Append one entry: ``actor_id`` did ``action`` to (or read) ``subject``."""
    db.session.execute(_INSERT, {
        "at": utcnow(), "actor_id": actor_id, "action": action, "subject": subject,
        "incident_id": incident_id, "data": data,
    })  # fmt: skip


def note_all(
    action: str, entries: list[dict[str, Any]], *, actor_id: int | None, **data: Any
) -> None:
    """Append one entry per ``{"subject", "incident_id"}`` in one statement."""
    at = utcnow()
    db.session.execute(_INSERT, [
        {"at": at, "actor_id": actor_id, "action": action, "data": data, **entry}
        for entry in entries
    ])  # fmt: skip


def entries_about(subject: str, *, limit: int = 500) -> list[AccessEntry]:
    """The log's entries about one person or account, newest first."""
    return list(db.session.execute(
        sa.select(AccessEntry).where(AccessEntry.subject == subject)
        .order_by(AccessEntry.at.desc(), AccessEntry.id.desc()).limit(limit)
    ).scalars())  # fmt: skip
