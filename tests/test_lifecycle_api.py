"""Moving incidents through their lifecycle, and who may see and do what."""

from __future__ import annotations

import pytest

from .samples import AGAIN, FIONA_RESET, ISLA_RESET, LINK_FAILURE, REMINDER, file


def act(client, actor, ref, action, **body):
    return client.post(
        f"/api/v1/incidents/{ref}/transitions",
        json={"action": action, **body},
        headers=actor.headers,
    )


@pytest.fixture
def ref(client, actors):
    return file(client, actors.ashgrove, **FIONA_RESET).json["ref"]


def test_the_whole_lifecycle_is_audited_step_by_step(client, actors, ref):
    steps = [
        (actors.agent, "claim", {}, "in_progress"),
        (actors.agent, "comment", {"message": "Called the parent back."}, "in_progress"),
        (
            actors.agent,
            "escalate",
            {"queue": "its-identity", "message": "Verified by phone"},
            "triaged",
        ),
        (actors.identity, "claim", {}, "in_progress"),
        (actors.identity, "fulfil", {}, "awaiting_fulfilment"),
        (actors.identity, "resolve", {"message": "Reset sent"}, "resolved"),
        (actors.ashgrove, "reopen", {"message": "Still cannot sign in"}, "triaged"),
    ]
    for actor, action, body, status in steps:
        response = act(client, actor, ref, action, **body)
        assert response.status_code == 200, (action, response.json)
        assert response.json["status"] == status
    # Now in identity's queue: the desk agent no longer sees it, identity does.
    assert client.get(f"/api/v1/incidents/{ref}", headers=actors.agent.headers).status_code == 404
    incident = client.get(f"/api/v1/incidents/{ref}", headers=actors.identity.headers).json
    assert incident["queue"] == "its-identity"
    events = client.get(f"/api/v1/incidents/{ref}/events", headers=actors.identity.headers).json
    assert [(e["kind"], e["actor"], e["from_status"], e["to_status"]) for e in events[2:]] == [
        ("claim", actors.agent.email, "triaged", "in_progress"),
        ("comment", actors.agent.email, "in_progress", "in_progress"),
        ("escalate", actors.agent.email, "in_progress", "triaged"),
        ("claim", actors.identity.email, "triaged", "in_progress"),
        ("fulfil", actors.identity.email, "in_progress", "awaiting_fulfilment"),
        ("resolve", actors.identity.email, "awaiting_fulfilment", "resolved"),
        ("reopen", actors.ashgrove.email, "resolved", "triaged"),
    ]
    escalation = events[4]
    assert escalation["data"] == {"from_queue": "its-service-desk", "to_queue": "its-identity"}
    assert escalation["message"] == "Verified by phone"
    assert all(e["at"] for e in events)


def test_claiming_assigns_and_escalating_clears_the_assignee(client, actors, ref):
    assert act(client, actors.agent, ref, "claim").json["assignee"] == actors.agent.email
    escalated = act(client, actors.agent, ref, "escalate", queue="its-identity").json
    assert escalated["assignee"] is None


def test_only_a_queue_that_fulfils_parent_resets_may_approve_one(client, actors, ref):
    refused = act(client, actors.agent, ref, "fulfil")
    assert refused.status_code == 403
    assert "escalate" in refused.json["message"] and "its-identity" in refused.json["message"]
    assert "fulfil" not in refused.json["allowed_actions"]
    # An admin in the service desk's queue is refused alike: the queue decides.
    assert act(client, actors.admin, ref, "fulfil").status_code == 403
    assert act(client, actors.agent, ref, "escalate", queue="its-identity").status_code == 200
    approved = act(client, actors.identity, ref, "fulfil")
    assert approved.status_code == 200, approved.json
    assert approved.json["status"] == "awaiting_fulfilment"


