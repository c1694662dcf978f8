"""Demo data: the sample roster plus an admin, agents and one employee per school."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from ..extensions import db
from ..models import Queue, Role, Staff, User
from ..roster import open_bundle
from .queues import add_member
from .roster import import_roster
from .sign_in import set_password
from .users import create_user, issue_api_token

DEMO_STAFF = ("stf-1", "stf-3", "stf-4")  # one administrator at each sample school
# The service-desk agent works the desk, student systems and the school offices; the
# identity agent works identity (where parent resets are escalated to).
DESK_QUEUES = ("its-service-desk", "its-student-systems")
DEMO_ITS = (
    ("admin@helpdesk.example", Role.ADMIN, "Demo Admin"),
    ("agent@helpdesk.example", Role.AGENT, "Demo Service Desk Agent"),
    ("identity@helpdesk.example", Role.AGENT, "Demo Identity Agent"),
)


@dataclass(frozen=True)
class DemoUser:
    role: str
    school: str | None
    token: str  # for the API
    password: str  # for the pages


def load_demo(roster_path: Path) -> dict[str, DemoUser]:
    """Import the roster, create the demo users if missing, and give each a fresh API token
    and a fresh password (printed by ``helpdesk demo``; only their hashes are kept)."""
    import_roster(open_bundle(roster_path), source=f"demo:{roster_path.name}")
    wanted: list[tuple[str, str, str | None, str | None]] = [
        (email, role.value, None, name) for email, role, name in DEMO_ITS
    ]
    for staff in db.session.execute(
        sa.select(Staff).where(Staff.sourced_id.in_(DEMO_STAFF)).order_by(Staff.sourced_id)
    ).scalars():
        if staff.email:
            wanted.append((staff.email, Role.EMPLOYEE.value, staff.sourced_id, None))
    made: dict[str, DemoUser] = {}
    desk_queues = db.session.execute(
        sa.select(Queue.slug).where(sa.or_(Queue.slug.like("school-office-%"),
                                           Queue.slug.in_(DESK_QUEUES)))
    ).scalars().all()  # fmt: skip
    for email, role, staff_id, name in wanted:
        user = db.session.execute(sa.select(User).where(User.email == email)).scalar_one_or_none()
        if user is None:
            user = create_user(email, role, staff_sourced_id=staff_id, display_name=name)
        school = user.staff.school.code if user.staff else None
        password = secrets.token_urlsafe(12)
        set_password(user, password)
        made[email] = DemoUser(role, school, issue_api_token(email, "demo"), password)
    for slug in desk_queues:
        add_member(slug, "agent@helpdesk.example")
    add_member("its-identity", "identity@helpdesk.example")
    return made
