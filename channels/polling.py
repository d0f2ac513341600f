"""Pulling orders from channels without usable webhooks (Amazon SP-API), and Amazon's refunds
from its Finances API (``channel_refunds_poll``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.utils import timezone

from channels.adapters import get_adapter
from channels.models import InboundSource, SalesChannel
from channels.services import body_dedup_key, channel_config, inbound_event_store
from orders.errors import InvalidInput

log = structlog.get_logger(__name__)
POLL_TOPIC = "orders/poll"
REFUND_TOPIC = "finances/refund"
# Amazon posts a financial event some time after the refund; a little of what was seen is asked
# for again each round (the dedup key makes those repeats duplicates).
REFUND_POLL_OVERLAP = timedelta(hours=1)


@dataclass(frozen=True)
class PollResult:
    new: int
    duplicates: int
    cursor: datetime


def channel_poll(*, channel_id: int, progress: Callable[[int], None] | None = None) -> PollResult:
    """Fetch orders updated since the channel's cursor into the inbox, then move the cursor.

    Each order version becomes one inbox event (keyed by its content, so a re-poll of the same
    version is a duplicate); processing is the same as for webhooks. The cursor only moves once
    every order up to it is safely stored.
    """
    channel = SalesChannel.objects.get(pk=channel_id)
    adapter = get_adapter(channel.kind)
    if not hasattr(adapter, "poll"):
        raise InvalidInput(f"Channel {channel.slug} ({channel.kind}) is not polled; it pushes")
    since = channel.poll_cursor or timezone.now() - timedelta(days=settings.POLL_BACKFILL_DAYS)
    newest, new, duplicates = since, 0, 0
    for payload, last_update in adapter.poll(channel_config(channel), updated_after=since):
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        _, created = inbound_event_store(
            channel=channel, source=InboundSource.POLL, topic=POLL_TOPIC,
            dedup_key=body_dedup_key(body), headers={}, body=body,
        )  # fmt: skip
        new, duplicates = new + created, duplicates + (not created)
        newest = max(newest, last_update)
        if progress is not None:
            progress(new + duplicates)
    SalesChannel.objects.filter(pk=channel.pk).update(
        poll_cursor=newest, last_polled_at=timezone.now()
    )
    log.info("channel.polled", channel=channel.slug, new=new, duplicates=duplicates)
    return PollResult(new=new, duplicates=duplicates, cursor=newest)


def channel_refunds_poll(
    *, channel_id: int, progress: Callable[[int], None] | None = None
) -> PollResult:
    """Fetch refund events posted since the channel's refund cursor into the inbox (topic
    ``finances/refund``, one event per refund, keyed by the event's own id), then move the
    cursor. Processing records each refund once (``channels.refunds_in``); one whose order has
    not arrived yet waits in the inbox and is retried."""
    channel = SalesChannel.objects.get(pk=channel_id)
    adapter = get_adapter(channel.kind)
    if not hasattr(adapter, "poll_refunds"):
        raise InvalidInput(
            f"Channel {channel.slug} ({channel.kind}) has no refund events to poll; "
            "its refunds come with its webhooks", code="not_polled",
        )  # fmt: skip
    cursor = channel.refunds_poll_cursor
    since = (
        cursor - REFUND_POLL_OVERLAP
        if cursor is not None
        else timezone.now() - timedelta(days=settings.POLL_BACKFILL_DAYS)
    )
    newest, new, duplicates = cursor or since, 0, 0
    for payload, dedup_key, posted_at in adapter.poll_refunds(
        channel_config(channel), posted_after=since
    ):
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        _, created = inbound_event_store(
            channel=channel, source=InboundSource.POLL, topic=REFUND_TOPIC,
            dedup_key=dedup_key, headers={}, body=body,
        )  # fmt: skip
        new, duplicates = new + created, duplicates + (not created)
        newest = max(newest, posted_at)
        if progress is not None:
            progress(new + duplicates)
    SalesChannel.objects.filter(pk=channel.pk).update(refunds_poll_cursor=newest)
    log.info("channel.refunds_polled", channel=channel.slug, new=new, duplicates=duplicates)
    return PollResult(new=new, duplicates=duplicates, cursor=newest)


def refund_polled_channel_ids() -> list[int]:
    """The active channels whose refunds are polled (Amazon)."""
    kinds = [k for k in ("amazon",) if hasattr(get_adapter(k), "poll_refunds")]
    return list(
        SalesChannel.objects.filter(is_active=True, kind__in=kinds).values_list("pk", flat=True)
    )


def polled_channel_ids() -> list[int]:
    kinds = [k for k in ("amazon",) if hasattr(get_adapter(k), "poll")]
    return list(
        SalesChannel.objects.filter(is_active=True, kind__in=kinds).values_list("pk", flat=True)
    )
