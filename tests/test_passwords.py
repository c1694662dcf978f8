"""Password policies and generated one-time passwords."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpdesk.domain.passwords import LENIENT, STRICT, PasswordPolicy, PolicyError
from helpdesk.security import hash_password, verify_password

policies = st.builds(
    PasswordPolicy,
    min_length=st.integers(6, 24),
    upper=st.booleans(),
    lower=st.booleans(),
    digit=st.booleans(),
    symbol=st.booleans(),
)
names = st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
                         min_size=3, max_size=12), max_size=3)  # fmt: skip


@given(policies, names)
def test_a_generated_password_always_meets_its_policy(policy, owner_names):
    password = policy.generate(names=owner_names)
    assert policy.problems(password, names=owner_names) == []
    assert len(password) >= max(12, policy.min_length)


def test_generated_passwords_do_not_repeat():
    assert len({STRICT.generate() for _ in range(500)}) == 500


@pytest.mark.parametrize(
    ("policy", "password", "problem"),
    [
        (LENIENT, "Ab1", "Use at least 6 characters."),
        (LENIENT, "abcdef1", "Include a capital letter."),
        (LENIENT, "ABCDEF1", "Include a small letter."),
        (LENIENT, "Abcdefg", "Include a digit."),
        (STRICT, "Abcdefghijklm12", "Include a symbol such as !."),
    ],
)
def test_what_a_chosen_password_lacks_is_said_plainly(policy, password, problem):
    assert problem in policy.problems(password)


def test_the_owners_name_or_username_is_refused_however_written():
    problems = LENIENT.problems("Fiona-Camp2024", names=["Fiona", "Campbell", "fiona.campbell1"])
    assert problems == ["Do not use your name or username in the password."]
    assert LENIENT.problems("xxFIONAxx9", names=["Fiona"]) != []
    assert LENIENT.problems("Isla2017ab", names=["Al"]) == []  # too short to forbid


def test_one_of_the_last_n_passwords_is_refused():
    old = [hash_password(p) for p in ("Winter2026!aaaaa", "Spring2026!bbbbb")]
    policy = PasswordPolicy(min_length=15, symbol=True, history=2)
    assert policy.problems("Winter2026!aaaaa", previous=old,
                           matches_previous=verify_password) == [
        "Choose a password that is neither the one you have now nor one of your last 2."
    ]  # fmt: skip
    assert policy.problems("Summer2026!ccccc", previous=old, matches_previous=verify_password) == []


@pytest.mark.parametrize("bad", [dict(min_length=4), dict(min_length=10, max_length=8),
                                 dict(history=-1)])  # fmt: skip
def test_an_impossible_policy_is_refused(bad):
    with pytest.raises(PolicyError):
        PasswordPolicy(**bad)


def test_history_counts_the_password_in_use_and_the_n_before_it(app):
    import sqlalchemy as sa

    from helpdesk.extensions import db
    from helpdesk.models import PortalAccount
    from helpdesk.services.credentials import PasswordRejected, SqlCredentialStore
    from helpdesk.services.portals import update_policy

    update_policy("parent", {"history": 2})
    store = SqlCredentialStore()
    account = db.session.execute(
        sa.select(PortalAccount).where(PortalAccount.account_number == "P500001")
    ).scalar_one()
    for chosen in ("Garden-Path-41", "River-Stone-52", "Maple-Leaf-63"):
        store.set_password(account, chosen)
    # In use, and the two before it: all refused; the one before those is allowed again.
    for refused in ("Maple-Leaf-63", "River-Stone-52", "Garden-Path-41"):
        with pytest.raises(PasswordRejected):
            store.set_password(account, refused)
    store.set_password(account, "Brand-New-Owl-74")
    with pytest.raises(PasswordRejected):
        store.set_password(account, "Brand-New-Owl-74")  # choosing the one you have


@pytest.mark.parametrize(
    ("password", "said"),
    [
        ("aaaaaaaaaaaa", "Avoid repeated characters"),
        ("123456789012", "Avoid repeated characters"),
        ("qwertyuiop12", "Avoid repeated characters"),
        ("password1234", "too common"),
        ("iloveyou2020", "dates"),
        ("trustno1trustno1", "Avoid repeated characters"),
        ("Password123!", "too common"),
        ("Baillie2026!!", "from your name or email"),
        ("m.baillie@ashgrove", "from your name or email"),
        ("Moira-Baillie-99", "from your name or email"),  # the staff record's names
    ],
)
def test_a_staff_password_that_is_common_patterned_or_their_own_name_is_refused(password, said):
    from helpdesk.models import Staff, User
    from helpdesk.services.sign_in import password_problems

    user = User(email="m.baillie@ashgrove.sch.example", role="employee",
                staff=Staff(given_name="Moira", family_name="Baillie"))  # fmt: skip
    (problem,) = password_problems(user, password)
    assert said in problem


@pytest.mark.parametrize(
    "password", ["correct horse battery staple", "Heather-Glen-42-otter", "ashgrove tram ladder"]
)
def test_a_long_unguessable_staff_password_is_accepted(password):
    from helpdesk.models import Staff, User
    from helpdesk.services.sign_in import password_problems

    user = User(email="m.baillie@ashgrove.sch.example", role="employee",
                staff=Staff(given_name="Moira", family_name="Baillie"))  # fmt: skip
    assert password_problems(user, password) == []
