"""How a roster's portal account is looked up in a directory: a per-portal template
filled with the account's values, each escaped for the query language, so a username
such as ``*)(uid=*`` or ``a" or userName pr or "`` matches nothing it should not."""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping

# The values a template may name, from the roster's portal_accounts.csv row.
PLACEHOLDERS = ("username", "accountNumber", "sourcedId")


class TemplateError(ValueError):
    """A template that names something other than the placeholders, or is malformed."""


def check_template(template: str) -> None:
    """Refuse a template that could not be filled (say why)."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:
        raise TemplateError(f"{template!r} is not a template: {error}") from None
    unknown = sorted(set(names) - set(PLACEHOLDERS))
    if unknown or not names:
        allowed = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
        raise TemplateError(
            f"{template!r} must name at least one of {allowed}"
            + (f"; {', '.join(unknown)} is not one" if unknown else "")
        )


def _fill(template: str, values: Mapping[str, str], escape: Callable[[str], str]) -> str:
    check_template(template)
    return template.format_map({name: escape(values.get(name, "")) for name in PLACEHOLDERS})


def ldap_escape(value: str) -> str:
    """RFC 4515 §3: ``*``, ``(``, ``)``, ``\\`` and NUL as ``\\XX``; other bytes as they are."""
    out = []
    for char in value:
        if char in "*()\\\x00":
            out.append(f"\\{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def ldap_filter(template: str, values: Mapping[str, str]) -> str:
    """``(&(objectClass=inetOrgPerson)(uid={username}))`` filled in, values escaped."""
    return _fill(template, values, ldap_escape)


def scim_escape(value: str) -> str:
    """RFC 7644 §3.4.2.2: a comparison value is a JSON string, so ``"`` and ``\\`` (and
    control characters) are escaped as JSON escapes them."""
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)


def scim_filter(template: str, values: Mapping[str, str]) -> str:
    """``userName eq "{username}"`` filled in, values escaped; the template must quote each
    placeholder itself."""
    return _fill(template, values, scim_escape)
