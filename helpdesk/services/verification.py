"""Check what an employee typed against the school's records (SPEC §3): the checks are
in ``record_checks``, their result in ``verification_result``."""

from __future__ import annotations

from typing import Any

from .record_checks import CHECKS
from .verification_result import MISMATCH, NOT_FOUND, Verification


def verify(
    kind: str, school_id: int, data: dict[str, Any], *, per_field: bool = True
) -> Verification:
    """Run the checks for one incident type; raise NoEmailOnFile where SPEC §3 says 422.

    ``per_field`` False (a target tried several times already) keeps a failed link
    check from saying which of the typed details differed.
    """
    result = CHECKS[kind](school_id, data)
    if not per_field and not result.passed and kind == "portal_link_failure":
        return _without_detail(result)
    return result


_TRIED_BEFORE = (
    "several checks for this child have not matched the school's records: contact the "
    "parent to confirm their details before filing again"
)


def _without_detail(result: Verification) -> Verification:
    """A failed check that says only that it failed, not which field differed."""
    plain = Verification(student_id=result.student_id, guardian_id=result.guardian_id)
    found = any(r["result"] != NOT_FOUND for r in result.fields.values())
    for name in result.fields:
        plain.set(name, MISMATCH if found else NOT_FOUND)
    plain.fail(_TRIED_BEFORE)
    return plain
