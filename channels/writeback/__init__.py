"""Tracking write-back: tell each sales channel about our parcels (``orders.feedback``).

One module per channel kind (``shopify``, ``bigcommerce``, ...), each a ``ChannelWriteback``
registered from ``ChannelsConfig.ready()``. ``fulfillment``'s outbox adapter for
``channel_tracking_sync`` actions builds the ``ShipmentUpdate`` and calls ``push()`` outside any
transaction; the outbox is the retry loop (backoff, circuit breaker per store, then a person).

What the modules share, here:

- ``writeback_channel(channel_id)``: the channel's ``ChannelConfig`` (the adapters' own) and its
  write-back switches, read per call; ``switched_on()`` is None unless the channel is active
  and ``tracking_writeback`` is on; ``required()`` is what a push needs: None when the
  channel was switched off after the action was written (the push is skipped, not failed),
  a non-retryable error when the channel is gone or lacks its API settings.
- ``session(config)``: the channels' HTTP session (``channels.http``: timeouts, URL guard,
  correlation id) with a policy that never repeats a POST: a create that timed out may have
  been processed, so the next attempt looks for its first result before creating again
  (idempotent GETs and PUTs are still retried inside the session).
- ``call()`` / ``call_json()``: ``session.call`` that turns a vendor's 4xx refusal into an
  error carrying the vendor's own reason (its ``errors``/``message`` fields only, never the
  body; e-mail addresses masked), not retryable except 408 and 429.
- ``WritebackError``: the family's error (an ``AdapterError``, so an ``IntegrationError``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from channels.adapters.base import AdapterError, ChannelConfig
from channels.http import session_for
from config import integrations

# Retried inside one session: the idempotent methods only (never POST), a couple of times.
RETRY_METHODS = integrations.IDEMPOTENT_METHODS
RETRIES = 2
REASON_MAX = 300
REASON_FIELDS = ("errors", "error", "message", "detail", "title")
_EMAIL = re.compile(r"[^\s@\"'<>]+@[^\s@\"'<>]+\.[A-Za-z]{2,}")
_CLIENT_ERRORS = frozenset(range(400, 500))


class WritebackError(AdapterError):
    """A write-back failed or was refused (``retryable`` says whether a later try may help).
    The message names ids and the vendor's reason, never personal data."""


@dataclass(frozen=True)
class WritebackChannel:
    """A channel as the write-backs see it: its adapter config and its switches."""

    config: ChannelConfig
    active: bool
    enabled: bool  # SalesChannel.tracking_writeback
    notify_customer: bool
    complete_order: bool
    callback_url: str


def writeback_channel(channel_id: int) -> WritebackChannel | None:
    """The channel ``channel_id`` with its write-back settings, or None if it does not exist."""
    from channels.models import SalesChannel
    from channels.services import channel_config

    channel = SalesChannel.objects.filter(pk=channel_id).first()
    if channel is None:
        return None
    return WritebackChannel(
        config=channel_config(channel), active=channel.is_active,
        enabled=channel.tracking_writeback, notify_customer=channel.writeback_notify_customer,
        complete_order=channel.writeback_complete_order,
        callback_url=channel.tracking_callback_url,
    )  # fmt: skip


def channel_config_of(channel_id: int) -> ChannelConfig | None:
    """The ``ChannelConfig`` of a channel id (None if there is no such channel)."""
    channel = writeback_channel(channel_id)
    return channel.config if channel is not None else None


def switched_on(channel_id: int) -> WritebackChannel | None:
    """The channel if it is active with tracking write-back on; else None."""
    channel = writeback_channel(channel_id)
    if channel is None or not channel.active or not channel.enabled:
        return None
    return channel


