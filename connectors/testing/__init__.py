"""The connector conformance kit: the same tests for every source and every sink.

As Singer SDK's testing factory does, the kit holds the tests; a connector provides a
harness (how to configure it against a real upstream or target, make changes there, read
the result back) and gets the whole suite by subclassing::

    from connectors.testing import SinkConformance, SinkHarness

    class TestMySinkConformance(SinkConformance):
        @pytest.fixture
        def sink_harness(self, tmp_path):
            harness = MySinkHarness(tmp_path)
            yield harness
            harness.close()

The suites need pytest; import this package from tests only. Register it for assertion
rewriting (``pytest.register_assert_rewrite("connectors.testing")`` in a conftest) to get
pytest's detailed failure messages.
"""

from __future__ import annotations

from connectors.testing.events import TOPICS, change_stream, final_rows
from connectors.testing.harness import (
    DeadLetters,
    SinkHarness,
    SourceHarness,
    make_context,
)
from connectors.testing.sink_suite import SinkConformance, replay_from
from connectors.testing.source_suite import SourceConformance, drain

__all__ = [
    "TOPICS",
    "DeadLetters",
    "SinkConformance",
    "SinkHarness",
    "SourceConformance",
    "SourceHarness",
    "change_stream",
    "drain",
    "final_rows",
    "make_context",
    "replay_from",
]
