"""Portal password policies, and one-time passwords generated to meet them (SPEC §6.2).

The schools' policies range from six characters with mixed case and a digit to fifteen
characters that are none of the last eight passwords. A policy says what it requires;
``problems`` says, in words a parent can act on, what a chosen password lacks, and
``generate`` makes a one-time password with ``secrets`` that always passes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .matching import name_key

# Characters that are easy to read aloud and to copy from an email: no 0/O, 1/l/I.
UPPER = "ABCDEFGHJKLMNPQRSTUVWXYZ"
LOWER = "abcdefghijkmnopqrstuvwxyz"
DIGITS = "23456789"
SYMBOLS = "!#%+-=?@"
# A name or username shorter than this is too common a fragment to forbid.
_MIN_FORBIDDEN = 3


class PolicyError(ValueError):
    """A policy that no password could meet."""


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = 8
    upper: bool = True
    lower: bool = True
    digit: bool = True
    symbol: bool = False
    history: int = 0  # not one of the last N passwords
    max_length: int = 64

    def __post_init__(self) -> None:
        classes = sum((self.upper, self.lower, self.digit, self.symbol))
        if self.min_length < max(6, classes) or self.max_length < self.min_length:
            raise PolicyError(
                f"a policy needs 6 <= min_length <= max_length and room for {classes} classes"
            )
        if self.history < 0:
            raise PolicyError("history counts previous passwords: 0 or more")

    def rules(self) -> list[str]:
        """What a password must be, one phrase each, to show before anyone tries one."""
        said = [f"at least {self.min_length} characters"]
        said += [words for wanted, words in (
            (self.upper, "a capital letter"), (self.lower, "a small letter"),
            (self.digit, "a digit"), (self.symbol, "a symbol such as !"),
        ) if wanted]  # fmt: skip
        said.append("not your name or username")
        if self.history:
            said.append(f"not the password you have now, nor one of your last {self.history}")
        return said

    def problems(
        self,
        password: str,
        *,
        names: Iterable[str] = (),
        previous: Iterable[str] = (),
        matches_previous: Callable[[str, str], bool] | None = None,
    ) -> list[str]:
        """What the password lacks, one sentence each; empty when it meets the policy.

        ``names`` are the owner's names and username; ``previous`` the hashes of the
        password in use and of those before it, newest first, checked with
        ``matches_previous(hash, password)``: with ``history`` N the one in use and the N
        before it are refused.
        """
        found = []
        if len(password) < self.min_length:
            found.append(f"Use at least {self.min_length} characters.")
        if len(password) > self.max_length:
            found.append(f"Use at most {self.max_length} characters.")
        for wanted, test, words in (
            (self.upper, str.isupper, "a capital letter"),
            (self.lower, str.islower, "a small letter"),
            (self.digit, str.isdigit, "a digit"),
            (self.symbol, lambda c: not c.isalnum() and not c.isspace(), "a symbol such as !"),
        ):
            if wanted and not any(test(c) for c in password):
                found.append(f"Include {words}.")
        key = name_key(password)
        for name in names:
            fragment = name_key(name)
            if len(fragment) >= _MIN_FORBIDDEN and fragment in key:
                found.append("Do not use your name or username in the password.")
                break
        if self.history and matches_previous is not None:
            recent = list(previous)[: self.history + 1]
            if any(matches_previous(old, password) for old in recent):
                found.append(
                    "Choose a password that is neither the one you have now nor one of your "
                    f"last {self.history}."
                )
        return found

    def generate(self, *, names: Iterable[str] = (), length: int | None = None) -> str:
        """A random one-time password that meets the policy (at least 12 characters)."""
        size = max(length or 0, self.min_length, 12)
        size = min(size, self.max_length)
        pools = [pool for wanted, pool in ((self.upper, UPPER), (self.lower, LOWER),
                                           (self.digit, DIGITS), (self.symbol, SYMBOLS))
                 if wanted] or [LOWER]  # fmt: skip
        alphabet = "".join(pools)
        names = list(names)
        while True:
            chars = [secrets.choice(pool) for pool in pools]
            chars += [secrets.choice(alphabet) for _ in range(size - len(chars))]
            secrets.SystemRandom().shuffle(chars)
            candidate = "".join(chars)
            # A random password containing a name is rare; drawing again keeps it uniform.
            if not self.problems(candidate, names=names):
                return candidate


# The range of the schools' own policies, for reference and tests.
LENIENT = PasswordPolicy(min_length=6, upper=True, lower=True, digit=True)
STRICT = PasswordPolicy(min_length=15, upper=True, lower=True, digit=True, symbol=True,
                        history=8)  # fmt: skip