def required(
    channel_id: int, kind: str, ready: Callable[[ChannelConfig], bool], needs: str
) -> WritebackChannel | None:
    """The channel for a push, or None when it is inactive or its tracking write-back was
    switched off (a person's choice: the push is skipped). A non-retryable ``WritebackError``
    when it is gone, of another kind or lacks what ``ready`` checks (``needs``, in words)."""
    channel = writeback_channel(channel_id)
    if channel is None:
        raise WritebackError(f"channel {channel_id} does not exist", retryable=False)
    if not channel.active or not channel.enabled:
        return None
    if channel.config.kind != kind:
        raise WritebackError(
            f"channel {channel_id} is a {channel.config.kind} channel, not {kind}",
            retryable=False,
        )
    if not ready(channel.config):
        raise WritebackError(
            f"{kind} channel {channel_id} needs {needs} for the tracking write-back",
            retryable=False,
        )
    return channel


def session(config: ChannelConfig) -> integrations.IntegrationSession:
    """A session for write-back calls to ``config``'s API: no POST is ever repeated in it."""
    return session_for(config, methods=RETRY_METHODS, retries=RETRIES)


def numeric_id(value: Any, what: str) -> int:
    """A vendor's numeric id from our data (an order's external id, a line id)."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        shown = str(value)[:40]
        raise WritebackError(f"{what} {shown!r} is not a number", retryable=False) from None
    if number <= 0:
        raise WritebackError(f"{what} {number} is not a valid id", retryable=False)
    return number


def skipped(update: Any) -> dict[str, Any]:
    """The result of a push to a channel switched off meanwhile: nothing was sent."""
    return {"channel_ref": update.channel_ref, "outcome": "skipped",
            "reason": "tracking write-back is off for this channel"}  # fmt: skip


def whole_seconds(when: datetime) -> datetime:
    """Vendors keep event times to the second."""
    return when.replace(microsecond=0)


def timestamp(when: datetime | None) -> str | None:
    """An aware time as ISO 8601 in UTC, to the second (None stays None)."""
    return whole_seconds(when).astimezone(UTC).isoformat() if when is not None else None


def parse_time(value: Any) -> datetime | None:
    """A vendor's ISO 8601 time (with its offset) or None."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def _texts(value: Any, depth: int = 0) -> list[str]:
    """The strings of an error structure (``{"errors": {"base": ["..."]}}``, ``[{"message":
    ...}]``...), with the field they belong to."""
    if depth > 4 or value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item, depth + 1)]
    if isinstance(value, dict):
        for key in REASON_FIELDS:
            if key in value:
                return _texts(value[key], depth + 1)
        out = []
        for key, item in value.items():
            out += [f"{key} {text}" if key != "base" else text for text in _texts(item, depth + 1)]
        return out
    return [str(value)]


def vendor_reason(response: requests.Response) -> str:
    """The vendor's reason for a refusal, from its error fields only (no other part of the
    body), e-mail addresses masked, at most ``REASON_MAX`` characters; "" if none."""
    try:
        body = json.loads(response.content or b"null")
    except ValueError:
        return ""
    if isinstance(body, dict):
        picked = {k: body[k] for k in REASON_FIELDS if k in body}
        if not picked:
            return ""
        body = picked
    elif not isinstance(body, list):
        return ""
    text = "; ".join(t.strip() for t in _texts(body) if t and t.strip())
    text = _EMAIL.sub("[email]", text)
    return text[:REASON_MAX]


def call(
    http: integrations.IntegrationSession,
    method: str,
    url: str,
    *,
    what: str,
    accept: Collection[int] = (),
    **kwargs: Any,
) -> requests.Response:
    """``http.call`` that reads the vendor's reason on a 4xx it was not asked to accept.
    408 and 429 stay retryable, every other 4xx is a refusal for a person; 5xx and transport
    failures come back from the session as retryable errors."""
    response = http.call(method, url, what=what, accept=_CLIENT_ERRORS | set(accept), **kwargs)
    status = response.status_code
    if status >= 400 and status not in accept:
        reason = vendor_reason(response)
        detail = f"HTTP {status} from {integrations.where(response.url or url)}"
        raise http.refusal(response, what=what, message=f"{detail}: {reason}" if reason else "")
    return response


def call_json(
    http: integrations.IntegrationSession, method: str, url: str, *, what: str, **kwargs: Any
) -> Any:
    """``call`` and the answer's JSON (None when empty)."""
    return http.json_of(call(http, method, url, what=what, **kwargs), what=what)
