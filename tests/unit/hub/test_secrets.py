"""Secrets are masked in any text, in log records and in data meant for display."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from hub.secrets import (
    SecretFilter,
    forget_secrets,
    is_secret_key,
    mask,
    redact,
    register_secret,
    secrets_in,
)


@pytest.fixture(autouse=True)
def _clean_secret_registry() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://app:s3cret@localhost/shop", "postgresql://app:***@localhost/shop"),
        ("mysql+pymysql://root:pw!x@127.0.0.1:3306/db", "mysql+pymysql://root:***@127.0.0.1:3306/db"),
        ("GET http://elastic:changeme@es:9200/_bulk", "GET http://elastic:***@es:9200/_bulk"),
        ("redis://:onlypass@cache:6379/0", "redis://:***@cache:6379/0"),
        ("dsn='host=db password=p4ss dbname=x'", "dsn='host=db password=*** dbname=x'"),
        ("host=db password='with space' user=u", "host=db password=*** user=u"),
        ("https://api/x?token=abc123&page=2", "https://api/x?token=***&page=2"),
        ("{'password': 'p4ss', 'user': 'u'}", "{'password': '***', 'user': 'u'}"),
        ('{"api_token": "tok", "n": 1}', '{"api_token": "***", "n": 1}'),
        ("Authorization: Bearer eyJhbGciOi.x-y", "Authorization: Bearer ***"),
    ],
)
def test_secret_shapes_are_masked(text: str, masked: str) -> None:
    assert mask(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://app@localhost/shop",
        "http://localhost:9200",
        "sqlite:///./legacy.db",
        "ApiConfig(token=None)",
        "wrote 12 records to shop.public.orders[0]@1500",
    ],
)
def test_text_without_secrets_is_unchanged(text: str) -> None:
    assert mask(text) == text


def test_registered_secret_is_masked_bare_and_percent_encoded() -> None:
    register_secret("p@ss/word")
    assert mask('auth failed for "p@ss/word"') == 'auth failed for "***"'
    assert mask("postgresql://u:p%40ss%2Fword@h/db") == "postgresql://u:***@h/db"
    assert mask("url u:p%40ss%2Fword in log") == "url u:*** in log"


def test_very_short_secrets_are_not_registered() -> None:
    register_secret("ab")
    assert mask("table tab") == "table tab"


def test_forget_secrets_empties_the_registry() -> None:
    register_secret("hunter22")
    forget_secrets()
    assert mask("hunter22") == "hunter22"


def test_secrets_in_finds_url_and_key_value_passwords() -> None:
    assert secrets_in("postgresql://a:p%40w@h/db host=x password='q r'") == ["p@w", "q r"]


@pytest.mark.parametrize(
    ("key", "secret"),
    [("password", True), ("sasl.password", True), ("api_token", True), ("client_secret", True),
     ("apikey", True), ("dsn", False), ("tables", False), ("token_bucket", True)],
)
def test_secret_keys_are_recognised_by_name(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_redact_replaces_secret_keys_and_masks_strings() -> None:
    data = {
        "dsn": "postgresql://u:pw1234@h/db",
        "nested": [{"password": "pw", "token": None, "user": "u"}],
        "n": 3,
    }
    assert redact(data) == {
        "dsn": "postgresql://u:***@h/db",
        "nested": [{"password": "***", "token": None, "user": "u"}],
        "n": 3,
    }


def _logger_with_filter() -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(SecretFilter())
    logger = logging.getLogger(f"test.secrets.{id(out)}")
    logger.propagate = False
    logger.addHandler(handler)
    return logger, out


def test_filter_masks_message_arguments_and_extra_fields() -> None:
    register_secret("hunter22")
    logger, out = _logger_with_filter()

    logger.warning("connect %s as %s", "postgresql://u:pw99@h/db", "hunter22",
                   extra={"conn": "mysql://r:rootpw@h", "detail": {"password": "x"}})

    assert out.getvalue() == "WARNING connect postgresql://u:***@h/db as ***\n"


def test_filter_masks_exception_text_and_stack() -> None:
    logger, out = _logger_with_filter()
    try:
        raise RuntimeError("could not connect to postgresql://u:tiger123@db/x")
    except RuntimeError:
        logger.exception("source failed", stack_info=True)

    text = out.getvalue()
    assert "source failed" in text
    assert "RuntimeError: could not connect to postgresql://u:***@db/x" in text
    assert "tiger123" not in text


def test_filtered_record_carries_masked_extra_fields() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(SecretFilter())
    logger = logging.getLogger("test.secrets.extra")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.info("state change", extra={"dsn": "postgresql://u:pw99@h/db",
                                            "config": {"token": "abc"}})
    finally:
        logger.removeHandler(handler)

    assert records[0].dsn == "postgresql://u:***@h/db"  # type: ignore[attr-defined]
    assert records[0].config == {"token": "***"}  # type: ignore[attr-defined]


def test_a_log_call_with_wrong_arguments_is_still_logged_masked() -> None:
    logger, out = _logger_with_filter()
    logger.warning("two %s %s", "postgresql://u:pw99@h/db")  # noqa: PLE1206
    assert out.getvalue() == (
        "WARNING two %s %s (log arguments did not fit: ('postgresql://u:***@h/db',))\n"
    )
