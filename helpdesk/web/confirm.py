"""Confirmation before a destructive action, without JavaScript (GOV.UK's pattern: a page
that says what will happen, with a button to go ahead and a link back).

A view calls ``confirm_first(...)`` at the top of its POST: it returns the confirmation
page until the form comes back with ``confirmed=yes``, and None then.
"""

from __future__ import annotations

from typing import Any

from flask import render_template, request


def confirm_first(title: str, consequence: str, go_ahead: str, back: str) -> Any | None:
    """The confirmation page for this POST, or None when it is the confirmed one."""
    if request.form.get("confirmed") == "yes":
        return None
    fields = [(k, v) for k, v in request.form.items(multi=True) if k not in ("csrf_token",)]
    return render_template(
        "pages/confirm.html", title=title, consequence=consequence, go_ahead=go_ahead,
        back=back, action=request.path, fields=fields,
    )  # fmt: skip
