"""Every operation of the OpenAPI document, fuzzed with schemathesis against a live API process (real
PostgreSQL, real Temporal): no 5xx, and every documented response matches its schema. Bounded examples
and a fixed seed (`derandomize`), so a run is quick and repeatable; a failure names the operation and
the request to reproduce it."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.conftest import Tenant

pytestmark = pytest.mark.e2e

# Per operation; about 70 operations (the /api/ aliases serve the same handlers and are skipped).
EXAMPLES = 6


def test_no_operation_answers_5xx_or_breaks_its_schema(live_api: str, tenant: Tenant) -> None:
    schema = schemathesis.openapi.from_url(f"{live_api}/openapi.json").exclude(path_regex="^/api/")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def fuzz(case: Any) -> None:
            response = case.call(base_url=live_api, headers=tenant.headers, timeout=60)
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

        try:
            fuzz()
        except Exception as err:  # every operation is tried; the failures are reported together
            failures.append(f"{operation.label}: {str(err)[:1500]}")
    assert operations > 60
    assert not failures, "\n\n".join(failures)
