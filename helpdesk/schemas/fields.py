"""Field types with messages that tell an employee what to type."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import ValidationError, fields, validate


class Text(fields.String):
    """A string that is trimmed and may not be blank when given."""

    def __init__(self, *, max_length: int = 200, **kwargs: Any) -> None:
        kwargs.setdefault("validate", validate.Length(max=max_length))
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if not text and self.required:
            raise ValidationError("Must not be blank.")
        return text


class UpperText(Text):
    """Text read in capitals, for codes typed in any case ('p3' is P3)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        return super()._deserialize(value, attr, data, **kwargs).upper()


def pattern(regex: str, message: str) -> validate.Regexp:
    return validate.Regexp(re.compile(regex), error=message)


MMYYYY = pattern(r"^(0[1-9]|1[0-2])(19|20)\d{2}$", "Use MMYYYY, e.g. 042015.")
PIN = pattern(r"^\d{4,12}$", "The parent PIN is 4 to 12 digits.")
PHONE = pattern(
    r"^\+?[\d\s()-]{10,20}$", "Use the phone number with its area code, e.g. 07700 900123."
)
POSTCODE = pattern(
    r"^[A-Za-z]{1,2}\d[A-Za-z\d]?\s*\d[A-Za-z]{2}$", "Use a UK postcode, e.g. EH1 1YZ."
)
YEAR_STAGE = pattern(
    r"^(P[1-7]|S[1-6]|Y([1-9]|1[0-3])|N[12]?|R)$",
    "Use the class stage as the school writes it, e.g. P4, S2 or Y7.",
)
ACCOUNT_NUMBER = pattern(r"^[A-Za-z0-9-]{1,64}$", "Use the account number, e.g. P500001.")
STUDENT_NUMBER = pattern(
    r"^[A-Za-z0-9-]{1,64}$", "Use the school's student number, e.g. ASH240891."
)
