"""Class endpoints: a teacher's classes, and a class reset (one student password reset
per student, in one call)."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from ..schemas.incidents import IncidentDetailOut
from ..services import class_reset
from .auth import authenticate

blp = Blueprint(
    "classes", __name__, url_prefix="/api/v1/classes",
    description="A teacher's classes from the roster, and resetting their students.",
)  # fmt: skip
blp.before_request(authenticate)


class ClassOut(Schema):
    id = fields.String(attribute="sourced_id", metadata={"description": "the roster sourcedId"})
    title = fields.String()
    class_code = fields.String(allow_none=True)
    students = fields.Integer(metadata={"description": "students enrolled now"})


class StudentOut(Schema):
    id = fields.String(attribute="sourced_id")
    name = fields.String(attribute="full_name")
    student_number = fields.String()


class ClassDetailOut(Schema):
    id = fields.String()
    title = fields.String()
    students = fields.List(fields.Nested(StudentOut))


class ClassResetIn(Schema):
    class Meta:
        unknown = RAISE

    students = fields.List(
        fields.String(validate=validate.Length(1, 255)),
        validate=validate.Length(1, class_reset.MAX_CLASS),
        metadata={"description": "the students' roster ids; or send all: true"},
    )
    all = fields.Boolean(load_default=False, metadata={"description": "every student"})

    @validates_schema
    def _one_of(self, data: dict[str, Any], **kwargs: Any) -> None:
        if bool(data.get("students")) == bool(data.get("all")):
            raise ValidationError("Send either students (a list of ids) or all: true.",
                                  "students")  # fmt: skip


class AlreadyOpenOut(Schema):
    ref = fields.String(metadata={"description": "the student's open reset, carrying on"})
    student = fields.String(attribute="name")


class ClassResetOut(Schema):
    incidents = fields.List(fields.Nested(IncidentDetailOut))
    already_open = fields.List(
        fields.Nested(AlreadyOpenOut),
        metadata={"description": "chosen students left out: a reset is already open for each"},
    )


@blp.route("")
class Classes(MethodView):
    @blp.response(200, ClassOut(many=True))
    def get(self) -> Any:
        """The classes you teach (an active teacher enrolment), with their sizes."""
        return class_reset.classes_taught(g.user)


@blp.route("/<class_id>")
class ClassById(MethodView):
    @blp.response(200, ClassDetailOut)
    def get(self, class_id: str) -> Any:
        """One of your classes and its students; another's is a 404."""
        taught, students = class_reset.class_of(g.user, class_id)
        return {"id": taught.sourced_id, "title": taught.title, "students": students}


@blp.route("/<class_id>/resets")
class ClassResets(MethodView):
    @blp.arguments(ClassResetIn)
    @blp.response(201, ClassResetOut)
    def post(self, body: dict[str, Any], class_id: str) -> Any:
        """Reset the portal passwords of some or all of a class's students: one incident
        each, filled in and verified from the roster, all in one commit or none."""
        chosen = None if body.get("all") else body["students"]
        done = class_reset.reset_class(g.user, class_id, chosen)
        return {"incidents": done.filed, "already_open": done.already_open}
