"""The API under generated input: whatever arrives, the answer is never a server error.

schemathesis reads the OpenAPI document the app serves and, with hypothesis, generates
requests for every operation — ones the schema allows and ones it breaks — sent to the
app in process as an employee, two agents and an admin, inside the test's rolled-back
transaction. Run from the command line against a served app it first found a 500 for an
incident ``type`` that was an object, and one for a rule-set version beyond its column.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from .samples import FIONA_RESET, file


def test_no_generated_request_gets_a_server_error(app, client, actors):
    # A real incident, so that generated transitions and reads reach the lifecycle rather
    # than stopping at 404 (its ref replaces the generated one half of the time).
    ref = file(client, actors.ashgrove, **FIONA_RESET).json["ref"]
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12  # every operation the API documents
    for operation in operations:

        @given(case=operation.as_strategy(), real_ref=st.booleans())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)  # fmt: skip
        def answers_without_a_server_error(case, real_ref):
            if real_ref and "ref" in (case.path_parameters or {}):
                case.path_parameters["ref"] = ref
            for who in (actors.ashgrove, actors.agent, actors.identity, actors.admin):
                case.call_and_validate(headers=who.headers, checks=[not_a_server_error])

        answers_without_a_server_error()
