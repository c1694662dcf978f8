"""Routing-rule evaluation: 1,000 rules against one incident, 10,000 incidents against the
default rules, compiled once per version versus interpreting the rule data per incident.

    python -m bench.routing
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path
from typing import Any

import yaml

from helpdesk.domain.rules import compile_rules

DEFAULT_RULES = Path(__file__).resolve().parent.parent / "helpdesk" / "default_rules.yaml"
TYPES = ["student_password_reset", "parent_password_reset", "portal_link_failure",
         "username_reminder", "access_revocation"]  # fmt: skip


def generated_rules(count: int, rng: random.Random) -> list[dict[str, Any]]:
    """Rules of two to four conditions each, of every operator, as an admin might write."""

    def condition() -> dict[str, Any]:
        choice = rng.randrange(6)
        if choice == 0:
            return {"field": "type", "op": "eq", "value": rng.choice(TYPES)}
        if choice == 1:
            return {
                "field": "school",
                "op": "in",
                "value": [str(6000000 + rng.randrange(60)) for _ in range(5)],
            }
        if choice == 2:
            return {
                "field": "details.child_year_stage",
                "op": "matches",
                "value": f"^[PS]{rng.randint(1, 7)}$",
            }
        if choice == 3:
            return {"field": "checks.student_id", "op": "ne", "value": "match"}
        if choice == 4:
            return {"field": "tags", "op": "contains", "value": f"tag-{rng.randrange(50)}"}
        return {"field": "priority", "op": "not_in", "value": ["P1", "P2"]}

    return [
        {"name": f"rule {i}",
         "conditions": {"all" if rng.random() < 0.7 else "any":
                        [condition() for _ in range(rng.randint(2, 4))]},
         "actions": [{"add_tag": f"tag-{rng.randrange(50)}"}]}
        for i in range(count)
    ]  # fmt: skip


def incident(rng: random.Random) -> dict[str, Any]:
    return {
        "type": rng.choice(TYPES), "school": str(6000000 + rng.randrange(60)),
        "nation": rng.choice(["SCT", "ENG", "WLS", "NIR"]), "priority": "P3", "tags": [],
        "verification": rng.choice(["passed", "failed"]),
        "details": {"child_year_stage": f"P{rng.randint(1, 7)}"},
        "filer": {"role": "employee"}, "received": {"business_hours": rng.random() < 0.7},
    }  # fmt: skip


def interpret(rules: list[dict[str, Any]], facts: dict[str, Any]) -> list[str]:
    """The naive way: walk the rule data for every incident, compiling nothing."""

    def value_of(path: str) -> Any:
        value: Any = facts
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def holds(node: dict[str, Any]) -> bool:
        if "all" in node:
            return all(holds(c) for c in node["all"])
        if "any" in node:
            return any(holds(c) for c in node["any"])
        v, op, expected = value_of(node["field"]), node["op"], node.get("value")
        if op == "eq":
            return bool(v == expected)
        if op == "ne":
            return bool(v != expected)
        if op == "in":
            return v in expected
        if op == "not_in":
            return v not in expected
        if op == "contains":
            return v is not None and expected in v
        if op == "matches":
            return isinstance(v, str) and re.search(expected, v) is not None
        return False

    return [r["name"] for r in rules if holds(r["conditions"])]


def per_incident_us(run: Any, incidents: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    for facts in incidents:
        run(facts)
    return (time.perf_counter() - started) / len(incidents) * 1e6


def main() -> None:
    rng = random.Random(11)
    big = generated_rules(1000, rng)
    started = time.perf_counter()
    compiled_big = compile_rules(big)
    compile_ms = (time.perf_counter() - started) * 1000
    sample = [incident(rng) for _ in range(2000)]
    compiled = per_incident_us(compiled_big.evaluate, sample)
    interpreted = per_incident_us(lambda f: interpret(big, f), sample)
    print(f"1,000 rules, compiled once in {compile_ms:.0f} ms:")
    print(f"  compiled:    {compiled:8.1f} µs per incident  (target: under 1,000 µs)")
    print(f"  interpreted: {interpreted:8.1f} µs per incident  "
          f"({interpreted / compiled:.1f}x the compiled time)")  # fmt: skip
    defaults = compile_rules(yaml.safe_load(DEFAULT_RULES.read_text()))
    many = [incident(rng) for _ in range(10_000)]
    print(f"10,000 incidents against the default rules: "
          f"{per_incident_us(defaults.evaluate, many):.1f} µs per incident")  # fmt: skip


if __name__ == "__main__":
    main()
