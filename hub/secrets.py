"""Keeping secrets out of logs, errors and API output.

Two nets, because neither alone catches everything:

* **Shapes** that always carry a secret are masked wherever they appear: the password in a
  URL (``postgresql://app:***@db/shop``, ``mysql+pymysql://…``, ``http://user:***@host``),
  ``password=…`` / ``token=…`` pairs in key=value DSNs and query strings, quoted
  ``"password": "…"`` pairs in dict and JSON text, and ``Bearer …`` credentials.
* **Known values**: the config loader registers every secret it reads
  (:func:`register_secret`: URL/DSN passwords, values of keys named like *password*,
  *token*, *secret*), so that a password also vanishes when a driver echoes it without
  its URL around it (``authentication failed for "hunter2"``).

:func:`mask` applies both; :class:`SecretFilter` applies it to every log record that passes a
handler; :func:`redact` prepares nested config data for display. All of it is thread-safe.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote

__all__ = [
    "MASK",
    "SecretFilter",
    "forget_secrets",
    "is_secret_key",
    "mask",
    "redact",
    "register_secret",
    "secrets_in",
]

MASK = "***"

# Shorter values are not registered: masking every "ab" in every log line would make logs
# unreadable, and such a password is still masked in any URL or key=value form.
MIN_SECRET_LENGTH = 4

# Key names whose values are secrets, in config files and in key=value text.
_SECRET_KEY = re.compile(
    r"passw(?:or)?d|pwd|secret|token|api[_-]?key|credential|private[_-]?key", re.IGNORECASE
)

# scheme://user:password@ — the password runs to the first "@", as SQLAlchemy and libpq
# split it (a literal "@" in a password must be percent-encoded there too).
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*):(?P<pw>[^\s@]*)@")

# key=value pairs: libpq conninfo (password='x y'), query strings (?password=x&…).
_KV_SECRET = re.compile(
    r"(?P<key>\b[\w.\-]*(?:passw(?:or)?d|pwd|secret|token|api[_-]?key)[\w.\-]*\s*=\s*)"
    r"(?!None\b|null\b)"  # an unset field printed by repr, not a secret
    r"(?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&;,'\")]+)",
    re.IGNORECASE,
)

# "password": "x" / 'token': 'x' as printed by repr(dict) and JSON.
_QUOTED_SECRET = re.compile(
    r"(?P<key>([\"'])[\w.\-]*(?:passw(?:or)?d|pwd|secret|token|api[_-]?key)[\w.\-]*\2\s*:\s*)"
    r"(?P<q>[\"'])(?P<value>(?:(?!(?P=q))[^\\]|\\.)*)(?P=q)",
    re.IGNORECASE,
)

_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]+", re.IGNORECASE)

_lock = threading.Lock()
_known: tuple[str, ...] = ()  # longest first, so that a secret containing another goes first


def is_secret_key(key: str) -> bool:
    """Whether a config key (``password``, ``api_token``, ``sasl.password`` …) holds a secret."""
    return bool(_SECRET_KEY.search(key))


def register_secret(value: str) -> None:
    """Mask ``value`` (and its percent-encoded form) everywhere from now on."""
    if len(value) < MIN_SECRET_LENGTH:
        return
    global _known
    forms = {value, quote(value, safe=""), quote_plus(value, safe="")}
    with _lock:
        _known = tuple(sorted(set(_known) | forms, key=len, reverse=True))


def forget_secrets() -> None:
    """Drop every registered secret (for tests that must start from a clean registry)."""
    global _known
    with _lock:
        _known = ()


def secrets_in(text: str) -> list[str]:
    """The secrets a string carries by its shape: URL passwords and key=value secrets."""
    found = [unquote(m.group("pw")) for m in _URL_PASSWORD.finditer(text) if m.group("pw")]
    for m in _KV_SECRET.finditer(text):
        value = m.group("value")
        if value[:1] in "'\"":
            value = value[1:-1]
        found.append(value)
    return [f for f in found if f]


def mask(text: str) -> str:
    """``text`` with every secret replaced by ``***``. Safe to call on any string."""
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}:{MASK}@" if m.group("pw") else
                             m.group(0), text)
    text = _KV_SECRET.sub(lambda m: m.group("key") + MASK, text)
    text = _QUOTED_SECRET.sub(lambda m: f"{m.group('key')}{m.group('q')}{MASK}{m.group('q')}",
                              text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    for secret in _known:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact(data: Any) -> Any:
    """A copy of nested dicts/lists for display: secret keys' values and secrets in strings
    become ``***``."""
    if isinstance(data, Mapping):
        return {
            k: (MASK if data[k] not in (None, "") and isinstance(k, str) and is_secret_key(k)
                else redact(data[k]))
            for k in data
        }
    if isinstance(data, list | tuple):
        return [redact(v) for v in data]
    if isinstance(data, str):
        return mask(data)
    return data


# Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)


class SecretFilter(logging.Filter):
    """Masks secrets in every record: message with its args, exception, stack, ``extra``.

    Attach it to each handler (a filter on a logger does not see records of its children).
    The message is formatted here, once, so that ``%s`` arguments are masked too. The
    exception is rendered to ``exc_text`` here and masked, and ``exc_info`` is dropped so that
    no formatter can render the unmasked original again (``logging.Formatter`` prints
    ``exc_text`` when it is set).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a broken log call must not raise into its caller
            message = f"{record.msg} (log arguments did not fit: {record.args!r})"
        record.msg = mask(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str | Mapping | list | tuple):
                setattr(record, key, redact(value))
        return True
