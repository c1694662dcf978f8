"""Who is signed in to the pages, and which pages each role may open."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import (
    abort,
    current_app,
    g,
    has_request_context,
    redirect,
    request,
    session,
    url_for,
)

from ..models import Role
from ..services import two_step
from ..services.sign_in import principal_for_session
from ..services.users import Principal

F = TypeVar("F", bound=Callable[..., Any])
_USER_KEY = "helpdesk.web_user"

NAVIGATION: dict[str, tuple[tuple[str, str], ...]] = {
    Role.EMPLOYEE: (
        ("Report a problem", "report.choose_type"),
        ("Incidents", "incident_pages.index"),
        ("Your classes", "class_pages.index"),
    ),
    Role.AGENT: (("Queue", "queue.index"), ("Dashboard", "dashboard.index")),
    Role.ADMIN: (
        ("Queue", "queue.index"),
        ("Dashboard", "dashboard.index"),
        ("Rules", "admin_rules.index"),
        ("Queues", "admin_queues.index_queues"),
        ("SLAs", "admin_sla.index_sla"),
        ("Users", "admin_users.index_users"),
        ("Roster", "admin_roster.index_roster"),
        ("Portals", "admin_portals.index"),
        ("People", "admin_people.index"),
    ),
}


def current_user() -> Principal | None:
    """The signed-in staff user of this request (looked up once per request), or None."""
    environ = request.environ
    if _USER_KEY not in environ:
        user_id, fingerprint = session.get("user_id"), session.get("fp")
        principal = None
        if isinstance(user_id, int) and isinstance(fingerprint, str):
            principal = principal_for_session(user_id, fingerprint)
            if principal and not session.get("two_step") and two_step.required_for(principal.role):
                principal = None  # a session from before the role needed a second step
            if principal is None:
                session.clear()  # the user is gone, deactivated, or changed password
        environ[_USER_KEY] = principal
    user: Principal | None = environ[_USER_KEY]
    return user


def signed_in(user: Principal) -> Principal:
    """Expose the signed-in user as ``g.user``, as the API does, for the services."""
    g.user = user
    return user


def page_for(*roles: Role) -> Callable[[F], F]:
    """A page for signed-in users with one of ``roles``: others get 403, strangers sign in."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                return redirect(url_for("auth.sign_in", next=request.full_path.rstrip("?")))
            if roles and user.role not in roles:
                abort(403)
            signed_in(user)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def navigation() -> dict[str, Any]:
    """Template globals for the pages; none for templates rendered outside a request
    (emails rendered by a worker)."""
    if not has_request_context():
        return {}
    user = current_user() if request.endpoint else None
    items = list(NAVIGATION.get(user.role, ())) if user else []
    # The demo's captured mail holds every secret the demo sent: admins only.
    demo_mailbox = (
        "mailbox.index" in current_app.view_functions and user is not None
        and user.role == Role.ADMIN
    )  # fmt: skip
    return {"current_user": user, "nav_items": items, "demo_mailbox": demo_mailbox}
