"""Comparing what an employee typed with the school's records, forgivingly but exactly."""

from __future__ import annotations

import unicodedata

# Letters that do not decompose under NFKD but that people type without the mark.
_FOLD = str.maketrans(
    {"ø": "o", "ß": "ss", "æ": "ae", "œ": "oe", "đ": "d", "ł": "l", "ı": "i"}  # noqa: RUF001
)


def name_key(name: str) -> str:
    """Fold case, accents, spaces, hyphens and apostrophes: 'Ní Bhriain' == 'ni bhriain'."""
    decomposed = unicodedata.normalize("NFKD", name.casefold().translate(_FOLD))
    return "".join(ch for ch in decomposed if ch.isalnum() and not unicodedata.combining(ch))


def names_match(typed: str, recorded: str | None) -> bool:
    return recorded is not None and name_key(typed) != "" and name_key(typed) == name_key(recorded)


def full_name_matches(typed: str, given: str, family: str, middle: str | None = None) -> bool:
    """A typed full name matches given+family, with or without the middle name, in either order."""
    key = name_key(typed)
    if not key:
        return False
    candidates = {name_key(given + family), name_key(family + given)}
    if middle:
        candidates.add(name_key(given + middle + family))
    return key in candidates


def looks_like_nickname(typed: str, recorded: str) -> bool:
    """'Alex' for 'Alexander': one name is a leading part of the other."""
    a, b = name_key(typed), name_key(recorded)
    if a == b or min(len(a), len(b)) < 3:
        return False
    return a.startswith(b) or b.startswith(a)


def phone_key(phone: str | None) -> str:
    """UK numbers compared by digits, with +44 / 0044 read as the leading 0."""
    if not phone:
        return ""
    digits = "".join(ch for ch in phone if ch.isdigit())
    if phone.strip().startswith("+44") or digits.startswith("0044"):
        digits = "0" + digits[2:] if digits.startswith("44") else "0" + digits[4:]
    return digits


def phones_match(typed: str, recorded: str | None) -> bool:
    key = phone_key(typed)
    return bool(key) and key == phone_key(recorded)


def postcode_key(postcode: str | None) -> str:
    return "".join((postcode or "").split()).upper()


def postcodes_match(typed: str, recorded: str | None) -> bool:
    key = postcode_key(typed)
    return bool(key) and key == postcode_key(recorded)
