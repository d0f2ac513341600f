"""Correlation ids: one id follows an order's work through logs, audit events, tasks and HTTP.

A correlation id is derived from a dedup key (an inbound event's delivery id, say) and signed with
the server's secret, so a caller cannot forge one that collides with ours, and anyone holding the
key and the secret can recompute it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Iterator
from contextvars import ContextVar, Token

HEADER = "X-Correlation-ID"
_MAX_LEN = 64
_current: ContextVar[str] = ContextVar("correlation_id", default="")


def sign(key: str) -> str:
    """The correlation id for a dedup key: ``c-`` and 32 hex digits of HMAC-SHA256(secret, key)."""
    from django.conf import settings

    digest = hmac.new(settings.SECRET_KEY.encode(), key.encode(), hashlib.sha256).hexdigest()
    return f"c-{digest[:32]}"


def verify(key: str, correlation_id: str) -> bool:
    return hmac.compare_digest(sign(key), correlation_id)


def new() -> str:
    """A fresh correlation id for work that starts here (a person's action, a command)."""
    return sign(f"local:{secrets.token_hex(16)}")


def get() -> str:
    return _current.get()


def clean(value: str | None) -> str:
    """Accept a caller's id only if it is short and plain; otherwise start a new one."""
    if (
        value
        and len(value) <= _MAX_LEN
        and all((c.isascii() and c.isalnum()) or c in "-_.:" for c in value)
    ):
        return value
    return ""


@contextlib.contextmanager
def bound(correlation_id: str) -> Iterator[str]:
    """Run a block with ``correlation_id`` as the current one (logs and tasks pick it up)."""
    token = _current.set(correlation_id)
    try:
        yield correlation_id
    finally:
        _current.reset(token)


def push(correlation_id: str) -> Token[str]:
    """Make ``correlation_id`` current until ``pop(token)`` (for signal pairs like Celery's)."""
    return _current.set(correlation_id)


def pop(token: Token[str]) -> None:
    _current.reset(token)
