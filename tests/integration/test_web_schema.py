"""A property-based run of `orch serve` against its own OpenAPI schema (schemathesis):
for generated requests to every operation, no server error, and every answer as the
schema says (status, content type, body). Against a real manager, with no session, so
that no generated reference names one; spawn (it would run generated commands) and the
endless event stream are left out."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.integration.conftest import Orch
from tests.integration.web import TOKEN, serving

LEFT_OUT = {("POST", "/api/sessions"), ("GET", "/api/events")}


def test_every_answer_is_as_the_schema_says(root_orch: Orch) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with serving(root_orch) as server:
        schema = schemathesis.openapi.from_url(
            f"http://{server.host}/openapi.json", headers=auth)
        operations = [result.ok() for result in schema.get_all_operations()]
        checked = []
        for operation in operations:
            if (operation.method.upper(), operation.path) in LEFT_OUT:
                continue

            @given(case=operation.as_strategy())
            @settings(max_examples=30, deadline=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            def answers_as_described(case: schemathesis.Case) -> None:
                case.call_and_validate(headers=auth)

            answers_as_described()
            checked.append((operation.method.upper(), operation.path))
        assert len(checked) == len(operations) - len(LEFT_OUT) >= 7
    assert root_orch.ps() == []  # nothing generated made a session


@pytest.mark.parametrize("path", ["/openapi.json"])
def test_the_schema_is_served_only_with_the_token(root_orch: Orch, path: str) -> None:
    with serving(root_orch) as server:
        assert server.request("GET", path, token=None).status == 401
        assert server.request("GET", path).json()["info"]["title"] == "orch"
