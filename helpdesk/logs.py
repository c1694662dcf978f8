"""Structured JSON logs carrying a request id; secrets are never passed to a logger."""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask, g, has_request_context, request

_HANDLER_NAME = "helpdesk-json"
# Reset links and staff invitations carry their token in the path; no log line may.
_RESET_TOKEN = re.compile(r"(/(?:reset|invite)/)[^\s/?#\"']+")
# Terminal colours (the development server colours its request lines): not in a log file.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def redact(text: str) -> str:
    return _RESET_TOKEN.sub(r"\1[redacted]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(_ANSI.sub("", record.getMessage())),
        }
        if has_request_context():
            entry["request_id"] = g.get("request_id")
            entry["path"] = redact(request.path)
        for key in ("incident", "event"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def init_logging(app: Flask) -> None:
    """Log JSON to stderr once per process, and tag each request with an id."""
    root = logging.getLogger()
    if not any(h.name == _HANDLER_NAME for h in root.handlers):
        handler = logging.StreamHandler()
        handler.name = _HANDLER_NAME
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
        root.setLevel(app.config.get("LOG_LEVEL", "INFO"))

    @app.before_request
    def _request_id() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming[:64] if incoming.isprintable() and incoming else uuid.uuid4().hex

    @app.after_request
    def _echo_request_id(response: Any) -> Any:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        return response
