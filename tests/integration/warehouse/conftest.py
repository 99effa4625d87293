"""A fresh, empty target database per test: SQLite and DuckDB files, and (marked
integration) a schema on the session's PostgreSQL and a database on its MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.targets import SQL_TARGETS, sql_url


@pytest.fixture(params=SQL_TARGETS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from sql_url(request, request.param, tmp_path)