def test_an_admin_sets_which_types_a_queue_fulfils(app, client, actors, ref):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["queues", "fulfils", "its-service-desk", "parent_password_reset",
              "username_reminder"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "its-service-desk fulfils parent_password_reset, username_reminder" in result.output
    assert act(client, actors.agent, ref, "fulfil").status_code == 200
    listed = {q["slug"]: q["fulfils"] for q in client.get(
        "/api/v1/queues", headers=actors.admin.headers).json}  # fmt: skip
    assert listed["its-service-desk"] == ["parent_password_reset", "username_reminder"]
    bad = runner.invoke(args=["queues", "fulfils", "its-service-desk", "tea_making"])
    assert bad.exit_code != 0 and "tea_making" in bad.output


def test_an_illegal_transition_is_409_with_the_allowed_ones(client, actors, ref):
    response = act(client, actors.agent, ref, "reopen")
    assert response.status_code == 409
    assert response.json["code"] == "illegal_transition"
    assert response.json["incident_status"] == "triaged"
    assert response.json["allowed_actions"] == [
        "claim",
        "comment",
        "escalate",
        "resolve",
        "reject",
        "cancel",
    ]


def test_a_closed_end_state_allows_only_comments(client, actors, ref):
    assert act(client, actors.ashgrove, ref, "cancel", message="Parent found it").status_code == 200
    for action in ("claim", "resolve", "reopen", "fulfil", "escalate"):
        response = act(client, actors.agent, ref, action, queue="its-identity")
        assert response.status_code == 409, action
        assert response.json["allowed_actions"] == ["comment"]


def test_an_employee_may_not_take_agent_actions(client, actors, ref):
    response = act(client, actors.ashgrove, ref, "claim")
    assert response.status_code == 403
    assert "employee" in response.json["message"]
    assert response.json["allowed_actions"] == ["comment", "cancel"]


def test_fulfilment_needs_a_passed_verification(client, actors):
    failed = file(client, actors.ashgrove, **{**FIONA_RESET, "parent_pin": "000000"}).json["ref"]
    response = act(client, actors.agent, failed, "fulfil")
    assert response.status_code == 409
    assert response.json["code"] == "verification_failed"


def test_a_link_failure_has_no_fulfilment(client, actors):
    ref = file(client, actors.ashgrove, **LINK_FAILURE).json["ref"]
    response = act(client, actors.agent, ref, "fulfil")
    assert response.status_code == 409
    assert "fulfil" not in response.json["allowed_actions"]


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("escalate", {}, "queue"),
        ("escalate", {"queue": "its-service-desk"}, "queue"),
        ("reject", {}, "message"),
        ("comment", {}, "message"),
    ],
)
def test_transitions_missing_what_they_need_are_422(client, actors, action, body, field):
    # A username reminder has no escalation target in the default rules.
    ref = file(client, actors.ashgrove, **REMINDER).json["ref"]
    response = act(client, actors.agent, ref, action, **body)
    assert response.status_code == 422
    assert field in response.json["errors"]["fields"]


def test_escalating_without_a_queue_follows_the_routing_rules(client, actors, ref):
    # The default rules send a parent reset on to identity when the desk escalates it.
    response = act(client, actors.agent, ref, "escalate", message="Parent verified by phone")
    assert response.status_code == 200, response.json
    assert response.json["queue"] == "its-identity"


def test_escalating_to_an_unknown_queue_names_it(client, actors, ref):
    response = act(client, actors.agent, ref, "escalate", queue="its-nowhere")
    assert response.status_code == 422
    assert "its-nowhere" in response.json["message"]


def test_an_unknown_action_is_422(client, actors, ref):
    response = act(client, actors.agent, ref, "delete")
    assert response.status_code == 422
    assert "claim" in response.json["errors"]["fields"]["action"][0]


def test_another_schools_incident_does_not_exist_for_an_employee(client, actors, ref):
    other = actors.millbrook
    for response in (
        client.get(f"/api/v1/incidents/{ref}", headers=other.headers),
        client.get(f"/api/v1/incidents/{ref}/events", headers=other.headers),
        act(client, other, ref, "comment", message="hello"),
    ):
        assert response.status_code == 404
        assert response.json["code"] == "not_found"
    # The same answer as for an incident that does not exist at all.
    missing = client.get("/api/v1/incidents/INC-999999", headers=other.headers)
    hidden = client.get(f"/api/v1/incidents/{ref}", headers=other.headers)
    assert missing.json["message"].replace("INC-999999", ref) == hidden.json["message"]
    listed = client.get("/api/v1/incidents", headers=other.headers).json["items"]
    assert ref not in [i["ref"] for i in listed]


