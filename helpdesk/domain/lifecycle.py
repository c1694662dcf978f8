"""The incident lifecycle (SPEC §4): which action may move an incident from which state."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .roles import Role

# Every incident type, in the order forms and documentation list them.
INCIDENT_TYPES = ("student_password_reset", "parent_password_reset", "portal_link_failure",
                  "username_reminder", "access_revocation")  # fmt: skip
# Filed by the helpdesk itself when a parent's self-service recovery could not help them
# and they asked their child's school; no employee files one.
SELF_SERVICE_FAILED = "self_service_failed"
# A parent's request, from the public pages, to link their account to a child: the
# school approves (resolve) or rejects it.
LINK_REQUEST = "link_request"
ALL_TYPES = (*INCIDENT_TYPES, SELF_SERVICE_FAILED, LINK_REQUEST)


class Status(enum.StrEnum):
    NEW = "new"
    TRIAGED = "triaged"
    IN_PROGRESS = "in_progress"
    AWAITING_REPLY = "awaiting_reply"  # waiting for the parent or the school: SLA paused
    AWAITING_FULFILMENT = "awaiting_fulfilment"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


OPEN_STATUSES = frozenset(
    {Status.NEW, Status.TRIAGED, Status.IN_PROGRESS, Status.AWAITING_REPLY,
     Status.AWAITING_FULFILMENT}
)  # fmt: skip


class Action(enum.StrEnum):
    CLAIM = "claim"
    COMMENT = "comment"
    AWAIT_REPLY = "await_reply"
    RESUME = "resume"
    ESCALATE = "escalate"
    FULFIL = "fulfil"
    RESOLVE = "resolve"
    REJECT = "reject"
    CANCEL = "cancel"
    REOPEN = "reopen"


@dataclass(frozen=True)
class Move:
    sources: frozenset[Status]
    target: Status | None  # None: the status does not change (a comment)
    roles: frozenset[Role]


_STAFF = frozenset({Role.AGENT, Role.ADMIN})
_EVERYONE = frozenset(Role)
_WORKABLE = frozenset({Status.TRIAGED, Status.IN_PROGRESS})
_HELD = frozenset({Status.AWAITING_REPLY})

MOVES: dict[Action, Move] = {
    Action.CLAIM: Move(_WORKABLE, Status.IN_PROGRESS, _STAFF),
    Action.COMMENT: Move(frozenset(Status), None, _EVERYONE),
    Action.AWAIT_REPLY: Move(frozenset({Status.IN_PROGRESS}), Status.AWAITING_REPLY, _STAFF),
    Action.RESUME: Move(_HELD, Status.IN_PROGRESS, _STAFF),
    Action.ESCALATE: Move(_WORKABLE | _HELD, Status.TRIAGED, _STAFF),
    Action.FULFIL: Move(_WORKABLE, Status.AWAITING_FULFILMENT, _STAFF),
    Action.RESOLVE: Move(_WORKABLE | {Status.AWAITING_FULFILMENT}, Status.RESOLVED, _STAFF),
    Action.REJECT: Move(_WORKABLE | _HELD | {Status.NEW}, Status.REJECTED, _STAFF),
    Action.CANCEL: Move(_WORKABLE | _HELD | {Status.NEW}, Status.CANCELLED, _EVERYONE),
    Action.REOPEN: Move(frozenset({Status.RESOLVED}), Status.TRIAGED, _EVERYONE),
}

# Incident types whose resolution is a job run by a worker (reset, reminder, revocation).
FULFILLABLE_TYPES = frozenset(
    {"student_password_reset", "parent_password_reset", "username_reminder", "access_revocation"}
)


def allowed_actions(status: str, role: str, incident_type: str | None = None) -> list[str]:
    """The actions this role may take on an incident in this state, in a stable order."""
    return [
        action.value
        for action, move in MOVES.items()
        if status in move.sources
        and role in move.roles
        and (action is not Action.FULFIL or incident_type in FULFILLABLE_TYPES)
    ]


def target_status(action: Action, status: str) -> str:
    """The status after the action; the current one for an action that does not move it."""
    move = MOVES[action]
    return status if move.target is None else move.target.value


# Moves the service makes itself: routing places a new incident, and a resolved one
# closes after a quiet period (SPEC §4).
SYSTEM_MOVES: dict[str, tuple[Status, Status]] = {
    "route": (Status.NEW, Status.TRIAGED),
    "close": (Status.RESOLVED, Status.CLOSED),
}
