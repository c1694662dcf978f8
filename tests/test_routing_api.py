"""Routing rules as data: saved in versions, rolled back, tried out, and applied at filing."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
import yaml

from helpdesk.extensions import db
from helpdesk.models import Incident, RoutingRuleSet
from helpdesk.services.routing import DEFAULT_RULES

from .samples import FIONA_RESET, ISLA_RESET, LINK_FAILURE, file

PARENT_RESETS_TO_IDENTITY = {
    "name": "parent resets straight to identity",
    "conditions": {"all": [{"field": "type", "op": "eq", "value": "parent_password_reset"},
                           {"field": "nation", "op": "eq", "value": "SCT"}]},
    "actions": [{"route_to": "its-identity"}, {"set_priority": "P2"},
                {"add_tag": "scottish-pilot"}],
    "stop": True,
}  # fmt: skip


def default_rules() -> list[dict]:
    return yaml.safe_load(DEFAULT_RULES.read_text())


def put_rules(client, actor, rules, **extra):
    return client.put("/api/v1/routing-rules", json={"rules": rules, **extra},
                      headers=actor.headers)  # fmt: skip


def saved_versions() -> int:
    return db.session.execute(sa.select(sa.func.count(RoutingRuleSet.id))).scalar_one()


def test_the_shipped_rules_are_in_force_until_an_admin_saves_some(client, actors):
    body = client.get("/api/v1/routing-rules", headers=actors.agent.headers).json
    assert body == {"version": 0, "rules": default_rules()}


def test_a_saved_version_routes_new_incidents_and_is_recorded_on_them(client, actors, app):
    response = put_rules(client, actors.admin, [PARENT_RESETS_TO_IDENTITY, *default_rules()],
                         note="pilot in Scotland")  # fmt: skip
    assert response.status_code == 200, response.json
    version = response.json["version"]
    filed = file(client, actors.ashgrove, **FIONA_RESET).json  # Ashgrove is in Scotland
    assert (filed["queue"], filed["priority"], filed["tags"]) == (
        "its-identity",
        "P2",
        ["scottish-pilot"],
    )
    england = file(client, actors.millbrook, type="student_password_reset",
                   student_id="MIL367459", student_name="Jack Hughes",
                   birth_month_year="062012").json  # fmt: skip
    assert england["queue"] == "its-student-systems"
    events = client.get(f"/api/v1/incidents/{filed['ref']}/events",
                        headers=actors.identity.headers).json  # fmt: skip
    routed = events[1]
    assert routed["kind"] == "routed"
    assert routed["data"]["rule_set_version"] == version
    assert routed["data"]["matched"] == ["parent resets straight to identity"]
    assert "parent resets straight to identity" in routed["message"]
    stored = db.session.get(Incident, int(filed["ref"][4:]))
    assert stored.rule_set_version == version


def test_an_incident_no_rule_routes_goes_to_the_service_desk(client, actors):
    put_rules(client, actors.admin, [])
    filed = file(client, actors.ashgrove, **ISLA_RESET).json
    assert (filed["queue"], filed["priority"]) == ("its-service-desk", "P3")


def test_the_default_rules_send_a_parent_reset_on_to_identity_when_escalated(client, actors):
    filed = file(client, actors.ashgrove, **FIONA_RESET).json
    stored = db.session.get(Incident, int(filed["ref"][4:]))
    assert stored.escalation_queue_id is not None
    assert file(client, actors.ashgrove, **LINK_FAILURE).json["queue"] == "school-office-5231234"


def test_bad_rules_are_refused_saying_where_and_nothing_is_saved(client, actors):
    before = saved_versions()
    bad_op = [
        {
            "name": "x",
            "conditions": {"all": [{"field": "type", "op": "like", "value": "x"}]},
            "actions": [],
        }
    ]
    response = put_rules(client, actors.admin, bad_op)
    assert response.status_code == 422
    assert response.json["code"] == "invalid_rules"
    assert response.json["errors"]["rules"] == {
        "rules[0].conditions.all[0].op": [
            "unknown operator 'like'; use one of eq, ne, in, not_in, contains, matches, lt, "
            "gt, exists"
        ]
    }
    unknown_queue = [{"name": "x", "conditions": {"all": []},
                      "actions": [{"route_to": "its-nowhere"}]}]  # fmt: skip
    response = put_rules(client, actors.admin, unknown_queue)
    assert response.status_code == 422
    assert "'its-nowhere'" in response.json["message"]
    assert saved_versions() == before


def test_only_admins_change_rules(client, actors):
    for actor in (actors.agent, actors.ashgrove):
        assert put_rules(client, actor, default_rules()).status_code == 403
    assert client.get("/api/v1/routing-rules", headers=actors.ashgrove.headers).status_code == 403


def test_rolling_back_saves_the_old_rules_as_a_new_version(client, actors):
    first = put_rules(client, actors.admin, default_rules()).json["version"]
    second = put_rules(client, actors.admin, [PARENT_RESETS_TO_IDENTITY]).json["version"]
    back = client.post("/api/v1/routing-rules/rollback", json={"version": first},
                       headers=actors.admin.headers)  # fmt: skip
    assert back.status_code == 200
    assert back.json["version"] == second + 1
    assert back.json["rules"] == default_rules()
    listed = client.get("/api/v1/routing-rules/versions", headers=actors.admin.headers).json
    assert [v["version"] for v in listed[:3]] == [second + 1, second, first]
    assert listed[0]["note"] == f"roll back to version {first}"
    assert listed[0]["created_by"] == actors.admin.email
    missing = client.post("/api/v1/routing-rules/rollback", json={"version": 999},
                          headers=actors.admin.headers)  # fmt: skip
    assert missing.status_code == 404
    beyond = client.post("/api/v1/routing-rules/rollback", json={"version": 2**80},
                         headers=actors.admin.headers)  # fmt: skip
    assert beyond.status_code == 422  # found by fuzzing the API: was a database error
    assert "whole number between" in beyond.json["errors"]["fields"]["version"][0]


def test_a_dry_run_answers_and_changes_nothing(client, actors):
    ref = file(client, actors.ashgrove, **FIONA_RESET).json["ref"]
    before = (saved_versions(), db.session.get(Incident, int(ref[4:])).queue_id)
    example = {"incident": {"type": "parent_password_reset", "nation": "SCT"},
               "rules": [PARENT_RESETS_TO_IDENTITY]}  # fmt: skip
    tried = client.post("/api/v1/routing-rules/dry-run", json=example,
                        headers=actors.admin.headers).json  # fmt: skip
    assert tried["version"] is None
    assert (tried["queue"], tried["priority"]) == ("its-identity", "P2")
    assert tried["matched"] == ["parent resets straight to identity"]
    in_force = client.post("/api/v1/routing-rules/dry-run", json={"ref": ref},
                           headers=actors.agent.headers).json  # fmt: skip
    assert (in_force["version"], in_force["queue"], in_force["escalate_to"]) == (
        0,
        "its-service-desk",
        "its-identity",
    )
    assert (saved_versions(), db.session.get(Incident, int(ref[4:])).queue_id) == before
    neither = client.post("/api/v1/routing-rules/dry-run", json={}, headers=actors.admin.headers)
    assert neither.status_code == 422


def test_rules_load_and_export_round_trip_through_the_cli(app, tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump([PARENT_RESETS_TO_IDENTITY, *default_rules()]))
    loaded = app.test_cli_runner().invoke(args=["rules", "load", str(path), "--note", "pilot"])
    assert loaded.exit_code == 0, loaded.output
    assert f"Saved {len(default_rules()) + 1} rules" in loaded.output
    exported = app.test_cli_runner().invoke(args=["rules", "export"])
    assert yaml.safe_load(exported.output) == [PARENT_RESETS_TO_IDENTITY, *default_rules()]
    path.write_text("- name: broken\n  actions: [{email: someone@example.org}]\n")
    refused = app.test_cli_runner().invoke(args=["rules", "load", str(path)])
    assert refused.exit_code == 1
    assert "rules[0].actions[0]" in refused.output
    path.write_text("- name: x\n  conditions: [\n")
    not_yaml = app.test_cli_runner().invoke(args=["rules", "load", str(path)])
    assert not_yaml.exit_code == 1
    assert "is not a rule set: Line 3:" in not_yaml.output and "(YAML syntax)" in not_yaml.output


WAITING_FAMILIES = {
    "name": "waiting on a family",
    "conditions": {
        "all": [
            {"field": "event", "op": "eq", "value": "updated"},
            {"field": "status", "op": "eq", "value": "awaiting_reply"},
        ]
    },
    "actions": [{"add_tag": "waiting-on-family"}, {"set_priority": "P4"}],
}
ESCALATED_TO_IDENTITY = {
    "name": "escalated into identity is urgent",
    "conditions": {"all": [{"field": "event", "op": "eq", "value": "updated"},
                           {"field": "changed", "op": "contains", "value": "queue"},
                           {"field": "queue", "op": "eq", "value": "its-identity"}]},
    "actions": [{"set_priority": "P1"}, {"notify": "queue:its-identity"}],
}  # fmt: skip


def transition(client, actor, ref, action, **body):
    return client.post(f"/api/v1/incidents/{ref}/transitions", json={"action": action, **body},
                       headers=actor.headers)  # fmt: skip


def test_rules_run_again_when_an_update_changes_what_they_read(client, actors):
    put_rules(client, actors.admin, [*default_rules(), WAITING_FAMILIES, ESCALATED_TO_IDENTITY])
    ref = file(client, actors.ashgrove, **FIONA_RESET).json["ref"]
    transition(client, actors.agent, ref, "claim")
    waiting = transition(client, actors.agent, ref, "await_reply", message="Rang the parent")
    assert waiting.json["tags"] == ["waiting-on-family"]
    assert waiting.json["priority"] == "P4"
    transition(client, actors.agent, ref, "resume")
    escalated = transition(client, actors.agent, ref, "escalate")
    assert escalated.json["queue"] == "its-identity"
    assert escalated.json["priority"] == "P1"
    events = client.get(f"/api/v1/incidents/{ref}/events", headers=actors.admin.headers).json
    runs = [e for e in events if e["kind"] == "rules"]
    assert [(r["data"]["matched"], r["data"]["changed"]) for r in runs] == [
        (["waiting on a family"], ["status"]),
        (["escalated into identity is urgent"], ["status", "queue", "assignee"]),
    ]
    assert runs[1]["data"]["notify"] == ["queue:its-identity"]


def test_the_default_rules_leave_updates_alone(client, actors):
    ref = file(client, actors.ashgrove, **FIONA_RESET).json["ref"]
    transition(client, actors.agent, ref, "claim")
    transition(client, actors.agent, ref, "escalate")
    events = client.get(f"/api/v1/incidents/{ref}/events", headers=actors.admin.headers).json
    assert "rules" not in [e["kind"] for e in events]
    incident = client.get(f"/api/v1/incidents/{ref}", headers=actors.admin.headers).json
    assert (incident["queue"], incident["priority"]) == ("its-identity", "P3")


def test_out_of_hours_is_judged_by_the_schools_own_calendar(client, actors, app):
    import time
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from helpdesk.domain.business_time import BusinessCalendar

    # Give Ashgrove hours that disagree with the default Mon-Fri 08:00-16:30 right now:
    # open all of today if the default is closed, else open only on another day. Hours end
    # at 23:59 at the latest, so a test started in a day's last minutes waits for the next.
    london = datetime.now(UTC).astimezone(ZoneInfo("Europe/London"))
    if (london.hour, london.minute) >= (23, 58):
        tomorrow = (london + timedelta(days=1)).replace(hour=0, minute=0, second=5)
        time.sleep((tomorrow - london).total_seconds())
    now = datetime.now(UTC)
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    default_open = BusinessCalendar.for_nation("SCT").is_open(now)
    today = now.astimezone(ZoneInfo("Europe/London")).weekday()
    spec = f"{days[(today + 3) % 7]} 08:00-16:30" if default_open else f"{days[today]} 00:00-23:59"
    hours = app.test_cli_runner().invoke(args=["sla", "hours", "5231234", spec])
    assert hours.exit_code == 0, hours.output
    tag_by_hours = [
        {"name": f"business hours {flag}",
         "conditions": {"all": [{"field": "received.business_hours", "op": "eq", "value": flag}]},
         "actions": [{"add_tag": "in-hours" if flag else "out-of-hours"}]}
        for flag in (True, False)
    ]  # fmt: skip
    put_rules(client, actors.admin, [*tag_by_hours, *default_rules()])
    filed = file(client, actors.ashgrove, **ISLA_RESET).json
    assert filed["tags"] == ["out-of-hours" if default_open else "in-hours"]


def test_the_shipped_rules_are_version_0_in_the_history_and_can_be_rolled_back_to(
    app, client, actors
):
    from .test_pages import csrf_token, signed_in

    headers = actors.admin.headers
    mine = [{"name": "everything to identity", "conditions": {"all": []},
             "actions": [{"route_to": "its-identity"}], "stop": True}]  # fmt: skip
    assert client.put("/api/v1/routing-rules", json={"rules": mine},
                      headers=headers).status_code == 200  # fmt: skip
    history = client.get("/api/v1/routing-rules/versions", headers=headers).json
    assert history[-1]["version"] == 0 and history[-1]["created_at"] is None
    assert history[-1]["rule_count"] >= 5
    back = client.post("/api/v1/routing-rules/rollback", json={"version": 0}, headers=headers)
    assert back.status_code == 200, back.json
    # In force here at once; in every other process once their cache of it (5 s) runs out.
    saved_at = datetime.fromisoformat(history_of(client, headers)[0]["created_at"])
    everywhere = datetime.fromisoformat(back.json["in_force_everywhere_at"])
    assert everywhere - saved_at == timedelta(seconds=app.config["RULES_CACHE_SECONDS"])
    in_force = client.get("/api/v1/routing-rules", headers=headers).json
    assert in_force["rules"][0]["name"] == "revocations go to identity at once"
    # The CLI does the same, and the page offers it.
    runner = app.test_cli_runner()
    result = runner.invoke(args=["rules", "rollback", "0"])
    assert result.exit_code == 0 and "Version 0 is back as version" in result.output
    assert "every process routes new incidents with it by" in result.output
    admin = signed_in(app, actors.admin.email)
    client.put("/api/v1/routing-rules", json={"rules": mine}, headers=headers)
    page = admin.get("/admin/rules").text
    assert "ships with the helpdesk" in page and 'name="version" value="0"' in page
    rolled = admin.post(
        "/admin/rules/rollback",
        data={"version": "0", "confirmed": "yes",
              "csrf_token": csrf_token(admin, "/admin/rules")},
    )  # fmt: skip
    assert rolled.status_code == 302
    assert "Version 0 is back, saved as version" in admin.get("/admin/rules").text


def history_of(client, headers):
    return client.get("/api/v1/routing-rules/versions", headers=headers).json
