"""Tracking write-back: tell each sales channel about our parcels (``orders.feedback``).

One module per channel kind (``shopify``, ``bigcommerce``, ``amazon``, ``woocommerce``,
``custom``), each a ``ChannelWriteback`` registered from ``ChannelsConfig.ready()``.
``fulfillment``'s outbox adapter for ``channel_tracking_sync`` actions builds the
``ShipmentUpdate`` and calls ``push()`` outside any transaction; the outbox is the retry loop
(backoff, circuit breaker per store, then a person).

What the five share, here (one copy of each):

- ``writeback_channel(channel_id)``: the channel's ``ChannelConfig`` (the adapters' own) and its
  write-back switches, read per call. ``configured(channel_id, kind, ready)`` is whether an
  action is written at all: the channel is active, ``tracking_writeback`` is on, it is of
  ``kind`` and ``ready`` (its API settings) holds. ``required()`` is what a push needs: None
  when the channel was switched off (inactive, or ``tracking_writeback`` off) after the action
  was written, and the push returns ``skipped(update)``: a person's choice, a success with
  nothing sent, never a dead action and an incident; a non-retryable error when the channel is
  gone, of another kind or lacks its API settings (a person must fix those).
- ``session(config)``: the channels' HTTP session settings (``channels.http``: timeouts,
  User-Agent, URL guard, correlation id) with a policy that never repeats a POST: a create that
  timed out may have been processed, so the outbox's next attempt looks for its first result
  before creating again. Idempotent GETs and PUTs are retried inside the session (a couple of
  times: the outbox is the real retry loop). Its errors are ``WritebackError``.
- ``call()`` / ``call_json()``: ``session.call`` that turns a vendor's refusal (a 4xx other
  than 408/425/429, which the session classifies as retryable) into a non-retryable error
  carrying the vendor's own reason (``vendor_reason``: its error fields only, never the rest of
  the body; e-mail addresses masked).
- ``timestamp()``: the one way a time is written to a vendor (``2026-11-01T12:00:00Z``).
- ``Writeback``: the base of the five ``ChannelWriteback`` classes (``configured()``,
  ``push()`` -> ``required()`` -> the kind's ``send()``).
- ``WritebackError``: the family's error (a ``ChannelHTTPError``, so an ``AdapterError`` and an
  ``IntegrationError``).
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, cast

import structlog
from django.conf import settings
from django.db.models import Model

from channels.adapters.base import ChannelConfig
from channels.http import MAX_RETRY_AFTER_SECONDS, ChannelHTTPError, session_for
from config import integrations
from orders.feedback import ShipmentUpdate

if TYPE_CHECKING:
    import requests

log = structlog.get_logger(__name__)

# Retried inside one session: the idempotent methods only (never POST), a couple of times.
RETRY_METHODS = integrations.IDEMPOTENT_METHODS
RETRIES = 2
REASON_MAX = 300
REASON_FIELDS = ("errors", "error", "message", "detail", "title")
_EMAIL = re.compile(r"[^\s@\"'<>]+@[^\s@\"'<>]+\.[A-Za-z]{2,}")
# 4xx answers ``call`` reads itself, to carry the vendor's reason; 408, 425 and 429 are
# retryable and classified by the session like every other retryable answer.
CLIENT_ERRORS = frozenset(range(400, 500)) - {408, 425, 429}
SKIPPED_REASON = "tracking write-back is off for this channel"


class WritebackError(ChannelHTTPError):
    """A write-back failed (``retryable``: a later try may help) or was refused (not
    retryable, with the vendor's reason). The message names ids, statuses and the vendor's
    error code and message, never personal data."""


@dataclass(frozen=True)
class WritebackChannel:
    """A channel as the write-backs see it: its adapter config and its switches."""

    config: ChannelConfig
    active: bool
    enabled: bool  # SalesChannel.tracking_writeback
    notify_customer: bool
    complete_order: bool
    callback_url: str


Ready = Callable[[WritebackChannel], bool]


def writeback_channel(channel_id: int | Model) -> WritebackChannel | None:
    """The channel ``channel_id`` with its write-back settings, or None if it does not exist.
    A ``SalesChannel`` the caller has just read (with its order) is taken as it is."""
    from channels.models import SalesChannel
    from channels.services import channel_config

    if isinstance(channel_id, Model):  # the channel's row, as the caller read it
        channel: SalesChannel | None = cast(SalesChannel, channel_id)
    else:
        channel = SalesChannel.objects.filter(pk=channel_id).first()
    if channel is None:
        return None
    return WritebackChannel(
        config=channel_config(channel), active=channel.is_active,
        enabled=channel.tracking_writeback, notify_customer=channel.writeback_notify_customer,
        complete_order=channel.writeback_complete_order,
        callback_url=channel.tracking_callback_url,
    )  # fmt: skip


def switched_on(channel_id: int | Model) -> WritebackChannel | None:
    """The channel if it is active with tracking write-back on; else None."""
    channel = writeback_channel(channel_id)
    if channel is None or not channel.active or not channel.enabled:
        return None
    return channel


def configured(channel_id: int | Model, kind: str, ready: Ready) -> bool:
    """``ChannelWriteback.configured``: switched on, of ``kind``, and ``ready`` holds."""
    channel = switched_on(channel_id)
    return channel is not None and channel.config.kind == kind and ready(channel)


def required(channel_id: int, kind: str, ready: Ready, needs: str) -> WritebackChannel | None:
    """The channel for a push, or None when it is inactive or its tracking write-back was
    switched off (a person's choice: the push is skipped, see ``skipped``). A non-retryable
    ``WritebackError`` when it is gone, of another kind or lacks what ``ready`` checks
    (``needs``, in words)."""
    channel = writeback_channel(channel_id)
    if channel is None:
        raise WritebackError(f"channel {channel_id} does not exist", retryable=False)
    if not channel.active or not channel.enabled:
        log.info("channel_writeback.skipped", channel_id=channel_id, kind=kind)
        return None
    if channel.config.kind != kind:
        raise WritebackError(
            f"channel {channel_id} is a {channel.config.kind} channel, not {kind}",
            retryable=False,
        )
    if not ready(channel):
        raise WritebackError(
            f"{kind} channel {channel_id} needs {needs} for the tracking write-back",
            retryable=False,
        )
    return channel


def skipped(update: ShipmentUpdate) -> dict[str, Any]:
    """The result of a push to a channel switched off meanwhile: nothing was sent."""
    return {"channel_ref": update.channel_ref, "outcome": "skipped", "reason": SKIPPED_REASON}


class Writeback(ABC):
    """What every kind's ``ChannelWriteback`` shares: ``configured()`` and the start of
    ``push()`` (``required``: a channel switched off meanwhile is ``skipped``, one gone or
    without its settings refuses in words); the kind's ``ready()``, ``tells()`` and
    ``send()`` do the rest."""

    kind: ClassVar[str]
    needs: ClassVar[str]  # what ``ready`` checks, in words

    @abstractmethod
    def ready(self, channel: WritebackChannel) -> bool:
        """Whether the channel has the settings this kind's calls need."""

    @abstractmethod
    def tells(self, status: str) -> bool:
        """Whether a later change to ``status`` is news this channel can take."""

    def configured(self, channel_id: int | Model) -> bool:
        return configured(channel_id, self.kind, self.ready)

    def push(self, update: ShipmentUpdate) -> dict[str, Any]:
        channel = required(update.channel_id, self.kind, self.ready, self.needs)
        if channel is None:
            return skipped(update)
        return self.send(channel, update)

    @abstractmethod
    def send(self, channel: WritebackChannel, update: ShipmentUpdate) -> dict[str, Any]:
        """Tell the channel (switched on, of this kind, ready) about ``update``."""


def session(config: ChannelConfig) -> integrations.IntegrationSession:
    """A session for write-back calls to ``config``'s API (close it, or use it as a context
    manager): no POST is ever repeated in it, not after an answer nor after a read timeout;
    GETs and PUTs are retried ``RETRIES`` times."""
    policy = integrations.RetryPolicy(
        retries=RETRIES,
        backoff=settings.CHANNEL_HTTP_BACKOFF_FACTOR,
        methods=RETRY_METHODS,
        max_retry_after=MAX_RETRY_AFTER_SECONDS,
    )
    return session_for(
        config, policy=policy, error=WritebackError, log_event="channel_writeback.failed"
    )


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


def carrier_key(name: str) -> str:
    """A carrier's name folded for lookups: ``"FedEx SmartPost"`` -> ``"fedexsmartpost"``."""
    return "".join(ch for ch in (name or "").lower() if ch.isalnum())


def whole_seconds(when: datetime) -> datetime:
    """Vendors keep event times to the second."""
    return when.replace(microsecond=0)


def timestamp(when: datetime | None) -> str | None:
    """An aware time as ISO 8601 in UTC to the second, ``2026-11-01T12:00:00Z`` (None stays
    None; a naive time is a bug, never sent as if it were UTC)."""
    if when is None:
        return None
    if when.tzinfo is None:
        raise ValueError("write-back times must be timezone-aware")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime | None:
    """A vendor's ISO 8601 time (with its offset) or None."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def _code(value: dict[str, Any]) -> str:
    code = value.get("code")
    return str(code) if isinstance(code, str | int) and not isinstance(code, bool) else ""


def _texts(value: Any, depth: int = 0) -> list[str]:
    """The strings of an error structure (``{"errors": {"base": ["..."]}}``, ``[{"message":
    ...}]``, ``{"code": ..., "message": ...}``...), with the field or code they belong to."""
    if depth > 4 or value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item, depth + 1)]
    if isinstance(value, dict):
        code = _code(value)
        for key in REASON_FIELDS:
            if key in value:
                texts = _texts(value[key], depth + 1)
                return [f"{code}: {text}" for text in texts] if code else texts
        if code:
            return [code]
        out = []
        for key, item in value.items():
            out += [f"{key} {text}" if key != "base" else text for text in _texts(item, depth + 1)]
        return out
    return [str(value)]


def vendor_reason(response: requests.Response) -> str:
    """The vendor's reason for a refusal, from its error fields only (``errors``, ``error``,
    ``message``, ``detail``, ``title``, with the ``code`` beside them; no other part of the
    body), e-mail addresses masked, at most ``REASON_MAX`` characters; "" if none."""
    try:
        body = json.loads(response.content or b"null")
    except ValueError:
        return ""
    if isinstance(body, dict):
        picked = {k: body[k] for k in ("code", *REASON_FIELDS) if k in body}
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
    """``http.call`` whose refusals (a 4xx other than 408/425/429) are not retryable and carry
    the vendor's reason: ``HTTP 422 from host/path: <reason>``. Statuses in ``accept`` come
    back as answers; 408, 425, 429, 5xx and transport failures come back from the session as
    retryable errors."""
    accepted = frozenset(accept)
    response = http.call(method, url, what=what, accept=CLIENT_ERRORS | accepted, **kwargs)
    status = response.status_code
    if status in CLIENT_ERRORS and status not in accepted:
        reason = vendor_reason(response)
        detail = f"HTTP {status} from {integrations.where(response.url or url)}"
        raise http.refusal(response, what=what, message=f"{detail}: {reason}" if reason else "")
    return response


def call_json(
    http: integrations.IntegrationSession, method: str, url: str, *, what: str, **kwargs: Any
) -> Any:
    """``call`` and the answer's JSON (None when empty)."""
    return http.json_of(call(http, method, url, what=what, **kwargs), what=what)
