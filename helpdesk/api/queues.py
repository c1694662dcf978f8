"""Queue endpoints."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from ..services import queues
from .auth import authenticate

blp = Blueprint("queues", __name__, url_prefix="/api/v1/queues", description="ITS queues.")
blp.before_request(authenticate)


class QueueOut(Schema):
    slug = fields.String()
    name = fields.String()
    school = fields.String(allow_none=True)
    sla_plan = fields.String(allow_none=True)
    fulfils = fields.List(
        fields.String(), metadata={"description": "incident types this queue may fulfil"}
    )
    open = fields.Integer()
    breached = fields.Integer(metadata={"description": "open incidents past a deadline"})
    assign = fields.String(metadata={"description": "how new incidents get an assignee: none, "
                                     "round_robin or fewest_open"})  # fmt: skip


@blp.route("")
class Queues(MethodView):
    @blp.response(200, QueueOut(many=True))
    def get(self) -> Any:
        """Every active queue with its SLA plan and counts of open and breached incidents;
        an employee sees only their school's."""
        return queues.queue_summaries(g.user)
