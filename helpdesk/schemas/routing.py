"""Shapes of the routing-rule endpoints. Rule content is checked by the rule compiler."""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from ..domain.lifecycle import ALL_TYPES
from ..domain.rules import PRIORITIES
from ..models.routing import MAX_VERSION


class RulesIn(Schema):
    class Meta:
        unknown = RAISE

    rules = fields.List(fields.Dict(), required=True, metadata={"description": "the rule set"})
    note = fields.String(validate=validate.Length(max=500))


class RuleSetOut(Schema):
    version = fields.Integer(metadata={"description": "0 is the shipped default rule set"})
    rules = fields.List(fields.Dict())
    in_force_everywhere_at = fields.DateTime(
        dump_only=True,
        metadata={"description": "after a save or rollback: when every process routes with "
                  "it (at once in the one that saved it)"},
    )  # fmt: skip


class RuleSetVersionOut(Schema):
    version = fields.Integer(metadata={"description": "0: the shipped rules"})
    created_at = fields.DateTime(allow_none=True)
    created_by = fields.Function(lambda v: v.created_by_email)
    note = fields.String(allow_none=True)
    rule_count = fields.Function(lambda v: len(v.rules))


class RollbackIn(Schema):
    class Meta:
        unknown = RAISE

    version = fields.Integer(
        required=True, validate=validate.Range(min=0, max=MAX_VERSION),
        metadata={"description": "a saved version, or 0 for the shipped rules"},
    )  # fmt: skip


class ExampleIncident(Schema):
    """An incident to try the rules on: only what a rule can read."""

    class Meta:
        unknown = RAISE

    type = fields.String(required=True, validate=validate.OneOf(ALL_TYPES))
    event = fields.String(load_default="created", validate=validate.OneOf(("created", "updated")))
    changed = fields.List(fields.String(), load_default=list)
    school = fields.String(load_default="0000000")
    nation = fields.String(
        load_default="ENG", validate=validate.OneOf(("SCT", "ENG", "WLS", "NIR"))
    )
    verification = fields.String(
        load_default="passed", validate=validate.OneOf(("passed", "failed"))
    )
    checks = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    reasons = fields.List(fields.String(), load_default=list)
    details = fields.Dict(load_default=dict)
    filer_role = fields.String(load_default="employee")
    business_hours = fields.Boolean(load_default=True)
    priority = fields.String(validate=validate.OneOf(PRIORITIES), allow_none=True)
    tags = fields.List(fields.String(), load_default=list)


class DryRunIn(Schema):
    class Meta:
        unknown = RAISE

    incident = fields.Nested(ExampleIncident)
    ref = fields.String(metadata={"description": "or an existing incident, e.g. INC-000123"})
    rules = fields.List(fields.Dict(), metadata={"description": "unsaved rules to try instead"})

    @validates_schema
    def _one_incident(self, data: dict, **kwargs: object) -> None:
        if ("incident" in data) == ("ref" in data):
            message = "Give an example incident or the ref of an existing one."
            raise ValidationError({"incident": [message], "ref": [message]})


class OutcomeOut(Schema):
    version = fields.Integer(allow_none=True, metadata={"description": "None: unsaved rules"})
    matched = fields.List(fields.String())
    queue = fields.String(allow_none=True)
    priority = fields.String(allow_none=True)
    tags = fields.List(fields.String())
    notify = fields.List(fields.String())
    auto_fulfil = fields.Boolean()
    escalate_to = fields.String(allow_none=True)
    stopped_by = fields.String(allow_none=True)
