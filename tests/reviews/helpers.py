"""Orders with the facts the fraud score reads (addresses, channel facts), made by services."""

from datetime import UTC, datetime
from decimal import Decimal

from django.db import transaction
from django.test import TestCase

from orders import validation
from orders.actors import Actor
from orders.services import LineInput, OrderInput, order_create, order_transition
from tests.factories import CustomerFactory, SalesChannelFactory, make_order

US = {"name": "Pat Buyer", "line1": "1 Main St", "city": "Springfield", "region_code": "IL",
      "postal_code": "62701", "country_code": "US"}  # fmt: skip


def order_with(*, channel=None, customer=None, lines=None, currency="USD", shipping=None,
               billing=None, source=None, external_id=None, guest=False):  # fmt: skip
    """An order through ``order_create`` whose pipeline runs after commit (eager tasks)."""
    channel = channel or SalesChannelFactory()
    if customer is None and not guest:
        customer = CustomerFactory()
    with TestCase.captureOnCommitCallbacks(execute=True), transaction.atomic():
        order = order_create(
            data=OrderInput(
                channel_id=channel.pk,
                external_id=external_id or f"F{order_with.counter}",
                currency=currency,
                customer_id=customer.pk if customer else None,
                lines=[
                    LineInput(sku=s, quantity=q, unit_price=Decimal(p))
                    for s, q, p in (lines or [("SKU-1", 2, "10.00")])
                ],  # fmt: skip
                placed_at=datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
                shipping_address=dict(US if shipping is None else shipping),
                billing_address=dict(billing or {}),
                source=dict(source or {}),
            ),
            actor=Actor.system("test"),
        )
        # Paid before the pipeline runs, so the payment check (when registered) passes.
        order_transition(order_id=order.pk, transition="capture_payment", actor=Actor.system())
    order_with.counter += 1
    order.refresh_from_db()
    return order


order_with.counter = 1


def paid_order(**kwargs):
    """``make_order`` with the payment captured before its pipeline runs: the payment check,
    once registered, passes and the fraud score decides alone."""
    order = make_order(pipeline=False, **kwargs)
    order_transition(order_id=order.pk, transition="capture_payment", actor=Actor.system())
    with TestCase.captureOnCommitCallbacks(execute=True):
        validation.order_validate(order_id=order.pk)
    order.refresh_from_db()
    return order


# Where an order that passed its checks ends up: ``validated`` with no allocator registered,
# ``allocated`` or ``backordered`` once fulfillment's allocator runs.
WENT_ON = ("validated", "allocated", "backordered")
