"""What the channels' tracking write-backs share: which channel may be told, its adapter
config, a session for calls that create something, the write-back's error, and the vendor's
reason for a refusal.

Sessions: the channels' own (``channels.http``: timeouts, User-Agent, the URL guard, the
correlation id, retries of what failed before an answer) with one difference for the
write-backs that create a record (a WooCommerce tracking or note, a storefront callback): a
POST is never repeated inside the session after the vendor may have seen it (an answer, a read
timeout). The outbox is the retry loop, and its next attempt looks for the first result
before creating again. GETs and PUTs are retried inside as usual.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import requests
import structlog
from django.conf import settings

from channels.adapters.base import ChannelConfig
from channels.http import (
    MAX_RETRY_AFTER_SECONDS,
    RETRY_TOTAL,
    USER_AGENT,
    ChannelHTTPError,
)
from config import integrations

if TYPE_CHECKING:
    from channels.models import SalesChannel

log = structlog.get_logger(__name__)

REASON_CHARS = 200
# 4xx answers the write-backs read themselves, to carry the vendor's reason; 408, 425 and 429
# are retryable and classified by the session like every other retryable answer.
CLIENT_ERRORS = frozenset(range(400, 500)) - {408, 425, 429}


class WritebackError(ChannelHTTPError):
    """A tracking write-back failed (``retryable``) or the channel refused it (not retryable,
    with the vendor's reason). Never personal data in the message: ids, statuses, the vendor's
    error code and message."""


def active_channel(channel_id: int) -> SalesChannel | None:
    """The channel when it is active and its tracking write-back is switched on, else None."""
    from channels.models import SalesChannel

    channel = SalesChannel.objects.filter(pk=channel_id).first()
    if channel is None or not channel.is_active or not channel.tracking_writeback:
        return None
    return channel


def channel_and_config(channel_id: int) -> tuple[SalesChannel, ChannelConfig]:
    """The channel and its adapter config, for a push (a channel switched off since the action
    was written refuses: nothing is sent)."""
    from channels.services import channel_config

    channel = active_channel(channel_id)
    if channel is None:
        raise WritebackError(
            f"channel {channel_id} is inactive or its tracking write-back is switched off",
            retryable=False,
        )
    return channel, channel_config(channel)


def session_for(channel: ChannelConfig, *, repeat_post: bool) -> integrations.IntegrationSession:
    """A session for write-back calls to ``channel``; ``repeat_post``: POSTs are safe to
    repeat (Amazon's confirmShipment with the same package reference is an edit)."""
    methods = (
        integrations.IDEMPOTENT_METHODS_AND_POST if repeat_post else integrations.IDEMPOTENT_METHODS
    )
    policy = integrations.RetryPolicy(
        retries=RETRY_TOTAL,
        backoff=settings.CHANNEL_HTTP_BACKOFF_FACTOR,
        methods=methods,
        # A read timeout may have created the record: only a session that may repeat POSTs
        # reads again; the other leaves it to the outbox's next attempt, which looks first.
        retry_reads=repeat_post,
        max_retry_after=MAX_RETRY_AFTER_SECONDS,
    )
    return integrations.session(
        timeout=settings.CHANNEL_HTTP_TIMEOUT, user_agent=USER_AGENT, policy=policy,
        error=WritebackError, log_event="channel_writeback.failed", logger=log,
        channel_id=channel.id,
    )  # fmt: skip


def vendor_reason(response: requests.Response, keys: Iterable[str] = ("code", "message")) -> str:
    """The vendor's own words for a refusal (``{"code": ..., "message": ...}`` as WooCommerce
    and most REST APIs answer), shortened; "" when the body has none."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        body = body["errors"][0]
    if not isinstance(body, dict):
        return ""
    words = ": ".join(str(body[k]) for k in keys if isinstance(body.get(k), str | int) and body[k])
    return f"HTTP {response.status_code} {words}"[:REASON_CHARS] if words else ""


def call(
    session: integrations.IntegrationSession, method: str, url: str, *, what: str,
    accept: Iterable[int] = (), **kwargs: Any,
) -> requests.Response:  # fmt: skip
    """``session.call`` whose refusals (a 4xx other than 408/425/429) carry the vendor's
    reason; statuses in ``accept`` come back as answers."""
    accepted = frozenset(accept)
    response = session.call(method, url, what=what, accept=CLIENT_ERRORS | accepted, **kwargs)
    if response.status_code in CLIENT_ERRORS and response.status_code not in accepted:
        raise session.refusal(response, what=what, message=vendor_reason(response))
    return response


def iso_utc(moment: datetime | None) -> str | None:
    """``2026-11-01T12:00:00Z`` (aware times only; None stays None)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError("write-back times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def carrier_key(name: str) -> str:
    """A carrier's name folded for lookups: ``"FedEx SmartPost"`` -> ``"fedexsmartpost"``."""
    return "".join(ch for ch in name.lower() if ch.isalnum())
