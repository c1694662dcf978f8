"""Regular expressions from routing rules, run by RE2 in time linear in the text.

Python's ``re`` backtracks, so a pattern like ``(a+)+$`` can hold a worker for minutes
on a few dozen characters; an admin's rule (or a dry-run anyone with the rules page can
send) must not be able to do that. RE2 refuses the few constructs that need
backtracking — back-references and look-arounds — with a message that says so.
"""

from __future__ import annotations

from typing import Any

import re2

MAX_PATTERN_LENGTH = 500

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is the admin's to fix, not a log line
_OPTIONS.max_mem = 8 << 20  # bytes for one compiled pattern: plenty for any rule


class PatternError(ValueError):
    """A pattern RE2 will not run; the message says why, for the admin."""


def compile_pattern(text: str) -> Any:
    """The compiled pattern (``.search(text)`` like ``re``), or PatternError."""
    if len(text) > MAX_PATTERN_LENGTH:
        raise PatternError(f"is longer than {MAX_PATTERN_LENGTH} characters")
    try:
        return re2.compile(text, options=_OPTIONS)
    except re2.error as error:
        reason = (
            error.args[0].decode()
            if error.args and isinstance(error.args[0], bytes)
            else str(error)
        )
        raise PatternError(
            f"cannot be used ({reason}); patterns run in linear time, so "
            "back-references such as \\1 and look-arounds such as (?=...) are not available"
        ) from None
