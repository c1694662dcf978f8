"""Incident endpoints: file, list, read, audit trail, transitions."""

from __future__ import annotations

from typing import Any

from flask import g, request
from flask.views import MethodView
from flask_smorest import Blueprint

from ..schemas.incidents import (
    INCIDENT_SCHEMAS,
    EventOut,
    IncidentDetailOut,
    IncidentPageOut,
    IncidentQuery,
    LinkIn,
    MergeIn,
    TransitionIn,
    schema_name,
)
from ..services import filing, incidents, links, subject_access, transitions
from .auth import authenticate

blp = Blueprint(
    "incidents",
    __name__,
    url_prefix="/api/v1/incidents",
    description="File incidents and move them through their lifecycle.",
)
blp.before_request(authenticate)

_ONE_OF_TYPES = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {"$ref": "#/components/schemas/" + schema_name(k)} for k in INCIDENT_SCHEMAS
                ],
                "discriminator": {"propertyName": "type"},
            }
        }
    },
}


@blp.route("")
class Incidents(MethodView):
    @blp.doc(requestBody=_ONE_OF_TYPES)
    @blp.response(201, IncidentDetailOut)
    def post(self) -> Any:
        """File an incident; the filer and school come from the token."""
        return filing.file_incident(g.user, request.get_json(silent=True))

    @blp.arguments(IncidentQuery, location="query", as_kwargs=False)
    @blp.response(200, IncidentPageOut)
    def get(self, query: dict[str, Any]) -> Any:
        """List the incidents you can see, newest first (cursor pagination)."""
        items, next_cursor = incidents.list_incidents(g.user, query)
        subject_access.log_reads(g.user, items, via="api")  # each carries its details
        return {"items": items, "next_cursor": next_cursor}


@blp.route("/<ref>")
class IncidentByRef(MethodView):
    @blp.response(200, IncidentDetailOut)
    def get(self, ref: str) -> Any:
        """One incident, with the actions you may take on it now."""
        incident = incidents.get_incident(g.user, ref)
        subject_access.log_reads(g.user, [incident], via="api")
        return incidents.view_for(g.user, incident)


@blp.route("/<ref>/events")
class IncidentEvents(MethodView):
    @blp.response(200, EventOut(many=True))
    def get(self, ref: str) -> Any:
        """The incident's audit trail, oldest first."""
        return incidents.incident_events(g.user, ref)


@blp.route("/<ref>/transitions")
class IncidentTransitions(MethodView):
    @blp.arguments(TransitionIn)
    @blp.response(200, IncidentDetailOut)
    def post(self, body: dict[str, Any], ref: str) -> Any:
        """Claim (or assign), comment, escalate, fulfil, resolve, reject, cancel or reopen."""
        incident = transitions.transition(
            g.user, ref, body["action"], body.get("message"), body.get("queue"),
            assignee=body.get("assignee"),
        )  # fmt: skip
        return incidents.view_for(g.user, incident)


@blp.route("/<ref>/links")
class IncidentLinks(MethodView):
    @blp.arguments(LinkIn)
    @blp.response(201, IncidentDetailOut)
    def post(self, body: dict[str, Any], ref: str) -> Any:
        """Link another incident about the same request (agents and admins)."""
        return incidents.view_for(g.user, links.link(g.user, ref, body["ref"]))


@blp.route("/<ref>/merge")
class IncidentMerge(MethodView):
    @blp.arguments(MergeIn)
    @blp.response(200, IncidentDetailOut)
    def post(self, body: dict[str, Any], ref: str) -> Any:
        """Close this incident as a duplicate of ``into``, which carries on (agents, admins)."""
        merged = links.merge(g.user, ref, body["into"], body.get("message"))
        return incidents.view_for(g.user, merged)
