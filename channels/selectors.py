"""Reads of the channels app that the hot paths share.

``active_channel_by_slug`` serves the webhook endpoint: every delivery names its channel by
slug, and the row changes a few times a year, so a web process keeps what it read for
``CHANNEL_CACHE_SECONDS`` instead of asking PostgreSQL once per delivery. Saving or deleting a
channel forgets the cache of this process at once (and again when that transaction commits, so
a read racing the commit cannot keep the old row); another process's save is seen within the
TTL. Only the ack path reads through it: processing an event reads its channel fresh.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.db import transaction

from channels.models import SalesChannel

_lock = threading.Lock()
_by_slug: dict[str, tuple[float, SalesChannel]] = {}


def active_channel_by_slug(slug: str, *, fresh: bool = False) -> SalesChannel | None:
    """The active channel with this slug, or None; from this process's cache when it is
    younger than ``CHANNEL_CACHE_SECONDS`` (``fresh``: read the database and refill it).
    An unknown slug is never cached: a channel created elsewhere answers at once."""
    ttl = float(settings.CHANNEL_CACHE_SECONDS)
    now = time.monotonic()
    if ttl > 0 and not fresh:
        hit = _by_slug.get(slug)
        if hit is not None and now - hit[0] < ttl:
            return hit[1]
    channel = SalesChannel.objects.filter(slug=slug, is_active=True).first()
    with _lock:
        if channel is None or ttl <= 0:
            _by_slug.pop(slug, None)
        else:
            _by_slug[slug] = (now, channel)
    return channel


def channel_cache_clear(**_: object) -> None:
    """Forget every cached channel of this process (a ``post_save`` / ``post_delete``
    receiver: a secret, a slug or ``is_active`` may have changed)."""
    with _lock:
        _by_slug.clear()
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(_clear_now)


def _clear_now() -> None:
    with _lock:
        _by_slug.clear()
