"""The data model; importing this package registers every table on the metadata."""

from .fulfilment import (
    ClassReset,
    ClassResetState,
    DeliveryMode,
    Fulfilment,
    FulfilmentKind,
    FulfilmentState,
    Notification,
    OutboxEntry,
    PasswordHistory,
    PortalPolicy,
)
from .imports import RosterImport
from .incidents import Incident, IncidentEvent, IncidentLink, format_ref, parse_ref
from .queues import Queue, queue_members, school_office_slug
from .records import (
    NATIONS,
    Enrollment,
    Guardian,
    GuardianStudent,
    PortalAccount,
    School,
    SchoolClass,
    Staff,
    Student,
)
from .routing import RoutingRuleSet
from .self_service import SELF_SERVICE_EMAIL, RecoveryAttempt
from .sla import ClosureDay, SlaPlan
from .types import utcnow
from .users import AccessEntry, ApiToken, RecoveryCode, Role, User

__all__ = [
    "NATIONS",
    "SELF_SERVICE_EMAIL",
    "AccessEntry",
    "ApiToken",
    "ClassReset",
    "ClassResetState",
    "ClosureDay",
    "DeliveryMode",
    "Enrollment",
    "Fulfilment",
    "FulfilmentKind",
    "FulfilmentState",
    "Guardian",
    "GuardianStudent",
    "Incident",
    "IncidentEvent",
    "IncidentLink",
    "Notification",
    "OutboxEntry",
    "PasswordHistory",
    "PortalAccount",
    "PortalPolicy",
    "Queue",
    "RecoveryAttempt",
    "RecoveryCode",
    "Role",
    "RosterImport",
    "RoutingRuleSet",
    "School",
    "SchoolClass",
    "SlaPlan",
    "Staff",
    "Student",
    "User",
    "format_ref",
    "parse_ref",
    "queue_members",
    "school_office_slug",
    "utcnow",
]
