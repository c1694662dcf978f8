"""Server-rendered pages. So far: the public page a reset link opens (SPEC §6.2)."""

from __future__ import annotations

from flask import Flask


def init_web(app: Flask) -> None:
    from .reset import bp as reset_bp

    app.register_blueprint(reset_bp)
