"""The REST API under /api/v1, documented as OpenAPI from the marshmallow schemas."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask, jsonify
from flask_smorest import Api
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from ..extensions import csrf, db
from ..request_input import refuse_unstorable_input
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
    from . import classes, incidents, queues, roster_imports, routing_rules

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
    for module in (incidents, classes, queues, roster_imports, routing_rules):
        api.register_blueprint(module.blp)
        csrf.exempt(module.blp)  # bearer tokens, no cookies: nothing to forge

    app.before_request(refuse_unstorable_input)

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
