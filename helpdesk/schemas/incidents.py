"""One schema per incident type (SPEC §3), and the shapes the API returns."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from ..domain.lifecycle import ALL_TYPES, INCIDENT_TYPES, Action
from .fields import (
    ACCOUNT_NUMBER,
    MMYYYY,
    PHONE,
    PIN,
    POSTCODE,
    STUDENT_NUMBER,
    YEAR_STAGE,
    Text,
    UpperText,
)

REVOCATION_REASONS = (
    "court_order",
    "parental_responsibility_questioned",
    "policy_breach",
    "child_protection",
)


class IncidentIn(Schema):
    """Fields every incident type takes. Unknown fields are refused, recipients included."""

    class Meta:
        unknown = RAISE

    error_messages = {
        "unknown": "This form does not take this field. Results are only ever sent to the "
        "address on file, so no address or recipient can be given."
    }

    type = fields.String(required=True)
    school = Text(max_length=64, metadata={"description": "The filer's school code; optional."})
    summary = Text(max_length=200)
    notes = Text(max_length=5000)
    force = fields.Boolean(
        load_default=False,
        metadata={"description": "File although an incident of this type is already open "
                  "for the same person (answered 409 otherwise); needs force_reason."},
    )  # fmt: skip
    force_reason = Text(max_length=500, metadata={"description": "Why a second one is needed."})

    @validates_schema
    def _force_says_why(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("force") and not data.get("force_reason"):
            raise ValidationError({"force_reason": [
                "Say why this is filed although one is already open (kept in the audit trail)."
            ]})  # fmt: skip


class StudentPasswordResetIn(IncidentIn):
    student_id = Text(required=True, validate=STUDENT_NUMBER)
    student_name = Text(required=True)
    birth_month_year = Text(required=True, validate=MMYYYY)


class ParentPasswordResetIn(IncidentIn):
    parent_name = Text(required=True)
    contact_phone = Text(required=True, validate=PHONE)
    parent_pin = Text(required=True, validate=PIN, load_only=True)
    parent_account_number = Text(required=True, validate=ACCOUNT_NUMBER)
    student_id = Text(required=True, validate=STUDENT_NUMBER)


class PortalLinkFailureIn(IncidentIn):
    parent_given_name = Text(required=True)
    parent_family_name = Text(required=True)
    parent_postcode = Text(required=True, validate=POSTCODE)
    child_given_name = Text(required=True)
    child_family_name = Text(required=True)
    child_birth_date = fields.Date(
        required=True, error_messages={"invalid": "Use a date like 2015-04-30."}
    )
    child_year_stage = UpperText(required=True, validate=YEAR_STAGE)


class UsernameReminderIn(IncidentIn):
    parent_account_number = Text(validate=ACCOUNT_NUMBER)
    student_id = Text(validate=STUDENT_NUMBER)
    parent_name = Text(required=True)

    @validates_schema
    def _one_identifier(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data.get("parent_account_number") and not data.get("student_id"):
            message = "Give the parent's account number or the child's student number."
            raise ValidationError({"parent_account_number": [message], "student_id": [message]})


class AccessRevocationIn(IncidentIn):
    guardian_id = Text(max_length=255)
    parent_account_number = Text(validate=ACCOUNT_NUMBER)
    reason = fields.String(
        required=True,
        validate=validate.OneOf(
            REVOCATION_REASONS, error="Use one of: " + ", ".join(REVOCATION_REASONS) + "."
        ),
    )
    student_id = Text(
        validate=STUDENT_NUMBER,
        metadata={"description": "For child_protection: the child; default all their children."},
    )

    @validates_schema
    def _one_identifier(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data.get("guardian_id") and not data.get("parent_account_number"):
            message = "Give the guardian's record id or their parent account number."
            raise ValidationError({"guardian_id": [message], "parent_account_number": [message]})


INCIDENT_SCHEMAS: dict[str, type[IncidentIn]] = {
    "student_password_reset": StudentPasswordResetIn,
    "parent_password_reset": ParentPasswordResetIn,
    "portal_link_failure": PortalLinkFailureIn,
    "username_reminder": UsernameReminderIn,
    "access_revocation": AccessRevocationIn,
}


def schema_name(kind: str) -> str:
    """The OpenAPI component name of an incident type's schema: ParentPasswordReset."""
    return "".join(part.title() for part in kind.split("_"))


# Schemas keep no per-load state, so one instance per type serves every request.
_LOADERS = {kind: schema() for kind, schema in INCIDENT_SCHEMAS.items()}
# Fields that are checked and then forgotten: never stored, logged or returned.
SECRET_FIELDS = frozenset({"parent_pin"})


def load_incident(payload: Any) -> tuple[str, dict[str, Any]]:
    """Validate a request body against its type's schema; raise ValidationError listing all."""
    if not isinstance(payload, dict):
        raise ValidationError({"_schema": ["Send a JSON object with the incident's fields."]})
    kind = payload.get("type")
    if not isinstance(kind, str) or kind not in INCIDENT_SCHEMAS:
        message = (
            "Missing data for required field."
            if kind is None
            else "Use one of: " + ", ".join(INCIDENT_TYPES) + "."
        )
        raise ValidationError({"type": [message]})
    data = _LOADERS[kind].load(payload)
    data.pop("type")
    return kind, data


