"""Fulfilment: the per-portal policy, the work a worker does, and the outbox that hands it over.

A fulfilment is the state machine of one approved reset, reminder or revocation
(SPEC §6.4); a notification is one email that carries no secret; an outbox row is the
promise, written in the same transaction as the change that asked for the work, that
a job will run for it.
"""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .records import PortalAccount
from .types import BigId, UTCDateTime, utcnow


class DeliveryMode(enum.StrEnum):
    ONE_TIME_PASSWORD = "one_time_password"  # noqa: S105 - a mode name, not a secret
    RESET_LINK = "reset_link"


class PortalPolicy(db.Model):  # type: ignore[name-defined]
    """How one portal (``parent`` or ``student``) wants its passwords and its resets."""

    __tablename__ = "portal_policies"

    portal: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    min_length: Mapped[int] = mapped_column(default=8)
    require_upper: Mapped[bool] = mapped_column(default=True)
    require_lower: Mapped[bool] = mapped_column(default=True)
    require_digit: Mapped[bool] = mapped_column(default=True)
    require_symbol: Mapped[bool] = mapped_column(default=False)
    history: Mapped[int] = mapped_column(default=0)  # not one of the last N passwords
    delivery_mode: Mapped[str] = mapped_column(
        sa.String(24), default=DeliveryMode.ONE_TIME_PASSWORD.value
    )
    # How long a one-time password or a reset link stays usable.
    secret_lifetime_minutes: Mapped[int] = mapped_column(default=72 * 60)
    # Where the holder signs in to the portal: the reset page and its emails link to it.
    sign_in_url: Mapped[str | None] = mapped_column(sa.String(255))
    # Where the portal's passwords live: "sql" (this database), "ldap", "active_directory"
    # or "scim" (helpdesk/services/stores). Secrets for a directory (bind password, SCIM
    # token, CA file) come from the environment, never from here: docs/directories.md.
    store: Mapped[str] = mapped_column(sa.String(24), default="sql", server_default="sql")
    directory_url: Mapped[str | None] = mapped_column(sa.String(255))
    directory_bind_dn: Mapped[str | None] = mapped_column(sa.String(255))
    directory_base_dn: Mapped[str | None] = mapped_column(sa.String(255))
    # How the roster's account is found: a template over {username}, {accountNumber},
    # {sourcedId}, escaped for the query language (helpdesk/domain/directory_queries.py).
    directory_find: Mapped[str | None] = mapped_column(sa.String(500))
    # LDAP: "exop" (RFC 3062 Password Modify) or "replace" (of userPassword).
    directory_password_change: Mapped[str | None] = mapped_column(sa.String(16))
    directory_start_tls: Mapped[bool] = mapped_column(default=False, server_default=sa.false())


class PasswordHistory(db.Model):  # type: ignore[name-defined]
    """The hashes of an account's earlier passwords, for the policy's "not one of the last N"."""

    __tablename__ = "portal_password_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("portal_accounts.id"), index=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FulfilmentKind(enum.StrEnum):
    RESET = "reset_credential"
    REMINDER = "send_username_reminder"
    REVOCATION = "revoke_access"


class FulfilmentState(enum.StrEnum):
    PENDING = "pending"
    CREDENTIAL_SET = "credential_set"  # the store holds the new secret; not yet delivered
    DELIVERED = "delivered"
    DELIVERY_FAILED = "delivery_failed"  # will be retried with backoff
    # The directory holding the portal's passwords did not answer: nothing was set or
    # sent; will be retried with backoff.
    DIRECTORY_FAILED = "directory_failed"
    ABANDONED = "abandoned"  # given back to a person, with the reason


LIVE_FULFILMENT_STATES = ("pending", "credential_set", "delivery_failed", "directory_failed")


