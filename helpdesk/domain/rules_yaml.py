"""Routing rules as YAML text, with every problem pointed at its line.

Admins edit the rule set as YAML. A syntax error carries its line from the parser; a
rule the compiler refuses carries a path such as ``rules[2].conditions.all[0].op``,
which is found again in the parsed document to say which line it came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

_STEP = re.compile(r"\[(\d+)\]|\.?([A-Za-z_][\w-]*)")


@dataclass(frozen=True)
class YamlProblem:
    line: int | None  # 1-based; None when no line can be named
    message: str

    def __str__(self) -> str:
        return f"Line {self.line}: {self.message}" if self.line else self.message


class RulesTextError(ValueError):
    def __init__(self, problem: YamlProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class _RulesLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a date stays the text it was written as: rule
    values are compared as text, and '2026-02-30' is then a value, not a crash."""


_RulesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def dump(rules: list[dict[str, Any]]) -> str:
    return yaml.safe_dump(rules, sort_keys=False, allow_unicode=True, width=100)


def parse(text: str) -> list[Any]:
    """The rules a YAML text holds; RulesTextError (with its line) when it is not YAML."""
    try:
        data = yaml.load(text, Loader=_RulesLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or "this is not valid YAML"
        raise RulesTextError(
            YamlProblem(mark.line + 1 if mark else None, f"{problem} (YAML syntax)")
        ) from None
    except ValueError as error:  # a value YAML's own tags cannot build, e.g. !!float x
        raise RulesTextError(YamlProblem(None, f"{error} (YAML value)")) from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise RulesTextError(
            YamlProblem(1, "the rule set is a list: start each rule with '- name: …'")
        )
    return data


def line_of(text: str, path: str) -> int | None:
    """The line where ``path`` (as the rule compiler names places) starts in ``text``."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    steps = _STEP.findall(path)
    if steps and steps[0] == ("", "rules"):
        steps = steps[1:]
    line = node.start_mark.line if node is not None else None
    for index, key in steps:
        if node is None:
            break
        if index and isinstance(node, yaml.SequenceNode):
            position = int(index)
            if position >= len(node.value):
                break
            node = node.value[position]
        elif key and isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if k.value == key), None)
            if found is None:
                break
            node = found
        else:
            break
        line = node.start_mark.line
    return line + 1 if line is not None else None


def line_mentioning(text: str, word: str) -> int | None:
    """The first line that mentions ``word`` (an unknown queue, say)."""
    for number, content in enumerate(text.splitlines(), start=1):
        if re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", content):
            return number
    return None
