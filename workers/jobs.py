"""The RQ jobs. Each takes one id, and the services reload everything from the database.

RQ logs a job's arguments and keeps them in Redis, so ids are all there is to see.
Every job is idempotent (the fulfilment state machine), because RQ runs a job at
least once: a retried, relayed or duplicated job finds the work done and stops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flask import Flask, has_app_context

_app: Flask | None = None


@contextmanager
def app_context() -> Iterator[None]:
    """The worker's app context; a plain ``rq worker`` gets an app built from the environment."""
    global _app
    if has_app_context():
        yield
        return
    if _app is None:
        from helpdesk import create_app

        _app = create_app()
    with _app.app_context():
        yield


def _run(service: Callable[[int], str], target_id: int) -> str:
    from helpdesk.extensions import db
    from helpdesk.services import outbox

    with app_context():
        try:
            return service(target_id)
        finally:
            # What the job committed may have promised emails: hand them to RQ now.
            try:
                outbox.dispatch_committed()
            finally:
                db.session.remove()


def reset_credential(fulfilment_id: int) -> str:
    """Set a one-time password or reset link, then email it to the address on file."""
    from helpdesk.services.fulfilment_run import run

    return _run(run, fulfilment_id)


def send_username_reminder(fulfilment_id: int) -> str:
    """Email the portal username to the address on file."""
    from helpdesk.services.fulfilment_run import run

    return _run(run, fulfilment_id)


def revoke_access(fulfilment_id: int) -> str:
    """Disable the guardians' portal accounts at once, and record it."""
    from helpdesk.services.fulfilment_run import run

    return _run(run, fulfilment_id)


def deliver_email(notification_id: int) -> str:
    """Send one email that carries no secret (an outcome, a notice)."""
    from helpdesk.services.notifications import deliver_notification

    return _run(deliver_notification, notification_id)


def deliver_class_slips(class_reset_id: int) -> str:
    """Email a class reset's one-time passwords to its teacher, as one message of slips."""
    from helpdesk.services.class_slips import deliver

    return _run(deliver, class_reset_id)


def deliver_recovery_notice(attempt_id: int) -> str:
    """Tell an account's holder that its self-service recovery was locked after repeated tries."""
    from helpdesk.services.self_service import deliver_notice

    return _run(deliver_notice, attempt_id)
