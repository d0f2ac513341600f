"""Celery entry points for ingestion: ids in, one service call, safe to repeat."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from channels import services
from config.tasks import enqueue


@shared_task(name="channels.inbound_event_process", acks_late=True)
def inbound_event_process_task(event_id: int, **kwargs: Any) -> str | None:
    event = services.inbound_event_process(event_id=event_id)
    return event.status if event is not None else None


@shared_task(name="channels.inbound_event_sweep")
def inbound_event_sweep_task(**kwargs: Any) -> int:
    """Re-enqueue inbox rows stuck in ``received`` (lost message, expired retry lease)."""
    ids = services.inbound_event_ids_to_sweep(
        older_than_seconds=settings.INGEST_SWEEP_AFTER_SECONDS
    )
    for event_id in ids:
        enqueue("channels.inbound_event_process", event_id=event_id)
    return len(ids)


@shared_task(name="channels.channel_poll", acks_late=True)
def channel_poll_task(channel_id: int, **kwargs: Any) -> int:
    from channels.polling import channel_poll

    return channel_poll(channel_id=channel_id).new


@shared_task(name="channels.poll_all")
def poll_all_task(**kwargs: Any) -> int:
    """Beat: one polling task per active polled channel."""
    from channels.polling import polled_channel_ids

    ids = polled_channel_ids()
    for channel_id in ids:
        enqueue("channels.channel_poll", channel_id=channel_id)
    return len(ids)


@shared_task(name="channels.channel_refunds_poll", acks_late=True)
def channel_refunds_poll_task(channel_id: int, **kwargs: Any) -> int:
    from channels.polling import channel_refunds_poll

    return channel_refunds_poll(channel_id=channel_id).new


@shared_task(name="channels.refunds_poll_all")
def refunds_poll_all_task(**kwargs: Any) -> int:
    """Beat (hourly): one refund-polling task per active channel with polled refunds."""
    from channels.polling import refund_polled_channel_ids

    ids = refund_polled_channel_ids()
    for channel_id in ids:
        enqueue("channels.channel_refunds_poll", channel_id=channel_id)
    return len(ids)


@shared_task(name="channels.inbound_raw_purge")
def inbound_raw_purge_task(**kwargs: Any) -> int:
    """Beat: blank inbox bodies past ``INBOX_RAW_RETENTION_DAYS`` (channels/privacy.py)."""
    from channels.privacy import inbound_raw_purge

    return inbound_raw_purge()
