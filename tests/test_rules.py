"""Routing rules: operators, nesting, order and stop, errors that point at the mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from helpdesk.domain.rules import (
    CompiledRuleSet,
    Rule,
    RuleError,
    compile_condition,
    compile_rules,
    queues_named,
)

DEFAULT_RULES = Path(__file__).parent.parent / "helpdesk" / "default_rules.yaml"

FACTS = {
    "type": "parent_password_reset",
    "school": "5231234",
    "nation": "SCT",
    "priority": "P3",
    "tags": ["vip"],
    "verification": "failed",
    "checks": {"parent_pin": "mismatch"},
    "details": {"student_id": "ASH240891", "child_year_stage": "P4", "count": 3},
    "filer": {"role": "employee"},
    "received": {"business_hours": False},
}


def leaf(field, op, value=None):
    node = {"field": field, "op": op}
    if op != "exists" or value is not None:
        node["value"] = value
    return node


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        (leaf("type", "eq", "parent_password_reset"), True),
        (leaf("type", "eq", "student_password_reset"), False),
        (leaf("type", "ne", "student_password_reset"), True),
        (leaf("nation", "in", ["SCT", "NIR"]), True),
        (leaf("nation", "in", ["ENG"]), False),
        (leaf("nation", "not_in", ["ENG", "WLS"]), True),
        (leaf("tags", "contains", "vip"), True),
        (leaf("tags", "contains", "other"), False),
        (leaf("details.student_id", "contains", "ASH"), True),
        (leaf("details.student_id", "matches", r"^ASH\d{6}$"), True),
        (leaf("details.student_id", "matches", r"^MIL"), False),
        (leaf("details.count", "lt", 5), True),
        (leaf("details.count", "gt", 5), False),
        (leaf("details.child_year_stage", "gt", 5), False),  # differently typed: never
        (leaf("details.child_year_stage", "exists"), True),
        (leaf("details.missing", "exists"), False),
        (leaf("details.missing", "exists", False), True),
        (leaf("details.missing", "eq", None), False),
        (leaf("details.missing", "not_in", ["x"]), True),
        (leaf("filer.role", "eq", "employee"), True),
        (leaf("received.business_hours", "eq", False), True),
        (leaf("checks.parent_pin", "eq", "mismatch"), True),
        (leaf("checks.student_id", "exists"), False),
    ],
)
def test_each_operator(node, expected):
    assert compile_condition(node)(FACTS) is expected


def test_all_and_any_nest():
    condition = {"all": [
        leaf("type", "eq", "parent_password_reset"),
        {"any": [leaf("nation", "eq", "ENG"), {"all": [leaf("nation", "eq", "SCT"),
                                                      leaf("priority", "in", ["P3"])]}]},
    ]}  # fmt: skip
    assert compile_condition(condition)(FACTS)
    assert not compile_condition({"any": [leaf("nation", "eq", "ENG")]})(FACTS)
    assert compile_condition({"all": []})(FACTS)
    assert not compile_condition({"any": []})(FACTS)


def rule(name, condition, *actions, stop=False):
    return {"name": name, "conditions": condition, "actions": list(actions), "stop": stop}


def test_rules_run_in_order_later_ones_override_and_stop_ends_the_run():
    rules = compile_rules([
        rule("everything to the desk", {"all": []}, {"route_to": "its-service-desk"},
             {"add_tag": "seen"}),
        rule("scots to identity", {"all": [leaf("nation", "eq", "SCT")]},
             {"route_to": "its-identity"}, {"set_priority": "P2"}, {"add_tag": "seen"},
             stop=True),
        rule("never reached", {"all": []}, {"route_to": "its-student-systems"}),
    ])  # fmt: skip
    outcome = rules.evaluate(FACTS)
    assert outcome.matched == ["everything to the desk", "scots to identity"]
    assert (outcome.queue, outcome.priority, outcome.tags) == ("its-identity", "P2", ["seen"])
    assert outcome.stopped_by == "scots to identity"
    assert rules.evaluate({**FACTS, "nation": "ENG"}).queue == "its-student-systems"


def test_a_disabled_rule_does_not_run_but_is_kept():
    rules = compile_rules([{**rule("off", {"all": []}, {"route_to": "x"}), "enabled": False}])
    assert rules.evaluate(FACTS).matched == []
    assert rules.rules[0].to_dict()["enabled"] is False


def test_the_school_office_placeholder():
    rules = compile_rules([rule("office", {"all": []}, {"route_to": "$school_office"})])
    assert rules.evaluate(FACTS).queue == "school-office-5231234"


@pytest.mark.parametrize(
    ("rules", "path", "says"),
    [
        ([rule("a", leaf("colour", "eq", "red"))], "rules[0].conditions.field", "'colour'"),
        ([rule("a", leaf("type", "like", "x"))], "rules[0].conditions.op", "'like'"),
        (
            [rule("a", {"all": [leaf("type", "in", "abc")]})],
            "rules[0].conditions.all[0].value",
            "list",
        ),
        ([rule("a", leaf("type", "matches", "("))], "rules[0].conditions.value", "regular"),
        (
            [rule("a", leaf("type", "eq", "x"), {"email": "x@y.example"})],
            "rules[0].actions[0]",
            "'email'",
        ),
        (
            [rule("a", {"all": []}, {"notify": "parent@mail.example"})],
            "rules[0].actions[0]",
            "never an address",
        ),
        ([rule("a", {"all": []}, {"set_priority": "P9"})], "rules[0].actions[0]", "P9"),
        ([rule("a", {"all": []}), rule("a", {"all": []})], "rules[1].name", "unique"),
        ([{"name": "a", "conditions": {"all": []}, "recipient": "x"}], "rules[0]", "recipient"),
        ([rule("a", {"all": [], "any": []})], "rules[0].conditions", "exactly one key"),
    ],
)
def test_a_bad_rule_is_refused_naming_where(rules, path, says):
    with pytest.raises(RuleError) as raised:
        compile_rules(rules)
    assert raised.value.path == path
    assert says in raised.value.message


def test_the_queues_a_rule_set_names():
    rules = compile_rules(yaml.safe_load(DEFAULT_RULES.read_text()))
    assert queues_named(rules.rules) == {"its-identity", "its-service-desk", "its-student-systems"}


DEFAULT_CASES = [
    # (facts, queue, priority, auto_fulfil) — the sample roster's families (tests/data/roster)
    ({"type": "student_password_reset", "verification": "passed"},
     "its-student-systems", "P3", True),
    ({"type": "student_password_reset", "verification": "failed"},
     "its-service-desk", "P3", False),
    ({"type": "parent_password_reset", "verification": "passed"},  # family 1, Fiona
     "its-service-desk", "P3", False),
    ({"type": "parent_password_reset", "verification": "failed"},  # family 4, Raj Kapoor
     "its-service-desk", "P3", False),
    ({"type": "portal_link_failure", "verification": "failed"},  # family 1, Alasdair
     "school-office-5231234", "P4", False),
    ({"type": "username_reminder", "verification": "passed"}, "its-service-desk", "P4", False),
    ({"type": "access_revocation", "verification": "passed"},  # family 5
     "its-identity", "P1", True),
    ({"type": "access_revocation", "verification": "failed"}, "its-identity", "P1", True),
]  # fmt: skip


@pytest.mark.parametrize(("facts", "queue", "priority", "auto"), DEFAULT_CASES)
def test_the_default_rules_follow_the_support_procedure(facts, queue, priority, auto):
    rules = compile_rules(yaml.safe_load(DEFAULT_RULES.read_text()))
    outcome = rules.evaluate({"school": "5231234", "event": "created", **facts})
    assert (outcome.queue, outcome.priority, outcome.auto_fulfil) == (queue, priority, auto)


def test_parent_resets_escalate_to_identity_by_default():
    rules = compile_rules(yaml.safe_load(DEFAULT_RULES.read_text()))
    outcome = rules.evaluate(
        {"event": "created", "type": "parent_password_reset", "verification": "passed"}
    )
    assert outcome.escalate_to == "its-identity"


def test_the_default_rules_place_new_incidents_only():
    rules = compile_rules(yaml.safe_load(DEFAULT_RULES.read_text()))
    update = {"event": "updated", "changed": ["status"], "type": "parent_password_reset",
              "verification": "passed"}  # fmt: skip
    assert rules.evaluate(update).matched == []
    assert rules.fields_read == {"event", "type", "verification", "filer"}  # filer.role


def test_rules_survive_export_and_reload():
    data = yaml.safe_load(DEFAULT_RULES.read_text())
    exported = [r.to_dict() for r in compile_rules(data).rules]
    assert exported == data


values = st.one_of(st.sampled_from(["a", "b", "c"]), st.integers(-3, 3), st.none())
leaves = st.builds(
    lambda f, op, v: {"field": f"details.{f}", "op": op, "value": v},
    st.sampled_from(["x", "y", "z"]),
    st.sampled_from(["eq", "ne", "lt", "gt"]),
    values,
)
trees = st.recursive(
    leaves, lambda kids: st.one_of(
        st.builds(lambda k: {"all": k}, st.lists(kids, max_size=3)),
        st.builds(lambda k: {"any": k}, st.lists(kids, max_size=3)),
    ), max_leaves=8,
)  # fmt: skip
facts = st.fixed_dictionaries({}, optional={k: values for k in ("x", "y", "z")})


def reference(node, details):
    """The plain reading of a condition, to check the compiled one against."""
    if "all" in node:
        return all(reference(c, details) for c in node["all"])
    if "any" in node:
        return any(reference(c, details) for c in node["any"])
    name = node["field"].split(".")[1]
    if name not in details:
        return node["op"] == "ne"  # a missing value equals nothing
    v, expected = details[name], node["value"]
    try:
        return {
            "eq": v == expected,
            "ne": v != expected,
            "lt": v < expected if node["op"] == "lt" else None,
            "gt": v > expected if node["op"] == "gt" else None,
        }[node["op"]]
    except TypeError:
        return False


@given(trees, facts)
def test_compiled_conditions_agree_with_the_plain_reading(tree, details):
    assert compile_condition(tree)({"details": details}) == reference(tree, details)


def test_rule_round_trips_as_a_dataclass():
    r = Rule.from_dict({"name": "n", "conditions": {"all": []}, "actions": [], "stop": True})
    assert CompiledRuleSet([r]).evaluate({}).stopped_by == "n"


@given(
    st.lists(trees, min_size=1, max_size=6), st.lists(st.booleans(), min_size=6, max_size=6), facts
)
def test_the_generated_rule_set_agrees_with_condition_by_condition(conditions, stops, details):
    rules = [rule(f"r{i}", c, stop=stops[i]) for i, c in enumerate(conditions)]
    expected = []
    for i, c in enumerate(conditions):
        if compile_condition(c)({"details": details}):
            expected.append(f"r{i}")
            if stops[i]:
                break
    assert compile_rules(rules).evaluate({"details": details}).matched == expected


def test_rule_text_is_never_executed():
    sneaky = "__import__('os').system('echo hacked')"
    rules = compile_rules([rule("quote's \\n", leaf("type", "eq", sneaky),
                                {"add_tag": sneaky})])  # fmt: skip
    assert rules.evaluate({"type": sneaky}).tags == [sneaky]
    assert rules.evaluate({"type": "other"}).matched == []


def test_rule_yaml_keeps_dates_as_text_and_names_a_value_it_cannot_build():
    from helpdesk.domain.rules_yaml import RulesTextError, parse

    # A date is text to the rules; '2026-02-30' made YAML's date constructor crash (a
    # 500 on the rules page, found by fuzzing the admin forms).
    assert parse("- name: term\n  value: 2026-02-30\n  other: 2026-09-01\n") == [
        {"name": "term", "value": "2026-02-30", "other": "2026-09-01"}
    ]
    with pytest.raises(RulesTextError, match=r"day is out of range for month \(YAML value\)"):
        parse("- when: !!timestamp 2026-02-30\n")
