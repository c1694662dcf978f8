"""Business-time arithmetic: properties over many instants, and the cases people check by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpdesk.domain.business_time import BusinessCalendar, CalendarError

LONDON = ZoneInfo("Europe/London")
CALENDARS = {n: BusinessCalendar.for_nation(n) for n in ("ENG", "SCT", "WLS", "NIR")}
WORKING_DAY = timedelta(hours=8, minutes=30)

instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)
durations = st.timedeltas(min_value=timedelta(0), max_value=10 * WORKING_DAY)
nations = st.sampled_from(sorted(CALENDARS))


def local(year, month, day, hour=0, minute=0):
    return datetime(year, month, day, hour, minute, tzinfo=LONDON)


@settings(max_examples=300)
@given(nations, instants, durations)
def test_adding_then_measuring_gives_back_the_duration(nation, start, duration):
    calendar = CALENDARS[nation]
    assert calendar.between(start, calendar.add(start, duration)) == duration


@settings(max_examples=300)
@given(nations, instants, durations)
def test_a_deadline_never_falls_outside_working_hours(nation, start, duration):
    calendar = CALENDARS[nation]
    deadline = calendar.add(start, duration)
    assert calendar.is_open(deadline)
    assert deadline >= start


@settings(max_examples=200)
@given(nations, instants, instants)
def test_business_time_never_exceeds_wall_time_and_adds_up(nation, a, b):
    calendar = CALENDARS[nation]
    a, b = min(a, b), max(a, b)
    middle = a + (b - a) / 2
    assert calendar.between(a, b) <= b - a
    assert calendar.between(a, b) == calendar.between(a, middle) + calendar.between(middle, b)


@given(nations, st.integers(min_value=2025, max_value=2028))
def test_no_bank_holiday_or_weekend_is_ever_counted(nation, year):
    calendar = CALENDARS[nation]
    bank_holidays = holidays.country_holidays("GB", subdiv=nation, years=year)
    assert bank_holidays
    for day in bank_holidays:
        midnight = local(day.year, day.month, day.day)
        assert calendar.between(midnight, midnight + timedelta(hours=23)) == timedelta(0)
    saturday = date(year, 1, 1) + timedelta(days=(5 - date(year, 1, 1).weekday()) % 7)
    assert not calendar.is_working_day(saturday)
    assert not calendar.is_working_day(saturday + timedelta(days=1))


@given(instants, durations)
def test_a_closure_day_is_never_counted(start, duration):
    closed = BusinessCalendar.for_nation("SCT", closure_days=[start.date() + timedelta(days=1)])
    deadline = closed.add(start, duration)
    assert deadline.astimezone(LONDON).date() != start.date() + timedelta(days=1)


@pytest.mark.parametrize(
    ("nation", "filed", "clock_starts"),
    [
        # England: Late Summer Bank Holiday, Monday 31 August 2026.
        ("ENG", local(2026, 8, 28, 17, 0), local(2026, 9, 1, 8, 0)),
        # Scotland works that Monday, but not on its own Summer holiday, 3 August 2026.
        ("SCT", local(2026, 8, 28, 17, 0), local(2026, 8, 31, 8, 0)),
        ("SCT", local(2026, 7, 31, 17, 0), local(2026, 8, 4, 8, 0)),
        # Saint Andrew's Day (Monday 30 November 2026) is a holiday in Scotland only.
        ("SCT", local(2026, 11, 27, 16, 45), local(2026, 12, 1, 8, 0)),
        ("ENG", local(2026, 11, 27, 16, 45), local(2026, 11, 30, 8, 0)),
        # Saint Patrick's Day in Northern Ireland, Tuesday 17 March 2026.
        ("NIR", local(2026, 3, 16, 18, 0), local(2026, 3, 18, 8, 0)),
        # Filed in working hours: the clock starts at once.
        ("ENG", local(2026, 11, 23, 10, 15), local(2026, 11, 23, 10, 15)),
    ],
)
def test_the_clock_starts_at_the_next_working_moment(nation, filed, clock_starts):
    assert CALENDARS[nation].add(filed, timedelta(0)) == clock_starts.astimezone(UTC)


def test_five_working_days_for_a_link_failure():
    # Filed Thursday 10:00 in Scotland; five working days end the next Thursday 10:00.
    deadline = CALENDARS["SCT"].add(local(2026, 11, 19, 10), 5 * WORKING_DAY)
    assert deadline == local(2026, 11, 26, 10).astimezone(UTC)


@pytest.mark.parametrize(
    ("start", "minutes", "expected"),
    [
        # Clocks go forward on Sunday 29 March 2026: Friday 16:00 GMT + 1 h is Monday
        # 08:30 BST, which is 07:30 UTC.
        (local(2026, 3, 27, 16, 0), 60, datetime(2026, 3, 30, 7, 30, tzinfo=UTC)),
        # Clocks go back on Sunday 25 October 2026: Friday 16:00 BST + 1 h is Monday
        # 08:30 GMT, 08:30 UTC.
        (local(2026, 10, 23, 16, 0), 60, datetime(2026, 10, 26, 8, 30, tzinfo=UTC)),
    ],
)
def test_working_hours_follow_local_time_across_a_clock_change(start, minutes, expected):
    assert CALENDARS["ENG"].add(start, timedelta(minutes=minutes)) == expected
    assert CALENDARS["ENG"].between(start, expected) == timedelta(minutes=minutes)


def test_custom_hours_and_bad_calendars():
    late = BusinessCalendar(weekly_hours=((time(9), time(17)),) * 6 + (None,))
    assert late.add(local(2026, 11, 21, 16), timedelta(hours=2)) == local(
        2026, 11, 23, 10
    ).astimezone(UTC)  # Saturday 16:00 + 2 h = Monday 10:00
    with pytest.raises(CalendarError, match="one entry per weekday"):
        BusinessCalendar(weekly_hours=(None,) * 6)
    with pytest.raises(CalendarError, match="no working time"):
        BusinessCalendar(weekly_hours=(None,) * 7).add(local(2026, 1, 1), timedelta(0))
    with pytest.raises(CalendarError, match="nation"):
        BusinessCalendar.for_nation("FRA")
    with pytest.raises(ValueError, match="aware"):
        CALENDARS["ENG"].add(datetime(2026, 1, 1), timedelta(0))


def test_working_hours_are_read_from_a_short_description():
    from helpdesk.domain.business_time import format_weekly_hours, parse_weekly_hours

    hours = parse_weekly_hours("Mon-Thu 08:00-16:30, fri 08:00-15:00")
    assert hours[0] == (time(8), time(16, 30)) and hours[4] == (time(8), time(15))
    assert hours[5] is None and hours[6] is None
    assert format_weekly_hours(hours) == (
        "mon 08:00-16:30, tue 08:00-16:30, wed 08:00-16:30, thu 08:00-16:30, fri 08:00-15:00"
    )
    for bad in ("weekdays 9-5", "fri-mon 08:00-16:00", "mon 17:00-09:00", ""):
        with pytest.raises(CalendarError):
            parse_weekly_hours(bad)
