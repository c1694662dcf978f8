"""Admin pages: routing rules, queues and members, SLA plans and calendars, users and
API tokens, and roster imports. Each is a thin page over the service the API uses."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from marshmallow import ValidationError

from ..domain import rules_yaml
from ..domain.rules import ACTIONS, FIELDS, OPERATORS, PRIORITIES
from ..errors import DomainError, InvalidInput
from ..models import Role
from ..schemas.incidents import INCIDENT_TYPES
from ..schemas.routing import ExampleIncident
from ..services import queues as queue_service
from ..services import roster, routing, sign_in, sla, users
from .access import page_for
from .forms import FORMS

rules_bp = Blueprint("admin_rules", __name__, url_prefix="/admin/rules")
queues_bp = Blueprint("admin_queues", __name__, url_prefix="/admin/queues")
sla_bp = Blueprint("admin_sla", __name__, url_prefix="/admin/sla")
users_bp = Blueprint("admin_users", __name__, url_prefix="/admin/users")
roster_bp = Blueprint("admin_roster", __name__, url_prefix="/admin/roster")
blueprints = (rules_bp, queues_bp, sla_bp, users_bp, roster_bp)

admin_page = page_for(Role.ADMIN)


def _school_choices(schools: list[Any]) -> list[tuple[str, str]]:
    return [(school.code, school.name) for school in schools]


# --- Routing rules -------------------------------------------------------------------


@rules_bp.get("")
@admin_page
def index() -> Any:
    version, rules = routing.rule_set()
    return render_template(
        "admin/rules.html", version=version, text=rules_yaml.dump(rules),
        history=routing.versions(),
    )  # fmt: skip


def _rule_problems(text: str) -> tuple[list[Any] | None, list[rules_yaml.YamlProblem]]:
    """The parsed rules, or the problems with the text, each with its line."""
    try:
        data = rules_yaml.parse(text)
        routing.check_rules(data)
    except rules_yaml.RulesTextError as error:
        return None, [error.problem]
    except routing.InvalidRules as error:
        found = error.details.get("errors", {}).get("rules", {})
        problems = []
        for path, messages in found.items():
            for message in messages:
                if path == "queues":
                    slug = message.split("'")[1] if "'" in message else ""
                    line = rules_yaml.line_mentioning(text, slug)
                    problems.append(
                        rules_yaml.YamlProblem(line, f"{message}: create the queue first")
                    )
                else:
                    line = rules_yaml.line_of(text, path)
                    problems.append(rules_yaml.YamlProblem(line, f"{message} (at {path})"))
        return None, problems
    return data, []


def _example(form: Any, schools: list[Any]) -> dict[str, Any]:
    school = form.get("example_school") or ""
    nation = next((s.nation for s in schools if s.code == school), None)
    return ExampleIncident().load(
        {
            "type": form.get("example_type") or INCIDENT_TYPES[0],
            "school": school or "0000000",
            "nation": nation or "ENG",
            "verification": form.get("example_verification") or "passed",
            "business_hours": form.get("example_hours", "yes") == "yes",
        }
    )


@rules_bp.route("/edit", methods=["GET", "POST"])
@admin_page
def edit() -> Any:
    version, rules = routing.rule_set()
    text = rules_yaml.dump(rules)
    form: Any = {"note": ""}
    problems: list[rules_yaml.YamlProblem] = []
    outcome = None
    status = 200
    schools = roster.schools()
    if request.method == "POST":
        form = request.form
        text = form.get("rules", "")
        data, problems = _rule_problems(text)
        if problems:
            status = 422
        elif form.get("intent") == "save":
            saved = routing.save_rules(data, actor_id=g.user.id, note=form.get("note") or None)
            flash(f"Rules saved as version {saved.version}; they route new incidents now.")
            return redirect(url_for("admin_rules.index"))
        else:
            try:
                _, outcome = routing.dry_run(routing.example_facts(_example(form, schools)), data)
            except ValidationError as error:
                problems = [rules_yaml.YamlProblem(None, f"Example incident: {error.messages}")]
                status = 422
    return render_template(
        "admin/rules_edit.html", version=version, text=text, problems=problems,
        outcome=outcome, form=form, schools=_school_choices(schools),
        types=[(f.kind, f.title) for f in FORMS.values()],
        vocabulary={"fields": FIELDS, "operators": OPERATORS, "actions": ACTIONS},
    ), status  # fmt: skip


@rules_bp.post("/rollback")
@admin_page
def rollback() -> Any:
    try:
        version = int(request.form.get("version", ""))
        saved = routing.roll_back(version, actor_id=g.user.id)
    except (ValueError, DomainError) as error:
        flash(f"Nothing rolled back: {getattr(error, 'message', 'choose a version')}.")
        return redirect(url_for("admin_rules.index"))
    flash(f"Version {version} is back in force, saved as version {saved.version}.")
    return redirect(url_for("admin_rules.index"))


# --- Queues and members ----------------------------------------------------------------


def _queues_page(errors: dict[str, list[str]] | None = None, status: int = 200) -> Any:
    summaries = queue_service.queue_summaries()
    for summary in summaries:
        summary["members"] = queue_service.members(summary["slug"])
    return render_template("admin/queues.html", queues=summaries, errors=errors or {}), status


@queues_bp.get("")
@admin_page
def index_queues() -> Any:
    return _queues_page()


@queues_bp.post("/members")
@admin_page
def add_member() -> Any:
    slug, email = request.form.get("queue", ""), request.form.get("email", "").strip()
    try:
        if not email:
            raise InvalidInput("Enter the agent's email address.")
        queue_service.add_member(slug, email)
    except DomainError as error:
        return _queues_page({f"email-{slug}": [error.message]}, 422)
    flash(f"{email} now works {slug}.")
    return redirect(url_for("admin_queues.index_queues"))


@queues_bp.post("/members/remove")
@admin_page
def remove_member() -> Any:
    slug, email = request.form.get("queue", ""), request.form.get("email", "")
    try:
        handed_back = queue_service.remove_member(slug, email)
    except DomainError as error:
        return _queues_page({f"email-{slug}": [error.message]}, 422)
    back = f" {handed_back} of their incidents went back to the queue." if handed_back else ""
    flash(f"{email} no longer works {slug}.{back}")
    return redirect(url_for("admin_queues.index_queues"))


# --- SLA plans and calendars ---------------------------------------------------------


def _sla_page(errors: dict[str, list[str]] | None = None, status: int = 200) -> Any:
    schools, plans = roster.schools(), sla.plans()
    return render_template(
        "admin/sla.html", plans=plans, closures=sla.closures(),
        schools=_school_choices(schools),
        school_hours=[(s.code, s.name, s.working_hours) for s in schools],
        priorities=PRIORITIES, queue_options=queue_service.queue_choices(),
        plan_options=[(p.slug, p.name) for p in plans], errors=errors or {},
        form=request.form,
    ), status  # fmt: skip


@sla_bp.get("")
@admin_page
def index_sla() -> Any:
    return _sla_page()


@sla_bp.post("/closures")
@admin_page
def add_closure() -> Any:
    errors: dict[str, list[str]] = {}
    try:
        day = date.fromisoformat(request.form.get("day", "").strip())
    except ValueError:
        errors["day"] = ["Enter the date like 2026-12-24."]
    reason = request.form.get("reason", "").strip()
    if not reason:
        errors["reason"] = ["Say why the day is closed, like 'In-service day'."]
    if errors:
        return _sla_page(errors, 422)
    try:
        sla.add_closure(day, reason, request.form.get("school") or None)
    except DomainError as error:
        return _sla_page({"day": [error.message]}, 422)
    flash(f"{day:%d %B %Y} is closed: SLA clocks do not run that day.")
    return redirect(url_for("admin_sla.index_sla"))


@sla_bp.post("/plans/<slug>")
@admin_page
def save_plan(slug: str) -> Any:
    """Change a plan's targets (business minutes) and its warning point."""
    plan = next((p for p in sla.plans() if p.slug == slug), None)
    if plan is None:
        return _sla_page({"plan": [f"No plan {slug!r}."]}, 404)
    try:
        targets = {
            priority: {
                clock: int(request.form.get(f"{slug}-{priority}-{clock}", ""))
                for clock in ("response", "resolution")
            }
            for priority in PRIORITIES
        }
        warn_at = int(request.form.get(f"{slug}-warn", ""))
    except ValueError:
        return _sla_page({f"{slug}-targets": ["Enter every target as whole minutes."]}, 422)
    try:
        sla.save_plan(slug, plan.name, targets, warn_at)
    except DomainError as error:
        return _sla_page({f"{slug}-targets": [error.message]}, 422)
    flash(f"{plan.name}: targets saved; they apply to incidents placed from now.")
    return redirect(url_for("admin_sla.index_sla"))


