"""Bearer-token authentication and role checks for the API."""

from __future__ import annotations

from flask import g, request

from ..errors import Forbidden
from ..models import Role
from ..services.users import user_for_token


def authenticate() -> None:
    """Before every API request: the bearer token names the user (401 otherwise)."""
    g.user = user_for_token(request.headers.get("Authorization"))


def require_role(*roles: Role) -> None:
    if g.user.role not in roles:
        raise Forbidden(
            f"This needs the {' or '.join(r.value for r in roles)} role; you are {g.user.role}."
        )
