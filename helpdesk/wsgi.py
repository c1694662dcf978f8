"""The WSGI app for gunicorn, from a checkout or an installed package:
``gunicorn -c python:helpdesk.serving helpdesk.wsgi:app`` (wsgi.py at the checkout's top
is the same app)."""

import gc

from . import create_app

app = create_app()

# The app, its caches and the libraries live as long as the server process: freeze them
# out of the collector's sight, so a full collection no longer walks them mid-request.
gc.freeze()