@sla_bp.post("/hours")
@admin_page
def working_hours() -> Any:
    try:
        hours = sla.set_working_hours(request.form.get("school", ""), request.form.get("hours", ""))
    except DomainError as error:
        return _sla_page({"hours": [error.message]}, 422)
    flash(f"Working hours saved: {hours}.")
    return redirect(url_for("admin_sla.index_sla"))


@sla_bp.post("/queue-plan")
@admin_page
def queue_plan() -> Any:
    try:
        sla.set_queue_plan(request.form.get("queue", ""), request.form.get("plan", ""))
    except DomainError as error:
        return _sla_page({"plan": [error.message]}, 422)
    flash("The queue's SLA plan is changed; it applies to incidents placed from now.")
    return redirect(url_for("admin_sla.index_sla"))


# --- Users and API tokens ------------------------------------------------------------


def _invite_link(token: str) -> str:
    return url_for("auth.accept_invite", token=token, _external=True)


@users_bp.get("")
@admin_page
def index_users() -> Any:
    return render_template("admin/users.html", users=users.users(), errors={}, form={})


@users_bp.post("")
@admin_page
def create() -> Any:
    form = request.form
    email = form.get("email", "").strip()
    role = form.get("role", "")
    errors: dict[str, list[str]] = {}
    if not email or "@" not in email:
        errors["email"] = ["Enter an email address, like name@school.example."]
    if role not in {r.value for r in Role}:
        errors["role"] = ["Choose a role."]
    if not errors:
        try:
            user = users.create_user(
                email, role, staff_sourced_id=form.get("staff_id") or None,
                display_name=form.get("name") or None,
            )  # fmt: skip
        except DomainError as error:
            field = "staff_id" if error.code in {"unknown_staff", "staff_required"} else "email"
            errors[field] = [error.message]
        else:
            token, expires = sign_in.invite(user.email)
            return render_template(
                "admin/invite.html", user=user, link=_invite_link(token), expires=expires
            )
    status = 422 if errors else 200
    return render_template(
        "admin/users.html", users=users.users(), errors=errors, form=form
    ), status


