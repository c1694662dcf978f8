"""Staff single sign-on with OpenID Connect (Microsoft Entra ID, Google Workspace, any
provider with discovery), through Authlib.

The provider says who signed in; the helpdesk decides whether that is one of its users:
the email the provider vouches for must be an existing, active user's. Signing in never
creates an account. The code flow with PKCE, state and nonce are Authlib's; the second
step is the provider's own (a school's Entra ID or Google Workspace enforces its MFA),
so such a session counts as past it.
"""

from __future__ import annotations

from typing import Any

from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import (
    Blueprint,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from ..services import sign_in as sign_in_service
from .auth import safe_next, start_session

bp = Blueprint("sso", __name__)
_EXTENSION = "helpdesk.sso"

# Whoever the provider vouches for, the answer to a stranger says only what to do.
NOT_A_USER = (
    "{provider} signed you in as {email}, but no helpdesk account uses that address. "
    "Ask an admin to add you; signing in does not create an account."
)
NOT_VOUCHED = (
    "{provider} did not confirm an email address for you, so the helpdesk cannot tell "
    "which account is yours. Sign in with your password, or ask your IT team."
)
PROVIDER_AWAY = "{provider} did not answer. Try again in a moment, or sign in with your password."


def init_sso(app: Any) -> None:
    """Register the provider when OIDC_ISSUER names one; otherwise the pages offer only
    passwords. One Authlib registry per app: it caches its clients."""
    issuer = app.config.get("OIDC_ISSUER")
    if not issuer:
        return
    oauth = app.extensions[_EXTENSION] = OAuth(app)
    oauth.register(
        "school",
        client_id=app.config["OIDC_CLIENT_ID"],
        client_secret=app.config["OIDC_CLIENT_SECRET"],
        server_metadata_url=issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256",
                       "timeout": 10},
    )  # fmt: skip


def provider() -> Any | None:
    """The provider's Authlib client, or None when single sign-on is not set up."""
    oauth = current_app.extensions.get(_EXTENSION)
    return oauth.create_client("school") if oauth is not None else None


def _provider_name() -> str:
    return str(current_app.config["OIDC_PROVIDER_NAME"])


def _callback_url() -> str:
    # The address registered with the provider: from PUBLIC_BASE_URL, never the Host.
    base = str(current_app.config["PUBLIC_BASE_URL"]).rstrip("/")
    return base + url_for("sso.callback")


def _refused(message: str) -> Any:
    session.clear()
    status = 403
    return render_template("pages/sign_in.html", errors={"sso": [message]}, email=""), status


@bp.get("/sign-in/sso")
def start() -> Any:
    """Off to the provider; Authlib keeps the state, nonce and PKCE verifier in the session."""
    school = provider()
    if school is None:
        return redirect(url_for("auth.sign_in"))
    next_page = safe_next(request.args.get("next"))
    session.clear()
    if next_page:
        session["sso_next"] = next_page
    try:
        return school.authorize_redirect(_callback_url())
    except (AuthlibBaseError, OSError, ValueError) as error:
        current_app.logger.warning("single sign-on could not start: %s", error)
        return _refused(PROVIDER_AWAY.format(provider=_provider_name()))


@bp.get("/sign-in/sso/callback")
def callback() -> Any:
    """Back from the provider: the code is exchanged and the ID token checked (issuer,
    audience, signature, expiry, nonce), then the email is matched to a user."""
    school = provider()
    if school is None:
        return redirect(url_for("auth.sign_in"))
    next_page = session.get("sso_next")
    try:
        token = school.authorize_access_token()
        claims = dict(token.get("userinfo") or {})
        if not claims.get("email"):
            claims.update(school.userinfo(token=token))
    except AuthlibBaseError as error:  # the provider's refusal, a bad state or ID token
        current_app.logger.info("single sign-on refused: %s", error.error)
        if error.error in ("server_error", "temporarily_unavailable"):
            return _refused(PROVIDER_AWAY.format(provider=_provider_name()))
        why = error.description or error.error
        return _refused(f"{_provider_name()} did not sign you in ({why}). Try again, or sign "
                        "in with your password.")  # fmt: skip
    except OSError as error:  # the provider's token or keys endpoint did not answer
        current_app.logger.warning("single sign-on could not finish: %s", error)
        return _refused(PROVIDER_AWAY.format(provider=_provider_name()))
    email = str(claims.get("email") or "").strip().lower()
    # Some providers send the flag as a string ("false").
    if not email or str(claims.get("email_verified", True)).lower() == "false":
        return _refused(NOT_VOUCHED.format(provider=_provider_name()))
    user = sign_in_service.user_for_sso(email)
    if user is None:
        return _refused(NOT_A_USER.format(provider=_provider_name(), email=email))
    start_session(user, "sso")
    current_app.logger.info("user %s signed in through %s", user.id, _provider_name())
    return redirect(safe_next(next_page) or url_for("pages.home"))
