"""Instants as people read them: in their own time zone, with the zone named.

Everything is stored and computed in UTC; only what a person reads is local. A school's
families get the school's zone; pages and staff emails get the service's
``DISPLAY_TIMEZONE``. The zone's abbreviation (GMT, BST) is always shown, so a time copied
into a ticket or an email thread stays unambiguous.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class UnknownZone(ValueError):
    """The name is not an IANA time zone."""


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UnknownZone(
            f"{name!r} is not a time zone: use an IANA name such as Europe/London."
        ) from None


def shown(moment: datetime, zone_name: str) -> str:
    """Like '1 Jul 2026 10:15 BST' for 09:15 UTC in Europe/London."""
    return moment.astimezone(zone(zone_name)).strftime("%d %b %Y %H:%M %Z").lstrip("0")
