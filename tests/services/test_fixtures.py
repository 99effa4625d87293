"""The pytest fixtures of tests/fixtures/services.py: a server that cannot start fails."""

from __future__ import annotations

import pytest

from tests.fixtures.services import _Services, parse_facts


def test_a_server_that_cannot_be_started_fails_the_fixture_instead_of_skipping() -> None:
    services = _Services()
    with pytest.raises(pytest.fail.Exception, match=r"could not start nosuchdb.*exit code 2"):
        services.start("nosuchdb")


def test_facts_are_unquoted_like_the_shell_would() -> None:
    text = "A=plain\nB='with space'\nC='it'\"'\"'s'\n\n"
    assert parse_facts(text) == {"A": "plain", "B": "with space", "C": "it's"}
