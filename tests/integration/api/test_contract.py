"""API contract: every operation of the OpenAPI schema, fed generated requests by
schemathesis, answers as its schema says (status codes, content types, bodies), never with
a server error.

schemathesis' own pytest wrapper (``from_fixture``) does not run under pytest 9, so the test
drives its hypothesis strategies directly, one operation after another, on a live hub.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.core.result import Err

from tests.integration.api.conftest import TOKEN, RunningHub

EXAMPLES = 25


def _import_everything_schemathesis_loads_later() -> None:
    """Import, at collection, the modules schemathesis would import lazily during the test.

    schemathesis is a pytest plugin, so its modules are imported through pytest's assertion
    rewriting, which runs ast.parse. CPython 3.11 keeps the AST constructor's recursion depth
    in interpreter-wide state (python/cpython#106905): an ast.parse racing another thread's
    fails with "SystemError: AST constructor recursion depth mismatch", which this test once
    did at a load average of 30, importing schemathesis.specs.openapi.schemas while the hub's
    threads ran. Importing it all now, before any hub starts, leaves no such window.
    """
    for name in ("schemathesis.openapi", "schemathesis.specs.openapi", "schemathesis.transport"):
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, name + "."):
            importlib.import_module(module.name)


_import_everything_schemathesis_loads_later()

# The hub's connectors, most of the time, so that operations run for real; a made-up name
# for the 404 answers.
NAMES = ["legacy", "ghost", "files", "warehouse", "search", "no-such-connector"]


def test_every_operation_answers_as_its_schema_says(running_hub: RunningHub) -> None:
    schema = schemathesis.openapi.from_url(f"{running_hub.url}/openapi.json")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    tested = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # the schema itself is broken
        operation = result.ok()

        @given(case=operation.as_strategy(), name=st.sampled_from(NAMES))
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: Case[Any], name: str) -> None:
            if case.path_parameters and "name" in case.path_parameters:
                case.path_parameters["name"] = name  # real connectors, not only 404s
            case.call_and_validate(headers=auth)

        check()
        tested.append(operation.label)
    assert len(tested) >= 10, tested
