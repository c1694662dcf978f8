"""The REST API under /api/v1, documented as OpenAPI from the marshmallow schemas."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from flask import Flask, jsonify, request
from flask_smorest import Api
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from ..errors import InvalidInput
from ..extensions import csrf, db
from ..schemas.incidents import INCIDENT_SCHEMAS, schema_name


def _field_errors(messages: Any) -> dict[str, Any]:
    if isinstance(messages, dict):
        return messages
    return {"_schema": messages if isinstance(messages, list) else [str(messages)]}


def validation_body(messages: Any) -> dict[str, Any]:
    fields = _field_errors(messages)
    names = ", ".join(sorted(k for k in fields if k != "_schema")) or "the request body"
    return {
        "code": "validation_failed",
        "message": f"Nothing was stored. Fix these fields and send again: {names}.",
        "errors": {"fields": fields},
    }


_NUL = "Remove the NUL character (U+0000): text cannot hold it."


def refuse_nul_characters() -> None:
    """Refuse U+0000 wherever text arrives — path, query, form or JSON — naming the field.

    PostgreSQL cannot store it in text (the query fails) and no person types it, so it is
    refused before anything reads the request, for the API and the pages alike.
    """
    found = sorted({name for name, value in _texts() if "\x00" in value})
    if found:
        raise InvalidInput(
            "Nothing was stored. Remove the NUL character (U+0000), which text cannot hold, "
            f"from: {', '.join(found)}.",
            code="validation_failed", errors={"fields": {name: [_NUL] for name in found}},
        )  # fmt: skip


# Forms and JSON bodies up to this size are read here; a larger body (a roster upload) is
# read only by its view, after sign-in, and checks its own text.
_SCANNED_BODY_BYTES = 1024 * 1024


def _texts() -> Iterator[tuple[str, str]]:
    yield from ((name, str(value)) for name, value in (request.view_args or {}).items())
    yield from request.args.items(multi=True)
    for name, _ in request.args.items(multi=True):
        yield "query parameter names", name
    if (request.content_length or 0) > _SCANNED_BODY_BYTES:
        return
    if request.mimetype == "application/x-www-form-urlencoded":
        yield from request.form.items(multi=True)
    elif request.is_json:
        yield from _strings_in("body", request.get_json(silent=True))


def _strings_in(field: str, value: Any) -> Iterator[tuple[str, str]]:
    """Every string in a JSON value (keys included), under its top-level field's name."""
    if isinstance(value, str):
        yield field, value
    elif isinstance(value, list):
        for item in value:
            yield from _strings_in(field, item)
    elif isinstance(value, dict):
        for key, item in value.items():
            name = key if field == "body" else field
            yield name, key
            yield from _strings_in(name, item)


class HelpdeskApi(Api):
    """flask-smorest's Api with errors shaped as SPEC §7 asks: a stable code and a message."""

    def handle_http_exception(self, error: HTTPException) -> Any:
        from ..web import error_page, wants_html

        if wants_html():
            return error_page(error.code or 500)
        data = getattr(error, "data", None) or {}
        if error.code == 422 and "messages" in data:
            # webargs nests by location ({"json": {...}}); callers want the fields.
            located = data["messages"]
            merged: dict[str, Any] = {}
            for by_field in located.values():
                merged.update(_field_errors(by_field))
            return validation_body(merged), 422
        name = (error.name or "error").lower().replace(" ", "_")
        body = {"code": name, "message": data.get("message") or error.description}
        return body, error.code or 500, data.get("headers", {})


def init_api(app: Flask) -> None:
    from . import incidents, queues, roster_imports, routing_rules

    app.config.setdefault(
        "API_SPEC_OPTIONS",
        {
            "security": [{"bearerAuth": []}],
            "info": {"description": "Incidents for school portal support. See SPEC §7."},
        },
    )
    # One Api per app: flask-smorest keeps a single app and spec per instance.
    api = HelpdeskApi(app)
    app.extensions["helpdesk_api"] = api
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    for kind, schema in INCIDENT_SCHEMAS.items():
        api.spec.components.schema(schema_name(kind), schema=schema)
    for module in (incidents, queues, roster_imports, routing_rules):
        api.register_blueprint(module.blp)
        csrf.exempt(module.blp)  # bearer tokens, no cookies: nothing to forge

    app.before_request(refuse_nul_characters)

    @app.errorhandler(sa.exc.OperationalError)
    @app.errorhandler(sa.exc.InterfaceError)
    def _database_unavailable(error: sa.exc.DBAPIError) -> Any:
        # The transaction did not commit: say so, so the caller can safely send it again.
        db.session.rollback()
        app.logger.warning("database unavailable: %s", type(error.orig).__name__)
        body = {
            "code": "database_unavailable",
            "message": "The records database did not answer, so nothing was stored. "
            "Send the request again in a moment.",
        }
        return jsonify(body), 503, {"Retry-After": "2"}

    @app.errorhandler(ValidationError)
    def _validation_error(error: ValidationError) -> Any:
        return jsonify(validation_body(error.messages)), 422
