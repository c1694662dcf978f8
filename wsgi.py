"""The WSGI entry point in a checkout: ``gunicorn wsgi:app`` (helpdesk/wsgi.py)."""

from helpdesk.wsgi import app

__all__ = ["app"]
