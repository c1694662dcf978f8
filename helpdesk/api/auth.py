"""Bearer-token authentication and role checks for the API."""

from __future__ import annotations

from flask import g, request

from ..domain.roles import TokenScope
from ..errors import Forbidden
from ..models import Role
from ..services.users import user_for_token

_LOOKING = {"GET", "HEAD", "OPTIONS"}
# What a school system's filing token reaches: filing, and reading incidents back.
_FILING = {"incidents.Incidents", "incidents.IncidentByRef", "incidents.IncidentEvents"}


def authenticate() -> None:
    """Before every API request: the bearer token names the user (401 otherwise) and its
    scope bounds what it may do (403 beyond): a read-only token only looks; a filing
    token only files incidents and reads them."""
    g.user = user_for_token(request.headers.get("Authorization"))
    looking = request.method in _LOOKING
    if g.user.scope is TokenScope.READ_ONLY and not looking:
        raise Forbidden("This API token is read-only: it can look, not change anything. "
                        "Ask an admin for one that may file.")  # fmt: skip
    if g.user.scope is TokenScope.FILING and not (
        request.endpoint in _FILING and (looking or request.endpoint == "incidents.Incidents")
    ):
        raise Forbidden(f"This API token only files incidents for {g.user.school_code} and "
                        "reads them; ask an admin for one that may do more.")  # fmt: skip


def require_role(*roles: Role) -> None:
    if g.user.role not in roles:
        raise Forbidden(
            f"This needs the {' or '.join(r.value for r in roles)} role; you are {g.user.role}."
        )
