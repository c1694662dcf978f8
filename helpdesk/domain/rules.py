"""Routing rules (SPEC §5): ordered, named conditions and actions, compiled once per version.

A rule is data — ``{"name", "conditions", "actions", "stop"}`` — usually written in YAML.
Conditions nest ``all`` / ``any`` groups around leaves ``{"field", "op", "value"}``;
fields are dotted paths into an incident's facts (``type``, ``school``,
``checks.student_id``, ``details.child_year_stage`` …). ``compile_rules``
turns a list of rules into closures once, so evaluating an incident never re-reads the
rule data.

Actions: ``route_to`` a queue, ``set_priority``, ``add_tag``, ``notify`` a queue or the
filer (never an address), ``auto_fulfil`` (queue the job without a person), and
``escalate_to``: the queue an escalation — by hand or on an SLA breach — moves it to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .patterns import PatternError, compile_pattern

OPERATORS = ("eq", "ne", "in", "not_in", "contains", "matches", "lt", "gt", "exists")
ACTIONS = ("route_to", "set_priority", "add_tag", "notify", "auto_fulfil", "escalate_to")
PRIORITIES = ("P1", "P2", "P3", "P4")
# Fields a condition may read; a trailing ".*" admits any name below that prefix.
# ``verification`` is passed or failed; ``checks.<field>`` is one field's result (match,
# mismatch, not_found); ``details.<field>`` is what the employee typed.
# ``event`` is created or updated; ``changed`` lists what an update changed (status,
# queue, priority, assignee), so a rule can say when it applies.
FIELDS = (
    "event", "changed", "type", "school", "nation", "priority", "status", "queue", "tags",
    "verification", "reasons", "checks.*", "details.*", "filer.role",
    "received.business_hours", "assignee",
)  # fmt: skip
# route_to / escalate_to may name this instead of a queue: the filing school's office.
SCHOOL_OFFICE = "$school_office"

Facts = Mapping[str, Any]
Predicate = Callable[[Facts], bool]


class RuleError(ValueError):
    """A rule that cannot be compiled; ``path`` says where, e.g. ``rules[3].conditions``."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def known_field(path: str) -> bool:
    return any(
        path == allowed or (allowed.endswith(".*") and path.startswith(allowed[:-1]))
        for allowed in FIELDS
    )


@dataclass(frozen=True)
class Rule:
    name: str
    conditions: Mapping[str, Any]
    actions: tuple[Mapping[str, Any], ...]
    stop: bool = False
    enabled: bool = True
    description: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        return cls(
            name=data["name"],
            conditions=data.get("conditions") or {"all": []},
            actions=tuple(data.get("actions") or ()),
            stop=bool(data.get("stop", False)),
            enabled=bool(data.get("enabled", True)),
            description=str(data.get("description") or ""),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out |= {
            "conditions": self.conditions,
            "actions": [dict(a) for a in self.actions],
        }
        if self.stop:
            out["stop"] = True
        if not self.enabled:
            out["enabled"] = False
        return out


@dataclass
class Outcome:
    """What the matching rules decided, and which rules they were."""

    matched: list[str] = field(default_factory=list)
    queue: str | None = None
    priority: str | None = None
    tags: list[str] = field(default_factory=list)
    notify: list[str] = field(default_factory=list)
    auto_fulfil: bool = False
    escalate_to: str | None = None
    stopped_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "matched": self.matched, "queue": self.queue, "priority": self.priority,
            "tags": self.tags, "notify": self.notify, "auto_fulfil": self.auto_fulfil,
            "escalate_to": self.escalate_to, "stopped_by": self.stopped_by,
        }  # fmt: skip


_MISSING = object()


def _getter(path: str) -> Callable[[Facts], Any]:
    parts = tuple(path.split("."))
    if len(parts) == 1:
        key = parts[0]
        return lambda facts: facts.get(key, _MISSING)

    def get(facts: Facts) -> Any:
        value: Any = facts
        for part in parts:
            if not isinstance(value, Mapping):
                return _MISSING
            value = value.get(part, _MISSING)
            if value is _MISSING:
                return _MISSING
        return value

    return get


def _compare(op: str, expected: Any) -> Callable[[Any], bool]:
    if op == "eq":
        return lambda v: v == expected
    if op == "ne":
        return lambda v: v != expected
    if op in ("in", "not_in"):
        choices = frozenset(expected) if all(isinstance(c, str | int) for c in expected) else None
        pool = choices if choices is not None else list(expected)
        if op == "in":
            return lambda v: v is not _MISSING and _hashable_in(v, pool)
        return lambda v: v is _MISSING or not _hashable_in(v, pool)
    if op == "contains":
        return lambda v: isinstance(v, str | list | tuple | frozenset | set) and expected in v
    if op == "matches":
        pattern = compile_pattern(expected)
        return lambda v: isinstance(v, str) and pattern.search(v) is not None
    if op in ("lt", "gt"):
        less = op == "lt"

        def ordered(v: Any) -> bool:
            try:
                return bool(v < expected) if less else bool(v > expected)
            except TypeError:
                return False  # a missing or differently typed value never compares

        return ordered
    if op == "exists":
        wanted = expected is None or bool(expected)
        return lambda v: (v is not _MISSING and v is not None) == wanted
    raise AssertionError(op)


