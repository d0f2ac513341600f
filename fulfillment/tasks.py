"""Celery entry points for stock: ids in, one service call, safe to repeat."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from config.tasks import enqueue
from fulfillment import services

# Celery autodiscovers ``fulfillment.tasks`` only: the outbox's tasks register from here.
from fulfillment.outbox.tasks import outbox_dispatch_task, outbox_sweep_task  # noqa: F401


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
