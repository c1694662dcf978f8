"""Roster import endpoint (admins)."""

from __future__ import annotations

import zipfile
from typing import Any

from flask import g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from ..errors import InvalidInput
from ..models import Role
from ..roster.bundle import zip_opener
from ..services.roster import import_roster
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
        if not zipfile.is_zipfile(upload.stream):
            raise InvalidInput(
                "The bundle must be a zip of orgs.csv, users.csv, demographics.csv "
                "(and portal_accounts.csv).",
                code="malformed_bundle",
            )
        upload.stream.seek(0)
        with zipfile.ZipFile(upload.stream) as archive:
            report = import_roster(
                zip_opener(archive), source=upload.filename or "upload", actor_id=g.user.id
            )
        return report.to_dict()