class Fulfilment(db.Model):  # type: ignore[name-defined]
    """One approved piece of work on a portal account, run at most once in effect."""

    __tablename__ = "fulfilments"
    __table_args__ = (
        # At most one fulfilment in flight per incident, whoever asks twice.
        sa.Index(
            "ux_fulfilments_live_incident",
            "incident_id",
            unique=True,
            postgresql_where=sa.text(f"state IN {LIVE_FULFILMENT_STATES}"),
            sqlite_where=sa.text(f"state IN {LIVE_FULFILMENT_STATES}"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    incident_id: Mapped[int] = mapped_column(sa.ForeignKey("incidents.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    state: Mapped[str] = mapped_column(sa.String(20), default=FulfilmentState.PENDING.value)
    portal_account_id: Mapped[int | None] = mapped_column(sa.ForeignKey("portal_accounts.id"))
    mode: Mapped[str | None] = mapped_column(sa.String(24))
    # The secret, encrypted with a key derived from SECRET_KEY, kept only between
    # setting it and delivering it, so a retried delivery sends the same one.
    sealed_secret: Mapped[str | None] = mapped_column(sa.Text)
    secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    credential_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A class reset's fulfilments are delivered together, as one message of slips.
    class_reset_id: Mapped[int | None] = mapped_column(sa.ForeignKey("class_resets.id"),
                                                       index=True)  # fmt: skip

    portal_account: Mapped[PortalAccount | None] = relationship()


class ClassResetState(enum.StrEnum):
    WAITING = "waiting"  # some of its credentials are not set yet
    SENDING = "sending"  # all are set (or given back): its message is promised
    DELIVERED = "delivered"
    ABANDONED = "abandoned"  # the message could not be delivered; given back to people


class ClassReset(db.Model):  # type: ignore[name-defined]
    """A teacher's class reset: its students' one-time passwords go to the teacher as one
    message of printable slips, once every credential is set (services/class_slips.py)."""

    __tablename__ = "class_resets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    class_id: Mapped[int] = mapped_column(sa.ForeignKey("classes.id"), index=True)
    filer_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    state: Mapped[str] = mapped_column(sa.String(16), default=ClassResetState.WAITING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Notification(db.Model):  # type: ignore[name-defined]
    """One email without a secret (an outcome, a notice); its recipient is resolved at send time."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    incident_id: Mapped[int] = mapped_column(sa.ForeignKey("incidents.id"), index=True)
    template: Mapped[str] = mapped_column(sa.String(40))
    # Who, never an address: "filer", "guardian", or "queue:<slug>" (its members).
    audience: Mapped[str] = mapped_column(sa.String(80))
    # Plain words for the template, never a secret (an outcome, a reason).
    context: Mapped[dict[str, str]] = mapped_column(sa.JSON, default=dict)
    state: Mapped[str] = mapped_column(sa.String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The addresses that accepted it so far: a retry after a refusal skips them.
    sent_to: Mapped[list[str] | None] = mapped_column(sa.JSON)


class OutboxEntry(db.Model):  # type: ignore[name-defined]
    """A job promised in the same transaction as the change that needs it."""

    __tablename__ = "outbox"
    __table_args__ = (
        sa.Index(
            "ix_outbox_pending_relay_after",
            "relay_after",
            postgresql_where=sa.text("state = 'pending'"),
            sqlite_where=sa.text("state = 'pending'"),
        ),
        sa.Index("ix_outbox_job_target", "job", "target_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job: Mapped[str] = mapped_column(sa.String(40))  # a name in workers.jobs
    target_id: Mapped[int] = mapped_column(BigId)  # the fulfilment or notification id
    queue: Mapped[str] = mapped_column(sa.String(32))
    state: Mapped[str] = mapped_column(sa.String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the relay may enqueue it again if the job has not finished by then.
    relay_after: Mapped[datetime] = mapped_column(UTCDateTime)
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enqueues: Mapped[int] = mapped_column(default=0)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def job_id(self) -> str:
        return outbox_job_id(self.id)


def outbox_job_id(entry_id: int) -> str:
    """The RQ job id of an outbox row: enqueuing the row twice names the same job."""
    return f"outbox-{entry_id}"
