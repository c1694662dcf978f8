"""Roster import endpoint (admins)."""

from __future__ import annotations

from typing import Any

from flask import g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from ..models import Role
from ..services.roster import import_zip
from .auth import authenticate, require_role

blp = Blueprint(
    "roster_imports",
    __name__,
    url_prefix="/api/v1/roster-imports",
    description="Load the school information system's records.",
)
blp.before_request(authenticate)


class BundleUpload(Schema):
    bundle = fields.Raw(
        required=True,
        metadata={"type": "string", "format": "binary", "description": "the bundle as a zip"},
    )


class ImportReportOut(Schema):
    counts = fields.Dict()
    rejected = fields.List(fields.Dict())


@blp.route("")
class RosterImports(MethodView):
    @blp.arguments(BundleUpload, location="files")
    @blp.response(201, ImportReportOut)
    def post(self, files: dict[str, Any]) -> Any:
        """Import a OneRoster bundle (zip); all or nothing, with a report."""
        require_role(Role.ADMIN)
        upload = request.files["bundle"]
        return import_zip(upload.stream, filename=upload.filename, actor_id=g.user.id).to_dict()
