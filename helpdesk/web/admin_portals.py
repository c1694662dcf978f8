"""Admin: each portal's password policy, delivery mode and credential store (read-only;
`helpdesk portals set` changes them). Directory secrets are shown as set or not set."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from ..models import Role
from ..services.portals import policies
from ..services.stores.base import env_name, settings_for
from .access import page_for

bp = Blueprint("admin_portals", __name__, url_prefix="/admin/portals")


@bp.get("")
@page_for(Role.ADMIN)
def index() -> Any:
    """The portals and where their passwords live."""
    rows = [(row, settings_for(row)) for row in policies()]
    return render_template("admin/portals.html", rows=rows, env_name=env_name)
