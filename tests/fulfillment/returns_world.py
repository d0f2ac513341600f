"""Delivered orders for the returns admin tests (test client and browser)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Group

from fulfillment.models import ReturnPolicy
from fulfillment.shipments import shipment_buy_label, shipment_ship, shipments_create_for_order
from orders.actors import Actor
from orders.models import Order, RefundLimit
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse, stock
from tests.fulfillment.test_tracking import record

OPS = Actor.system("test")


def review_policy() -> ReturnPolicy:
    """A policy that authorizes nothing by itself: every return waits for customer service."""
    return ReturnPolicy.objects.create(name="Standard", window_days=30, auto_authorize_limit=None)


def cs_limit(amount: str, currency: str = "USD") -> None:
    RefundLimit.objects.update_or_create(group=Group.objects.get(name="customer_service"),
                                         currency=currency,
                                         defaults={"max_amount": Decimal(amount)})  # fmt: skip


def delivered_order(lines: list[tuple[str, int, str]], **kwargs: Any) -> Order:
    """A paid order of ``lines`` (sku, quantity, unit price), shipped from warehouse A and
    delivered."""
    add_warehouse("A")
    for sku, quantity, _price in lines:
        stock(sku, "A", quantity + 5)
    order = make_order(paid=True, lines=lines, **kwargs)
    [draft] = shipments_create_for_order(order_id=order.pk, actor=OPS)
    parcel = shipment_ship(shipment_id=shipment_buy_label(shipment_id=draft.pk, actor=OPS).pk,
                           actor=OPS)  # fmt: skip
    record(parcel, ("delivered", 8, "Delivered"))
    order.refresh_from_db()
    assert order.status == "delivered"
    return order
