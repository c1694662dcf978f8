"""Routing rule sets: saving versions, rolling back, dry runs, and routing an incident."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from flask import current_app

from ..app_state import TTLCache
from ..domain.moments import shown
from ..domain.rules import CompiledRuleSet, Outcome, RuleError, compile_rules, queues_named
from ..errors import InvalidInput, NotFound
from ..extensions import db
from ..models import Queue, RoutingRuleSet
from ..models.routing import MAX_VERSION
from . import sla
from .uow import unit_of_work

DEFAULT_RULES = Path(__file__).resolve().parent.parent / "default_rules.yaml"
# Where an incident goes when no rule routes it: a person on the service desk looks.
FALLBACK_QUEUE, FALLBACK_PRIORITY = "its-service-desk", "P3"


class InvalidRules(InvalidInput):
    code = "invalid_rules"


@dataclass(frozen=True)
class ActiveRules:
    version: int  # 0: the shipped defaults, never saved
    compiled: CompiledRuleSet


@cache
def default_rules() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = yaml.safe_load(DEFAULT_RULES.read_text(encoding="utf-8"))
    return data


def _load_rules(previous: ActiveRules | None) -> ActiveRules:
    """The rules in force: their version is read, and compiled again only when it moved."""
    version = db.session.execute(sa.select(sa.func.max(RoutingRuleSet.version))).scalar() or 0
    if previous is not None and previous.version == version:
        return previous
    return ActiveRules(version, compile_rules(_rules_of(version)))


# Between look-ups a filing reads no rule data at all; a saved rule set is in force at
# once in the process that saved it and within RULES_CACHE_SECONDS in every other
# (``in_force_everywhere_by`` says when).
_RULES: TTLCache[ActiveRules] = TTLCache("rules", _load_rules, "RULES_CACHE_SECONDS")


def in_force_everywhere_by(saved: RoutingRuleSet) -> datetime:
    """When every process routes with a version saved at ``saved.created_at``."""
    seconds = float(current_app.config["RULES_CACHE_SECONDS"])
    return saved.created_at + timedelta(seconds=seconds)


def when_in_force(saved: RoutingRuleSet) -> str:
    """The same, as the page and the CLI say it."""
    when = shown(in_force_everywhere_by(saved), current_app.config["DISPLAY_TIMEZONE"])
    seconds = float(current_app.config["RULES_CACHE_SECONDS"])
    return f"every process routes new incidents with it by {when} (within {seconds:g} s)"


def _rules_of(version: int) -> list[dict[str, Any]]:
    if version == 0:
        return default_rules()
    if not 0 < version <= MAX_VERSION:  # beyond the column: no such version, not an error
        raise NotFound(f"There is no rule-set version {version}.")
    rules = db.session.execute(
        sa.select(RoutingRuleSet.rules).where(RoutingRuleSet.version == version)
    ).scalar_one_or_none()
    if rules is None:
        raise NotFound(f"There is no rule-set version {version}.")
    return rules


def active_rules() -> ActiveRules:
    return _RULES.get()


def rule_set(version: int | None = None) -> tuple[int, list[dict[str, Any]]]:
    """A version's rules (the one in force when ``version`` is None)."""
    if version is None:
        version = active_rules().version
    return version, _rules_of(version)


SHIPPED_NOTE = "the rules the helpdesk ships with"


def versions() -> list[RoutingRuleSet]:
    """Every saved version, newest first, then version 0: the shipped rules, which can be
    rolled back to like any other (never stored, so never added to the session)."""
    saved = list(
        db.session.execute(
            sa.select(RoutingRuleSet).order_by(RoutingRuleSet.version.desc())
        ).scalars()
    )
    shipped = RoutingRuleSet(version=0, rules=default_rules(), note=SHIPPED_NOTE)
    return [*saved, shipped]


def check_rules(data: Any) -> CompiledRuleSet:
    """Compile rules and check the queues they name exist; InvalidRules says what is wrong."""
    try:
        compiled = compile_rules(data)
    except RuleError as error:
        raise InvalidRules(
            f"The rules were not saved: {error}", errors={"rules": {error.path: [error.message]}}
        ) from None
    named = queues_named(compiled.rules)
    known = set(
        db.session.execute(
            sa.select(Queue.slug).where(Queue.slug.in_(named), Queue.active.is_(True))
        ).scalars()
    )
    missing = sorted(named - known)
    if missing:
        raise InvalidRules(
            f"The rules were not saved: queue {missing[0]!r} does not exist. Create it first, "
            "or use $school_office for the filing school's office queue.",
            errors={"rules": {"queues": [f"unknown queue {m!r}" for m in missing]}},
        )
    return compiled