@users_bp.get("/<id:user_id>")
@admin_page
def show(user_id: int) -> Any:
    user = users.user_by_id(user_id)
    return render_template("admin/user.html", user=user, tokens=users.tokens_of(user_id))


@users_bp.post("/<id:user_id>/invite")
@admin_page
def reinvite(user_id: int) -> Any:
    user = users.user_by_id(user_id)
    token, expires = sign_in.invite(user.email)
    return render_template(
        "admin/invite.html", user=user, link=_invite_link(token), expires=expires
    )


@users_bp.post("/<id:user_id>/active")
@admin_page
def set_active(user_id: int) -> Any:
    active = request.form.get("active") == "yes"
    try:
        user = users.set_active(user_id, active, by=g.user.id)
    except DomainError as error:
        flash(error.message)
        return redirect(url_for("admin_users.show", user_id=user_id))
    what = "active again" if active else "deactivated: they can no longer sign in or use the API"
    flash(f"{user.email} is {what}.")
    return redirect(url_for("admin_users.show", user_id=user_id))


@users_bp.post("/<id:user_id>/tokens")
@admin_page
def issue_token(user_id: int) -> Any:
    user = users.user_by_id(user_id)
    name = request.form.get("name", "").strip() or "api"
    token = users.issue_api_token(user.email, name[:100])
    return render_template(
        "admin/user.html", user=user, tokens=users.tokens_of(user_id), new_token=token
    )


@users_bp.post("/<id:user_id>/tokens/<id:token_id>/revoke")
@admin_page
def revoke(user_id: int, token_id: int) -> Any:
    token = users.revoke_token(user_id, token_id)
    flash(f"Token {token.prefix}… is revoked.")
    return redirect(url_for("admin_users.show", user_id=user_id))


# --- Roster import -------------------------------------------------------------------


@roster_bp.route("", methods=["GET", "POST"])
@admin_page
def index_roster() -> Any:
    errors: dict[str, list[str]] = {}
    problems: list[str] = []
    report = None
    if request.method == "POST":
        upload = request.files.get("bundle")
        if upload is None or not upload.filename:
            errors["bundle"] = ["Choose the roster bundle (a zip) to upload."]
        else:
            try:
                report = roster.import_zip(
                    upload.stream, filename=upload.filename, actor_id=g.user.id
                )
            except InvalidInput as error:
                errors["bundle"] = [error.message]
                problems = [str(p) for p in getattr(error, "problems", [])[:100]]
    staff_count = roster.staff_count()
    status = 422 if errors else 200
    return render_template(
        "admin/roster.html", errors=errors, problems=problems, report=report,
        staff_count=staff_count,
    ), status  # fmt: skip
