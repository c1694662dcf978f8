"""Business-time arithmetic for SLA clocks (SPEC §5).

A ``BusinessCalendar`` knows a school's working hours in its own time zone, the UK bank
holidays of its nation (from the ``holidays`` package) and configured closure days. It
adds business time to an instant and measures the business time between two instants;
both answer in aware UTC datetimes. The helpdesk does not work evenings, weekends or
holidays, so a clock started on Friday at 17:00 before a bank-holiday Monday starts on
Tuesday at 08:00.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays

# The ``holidays`` package's subdivisions of the United Kingdom.
NATION_SUBDIVISIONS = {"ENG": "ENG", "SCT": "SCT", "WLS": "WLS", "NIR": "NIR"}
DEFAULT_HOURS = (time(8, 0), time(16, 30))
# How far ahead a deadline may be looked for before the calendar is declared unworkable.
_MAX_DAYS = 3 * 366


class CalendarError(ValueError):
    """The calendar cannot answer: it has no working time within reach."""


@dataclass(frozen=True)
class BusinessCalendar:
    """Working hours per weekday (Monday first; None means closed) in ``timezone``."""

    timezone: str = "Europe/London"
    weekly_hours: tuple[tuple[time, time] | None, ...] = (DEFAULT_HOURS,) * 5 + (None, None)
    nation: str | None = None
    closure_days: frozenset[date] = frozenset()
    _holidays: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.weekly_hours) != 7:
            raise CalendarError("weekly_hours needs one entry per weekday, Monday first")
        for hours in self.weekly_hours:
            if hours is not None and not hours[0] < hours[1]:
                raise CalendarError(f"working hours {hours[0]}-{hours[1]} end before they start")
        if self.nation is not None:
            if self.nation not in NATION_SUBDIVISIONS:
                raise CalendarError(f"nation {self.nation!r} is not one of SCT, ENG, WLS, NIR")
            bank = holidays.country_holidays("GB", subdiv=NATION_SUBDIVISIONS[self.nation])
            object.__setattr__(self, "_holidays", bank)
        object.__setattr__(self, "_zone", ZoneInfo(self.timezone))

    @classmethod
    def for_nation(
        cls,
        nation: str,
        closure_days: Iterable[date] = (),
        timezone: str = "Europe/London",
        weekly_hours: tuple[tuple[time, time] | None, ...] | None = None,
    ) -> BusinessCalendar:
        """A nation's bank holidays on the given hours (default Mon-Fri 08:00-16:30)."""
        return cls(
            timezone=timezone, nation=nation, closure_days=frozenset(closure_days),
            weekly_hours=weekly_hours or cls.weekly_hours,
        )  # fmt: skip

    # -- days -----------------------------------------------------------------------

    def is_working_day(self, day: date) -> bool:
        if self.weekly_hours[day.weekday()] is None or day in self.closure_days:
            return False
        return not (self._holidays is not None and day in self._holidays)

    def _window(self, day: date) -> tuple[datetime, datetime] | None:
        """The day's working window as aware local datetimes, or None when closed."""
        if not self.is_working_day(day):
            return None
        hours = self.weekly_hours[day.weekday()]
        assert hours is not None
        zone = self._zone  # type: ignore[attr-defined]
        return (
            datetime.combine(day, hours[0], tzinfo=zone),
            datetime.combine(day, hours[1], tzinfo=zone),
        )

    def _windows_from(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        for offset in range(_MAX_DAYS):
            window = self._window(day + timedelta(days=offset))
            if window is not None:
                yield window
        raise CalendarError(f"no working time within {_MAX_DAYS} days of {day}")

    def _local(self, at: datetime) -> datetime:
        if at.tzinfo is None:
            raise ValueError("business time needs an aware datetime")
        return at.astimezone(self._zone)  # type: ignore[attr-defined]

    # -- instants -------------------------------------------------------------------

    def is_open(self, at: datetime) -> bool:
        """True when ``at`` falls within working hours (the closing minute included)."""
        local = self._local(at)
        window = self._window(local.date())
        return window is not None and window[0] <= local <= window[1]

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant ``duration`` of business time after ``start`` (UTC).

        A zero duration gives the next moment the clock runs: ``start`` itself in working
        hours, otherwise the next opening.
        """
        if duration < timedelta(0):
            raise ValueError("business time runs forwards only")
        local = self._local(start)
        remaining = duration
        for opens, closes in self._windows_from(local.date()):
            if closes < local or (closes == local and remaining > timedelta(0)):
                continue
            begin = max(opens, local)
            # Wall-clock arithmetic is safe inside a window: no working day spans a change
            # of UTC offset (they happen at 01:00 and 02:00).
            available = closes.replace(tzinfo=None) - begin.replace(tzinfo=None)
            if remaining <= available:
                end = begin.replace(tzinfo=None) + remaining
                return end.replace(tzinfo=begin.tzinfo).astimezone(UTC)
            remaining -= available
        raise CalendarError("unreachable")  # _windows_from raises first

    def between(self, start: datetime, end: datetime) -> timedelta:
        """The business time from ``start`` to ``end`` (zero when ``end`` is not later)."""
        local_start, local_end = self._local(start), self._local(end)
        if local_end <= local_start:
            return timedelta(0)
        total = timedelta(0)
        day = local_start.date()
        while day <= local_end.date():
            window = self._window(day)
            if window is not None:
                begin, finish = max(window[0], local_start), min(window[1], local_end)
                if finish > begin:
                    total += finish.replace(tzinfo=None) - begin.replace(tzinfo=None)
            day += timedelta(days=1)
        return total


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_weekly_hours(spec: str) -> tuple[tuple[time, time] | None, ...]:
    """Read working hours like ``"mon-thu 08:00-16:30, fri 08:00-15:00"``; unnamed days close."""
    hours: list[tuple[time, time] | None] = [None] * 7
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        try:
            days, span = part.split()
            first, _, last = days.lower().partition("-")
            start, end = (time.fromisoformat(t) for t in span.split("-"))
            lo, hi = _DAYS.index(first), _DAYS.index(last or first)
        except ValueError:
            raise CalendarError(
                f"{part!r}: write days and hours like 'mon-fri 08:00-16:30'"
            ) from None
        if not start < end or hi < lo:
            raise CalendarError(f"{part!r}: the days and hours must run forwards")
        for day in range(lo, hi + 1):
            hours[day] = (start, end)
    if not any(hours):
        raise CalendarError("a calendar needs working hours on at least one day")
    return tuple(hours)


def format_weekly_hours(hours: tuple[tuple[time, time] | None, ...]) -> str:
    return ", ".join(
        f"{_DAYS[i]} {h[0]:%H:%M}-{h[1]:%H:%M}" for i, h in enumerate(hours) if h is not None
    )
