"""Admin: the routing rules — the set in force, editing with a dry run, rolling back; a
thin page over the service the API uses."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from marshmallow import ValidationError

from ..domain import rules_yaml
from ..domain.rules import ACTIONS, FIELDS, OPERATORS
from ..errors import DomainError
from ..models import Role
from ..schemas.incidents import INCIDENT_TYPES
from ..schemas.routing import ExampleIncident
from ..services import roster, routing
from .access import page_for
from .confirm import confirm_first
from .forms import FORMS

bp = Blueprint("admin_rules", __name__, url_prefix="/admin/rules")
admin_page = page_for(Role.ADMIN)


def _school_choices(schools: list[Any]) -> list[tuple[str, str]]:
    return [(school.code, school.name) for school in schools]


@bp.get("")
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


@bp.route("/edit", methods=["GET", "POST"])
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
            flash(f"Rules saved as version {saved.version}; {routing.when_in_force(saved)}.")
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


@bp.post("/rollback")
@admin_page
def rollback() -> Any:
    asked = confirm_first(
        f"Roll back to version {request.form.get('version', '')}?",
        "Its rules are saved as a new version and route every new incident from then on; "
        "the rules in force now stay in the history.",
        "Yes, roll back", url_for("admin_rules.index"),
    )  # fmt: skip
    if asked is not None:
        return asked
    try:
        version = int(request.form.get("version", ""))
        saved = routing.roll_back(version, actor_id=g.user.id)
    except (ValueError, DomainError) as error:
        flash(f"Nothing rolled back: {getattr(error, 'message', 'choose a version')}.",
              "important")  # fmt: skip
        return redirect(url_for("admin_rules.index"))
    in_force = routing.when_in_force(saved)
    flash(f"Version {version} is back, saved as version {saved.version}; {in_force}.")
    return redirect(url_for("admin_rules.index"))
