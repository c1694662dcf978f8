"""Refuse, before any view reads it, request input that no view could store or parse.

PostgreSQL cannot hold U+0000 or a lone UTF-16 surrogate in text, Python's JSON parser
gives up (RecursionError) on arrays nested a few thousand deep, and no column holds an
integer beyond 64 bits. Each is refused here with a clear 4xx naming the field, for the
API and the pages alike, so no handler meets one half-way through a transaction.

A page whose view is marked ``@keeps_the_form`` is not refused: its form fields arrive
with the unstorable characters taken out and the view shows the form again, with
``unstorable_fields()`` as errors on the fields that held them and everything else kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from flask import current_app, g, request
from werkzeug.datastructures import ImmutableMultiDict

from .errors import DomainError, InvalidInput

# Forms and JSON bodies up to this size are read here; a larger form (a roster upload)
# is read only by its view, after sign-in, and checks its own text. A JSON body larger
# than this is refused: no request the API takes needs one.
SCANNED_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32
_INT64 = 2**63


class UnreadableBody(DomainError):
    """A request body that cannot be read as what it says it is (HTTP 400, or 413)."""

    code = "unreadable_body"
    status = 400


_NUL = "Remove the NUL character (U+0000): text cannot hold it."
_SURROGATE = "Remove the unpaired UTF-16 surrogate (\\ud800-\\udfff): text cannot hold it."
_TOO_BIG = f"Use a whole number between -{_INT64} and {_INT64 - 1}."


_View = TypeVar("_View", bound=Callable[..., Any])
_ON_A_PAGE = (
    "This answer held a character that cannot be stored (an invisible NUL or a broken "
    "one), now taken out. Check the answer and send the form again."
)


def keeps_the_form(view: _View) -> _View:
    """Mark a page's view as showing its form again when a field cannot be stored."""
    view.keeps_the_form = True  # type: ignore[attr-defined]
    return view


def unstorable_fields() -> dict[str, list[str]]:
    """For a ``@keeps_the_form`` view: the form fields that held what cannot be stored."""
    found: dict[str, list[str]] = g.get("unstorable_fields", {})
    return found


def refuse_unstorable_input() -> None:
    """The before-request check: path, query, form and JSON body, each string and number."""
    problems: dict[str, list[str]] = {}
    for name, value in _values(_json_body()):
        if isinstance(value, str):
            found = [_NUL] if "\x00" in value else []
            if not value.isascii() and _has_surrogate(value):
                found.append(_SURROGATE)
        else:
            found = [] if -_INT64 <= value < _INT64 else [_TOO_BIG]
        listed = problems.setdefault(name, []) if found else []
        listed.extend(message for message in found if message not in listed)
    if problems and _kept_on_the_form(problems):
        return
    if problems:
        said = "; ".join(f"{name}: {' '.join(found)}" for name, found in sorted(problems.items()))
        raise InvalidInput(
            f"Nothing was stored. {said}",
            code="validation_failed", errors={"fields": problems},
        )  # fmt: skip


def _kept_on_the_form(problems: dict[str, list[str]]) -> bool:
    """When the view keeps its form and only form fields are at fault: take the characters
    out of those fields and let the view say so on each (nothing is stored by it then)."""
    view = current_app.view_functions.get(request.endpoint or "")
    if not getattr(view, "keeps_the_form", False) or request.mimetype != (
        "application/x-www-form-urlencoded"
    ):
        return False
    if not set(problems) <= set(request.form):
        return False  # the address itself: no form to show it on
    cleaned = [(name, _storable(value)) for name, value in request.form.items(multi=True)]
    request.form = ImmutableMultiDict(cleaned)
    g.unstorable_fields = {name: [_ON_A_PAGE] for name in problems}
    return True


def _storable(text: str) -> str:
    text = text.replace("\x00", "")
    return text.encode("utf-8", "ignore").decode("utf-8") if not text.isascii() else text


def _has_surrogate(text: str) -> bool:
    """A lone UTF-16 surrogate: the one thing a str holds that UTF-8 cannot encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _json_body() -> Any:
    """The JSON body parsed, or None; refuses one too deep, too large or not JSON."""
    if not request.is_json or not (
        request.content_length or request.headers.get("Transfer-Encoding")
    ):
        return None
    if (request.content_length or 0) > SCANNED_BODY_BYTES:
        raise UnreadableBody(
            f"Nothing was stored. A JSON body may be at most {SCANNED_BODY_BYTES // 1024} KiB.",
            code="body_too_large",
        )
    raw = request.get_data(cache=True)
    if not raw:
        return None
    try:
        parsed = json.loads(raw)
    except RecursionError:
        parsed = _TOO_DEEP
    except ValueError as error:
        raise UnreadableBody(
            f"Nothing was stored. The body is not JSON that can be read ({error}).",
        ) from None
    if parsed is _TOO_DEEP or _depth(parsed) > MAX_JSON_DEPTH:
        raise UnreadableBody(
            f"Nothing was stored. The JSON is nested more than {MAX_JSON_DEPTH} levels "
            "deep; no request needs that many.",
            code="json_too_deep",
        )
    return parsed


_TOO_DEEP = object()


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in a parsed JSON value (no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def _values(parsed: Any) -> Iterator[tuple[str, Any]]:
    """Every string (and JSON integer) of the request, under the name a caller would fix."""
    yield from ((name, str(value)) for name, value in (request.view_args or {}).items())
    yield from request.args.items(multi=True)
    for name, _ in request.args.items(multi=True):
        yield "query parameter names", name
    if (request.content_length or 0) > SCANNED_BODY_BYTES:
        return
    if request.mimetype == "application/x-www-form-urlencoded":
        yield from request.form.items(multi=True)
    elif parsed is not None:
        yield from _leaves("body", parsed)


def _leaves(field: str, value: Any) -> Iterator[tuple[str, Any]]:
    """Every string and integer in a JSON value (keys included), under its top-level
    field's name."""
    stack = [(field, value)]
    while stack:
        name, item = stack.pop()
        if isinstance(item, str) or (isinstance(item, int) and not isinstance(item, bool)):
            yield name, item
        elif isinstance(item, list):
            stack.extend((name, child) for child in item)
        elif isinstance(item, dict):
            for key, child in item.items():
                under = key if name == "body" else name
                yield under, key
                stack.append((under, child))
