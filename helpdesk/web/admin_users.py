"""Admin: staff users, their invitations and API tokens; a thin page over the service
the API uses."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from ..domain.roles import TokenScope
from ..errors import DomainError
from ..models import Role, User
from ..services import sign_in, two_step, users
from .access import page_for

bp = Blueprint("admin_users", __name__, url_prefix="/admin/users")
admin_page = page_for(Role.ADMIN)


def _invite_link(token: str) -> str:
    return url_for("auth.accept_invite", token=token, _external=True)


@bp.get("")
@admin_page
def index_users() -> Any:
    return render_template(
        "admin/users.html", users=users.users(), errors={}, form={},
        staff=users.staff_without_account(),
    )  # fmt: skip


@bp.post("")
@admin_page
def create() -> Any:
    form = request.form
    email = form.get("email", "").strip()
    role = form.get("role", "")
    errors: dict[str, list[str]] = {}
    if not email or "@" not in email:
        errors["email"] = ["Enter an email address, like name@school.example."]
    if role not in {r.value for r in Role}:
        errors["role"] = ["Choose a role."]
    if not errors:
        try:
            user = users.create_user(
                email, role, staff_sourced_id=form.get("staff_id") or None,
                display_name=form.get("name") or None,
            )  # fmt: skip
        except DomainError as error:
            field = "staff_id" if error.code in {"unknown_staff", "staff_required"} else "email"
            errors[field] = [error.message]
        else:
            token, expires = sign_in.invite(user.email)
            return render_template(
                "admin/invite.html", user=user, link=_invite_link(token), expires=expires
            )
    status = 422 if errors else 200
    return render_template(
        "admin/users.html", users=users.users(), errors=errors, form=form,
        staff=users.staff_without_account(),
    ), status  # fmt: skip


@bp.get("/<id:user_id>")
@admin_page
def show(user_id: int) -> Any:
    return _user_page(users.user_by_id(user_id))


def _user_page(user: User, new_token: str | None = None) -> str:
    """A user, their tokens, and the form that issues one (a filing scope only for an
    employee: only they file)."""
    scopes = [s for s in TokenScope if s is not TokenScope.FILING or user.role == Role.EMPLOYEE]
    return render_template(
        "admin/user.html", user=user, tokens=users.tokens_of(user.id), new_token=new_token,
        token_scopes=[(s.value, s.words, None) for s in scopes],
    )  # fmt: skip


@bp.post("/<id:user_id>/invite")
@admin_page
def reinvite(user_id: int) -> Any:
    user = users.user_by_id(user_id)
    token, expires = sign_in.invite(user.email)
    return render_template(
        "admin/invite.html", user=user, link=_invite_link(token), expires=expires
    )


@bp.post("/<id:user_id>/active")
@admin_page
def set_active(user_id: int) -> Any:
    active = request.form.get("active") == "yes"
    try:
        user = users.set_active(user_id, active, by=g.user.id)
    except DomainError as error:
        flash(error.message, "important")
        return redirect(url_for("admin_users.show", user_id=user_id))
    what = "active again" if active else "deactivated: they can no longer sign in or use the API"
    flash(f"{user.email} is {what}.")
    return redirect(url_for("admin_users.show", user_id=user_id))


@bp.post("/<id:user_id>/two-step/reset")
@admin_page
def reset_two_step(user_id: int) -> Any:
    """A lost authenticator: the user sets two-step sign-in up again at their next
    sign-in, and the reset is in the access log."""
    try:
        user = two_step.reset(user_id, by=g.user.id)
    except DomainError as error:
        flash(error.message, "important")
    else:
        flash(f"Two-step sign-in of {user.email} is reset: their sessions ended, and they set "
              "it up again when they next sign in.")  # fmt: skip
    return redirect(url_for("admin_users.show", user_id=user_id))


@bp.post("/<id:user_id>/tokens")
@admin_page
def issue_token(user_id: int) -> Any:
    user = users.user_by_id(user_id)
    name = request.form.get("name", "").strip() or "api"
    try:
        token = users.issue_api_token(
            user.email, name[:100], scope=request.form.get("scope") or TokenScope.FULL
        )
    except DomainError as error:
        flash(error.message, "important")
        return redirect(url_for("admin_users.show", user_id=user_id))
    return _user_page(user, token)


@bp.post("/<id:user_id>/tokens/<id:token_id>/revoke")
@admin_page
def revoke(user_id: int, token_id: int) -> Any:
    token = users.revoke_token(user_id, token_id)
    flash(f"Token {token.prefix}… is revoked.")
    return redirect(url_for("admin_users.show", user_id=user_id))
