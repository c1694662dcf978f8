"""Two-step sign-in in the tests: a user enrolled as their authenticator app would do it,
and the code that app shows now. Runs in the app's context, against its database."""

from __future__ import annotations

import pyotp
import sqlalchemy as sa
from flask import current_app

from helpdesk.extensions import db
from helpdesk.models import User
from helpdesk.security import unseal
from helpdesk.services import two_step


def app_code(user_id: int) -> str:
    """What the user's app shows now. A person signs in a few times a day, a test many
    times a minute: the step last used is forgotten first, so the current code counts."""
    db.session.execute(sa.update(User).where(User.id == user_id).values(totp_last_step=None))
    db.session.commit()
    sealed = db.session.execute(sa.select(User.totp_sealed).where(User.id == user_id)).scalar_one()
    return pyotp.TOTP(unseal(current_app.config["SECRET_KEY"], sealed)).now()


def enrol(user_id: int) -> list[str]:
    """Set two-step sign-in up for the user, as the set-up page does; its recovery codes."""
    two_step.begin_enrolment(user_id)
    return two_step.confirm_enrolment(user_id, app_code(user_id))


def enrolled_where_required(user: User) -> None:
    if two_step.required_for(user.role) and not two_step.enrolled(user):
        enrol(user.id)
