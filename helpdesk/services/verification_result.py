"""What a record check found: a result per field, the reasons an employee can act on, and
the records it resolved."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInput

MATCH, MISMATCH, NOT_FOUND = "match", "mismatch", "not_found"


class NoEmailOnFile(InvalidInput):
    code = "no_email_on_file"


@dataclass
class Verification:
    fields: dict[str, dict[str, str | None]] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    student_id: int | None = None
    guardian_id: int | None = None
    account_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def set(self, name: str, result: str, reason: str | None = None) -> None:
        self.fields[name] = {"result": result, "reason": reason}
        if reason and result != MATCH and reason not in self.reasons:
            self.reasons.append(reason)

    def fail(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)

    @property
    def passed(self) -> bool:
        return not self.reasons and all(r["result"] == MATCH for r in self.fields.values())

    @property
    def outcome(self) -> str:
        """``passed`` or ``failed``, as incidents and rules spell it."""
        return "passed" if self.passed else "failed"

    def results(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fields": self.fields, "reasons": self.reasons}
        out.update(self.extra)
        return out
