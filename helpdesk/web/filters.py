"""Jinja filters for times and durations, as staff read them."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Flask


def when(value: datetime | None) -> str:
    """A UTC instant, like '23 Nov 2026 09:15 UTC'."""
    if value is None:
        return "—"
    return value.strftime("%d %b %Y %H:%M UTC").lstrip("0")


def business_hours(value: timedelta) -> str:
    """Business time left, like '3 h 20 min left' or '1 h 5 min over'."""
    seconds = int(value.total_seconds())
    over = seconds < 0
    hours, rest = divmod(abs(seconds), 3600)
    minutes = rest // 60
    text = f"{hours} h {minutes} min" if hours else f"{minutes} min"
    return f"{text} over" if over else f"{text} left"


def init_filters(app: Flask) -> None:
    app.add_template_filter(when)
    app.add_template_filter(business_hours)
