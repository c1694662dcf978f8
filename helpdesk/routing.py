"""Where a newly filed incident goes first.

This is the support procedure of SPEC §5 as a fixed table: failed checks go to the
service desk for a person to look at; otherwise each type has its team and priority.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import school_office_slug


@dataclass(frozen=True)
class Placement:
    queue_slug: str
    priority: str
    reason: str


_BY_TYPE = {
    "student_password_reset": ("its-student-systems", "P3"),
    "parent_password_reset": ("its-service-desk", "P3"),
    "username_reminder": ("its-service-desk", "P4"),
    "access_revocation": ("its-identity", "P1"),
}


def initial_placement(incident_type: str, verified: bool, school_code: str) -> Placement:
    """The queue and priority a new incident starts in."""
    if incident_type == "access_revocation":
        # Safeguarding does not wait for a tidy record: always straight to identity.
        return Placement("its-identity", "P1", "access revocations go to identity at P1")
    if incident_type == "portal_link_failure":
        # A link failure is a mismatch by nature: the school office corrects the record.
        return Placement(
            school_office_slug(school_code), "P4", "link failures go to the school office"
        )
    if not verified:
        return Placement("its-service-desk", "P3", "verification failed: a person checks it")
    slug, priority = _BY_TYPE[incident_type]
    return Placement(slug, priority, f"{incident_type.replace('_', ' ')} goes to {slug}")
