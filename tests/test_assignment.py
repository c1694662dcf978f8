"""Assignment that spreads the work: a queue may give each new incident to a member in
turn or to the one with the fewest open, skipping those away or removed; each choice is
on the timeline, and two filings at one moment are not both given to one member."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from helpdesk.extensions import db
from helpdesk.models import Incident, IncidentEvent, User
from helpdesk.services import assignment
from helpdesk.services.queues import add_member, remove_member

from .samples import AGAIN, FIONA_RESET, file
from .test_pages import csrf_token, signed_in

DESK = "its-service-desk"  # where a parent reset goes


def _assignees(client, actor, n: int) -> list[str | None]:
    return [file(client, actor, **FIONA_RESET, **AGAIN).json["assignee"] for _ in range(n)]


def test_round_robin_gives_each_member_a_turn_and_says_so(client, actors):
    add_member(DESK, actors.identity.email)
    assignment.set_mode(DESK, "round_robin")
    given = _assignees(client, actors.ashgrove, 4)
    agent, identity = actors.agent.email, actors.identity.email
    assert given in ([agent, identity, agent, identity], [identity, agent, identity, agent])
    events = db.session.execute(
        sa.select(IncidentEvent.message, IncidentEvent.data)
        .where(IncidentEvent.kind == "assigned").order_by(IncidentEvent.id)
    ).all()  # fmt: skip
    assert [data["assignee"] for _, data in events] == given
    assert all(f"by {DESK} (round robin)" in message for message, _ in events)


def test_fewest_open_evens_out_the_load(client, actors):
    add_member(DESK, actors.identity.email)
    assignment.set_mode(DESK, "round_robin")
    _assignees(client, actors.ashgrove, 1)  # one member now has one open more
    assignment.set_mode(DESK, "fewest_open")
    _assignees(client, actors.ashgrove, 3)  # the other first, then one each
    open_by = dict(db.session.execute(
        sa.select(User.email, sa.func.count(Incident.id))
        .join(Incident, Incident.assignee_id == User.id).group_by(User.email)
    ).all())  # fmt: skip
    assert open_by == {actors.agent.email: 2, actors.identity.email: 2}


def test_an_away_or_removed_member_gets_no_new_work(app, client, actors):
    add_member(DESK, actors.identity.email)
    assignment.set_mode(DESK, "round_robin")
    identity = db.session.execute(
        sa.select(User).where(User.email == actors.identity.email)
    ).scalar_one()
    assignment.set_away(identity.id, True)
    assert set(_assignees(client, actors.ashgrove, 3)) == {actors.agent.email}
    assignment.set_away(identity.id, False)
    assert actors.identity.email in _assignees(client, actors.ashgrove, 2)
    remove_member(DESK, actors.identity.email)
    assert set(_assignees(client, actors.ashgrove, 3)) == {actors.agent.email}
    # Nobody available: it waits in the queue, unassigned, for someone to claim it.
    agent = db.session.execute(sa.select(User).where(User.email == actors.agent.email)).scalar()
    assignment.set_away(agent.id, True)
    assert _assignees(client, actors.ashgrove, 1) == [None]


def test_a_queue_that_does_not_assign_leaves_new_incidents_to_be_claimed(client, actors):
    assert _assignees(client, actors.ashgrove, 2) == [None, None]


def test_agents_say_they_are_away_and_admins_see_it(app, actors):
    agent = signed_in(app, actors.agent.email)
    page = agent.get("/queue")
    assert "I am away" in page.text
    agent.post("/queue/away", data={"away": "yes", "csrf_token": csrf_token(agent, "/queue")})
    assert "I am back" in agent.get("/queue").text
    admin = signed_in(app, actors.admin.email)
    queues = admin.get("/admin/queues").text
    assert "away since" in queues
    token = csrf_token(admin, "/admin/queues")
    saved = admin.post(
        "/admin/queues/assign", data={"queue": DESK, "mode": "fewest_open", "csrf_token": token}
    )
    assert saved.status_code == 302
    assert 'value="fewest_open" selected' in admin.get("/admin/queues").text
    wrong = admin.post(
        "/admin/queues/assign", data={"queue": DESK, "mode": "by_magic", "csrf_token": token}
    )
    assert wrong.status_code == 422 and "Assignment is one of" in wrong.text


def test_two_filings_at_one_moment_go_to_two_members(committed_app):
    """Real commits on PostgreSQL: the queue's lock orders the two choices."""
    app, _, actors = committed_app
    with app.app_context():
        add_member(DESK, actors.identity.email)
        assignment.set_mode(DESK, "fewest_open")
        db.session.remove()
    for _ in range(3):  # a few rounds, each two at once
        start = threading.Barrier(2)
        given: list[str | None] = []

        def one(start: threading.Barrier = start, given: list[str | None] = given) -> None:
            client = app.test_client()
            start.wait()
            answer = file(client, actors.ashgrove, **FIONA_RESET, **AGAIN)
            given.append(answer.json.get("assignee", answer.json.get("message")))

        threads = [threading.Thread(target=one) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(given) == sorted([actors.agent.email, actors.identity.email]), given
