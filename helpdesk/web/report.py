"""'Report a problem': an employee chooses the incident type, then fills in its form."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from marshmallow import ValidationError

from ..errors import Conflict
from ..models import Role
from ..request_input import keeps_the_form, unstorable_fields
from ..services import filing, incidents, subject_access
from ..services.verification_limits import VerificationLimited
from .access import page_for
from .forms import FORMS, form_values, friendly_errors, payload_from

bp = Blueprint("report", __name__, url_prefix="/report")


@bp.get("")
@page_for(Role.EMPLOYEE)
def choose_type() -> Any:
    errors: dict[str, list[str]] = {}
    chosen = request.args.get("type")
    if chosen in FORMS:
        return redirect(url_for("report.form", kind=chosen))
    if "type" in request.args or "chosen" in request.args:
        errors["type"] = ["Choose what the problem is."]
    status = 422 if errors else 200
    options = [(f.kind, f.title, f.description) for f in FORMS.values()]
    return render_template("pages/report_type.html", options=options, errors=errors), status


@bp.route("/<kind>", methods=["GET", "POST"])
@keeps_the_form
@page_for(Role.EMPLOYEE)
def form(kind: str) -> Any:
    incident_form = FORMS.get(kind)
    if incident_form is None:
        return redirect(url_for("report.choose_type"))
    errors: dict[str, list[str]] = {}
    values: dict[str, str] = {}
    status = 0
    # An unfinished incident for the same person, as filing answered (kept on a re-post).
    already_open = request.form.get("already_open") or None
    if request.method == "GET" and request.args.get("again"):
        # "File it again": the form holds what was typed last time, read on the server
        # from the incident (never carried in the address), for the employee to correct.
        earlier = incidents.get_incident(g.user, request.args["again"])
        if earlier.type == kind:
            subject_access.log_reads(g.user, [earlier], via="page")
            typed = {**earlier.details, "summary": earlier.summary, "notes": earlier.notes}
            values = form_values(incident_form, typed)
    if request.method == "POST":
        values = {name: value for name, value in request.form.items() if name != "csrf_token"}
        errors = dict(unstorable_fields())
    if request.method == "POST" and not errors:
        try:
            filed = filing.file_incident(g.user, _payload(incident_form))
        except Conflict as error:
            if error.code != "already_open":
                raise
            already_open, status = error.details["open"], error.status
        except ValidationError as error:
            messages = error.messages if isinstance(error.messages, dict) else {}
            errors = friendly_errors(incident_form, messages)
            if "force_reason" in errors:
                errors["force_reason"] = ["Say why a second one is needed."]
        except VerificationLimited as error:
            # Kept on the form, with what was typed, beside the first detail of the record.
            errors = {incident_form.fields[0].name: [error.message]}
            status = error.status
        else:
            if filed.verification == "failed":
                flash(f"{filed.ref} is filed, but the details did not match the school's "
                      "records, so nothing will be reset or sent. Check the details below "
                      "with the person, then file it again.", "important")  # fmt: skip
            else:
                flash(f"{filed.ref} is filed.", "success")
            return redirect(url_for("incident_pages.show", ref=filed.ref))
    values.pop("parent_pin", None)  # a PIN is never sent back to the browser
    status = status or (422 if errors else 200)
    return render_template(
        "pages/report_form.html", form=incident_form, values=values, errors=errors,
        already_open=already_open,
    ), status  # fmt: skip


def _payload(incident_form: Any) -> dict[str, Any]:
    """What was typed, as the API takes it; "file a second one anyway" adds force."""
    payload = payload_from(incident_form, request.form)
    if request.form.get("force") == "yes":
        payload["force"] = True
        reason = (request.form.get("force_reason") or "").strip()
        if reason:  # left out when empty: the schema then says what to write
            payload["force_reason"] = reason
    return payload
