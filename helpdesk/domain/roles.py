"""Who a user is to the helpdesk: the three staff roles (SPEC §1), and what an API token
of theirs may do."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    EMPLOYEE = "employee"  # school staff: files incidents for their own school
    AGENT = "agent"  # ITS support: works queues
    ADMIN = "admin"  # manages rules, queues, users and imports


# Not a staff role: the user the public self-service pages file incidents as (never signs
# in). Rules read it as ``filer.role``.
SELF_SERVICE = "self_service"


class TokenScope(enum.StrEnum):
    FULL = "full"  # whatever its user may do
    READ_ONLY = "read-only"  # it may look (GET), never file or change anything
    FILING = "filing"  # a school system's: it files for its employee's school, and looks

    @property
    def words(self) -> str:
        """As the admin page offers it."""
        return {
            TokenScope.FULL: "Whatever its user may do",
            TokenScope.READ_ONLY: "Read-only: it may look, never file or change anything",
            TokenScope.FILING: "Filing only: it files incidents for its user's school and "
            "reads them, nothing else",
        }[self]
