"""The baseline: a bare Flask JSON endpoint, served by gunicorn exactly as the service is."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/api/v1/incidents")
def echo():  # type: ignore[no-untyped-def]
    return jsonify(request.get_json()), 201
