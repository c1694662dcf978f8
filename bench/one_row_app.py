"""Calibration: one marshmallow load and one inserted row per request, nothing else.

The issue that set the throughput target measured this shape at about 15% of a bare
endpoint with SQLAlchemy's defaults and 25% without expire-on-commit; running it in the
same harness shows whether the harness agrees.
"""

import os

import sqlalchemy as sa
from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from marshmallow import Schema, fields

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
db = SQLAlchemy(app, session_options={"expire_on_commit": False})


class Row(db.Model):  # type: ignore[name-defined]
    __tablename__ = "bench_one_row"
    id = sa.Column(sa.BigInteger, primary_key=True)
    body = sa.Column(sa.JSON, nullable=False)


class Body(Schema):
    type = fields.String(required=True)
    student_id = fields.String(required=True)
    student_name = fields.String(required=True)
    birth_month_year = fields.String(required=True)
    force = fields.Boolean(load_default=False)  # the body the service is sent, as it is
    force_reason = fields.String()


with app.app_context():
    db.create_all()


@app.post("/api/v1/incidents")
def one_row():  # type: ignore[no-untyped-def]
    row = Row(body=Body().load(request.get_json()))
    db.session.add(row)
    db.session.commit()
    return jsonify({"id": row.id, **row.body}), 201
