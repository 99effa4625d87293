"""Shared pytest setup: the real-server fixtures (postgres, mariadb, opensearch, kafka …)."""

pytest_plugins = ["tests.fixtures.services", "tests.fixtures.browser"]