class FieldResultOut(Schema):
    result = fields.String(metadata={"description": "match, mismatch or not_found"})
    reason = fields.String(allow_none=True)


class VerificationOut(Schema):
    outcome = fields.String(metadata={"description": "passed or failed"})
    field_results = fields.Dict(
        keys=fields.String(), values=fields.Nested(FieldResultOut), data_key="fields"
    )
    reasons = fields.List(fields.String())


class IncidentOut(Schema):
    ref = fields.String()
    type = fields.String()
    status = fields.String()
    priority = fields.String(allow_none=True)
    school = fields.String(attribute="school_code")
    queue = fields.String(attribute="queue_slug", allow_none=True)
    assignee = fields.String(attribute="assignee_email", allow_none=True)
    filer = fields.String(attribute="filer_email")
    summary = fields.String(allow_none=True)
    notes = fields.String(allow_none=True)
    details = fields.Dict()
    tags = fields.List(fields.String())
    verification = fields.Nested(VerificationOut, attribute="verification_summary")
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    resolved_at = fields.DateTime(allow_none=True)
    response_due_at = fields.DateTime(allow_none=True)
    resolution_due_at = fields.DateTime(allow_none=True)


class FulfilmentOut(Schema):
    """Where the incident's reset, reminder or revocation has got to; never the secret."""

    kind = fields.String()
    state = fields.String(
        metadata={"description": "pending, credential_set, delivered, delivery_failed or "
                  "abandoned"}
    )  # fmt: skip
    mode = fields.String(allow_none=True)
    attempts = fields.Integer()
    reason = fields.String(attribute="last_error", allow_none=True)
    expires_at = fields.DateTime(attribute="secret_expires_at", allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)


class LinkOut(Schema):
    ref = fields.String()
    kind = fields.String(
        metadata={"description": "related; merged_into (this one was merged into ref); "
                  "merged_from (ref was merged into this one)"}
    )  # fmt: skip


class RecoveryAttemptOut(Schema):
    at = fields.DateTime()
    kind = fields.String(metadata={"description": "password, username, link or handover"})
    outcome = fields.String(
        metadata={"description": "matched, not_matched, already_open, limited or handed_over"}
    )


class IncidentDetailOut(IncidentOut):
    allowed_actions = fields.List(fields.String(), dump_only=True)
    fulfilment = fields.Nested(FulfilmentOut, allow_none=True, dump_only=True)
    links = fields.List(fields.Nested(LinkOut), dump_only=True)
    recovery_attempts = fields.List(
        fields.Nested(RecoveryAttemptOut), allow_none=True, dump_only=True,
        metadata={"description": "Filed from the self-service pages: the attempts that "
                  "pointed at the same parent up to it, newest first (never what was "
                  "typed); null for any other incident."},
    )  # fmt: skip
    merged_into = fields.String(attribute="merged_into_ref", allow_none=True, dump_only=True)


class LinkIn(Schema):
    class Meta:
        unknown = RAISE

    ref = Text(required=True, max_length=20, metadata={"description": "The other incident."})


class MergeIn(Schema):
    class Meta:
        unknown = RAISE

    into = Text(required=True, max_length=20,
                metadata={"description": "The incident that carries on."})  # fmt: skip
    message = Text(max_length=2000)


class IncidentPageOut(Schema):
    items = fields.List(fields.Nested(IncidentOut))
    next_cursor = fields.String(allow_none=True)


class IncidentQuery(Schema):
    class Meta:
        unknown = RAISE

    queue = fields.String()
    status = fields.String()
    school = fields.String()
    type = fields.String(validate=validate.OneOf(ALL_TYPES))
    assignee = fields.String(metadata={"description": "an email, or 'me'"})
    breached = fields.Boolean(metadata={"description": "past an SLA deadline (or not)"})
    q = fields.String(
        validate=validate.Length(min=2, max=100),
        metadata={"description": "text to find: a reference (INC-000123 or 123), or part of "
                  "the summary, notes, or a name or number that was typed, in any case"},
    )  # fmt: skip
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    cursor = fields.String()


class EventOut(Schema):
    at = fields.DateTime()
    actor = fields.Function(lambda e: e.actor.email if e.actor else "system")
    kind = fields.String()
    from_status = fields.String(allow_none=True)
    to_status = fields.String(allow_none=True)
    message = fields.String(allow_none=True)
    data = fields.Dict()


class TransitionIn(Schema):
    class Meta:
        unknown = RAISE

    action = fields.String(
        required=True,
        validate=validate.OneOf(
            [a.value for a in Action], error="Use one of: " + ", ".join(a.value for a in Action)
        ),
    )
    message = Text(max_length=5000, metadata={"description": "comment, or reason for the move"})
    queue = Text(max_length=64, metadata={"description": "target queue slug, for escalate"})
    assignee = Text(
        max_length=254,
        metadata={"description": "for claim: the email of the agent of the incident's queue "
                  "who takes it (default: you)"},
    )  # fmt: skip
