"""One rule for secrets in parameters, headers and log lines.

A name containing any of ``SENSITIVE_WORDS`` (case-insensitive) has its value
masked wherever a request is echoed or logged: the error documents' echoed
parameters, gunicorn's access log (query strings, headers) and every log
record (``ScrubFilter`` in settings ``LOGGING``). No Django imports: the
gunicorn master loads this module too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote

SENSITIVE_WORDS = ("pass", "pwd", "secret", "key", "token", "credential", "auth", "signature")
MASK = "[FILTERED]"

_NAME = r"[A-Za-z0-9_.\-\[\]]*(?:" + "|".join(SENSITIVE_WORDS) + r")[A-Za-z0-9_.\-\[\]]*"
# name=value in query strings, form bodies and free text (value up to &, space, quote, ;, ,)
_PAIR = re.compile(rf"(?i)(\b{_NAME})=([^&\s;,'\"]*)")
# "name": "value" / 'name': 'value' in JSON or Python reprs
_QUOTED = re.compile(rf"(?i)([\"']{_NAME}[\"']\s*:\s*)([\"'])(.*?)(?<!\\)\2")
# Authorization: Basic xxx / Bearer xxx in free text
_AUTH_HEADER = re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(\w+\s+)?[^\s\"',]+")


def is_sensitive(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SENSITIVE_WORDS)


def scrub_pairs(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(name, value) pairs with sensitive values masked."""
    return [(k, MASK if is_sensitive(k) else v) for k, v in items]


def scrub_query(query: str) -> str:
    """A raw query string with the values of sensitive names masked (the rest kept as sent)."""
    if not query:
        return query
    parts = []
    for part in query.split("&"):
        name, sep, _ = part.partition("=")
        decoded = parse_qsl(name, keep_blank_values=True)
        plain = decoded[0][0] if decoded else name
        parts.append(f"{name}{sep}{quote(MASK)}" if sep and is_sensitive(plain) else part)
    return "&".join(parts)


def scrub_text(text: str) -> str:
    """Free text (a log message, a request line) with sensitive name=value pairs masked."""
    if not text:
        return text
    text = _PAIR.sub(lambda m: f"{m.group(1)}={MASK}", text)
    text = _QUOTED.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}{m.group(2)}", text)
    return _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{MASK}", text)


def _scrub_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # a broken format string: the logger reports it
        return
    cleaned = scrub_text(message)
    if cleaned != message:
        record.msg, record.args = cleaned, ()
    if record.exc_info and not record.exc_text:
        record.exc_text = scrub_text(logging.Formatter().formatException(record.exc_info))


class ScrubFilter(logging.Filter):
    """Masks secrets in every record's rendered message (and its traceback text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _scrub_record(record)
        return True


_factory_installed = False


def install_record_factory() -> None:
    """Scrubs every record as it is made, whoever handles it afterwards.

    Celery's workers replace the root logger's handlers (and so the filter of
    settings ``LOGGING``); this module is imported wherever Django configures
    its logging, so their records are scrubbed too.
    """
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _scrub_record(record)
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


install_record_factory()
