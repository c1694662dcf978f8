"""The WSGI entry point: ``gunicorn wsgi:app``."""

import gc

from helpdesk import create_app

app = create_app()

# The app, its caches and the libraries live as long as the server process: freeze them
# out of the collector's sight, so a full collection no longer walks them mid-request.
gc.freeze()
