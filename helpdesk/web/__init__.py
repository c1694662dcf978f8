"""Server-rendered pages (GOV.UK Frontend), for employees, agents and admins, plus the
public reset page. Every page works without JavaScript; forms carry CSRF tokens."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, Response, jsonify, render_template, request, send_from_directory
from werkzeug.routing import IntegerConverter

from .. import PROJECT_ROOT
from ..errors import DomainError
from .filters import init_filters

# Pages a browser shows; the rest (the API, health checks, metrics) answer in JSON.
_MACHINE_PREFIXES = ("/api/", "/healthz", "/readyz", "/metrics")

_TITLES = {
    400: "The form could not be used",
    403: "You cannot open this page",
    404: "Page not found",
    405: "That cannot be done here",
    409: "That cannot be done now",
    413: "The file is too large",
    422: "There is a problem",
    429: "Too many tries",
}
_MESSAGES = {
    400: "The form was not sent from this site or it was open too long. Go back, reload "
    "the page and try again.",
    403: "Your role does not give you access to this page. Ask an admin if you need it.",
    404: "If you typed the address, check it is correct. You can only see incidents "
    "your role and school allow.",
    429: "Wait a minute and try again.",
}


def token_in_address(response: Response) -> Response:
    """For pages whose address holds a secret token (reset links, invitations): no Referer
    to other sites, no copy in any cache, no search engine."""
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def wants_html() -> bool:
    return not request.path.startswith(_MACHINE_PREFIXES)


def error_page(status: int, message: str | None = None) -> tuple[str, int]:
    title = _TITLES.get(status, "Sorry, there is a problem with the service")
    text = message or _MESSAGES.get(status, "Try again later.")
    return render_template("errors/page.html", title=title, message=text), status


def _security_headers(app: Flask) -> None:
    production = app.config["ENV"] == "production"

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
            "object-src 'none'",
        )
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        if production:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if wants_html() and response.mimetype == "text/html":
            headers.setdefault("Cache-Control", "no-store")  # pages show personal data
        return response


class RecordId(IntegerConverter):
    """``<id:user_id>``: a record id, so a number no id can be is a 404, not a database
    error (ids are 64-bit)."""

    def __init__(self, map: Any) -> None:
        super().__init__(map, min=1, max=2**63 - 1)


def init_web(app: Flask) -> None:
    from . import (
        access,
        admin_people,
        admin_portals,
        admin_queues,
        admin_roster,
        admin_rules,
        admin_sla,
        admin_users,
        auth,
        classes,
        dashboard,
        incidents,
        mailbox,
        pages,
        queue,
        recovery,
        report,
        reset,
        sso,
    )

    app.url_map.converters["id"] = RecordId
    admin = (admin_rules, admin_queues, admin_sla, admin_users, admin_roster, admin_portals,
             admin_people)  # fmt: skip
    for module in (auth, sso, pages, report, classes, incidents, queue, dashboard, reset, recovery,
                   *admin):  # fmt: skip
        app.register_blueprint(module.bp)
    sso.init_sso(app)
    if app.config["EMBEDDED"] and app.config["ENV"] == "development":
        app.register_blueprint(mailbox.bp)  # the demo's mail, never in production

    assets = os.path.join(PROJECT_ROOT, "static", "govuk", "assets")

    @app.get("/assets/<path:filename>", endpoint="assets")
    def _govuk_assets(filename: str) -> Any:
        # GOV.UK Frontend's stylesheet loads its fonts and images from /assets/.
        return send_from_directory(assets, filename, max_age=86400)

    app.context_processor(access.navigation)
    init_filters(app)
    _security_headers(app)

    @app.errorhandler(DomainError)
    def _domain_error(error: DomainError) -> Any:
        if wants_html():
            return (*error_page(error.status, error.message), error.headers)
        return jsonify(error.to_dict()), error.status, error.headers
