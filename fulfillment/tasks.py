"""Celery entry points for stock: ids in, one service call, safe to repeat."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from config.tasks import enqueue
from fulfillment import services

# Celery autodiscovers ``fulfillment.tasks`` only: the outbox's tasks register from here.
from fulfillment.outbox.tasks import (  # noqa: F401
    outbox_dispatch_batch_task,
    outbox_dispatch_task,
    outbox_sweep_task,
)


@shared_task(name="fulfillment.reservations_expire", acks_late=True)
def reservations_expire_task(**kwargs: Any) -> int:
    """Beat: free the stock of reservations held past their expiry."""
    return services.reservations_expire()


@shared_task(name="fulfillment.backorders_retry", acks_late=True)
def backorders_retry_task(**kwargs: Any) -> int:
    """Beat (and after a stock import): try again to allocate backordered orders whose SKUs
    have stock now. ``orders.order_allocate`` is idempotent, so a repeat is harmless."""
    order_ids = services.backordered_order_ids_with_stock()
    for order_id in order_ids:
        enqueue("orders.order_allocate", order_id=order_id)
    return len(order_ids)


@shared_task(name="fulfillment.orchestrate_sweep", acks_late=True)
def orchestrate_sweep_task(**kwargs: Any) -> int:
    """Beat: plan shipments and outbox actions for allocated orders a hook missed."""
    from fulfillment.orchestration import orchestrate_sweep

    return orchestrate_sweep()


@shared_task(name="fulfillment.orders_close_due", acks_late=True)
def orders_close_due_task(**kwargs: Any) -> int:
    """Beat (hourly): close delivered, settled orders whose return window has passed."""
    from fulfillment.closing import orders_close_due

    return orders_close_due().closed


# --- the feedback loop: carrier events and tracking polls ------------------------------------
@shared_task(name="fulfillment.carrier_event_process", acks_late=True)
def carrier_event_process_task(event_id: int, **kwargs: Any) -> str | None:
    """One carrier inbox event into tracking (``fulfillment.carrier_events``)."""
    from fulfillment.carrier_events import carrier_event_process

    event = carrier_event_process(event_id=event_id)
    return event.status if event is not None else None


@shared_task(name="fulfillment.carrier_event_sweep")
def carrier_event_sweep_task(**kwargs: Any) -> int:
    """Beat: re-ring carrier events still waiting (their message was lost)."""
    from django.conf import settings

    from fulfillment.carrier_events import PROCESS_TASK, carrier_event_ids_to_sweep

    ids = carrier_event_ids_to_sweep(older_than_seconds=settings.CARRIER_EVENT_SWEEP_AFTER_SECONDS)
    for event_id in ids:
        enqueue(PROCESS_TASK, event_id=event_id)
    return len(ids)


@shared_task(name="fulfillment.carrier_event_raw_purge")
def carrier_event_raw_purge_task(**kwargs: Any) -> int:
    """Beat: blank carrier inbox bodies past ``INBOX_RAW_RETENTION_DAYS``."""
    from fulfillment.carrier_events import carrier_event_raw_purge

    return carrier_event_raw_purge()


@shared_task(name="fulfillment.tracking_poll")
def tracking_poll_task(**kwargs: Any) -> int:
    """Beat (``TRACKING_POLL_INTERVAL_SECONDS``): one poll task per parcel that has been quiet
    for ``TRACKING_POLL_QUIET_SECONDS`` (the polling fallback of carrier webhooks)."""
    from fulfillment.returns_tracking import return_ids_to_poll
    from fulfillment.tracking_poll import POLL_TASK, shipment_ids_to_poll

    ids = shipment_ids_to_poll()
    for shipment_id in ids:
        enqueue(POLL_TASK, shipment_id=shipment_id)
    # Return parcels waiting for the carrier's pickup (a refund may wait for it).
    return_ids = return_ids_to_poll()
    for return_id in return_ids:
        enqueue("fulfillment.return_track_poll", return_id=return_id)
    return len(ids) + len(return_ids)


@shared_task(name="fulfillment.return_track_poll", acks_late=True)
def return_track_poll_task(return_id: int, **kwargs: Any) -> str:
    """Ask one return parcel's carrier where it is (its pickup may refund the return)."""
    from fulfillment.returns_tracking import return_track_poll

    return return_track_poll(return_id=return_id)


@shared_task(name="fulfillment.shipment_track_poll", acks_late=True)
def shipment_track_poll_task(shipment_id: int, **kwargs: Any) -> str:
    """Ask one parcel's carrier for its tracking and record what it says."""
    from fulfillment.tracking_poll import shipment_track_poll

    return shipment_track_poll(shipment_id=shipment_id)