def test_a_colleague_at_the_same_school_sees_and_comments(client, actors, ref):
    teacher = actors.ashgrove_teacher
    assert client.get(f"/api/v1/incidents/{ref}", headers=teacher.headers).status_code == 200
    assert act(client, teacher, ref, "comment", message="Parent rang again").status_code == 200


@pytest.mark.parametrize("bad", ["INC-abc", "123", "INC-", "../etc"])
def test_malformed_references_are_404(client, actors, bad):
    assert client.get(f"/api/v1/incidents/{bad}", headers=actors.agent.headers).status_code == 404


def test_paging_through_incidents_with_a_cursor(client, actors):
    refs = {file(client, actors.ashgrove, **ISLA_RESET, **AGAIN).json["ref"] for _ in range(5)}
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": 2, "type": "student_password_reset"} | (
            {"cursor": cursor} if cursor else {}
        )
        page = client.get(
            "/api/v1/incidents", query_string=query, headers=actors.ashgrove.headers
        ).json
        seen += [i["ref"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(refs, reverse=True)


def test_filters_narrow_the_list(client, actors):
    isla = file(client, actors.ashgrove, **ISLA_RESET).json["ref"]
    fiona = file(client, actors.ashgrove, **FIONA_RESET).json["ref"]
    act(client, actors.agent, fiona, "claim")
    h = actors.agent.headers

    def refs(**query):
        return [
            i["ref"]
            for i in client.get("/api/v1/incidents", query_string=query, headers=h).json["items"]
        ]

    assert refs(queue="its-student-systems") == [isla]
    assert refs(assignee="me") == [fiona]
    assert refs(status="in_progress") == [fiona]
    assert set(refs(school="5231234")) == {isla, fiona}
    assert refs(school="8864021") == []
    bad = client.get("/api/v1/incidents", query_string={"limit": 0}, headers=h)
    assert bad.status_code == 422 and "limit" in bad.json["errors"]["fields"]
    bad = client.get("/api/v1/incidents", query_string={"cursor": "!!"}, headers=h)
    assert bad.status_code == 422 and "cursor" in bad.json["errors"]["fields"]


def test_finding_incidents_by_reference_name_number_or_words(client, actors):
    isla = file(client, actors.ashgrove, **ISLA_RESET, summary="Locked out after half term").json
    assert isla["status"] == "awaiting_fulfilment"
    fiona = file(client, actors.ashgrove, **FIONA_RESET).json["ref"]
    link = file(client, actors.ashgrove, **LINK_FAILURE, notes="Dad typed 50% of it").json["ref"]

    def found(q, who=actors.admin):
        answer = client.get("/api/v1/incidents", query_string={"q": q}, headers=who.headers)
        assert answer.status_code == 200, answer.json
        return {i["ref"] for i in answer.json["items"]}

    # The name typed, in any case: the student's, and the child's in the link failure.
    assert found("isla CAMPBELL") == {isla["ref"], link}
    assert found("campbell") == {isla["ref"], fiona, link}
    assert found("ASH240891") == {isla["ref"], fiona}  # a student number typed
    assert found("P500001") == {fiona}
    assert found("half term") == {isla["ref"]}  # words of the summary
    assert found("50%") == {link} and found("0%") == {link}  # % is text, not a wildcard
    assert found(fiona.lower()) == {fiona}  # a reference, however it is typed
    assert found(fiona[len("INC-") :]) == {fiona}  # or only its number
    assert found("596853") == set()  # the PIN is checked, never kept, so never found
    assert found("campbell", actors.ashgrove_teacher) == {isla["ref"], fiona, link}
    assert found("campbell", actors.millbrook) == set()  # another school's employee
    assert found("campbell", actors.identity) == set()  # an agent of another queue
    short = client.get("/api/v1/incidents", query_string={"q": "c"}, headers=actors.admin.headers)
    assert short.status_code == 422 and "q" in short.json["errors"]["fields"]
    accented = file(client, actors.ashgrove,
                    **{**ISLA_RESET, "student_name": "Ísla Campbell"}, **AGAIN)  # fmt: skip
    assert found("ísla") == {accented.json["ref"]}  # as typed, not as JSON escapes it


def test_queues_list_open_counts(client, actors):
    file(client, actors.ashgrove, **ISLA_RESET)
    queues = {q["slug"]: q for q in client.get("/api/v1/queues", headers=actors.agent.headers).json}
    assert {
        "its-service-desk",
        "its-identity",
        "its-student-systems",
        "school-office-5231234",
        "school-office-8864021",
    } <= set(queues)
    assert queues["its-student-systems"]["open"] >= 1
    assert queues["its-student-systems"]["sla_plan"] == "standard"
    assert queues["school-office-5231234"]["school"] == "5231234"
    assert queues["school-office-5231234"]["sla_plan"] == "link-failure-5-days"


def test_agents_see_only_their_queues_and_admins_see_all(client, actors, ref):
    revocation = file(client, actors.ashgrove, type="access_revocation", guardian_id="par-5-1",
                      reason="court_order").json["ref"]  # fmt: skip
    assert client.get(f"/api/v1/incidents/{revocation}",
                      headers=actors.agent.headers).status_code == 404  # fmt: skip
    assert act(client, actors.agent, revocation, "claim").status_code == 404
    assert act(client, actors.identity, revocation, "comment", message="seen").status_code == 200
    assert (
        client.get(f"/api/v1/incidents/{ref}", headers=actors.identity.headers).status_code == 404
    )
    for actor in (actors.agent, actors.admin):
        assert client.get(f"/api/v1/incidents/{ref}", headers=actor.headers).status_code == 200
    listed = [i["ref"] for i in client.get("/api/v1/incidents", headers=actors.identity.headers
                                           ).json["items"]]  # fmt: skip
    assert revocation in listed and ref not in listed


def test_queue_members_are_managed_from_the_cli(app, actors):
    runner = app.test_cli_runner()
    added = runner.invoke(args=["queues", "add-member", "its-identity", actors.agent.email])
    assert added.exit_code == 0, added.output
    listing = runner.invoke(args=["queues", "list"]).output
    identity_line = next(line for line in listing.splitlines() if line.startswith("its-identity"))
    assert actors.agent.email in identity_line and actors.identity.email in identity_line
    refused = runner.invoke(args=["queues", "add-member", "its-identity", actors.ashgrove.email])
    assert refused.exit_code == 1 and "only agents" in refused.output
    removed = runner.invoke(args=["queues", "remove-member", "its-identity", actors.agent.email])
    assert removed.exit_code == 0 and "no longer a member of its-identity" in removed.output
    listing = runner.invoke(args=["queues", "list"]).output
    identity_line = next(line for line in listing.splitlines() if line.startswith("its-identity"))
    assert actors.agent.email not in identity_line and actors.identity.email in identity_line
    again = runner.invoke(args=["queues", "remove-member", "its-identity", actors.agent.email])
    assert again.exit_code == 1 and "is not a member of its-identity" in again.output


def test_a_resolved_incident_closes_itself_after_the_quiet_period(client, actors, ref, app):
    from datetime import UTC, datetime, timedelta

    import sqlalchemy as sa

    from helpdesk.extensions import db
    from helpdesk.models import Incident
    from helpdesk.services.transitions import close_quiet_resolved

    recent = file(client, actors.ashgrove, **ISLA_RESET).json["ref"]
    for r in (ref, recent):
        act(client, actors.agent, r, "claim")
        act(client, actors.agent, r, "resolve", message="Done")
    quiet = datetime.now(UTC) - timedelta(days=app.config["RESOLVED_QUIET_DAYS"] + 1)
    db.session.execute(sa.update(Incident).where(Incident.id == int(ref[4:]))
                       .values(resolved_at=quiet))  # fmt: skip
    assert close_quiet_resolved() == [int(ref[4:])]
    assert close_quiet_resolved() == []
    closed = client.get(f"/api/v1/incidents/{ref}", headers=actors.agent.headers).json
    assert closed["status"] == "closed"
    assert closed["allowed_actions"] == ["comment"]
    events = client.get(f"/api/v1/incidents/{ref}/events", headers=actors.agent.headers).json
    assert (events[-1]["kind"], events[-1]["actor"], events[-1]["to_status"]) == (
        "close",
        "system",
        "closed",
    )
    still = client.get(f"/api/v1/incidents/{recent}", headers=actors.agent.headers).json
    assert still["status"] == "resolved"
