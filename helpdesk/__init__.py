"""portal-helpdesk: incidents for school portal support."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from flask import Flask

from .config import Config, ConfigError

__all__ = ["PROJECT_ROOT", "ConfigError", "create_app"]


def _resources() -> tuple[str, str]:
    """Where templates/, static/ and migrations/ are, and the default instance folder.

    In a checkout they sit beside the package, and instance/ too. Installed from the
    wheel they are under the installation's share/portal-helpdesk (setup.cfg's
    data_files), and the instance folder is ./instance in the working directory.
    """
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    marks = (os.path.join("templates", "base.html"), os.path.join("migrations", "env.py"))
    if all(os.path.isfile(os.path.join(checkout, mark)) for mark in marks):
        return checkout, os.path.join(checkout, "instance")
    return os.path.join(sys.prefix, "share", "portal-helpdesk"), os.path.abspath("instance")


PROJECT_ROOT, DEFAULT_INSTANCE = _resources()


def create_app(environ: Mapping[str, str] | None = None, **overrides: Any) -> Flask:
    """Build the app from the environment (or ``environ``); ``overrides`` win (tests use them)."""
    env = os.environ if environ is None else environ
    app = Flask(
        __name__,
        instance_path=os.path.abspath(env.get("HELPDESK_INSTANCE") or DEFAULT_INSTANCE),
        template_folder=os.path.join(PROJECT_ROOT, "templates"),
        # GOV.UK Frontend's built files are copied into static/govuk by `make install`.
        static_folder=os.path.join(PROJECT_ROOT, "static"),
    )
    config = Config.from_env(env, app.instance_path)
    app.config.from_mapping(config.as_flask_config())
    app.config.update(overrides)
    app.json.sort_keys = False  # type: ignore[attr-defined]

    from . import models  # noqa: F401 - registers the tables with the metadata
    from .api import init_api
    from .cli import register_commands
    from .extensions import csrf, db, limiter, mail, migrate, serialise_sqlite_writes
    from .logs import init_logging
    from .ops import bp as ops_bp
    from .ops import init_metrics
    from .web import init_web

    db.init_app(app)
    if app.config["EMBEDDED"]:
        with app.app_context():
            serialise_sqlite_writes(db.engine)  # creates no connection
    migrate.init_app(app, db, directory=os.path.join(PROJECT_ROOT, "migrations"))
    mail.init_app(app)
    limiter.init_app(app)
    csrf.init_app(app)  # every form on the pages; the API and ops are exempt
    init_logging(app)
    init_metrics(app)
    init_api(app)
    app.register_blueprint(ops_bp)
    csrf.exempt(ops_bp)
    init_web(app)
    register_commands(app)
    return app
