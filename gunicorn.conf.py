"""gunicorn reads this file from the directory it is started in: ``gunicorn wsgi:app``."""

from helpdesk.serving import child_exit, on_exit, on_starting

__all__ = ["child_exit", "on_exit", "on_starting"]
