"""Celery entry points for orders: ids in, one service call, safe to repeat."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from config.tasks import enqueue
from orders import selectors, validation


@shared_task(name="orders.order_validate", acks_late=True)
def order_validate_task(order_id: int, **kwargs: Any) -> str | None:
    order = validation.order_validate(order_id=order_id)
    return order.status if order is not None else None


@shared_task(name="orders.order_allocate", acks_late=True)
def order_allocate_task(order_id: int, **kwargs: Any) -> str | None:
    order = validation.order_allocate(order_id=order_id)
    return order.status if order is not None else None


@shared_task(name="orders.order_pipeline_sweep")
def order_pipeline_sweep_task(**kwargs: Any) -> int:
    """Re-enqueue orders stuck in ``received`` (their message was lost: broker wiped, worker
    killed). Repeats are harmless: the pipeline skips orders that moved on."""
    ids = selectors.order_ids_stuck_in_received(
        older_than_seconds=settings.ORDER_PIPELINE_STUCK_AFTER_SECONDS
    )
    for order_id in ids:
        enqueue("orders.order_validate", order_id=order_id)
    return len(ids)


@shared_task(name="orders.order_allocate_sweep")
def order_allocate_sweep_task(**kwargs: Any) -> int:
    """Re-enqueue allocation for orders stuck in ``validated`` (the allocate message sent after a
    review approval was lost). Repeats are harmless: ``order_allocate`` skips orders that moved
    on."""
    ids = selectors.order_ids_stuck_in_validated(
        older_than_seconds=settings.ORDER_ALLOCATE_STUCK_AFTER_SECONDS
    )
    for order_id in ids:
        enqueue("orders.order_allocate", order_id=order_id)
    return len(ids)
