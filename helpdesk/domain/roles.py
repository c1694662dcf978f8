"""Who a user is to the helpdesk: the three staff roles (SPEC §1)."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    EMPLOYEE = "employee"  # school staff: files incidents for their own school
    AGENT = "agent"  # ITS support: works queues
    ADMIN = "admin"  # manages rules, queues, users and imports
