"""Jinja filters for times, durations and sentences, as staff read them."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import Flask, current_app

from ..domain.moments import shown
from ..models import format_ref, utcnow


def when(value: datetime | None) -> str:
    """An instant in the service's display zone, like '1 Jul 2026 10:15 BST'."""
    if value is None:
        return "—"
    return shown(value, current_app.config["DISPLAY_TIMEZONE"])


def business_hours(value: timedelta) -> str:
    """Business time left, like '3 h 20 min left' or '1 h 5 min over'."""
    seconds = int(value.total_seconds())
    over = seconds < 0
    hours, rest = divmod(abs(seconds), 3600)
    minutes = rest // 60
    text = f"{hours} h {minutes} min" if hours else f"{minutes} min"
    return f"{text} over" if over else f"{text} left"


def age(value: datetime | None) -> str:
    """How long ago, as a desk says it: '5 min', '3 h', '2 days'."""
    if value is None:
        return "—"
    seconds = max(0, int((utcnow() - value).total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def sentence(text: str) -> str:
    """A phrase as a sentence: a capital first letter and one full stop, not a second
    mark after a question ('nickname?' stays 'Nickname?')."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".?!" else text + "."


def init_filters(app: Flask) -> None:
    app.add_template_filter(when)
    app.add_template_filter(sentence)
    app.add_template_filter(age)
    app.add_template_filter(business_hours)
    app.add_template_filter(format_ref, "incident_ref")
