"""Routing-rule endpoints: read, save a version, roll back, and dry-run (admins)."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from ..models import Role
from ..schemas.routing import (
    DryRunIn,
    OutcomeOut,
    RollbackIn,
    RuleSetOut,
    RuleSetVersionOut,
    RulesIn,
)
from ..services import routing
from ..services.incidents import get_incident
from .auth import authenticate, require_role

blp = Blueprint(
    "routing_rules", __name__, url_prefix="/api/v1/routing-rules",
    description="The ordered, versioned rules that route incidents to queues.",
)  # fmt: skip
blp.before_request(authenticate)


@blp.route("")
class RoutingRules(MethodView):
    @blp.response(200, RuleSetOut)
    def get(self) -> Any:
        """The rules in force (version 0 is the shipped default set)."""
        require_role(Role.ADMIN, Role.AGENT)
        version, rules = routing.rule_set()
        return {"version": version, "rules": rules}

    @blp.arguments(RulesIn)
    @blp.response(200, RuleSetOut)
    def put(self, body: dict[str, Any]) -> Any:
        """Save the rules as a new version, which is in force from then on."""
        require_role(Role.ADMIN)
        saved = routing.save_rules(body["rules"], actor_id=g.user.id, note=body.get("note"))
        return _saved(saved)


def _saved(saved: Any) -> dict[str, Any]:
    return {"version": saved.version, "rules": saved.rules,
            "in_force_everywhere_at": routing.in_force_everywhere_by(saved)}  # fmt: skip


@blp.route("/versions")
class RoutingRuleVersions(MethodView):
    @blp.response(200, RuleSetVersionOut(many=True))
    def get(self) -> Any:
        """Every saved version, newest first."""
        require_role(Role.ADMIN, Role.AGENT)
        return routing.versions()


@blp.route("/rollback")
class RoutingRuleRollback(MethodView):
    @blp.arguments(RollbackIn)
    @blp.response(200, RuleSetOut)
    def post(self, body: dict[str, Any]) -> Any:
        """Put an earlier version back in force, saved as a new version."""
        require_role(Role.ADMIN)
        saved = routing.roll_back(body["version"], actor_id=g.user.id)
        return _saved(saved)


@blp.route("/dry-run")
class RoutingRuleDryRun(MethodView):
    @blp.arguments(DryRunIn)
    @blp.response(200, OutcomeOut)
    def post(self, body: dict[str, Any]) -> Any:
        """What the rules (in force, or the unsaved ones given) would decide; changes nothing."""
        require_role(Role.ADMIN, Role.AGENT)
        if "ref" in body:
            facts = routing.stored_incident_facts(get_incident(g.user, body["ref"]))
        else:
            facts = routing.example_facts(body["incident"])
        version, outcome = routing.dry_run(facts, body.get("rules"))
        return {"version": version, **outcome.to_dict()}
