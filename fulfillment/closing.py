"""Closing delivered orders once nothing can come back: the beat task
``fulfillment.orders_close_due`` (hourly).

An order is closed when it is ``delivered``, its payment is settled (``Order.close``'s own
condition) and the return window has passed since its last parcel was delivered. The window is
the active ``ReturnPolicy`` of the order's channel, else the active shop-wide one (no channel),
else ``RETURN_WINDOW_DAYS_DEFAULT``. An order delivered by a person (no parcel says when) counts
from its ``deliver`` audit event. Each close goes through ``order_transition`` (lock, expected
state, audit with the system actor ``closing`` and the reason); an order that moved meanwhile is
skipped, so the task is safe to repeat and to run twice at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.utils import timezone

from fulfillment.selectors import order_delivered_at, return_policy_for
from orders.actors import Actor
from orders.errors import DomainError
from orders.models import PAYMENT_SETTLED, Order, OrderStatus
from orders.services import order_transition

log = structlog.get_logger(__name__)

ACTOR = Actor.system("closing")


@dataclass(frozen=True)
class CloseSummary:
    checked: int
    closed: int
    waiting: int  # the return window is still open, or the delivery time is unknown
    refused: int  # moved meanwhile, or refused by the transition


def return_window_days(*, channel_id: int | None) -> int:
    """The return window that applies to an order of this channel, in days (the policy the
    customer's status page shows, else the default)."""
    policy = return_policy_for(channel_id=channel_id)
    if policy is not None:
        return int(policy.window_days)
    return int(settings.RETURN_WINDOW_DAYS_DEFAULT)


def orders_close_due(*, now: datetime | None = None, limit: int = 500) -> CloseSummary:
    """Close every delivered, settled order whose return window has passed (see the module)."""
    now = now or timezone.now()
    # Every delivered, settled order is looked at (those still in their window stay delivered
    # and are looked at again next hour); ``limit`` caps the closes of one run.
    candidates = list(
        Order.objects.filter(status=OrderStatus.DELIVERED, payment_status__in=PAYMENT_SETTLED)
        .order_by("pk")
        .values_list("pk", "channel_id")
    )
    windows: dict[int | None, int] = {}
    closed = waiting = refused = 0
    for order_id, channel_id in candidates:
        if closed >= limit:
            break
        if channel_id not in windows:
            windows[channel_id] = return_window_days(channel_id=channel_id)
        days = windows[channel_id]
        when = order_delivered_at(order_id)
        if when is None or now < when + timedelta(days=days):
            waiting += 1
            continue
        try:
            order_transition(
                order_id=order_id, transition="close", actor=ACTOR,
                expected_status=OrderStatus.DELIVERED,
                reason=f"return window of {days} days after delivery has passed",
                data={"return_window_days": days, "delivered_at": when.isoformat()},
            )  # fmt: skip
        except DomainError as exc:
            refused += 1
            log.info("orders.close_refused", order_id=order_id, error=str(exc))
            continue
        closed += 1
    if closed:
        log.info("orders.closed", closed=closed, waiting=waiting, refused=refused)
    return CloseSummary(len(candidates), closed, waiting, refused)
