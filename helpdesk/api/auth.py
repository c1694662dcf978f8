"""Bearer-token authentication and role checks for the API."""

from __future__ import annotations

from flask import g, request

from ..errors import Forbidden
from ..models import Role
from ..services.users import user_for_token

_LOOKING = {"GET", "HEAD", "OPTIONS"}


def authenticate() -> None:
    """Before every API request: the bearer token names the user (401 otherwise); a
    read-only token may only look (403 for anything that would change something)."""
    g.user = user_for_token(request.headers.get("Authorization"))
    if g.user.read_only and request.method not in _LOOKING:
        raise Forbidden("This API token is read-only: it can look, not change anything. "
                        "Ask an admin for one that may file.")  # fmt: skip


def require_role(*roles: Role) -> None:
    if g.user.role not in roles:
        raise Forbidden(
            f"This needs the {' or '.join(r.value for r in roles)} role; you are {g.user.role}."
        )