def _hashable_in(value: Any, pool: Any) -> bool:
    try:
        return value in pool
    except TypeError:
        return False


def compile_condition(node: Any, path: str = "conditions") -> Predicate:
    """Turn a condition tree into one predicate; raise RuleError naming what is wrong."""
    if not isinstance(node, Mapping):
        raise RuleError(path, "a condition is a mapping: all, any, or field/op/value")
    if "all" in node or "any" in node:
        if len(node) != 1:
            raise RuleError(path, "a group has exactly one key, all or any")
        kind = "all" if "all" in node else "any"
        children = node[kind]
        if not isinstance(children, Sequence) or isinstance(children, str):
            raise RuleError(f"{path}.{kind}", "must be a list of conditions")
        predicates = tuple(
            compile_condition(child, f"{path}.{kind}[{i}]") for i, child in enumerate(children)
        )
        if kind == "all":
            return lambda facts: all(p(facts) for p in predicates)
        return lambda facts: any(p(facts) for p in predicates)
    unknown = set(node) - {"field", "op", "value"}
    if unknown:
        raise RuleError(path, f"unknown key {sorted(unknown)[0]!r} (use field, op, value)")
    name, op = node.get("field"), node.get("op")
    if not isinstance(name, str) or not known_field(name):
        raise RuleError(f"{path}.field", f"unknown field {name!r}; fields: {', '.join(FIELDS)}")
    if op not in OPERATORS:
        raise RuleError(f"{path}.op", f"unknown operator {op!r}; use one of {', '.join(OPERATORS)}")
    value = node.get("value")
    if op in ("in", "not_in") and (not isinstance(value, Sequence) or isinstance(value, str)):
        raise RuleError(f"{path}.value", f"{op} needs a list of values")
    if op == "matches":
        if not isinstance(value, str):
            raise RuleError(f"{path}.value", "matches needs a regular expression")
        try:
            compile_pattern(value)
        except PatternError as exc:
            raise RuleError(f"{path}.value", f"the regular expression {exc}") from None
    if op not in ("exists",) and "value" not in node:
        raise RuleError(f"{path}.value", f"{op} needs a value")
    get, test = _getter(name), _compare(op, value)
    return lambda facts: test(get(facts))


def check_action(action: Any, path: str) -> tuple[str, Any]:
    """Validate one action; return its (name, argument)."""
    if not isinstance(action, Mapping) or len(action) != 1:
        raise RuleError(path, "an action is one mapping, e.g. {route_to: its-identity}")
    ((name, argument),) = action.items()
    if name not in ACTIONS:
        raise RuleError(path, f"unknown action {name!r}; use one of {', '.join(ACTIONS)}")
    if name == "set_priority" and argument not in PRIORITIES:
        raise RuleError(path, f"priority {argument!r} is not one of {', '.join(PRIORITIES)}")
    if name in ("route_to", "escalate_to", "add_tag") and not (
        isinstance(argument, str) and argument.strip()
    ):
        raise RuleError(path, f"{name} needs a name")
    if name == "notify" and not (
        argument == "filer" or (isinstance(argument, str) and argument.startswith("queue:"))
    ):
        # Rules never name an address: results and notices go only to people on file.
        raise RuleError(path, "notify takes 'filer' or 'queue:<slug>', never an address")
    if name == "auto_fulfil" and not isinstance(argument, bool):
        raise RuleError(path, "auto_fulfil is true or false")
    return name, argument


def queues_named(rules: Sequence[Rule]) -> set[str]:
    """Every queue slug the rules route, escalate or notify to (placeholders excluded)."""
    names: set[str] = set()
    for rule in rules:
        for action in rule.actions:
            ((name, argument),) = action.items()
            if name in ("route_to", "escalate_to") and argument != SCHOOL_OFFICE:
                names.add(argument)
            elif name == "notify" and argument.startswith("queue:"):
                names.add(argument.removeprefix("queue:"))
    return names


