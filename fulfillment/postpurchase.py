"""After delivery: a review request (post-purchase survey) email, scheduled in the database.

When an order becomes ``delivered``, a ``notify_customer`` action with the template
``review_request`` is written in that transaction with ``not_before`` = the last parcel's
delivery + ``SURVEY_DELAY_HOURS`` (default 72): the row waits in the database and the outbox
sweeper sends its doorbell once it is due (no broker ETA). Only for a customer whose channel
says they accept marketing email (``Customer.accepts_marketing``), only by email, and once per
order (the fixed version ``REVIEW_REQUEST_VERSION``). Consent is checked again when it is sent
(``notify_email``): a customer who withdrew it, or was redacted, meanwhile gets nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from fulfillment.downstream import NOTIFY_CUSTOMER, targets_for
from fulfillment.selectors import order_delivered_at
from orders.models import Order

TEMPLATE = "review_request"
TARGET = "email"
# notify_customer shares one version space per order: 1 the confirmation, 1 + n the n-th
# shipping confirmation, 1_000_000 + event id the delivery exception notices.
REVIEW_REQUEST_VERSION = 999_999


def review_request_due(order_id: int) -> datetime:
    """When the review request of a delivered order is due: the last parcel's delivery (or
    now, when no parcel says) plus ``SURVEY_DELAY_HOURS``."""
    return (order_delivered_at(order_id) or timezone.now()) + timedelta(
        hours=float(settings.SURVEY_DELAY_HOURS)
    )


def review_request_schedule(*, order_id: int) -> int | None:
    """Write the order's review request for later (in the caller's transaction), when the
    customer accepts marketing email and email is a notification target; the action's id."""
    from fulfillment.outbox import services as outbox

    order = Order.objects.select_related("customer").filter(pk=order_id).first()
    if order is None or order.customer is None or not order.customer.accepts_marketing:
        return None
    if TARGET not in targets_for(NOTIFY_CUSTOMER):
        return None
    action = outbox.action_write(
        order_id=order.pk, kind=NOTIFY_CUSTOMER, target=TARGET,
        payload={"order_id": order.pk, "template": TEMPLATE}, lane="notify",
        version=REVIEW_REQUEST_VERSION, correlation_id=order.correlation_id,
        not_before=review_request_due(order.pk),
    )  # fmt: skip
    return action.pk


def on_delivered(order_id: int) -> None:
    """The ``deliver`` transition hook."""
    review_request_schedule(order_id=order_id)


def register() -> None:
    from orders import hooks

    hooks.on_transition("deliver", on_delivered)
