"""The self-service recovery pages' questions: what a parent may be asked, per kind of
recovery. Which are asked is configuration (``SELF_SERVICE_PASSWORD_QUESTIONS``,
``SELF_SERVICE_USERNAME_QUESTIONS``); how each is compared with the records is
``services/self_service.py``."""

from __future__ import annotations

PASSWORD, USERNAME = "password", "username"
KINDS = (PASSWORD, USERNAME)
LINK = "link"  # a parent asking for their account to be linked to a child

# Every question a page can ask, with its label: each is a field the records hold for a
# parent account (its username, the guardian's email and postcode, a linked child's date
# of birth; guardians' own dates of birth are not in the roster).
QUESTIONS = {
    "username": "Username",
    "email": "Email address",
    "postcode": "Postcode",
    "child_birth_date": "Date of birth of a child at the school",
}

# How staff see each field a self-service page compares (the link request's too).
LABELS = {
    **QUESTIONS,
    "child_given_name": "Child's first name",
    "child_family_name": "Child's last name",
    "child_birth_date": "Child's date of birth",
}

# The question that finds the account: the one an attempt of that kind cannot go without.
FINDS_BY = {PASSWORD: "username", USERNAME: "email", LINK: "username"}


def parse_questions(kind: str, value: str) -> tuple[str, ...]:
    """ "username, email, postcode" -> the questions, in order; ValueError says what to fix."""
    named = tuple(dict.fromkeys(p.strip().lower() for p in value.replace(" ", ",").split(",")
                                if p.strip()))  # fmt: skip
    unknown = [name for name in named if name not in QUESTIONS]
    if unknown or len(named) < 2:
        raise ValueError("is not a list of two or more questions from " + ", ".join(QUESTIONS))
    if FINDS_BY[kind] not in named:
        raise ValueError(f"must include {FINDS_BY[kind]}: it finds the account")
    if kind == USERNAME and "username" in named:
        raise ValueError("asks for the username it is meant to recover")
    return named
