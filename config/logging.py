"""Structured JSON logs (structlog) that carry the current correlation id on every line.

Log ids, never names, emails, phones or addresses: the redaction processor below is a safety net,
not a licence.
"""

from __future__ import annotations

import re
from typing import Any

import structlog

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def add_correlation_id(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    from config import correlation

    cid = correlation.get()
    if cid and "correlation_id" not in event_dict:
        event_dict["correlation_id"] = cid
    return event_dict


def redact_emails(_logger: Any, _name: str, rendered: str) -> str:
    """Runs after the renderer, on the whole line: nested fields and reprs are covered too."""
    return _EMAIL.sub("[email]", rendered) if "@" in rendered else rendered


def scrub_exceptions(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Runs after ``format_exc_info``: the messages of a logged exception (the unindented lines
    of its traceback, not the source lines) lose emails, phones, streets and quoted values
    that read as words, and so does the line's own message (Celery's "raised unexpected: ...")
    and an ``error`` field (``error=str(exc)``)."""
    text = event_dict.get("exception")
    if isinstance(text, str):
        event_dict["exception"] = _scrub_traceback(text)
        for key in ("event", "message"):  # "message": a record another handler formatted first
            if isinstance(event_dict.get(key), str):
                event_dict[key] = _scrub(event_dict[key])
    if isinstance(event_dict.get("error"), str):
        event_dict["error"] = _scrub(event_dict["error"])
    data = event_dict.get("data")
    if isinstance(data, dict) and ("exc" in data or "traceback" in data):
        # Celery's "raised unexpected" line carries the exception again in its extra ``data``.
        scrubbed = dict(data)
        if isinstance(data.get("exc"), str):
            scrubbed["exc"] = _scrub(data["exc"])
        if isinstance(data.get("traceback"), str):
            scrubbed["traceback"] = _scrub_traceback(data["traceback"])
        event_dict["data"] = scrubbed
    return event_dict


def _scrub_traceback(text: str) -> str:
    """A traceback's messages (its unindented lines) scrubbed; its source lines kept."""
    return "\n".join(
        line if line[:1].isspace() or not line else _scrub(line) for line in text.split("\n")
    )


def _scrub(text: str) -> str:
    from config.sentry import scrub_exception_text

    return scrub_exception_text(_EMAIL.sub("[email]", text))


SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    add_correlation_id,
    structlog.stdlib.ExtraAdder(),
]


def build_logging_config(*, level: str, fmt: str) -> dict[str, Any]:
    # urllib3's retry warnings quote the request URL with its query (addresses, keys): the
    # integration layer's filter cuts the query out, so those warnings can be shown.
    from config.integrations import logfilter

    logfilter.install()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            *SHARED_PROCESSORS,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    scrub_exceptions,
                    renderer,
                    redact_emails,
                ],
                "foreign_pre_chain": SHARED_PROCESSORS,
            },
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "structured"},
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            # Retries are worth seeing; their URLs lose the query (logfilter, above).
            "urllib3": {"level": "WARNING"},
            # The stripe SDK logs every request's URL with its query at INFO; our integration
            # session logs the failures (host and path only).
            "stripe": {"level": "WARNING"},
            "celery": {"level": level},
        },
    }