def save_rules(data: Any, *, actor_id: int | None, note: str | None = None) -> RoutingRuleSet:
    """Validate and store the rules as the next version, which is then the one in force."""
    with unit_of_work():
        compiled = check_rules(data)
        latest = db.session.execute(sa.select(sa.func.max(RoutingRuleSet.version))).scalar() or 0
        saved = RoutingRuleSet(
            version=latest + 1,
            rules=[rule.to_dict() for rule in compiled.rules],
            note=note,
            created_by_id=actor_id,
        )
        db.session.add(saved)
    _RULES.forget()
    return saved


def roll_back(version: int, *, actor_id: int | None) -> RoutingRuleSet:
    """Put an earlier version back in force, as a new version (history is never rewritten)."""
    _, rules = rule_set(version)
    return save_rules(rules, actor_id=actor_id, note=f"roll back to version {version}")


def incident_facts(
    *,
    kind: str,
    school_code: str,
    nation: str,
    filer_role: str,
    verification: str,
    field_results: dict[str, Any],
    reasons: list[str],
    details: dict[str, Any],
    business_hours: bool,
    status: str = "new",
    priority: str | None = None,
    queue: str | None = None,
    tags: list[str] | None = None,
    event: str = "created",
    changed: list[str] | None = None,
    assignee: str | None = None,
) -> dict[str, Any]:
    """The facts a rule's conditions read, in the shape ``rules.FIELDS`` documents."""
    return {
        "event": event,
        "changed": changed or [],
        "assignee": assignee,
        "type": kind,
        "school": school_code,
        "nation": nation,
        "priority": priority,
        "status": status,
        "queue": queue,
        "tags": tags or [],
        "verification": verification,
        "checks": {name: result["result"] for name, result in field_results.items()},
        "reasons": reasons,
        "details": details,
        "filer": {"role": filer_role},
        "received": {"business_hours": business_hours},
    }


def received_in_business_hours(school_id: int, at: datetime) -> bool:
    """Whether ``at`` falls in the school's own working hours (its calendar, closures)."""
    calendar = sla.settings().calendars.get(school_id)
    return calendar is not None and calendar.is_open(at)


def route(facts: dict[str, Any]) -> tuple[int, Outcome]:
    """Run the rules in force over an incident's facts: (version, what they decided)."""
    active = active_rules()
    return active.version, active.compiled.evaluate(facts)


def dry_run(facts: dict[str, Any], rules: Any = None) -> tuple[int | None, Outcome]:
    """What the rules in force (or the unsaved ``rules``) would decide; changes nothing."""
    if rules is None:
        return route(facts)
    return None, check_rules(rules).evaluate(facts)


def example_facts(example: dict[str, Any]) -> dict[str, Any]:
    """Facts for a dry run from an example incident (see ExampleIncident)."""
    return incident_facts(
        kind=example["type"], school_code=example["school"], nation=example["nation"],
        filer_role=example["filer_role"], verification=example["verification"],
        field_results={name: {"result": r} for name, r in example["checks"].items()},
        reasons=example["reasons"], details=example["details"],
        business_hours=example["business_hours"], priority=example.get("priority"),
        tags=example["tags"], event=example["event"], changed=example["changed"],
    )  # fmt: skip


def stored_incident_facts(
    incident: Any, *, event: str = "created", changed: list[str] | None = None
) -> dict[str, Any]:
    """Facts for an incident already filed (a dry run, or rules run on an update)."""
    results = incident.verification_results or {}
    return incident_facts(
        kind=incident.type, school_code=incident.school.code, nation=incident.school.nation,
        filer_role=incident.filer.role, verification=incident.verification,
        field_results=results.get("fields", {}), reasons=results.get("reasons", []),
        details=incident.details, status=incident.status,
        business_hours=received_in_business_hours(incident.school_id, incident.created_at),
        priority=incident.priority, queue=incident.queue_slug, tags=incident.tags,
        event=event, changed=changed, assignee=incident.assignee_email,
    )  # fmt: skip
