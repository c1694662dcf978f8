"""Pure domain rules: name matching and the lifecycle table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpdesk.domain.lifecycle import (
    MOVES,
    SYSTEM_MOVES,
    Action,
    Status,
    allowed_actions,
    target_status,
)
from helpdesk.domain.matching import (
    full_name_matches,
    looks_like_nickname,
    name_key,
    names_match,
    phones_match,
    postcodes_match,
)

names = st.text(
    alphabet=st.characters(whitelist_categories=("Lu", "Ll"), max_codepoint=0x24F),
    min_size=1,
    max_size=20,
)


@given(names)
def test_name_key_ignores_case_and_surrounding_space(name):
    assert name_key(f"  {name.upper()} ") == name_key(name.lower()) == name_key(name)


@given(names, names)
def test_spaces_hyphens_and_apostrophes_between_parts_do_not_matter(a, b):
    assert name_key(f"{a} {b}") == name_key(f"{a}-{b}") == name_key(f"{a}'{b}") == name_key(a + b)


@pytest.mark.parametrize(
    ("typed", "recorded"),
    [
        ("Zoe", "Zoë"),
        ("Siobhan", "Siobhán"),
        ("Maire Ni Bhriain", "Máire Ní Bhriain"),
        ("ONEILL-KERR", "O'Neill-Kerr"),
        ("o neill kerr", "O'Neill-Kerr"),
        ("Soren", "Søren"),
        ("Strasse", "Straße"),
    ],
)
def test_accents_and_punctuation_fold(typed, recorded):
    assert names_match(typed, recorded)


@pytest.mark.parametrize(("typed", "recorded"), [("Ann", "Anne"), ("Isla", "Iona"), ("", "")])
def test_different_names_do_not_match(typed, recorded):
    assert not names_match(typed, recorded)


def test_full_names_in_either_order_and_with_the_middle_name():
    assert full_name_matches("Campbell Isla", "Isla", "Campbell")
    assert full_name_matches("Isla Rose Campbell", "Isla", "Campbell", "Rose")
    assert not full_name_matches("Isla", "Isla", "Campbell")


def test_nicknames_are_leading_parts():
    assert looks_like_nickname("Alex", "Alexander")
    assert looks_like_nickname("Alexander", "Alex")
    assert not looks_like_nickname("Al", "Alexander")  # too short to say
    assert not looks_like_nickname("Sandy", "Alexander")


@pytest.mark.parametrize(
    ("typed", "recorded", "same"),
    [
        ("07700 900101", "07700900101", True),
        ("+44 7700 900101", "07700 900101", True),
        ("0044 7700 900101", "07700 900101", True),
        ("(07700) 900-101", "07700 900101", True),
        ("07700 900102", "07700 900101", False),
        ("07700 900101", None, False),
    ],
)
def test_phone_numbers_compare_by_digits(typed, recorded, same):
    assert phones_match(typed, recorded) is same


def test_postcodes_ignore_case_and_spacing():
    assert postcodes_match("eh11yz", "EH1 1YZ")
    assert not postcodes_match("EH1 1YZ", None)


@pytest.mark.parametrize("status", list(Status))
def test_comment_is_always_allowed_and_never_moves(status):
    assert "comment" in allowed_actions(status, "employee")
    assert target_status(Action.COMMENT, status) == status


def test_end_states_have_no_way_out_but_reopen_from_resolved():
    for end in (Status.CLOSED, Status.REJECTED, Status.CANCELLED):
        assert allowed_actions(end, "admin", "parent_password_reset") == ["comment"]
    assert allowed_actions(Status.RESOLVED, "employee") == ["comment", "reopen"]


def test_every_status_can_be_reached_from_new():
    moves = [(source, m.target) for m in MOVES.values() if m.target for source in m.sources]
    moves += list(SYSTEM_MOVES.values())
    reached, frontier = {Status.NEW}, [Status.NEW]
    while frontier:
        here = frontier.pop()
        for source, target in moves:
            if source == here and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(Status)