class CompiledRuleSet:
    """A rule set compiled once into a single generated function; ``evaluate`` runs it.

    The function reads each field once, tests every condition as an inline expression
    and returns the indexes of the matching rules, stopping at a matching ``stop`` rule.
    Only indexes and names this module makes up appear in its source: every value from
    the rules (strings, lists, regular expressions) is passed in a constants table, so
    no rule text is ever executed.
    """

    def __init__(self, rules: Sequence[Rule]) -> None:
        seen: set[str] = set()
        actions: list[tuple[tuple[str, Any], ...]] = []
        for i, rule in enumerate(rules):
            where = f"rules[{i}]"
            if not rule.name or rule.name in seen:
                raise RuleError(f"{where}.name", f"rule names must be unique: {rule.name!r}")
            seen.add(rule.name)
            compile_condition(rule.conditions, f"{where}.conditions")  # validates the tree
            actions.append(tuple(
                check_action(a, f"{where}.actions[{j}]") for j, a in enumerate(rule.actions)
            ))  # fmt: skip
        self.rules = tuple(rules)
        self._actions = tuple(actions)
        self._matching, read = _generate(self.rules)
        # The top-level facts any enabled rule reads: an update that changes none of them
        # cannot change what the rules decide.
        self.fields_read = frozenset(path.split(".")[0] for path in read)

    def evaluate(self, facts: Facts) -> Outcome:
        outcome = Outcome()
        for index in self._matching(facts):
            rule = self.rules[index]
            outcome.matched.append(rule.name)
            for name, argument in self._actions[index]:
                _apply(outcome, name, argument, facts)
            if rule.stop:
                outcome.stopped_by = rule.name
        return outcome


class _Source:
    """Builds the generated function's text, keeping every rule value out of it."""

    def __init__(self) -> None:
        self.constants: list[Any] = []
        self.fields: dict[str, int] = {}

    def constant(self, value: Any) -> str:
        self.constants.append(value)
        return f"C[{len(self.constants) - 1}]"

    def field(self, path: str) -> str:
        return f"v{self.fields.setdefault(path, len(self.fields))}"

    def expression(self, node: Mapping[str, Any]) -> str:
        if "all" in node or "any" in node:
            kind = "all" if "all" in node else "any"
            parts = [self.expression(child) for child in node[kind]]
            if not parts:
                return "True" if kind == "all" else "False"
            return "(" + (" and " if kind == "all" else " or ").join(parts) + ")"
        v, op, value = self.field(node["field"]), node["op"], node.get("value")
        if op == "eq":
            return f"({v} == {self.constant(value)})"
        if op == "ne":
            return f"({v} != {self.constant(value)})"
        if op in ("in", "not_in", "contains", "lt", "gt"):
            return f"{self.constant(_compare(op, value))}({v})"
        if op == "matches":
            pattern = self.constant(compile_pattern(str(value)))
            return f"({v}.__class__ is str and {pattern}.search({v}))"
        if op == "exists":
            present = f"({v} is not M and {v} is not None)"
            return present if value is None or bool(value) else f"(not {present})"
        raise AssertionError(op)


def _generate(rules: Sequence[Rule]) -> tuple[Callable[[Facts], list[int]], list[str]]:
    source = _Source()
    body: list[str] = []
    for index, rule in enumerate(rules):
        if not rule.enabled:
            continue
        body.append(f"    if {source.expression(rule.conditions)}:")
        body.append(f"        matched.append({index})")
        if rule.stop:
            body.append("        return matched")
    getters = {path: _getter(path) for path in source.fields}
    reads = [f"    v{n} = G[{n}](facts)" for path, n in source.fields.items()]
    text = "\n".join(["def matching(facts):", "    matched = []", *reads, *body,
                      "    return matched"])  # fmt: skip
    namespace: dict[str, Any] = {
        "C": source.constants,
        "G": [getters[path] for path in source.fields],
        "M": _MISSING,
    }
    exec(compile(text, "<routing rules>", "exec"), namespace)  # noqa: S102 - see _Source
    matching: Callable[[Facts], list[int]] = namespace["matching"]
    return matching, list(source.fields)


def _apply(outcome: Outcome, name: str, argument: Any, facts: Facts) -> None:
    # Later rules override a queue or priority set earlier; tags and notices add up.
    if name in ("route_to", "escalate_to") and argument == SCHOOL_OFFICE:
        argument = f"school-office-{facts.get('school')}"
    if name == "route_to":
        outcome.queue = argument
    elif name == "set_priority":
        outcome.priority = argument
    elif name == "add_tag" and argument not in outcome.tags:
        outcome.tags.append(argument)
    elif name == "notify" and argument not in outcome.notify:
        outcome.notify.append(argument)
    elif name == "auto_fulfil":
        outcome.auto_fulfil = argument
    elif name == "escalate_to":
        outcome.escalate_to = argument


def compile_rules(data: Sequence[Mapping[str, Any]]) -> CompiledRuleSet:
    """Compile rules given as plain data (from YAML, JSON or the database)."""
    if not isinstance(data, Sequence) or isinstance(data, str):
        raise RuleError("rules", "a rule set is a list of rules")
    rules = []
    for i, item in enumerate(data):
        if not isinstance(item, Mapping) or "name" not in item:
            raise RuleError(f"rules[{i}]", "a rule is a mapping with a name")
        unknown = set(item) - {"name", "conditions", "actions", "stop", "enabled", "description"}
        if unknown:
            raise RuleError(f"rules[{i}]", f"unknown key {sorted(unknown)[0]!r}")
        rules.append(Rule.from_dict(item))
    return CompiledRuleSet(rules)
