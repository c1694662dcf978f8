"""The baseline: a bare Flask JSON endpoint, served by gunicorn exactly as the service is."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/api/v1/incidents")
def echo():  # type: ignore[no-untyped-def]
    return jsonify(request.get_json()), 201


@app.get("/page")
def page():  # type: ignore[no-untyped-def]
    """The baseline for the pages: a small HTML page, no database, no session."""
    return "<!DOCTYPE html><html lang=en><title>bare</title><h1>Queue</h1></html>"
