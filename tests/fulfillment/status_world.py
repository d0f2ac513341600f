"""An order as a customer's status page shows it: two parcels from two warehouses with their
carrier events, a third line not shipped yet, and a shop-wide return policy. Built through the
services (order_create, the pipeline, labels, hand-over, tracking_record)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.test import TestCase

from fulfillment.carriers.base import Tracking, TrackingEvent
from fulfillment.models import ReturnPolicy, Shipment
from fulfillment.shipments import (
    LineRequest,
    shipment_buy_label,
    shipment_create,
    shipment_ship,
    shipment_void,
)
from fulfillment.tracking import tracking_record
from orders.actors import Actor
from orders.models import Order
from orders.services import (
    LineInput,
    OrderInput,
    customer_create,
    order_create,
    order_transition,
)
from tests.factories import SalesChannelFactory
from tests.fulfillment.helpers import add_warehouse, stock

OPS = Actor.system("test")
# What must never reach the page.
STREET = "1600 Amphitheatre Pkwy"
POSTAL_CODE = "94043"
EMAIL = "ada.lovelace@example.com"
PHONE = "+1 650 555 0142"
LAST_NAME = "Lovelace"
CITY = "Mountain View"
LINES = [("MUG", "Mug white", 2, "12.50"), ("TEE", "T-shirt <b>black</b>", 1, "19.99"),
         ("CAP", "Cap navy", 1, "15.00")]  # fmt: skip


def status_order(
    *, settings: Any, events: int = 10, policy: bool = True
) -> tuple[Order, list[Shipment]]:
    """A paid order of MUG x2, TEE x1 and CAP x1: one MUG from warehouse A and one from B (two
    parcels, ``events`` carrier events each, the first delivered), TEE in the second, CAP not
    shipped yet."""
    settings.ALLOCATION_ALLOW_SPLIT = True
    add_warehouse("A", priority=1)
    add_warehouse("B", priority=2)
    stock("MUG", "A", 1)
    stock("MUG", "B", 1)
    stock("TEE", "B", 5)
    stock("CAP", "A", 5)
    if policy:
        ReturnPolicy.objects.create(
            name="Standard returns", window_days=30,
            conditions="Unworn and unwashed, with the tags on.",
            how_to_start="Reply to your shipping email with the order number.",
        )  # fmt: skip
    channel = SalesChannelFactory(name="Demo Store")
    customer = customer_create(email=EMAIL, name=f"Ada {LAST_NAME}", phone=PHONE)
    address = {"name": f"Ada {LAST_NAME}", "line1": STREET, "city": CITY, "region_code": "CA",
               "postal_code": POSTAL_CODE, "country_code": "US", "phone": PHONE}  # fmt: skip
    with TestCase.captureOnCommitCallbacks(execute=True), transaction.atomic():
        order = order_create(
            data=OrderInput(
                channel_id=channel.pk, external_id="S-1", order_number="#1042", currency="USD",
                customer_id=customer.pk, placed_at=datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
                lines=[LineInput(sku=sku, title=title, quantity=qty, unit_price=Decimal(price))
                       for sku, title, qty, price in LINES],
                shipping_total=Decimal("5.00"), shipping_address=address, billing_address=address,
            ),
            actor=OPS,
        )  # fmt: skip
        order_transition(order_id=order.pk, transition="capture_payment", actor=OPS)
    order.refresh_from_db()
    # "fulfilling" when the orchestration hooks run (they plan the parcels and the emails).
    assert order.status in ("allocated", "fulfilling"), order.status_reason
    # The planner's drafts are replaced by two parcels of our choosing (CAP stays behind).
    for draft in Shipment.objects.filter(order=order, status__in=["draft", "label_purchased"]):
        shipment_void(shipment_id=draft.pk, actor=OPS)
    lines = {line.sku: line for line in order.lines.all()}
    first = shipment_create(order_id=order.pk, actor=OPS, warehouse_code="A",
                            lines=[LineRequest(lines["MUG"].pk, 1)])  # fmt: skip
    second = shipment_create(order_id=order.pk, actor=OPS, warehouse_code="B", lines=[
        LineRequest(lines["MUG"].pk, 1), LineRequest(lines["TEE"].pk, 1)])  # fmt: skip
    parcels = []
    for draft in (first, second):
        shipment = shipment_buy_label(shipment_id=draft.pk, actor=OPS)
        parcels.append(shipment_ship(shipment_id=shipment.pk, actor=OPS))
    for i, parcel in enumerate(parcels):
        tracking_record(shipment_id=parcel.pk, tracking=carrier_history(parcel, events,
                        delivered=i == 0), source="webhook")  # fmt: skip
    order.refresh_from_db()
    return order, [Shipment.objects.get(pk=p.pk) for p in parcels]


def carrier_history(parcel: Shipment, count: int, *, delivered: bool) -> Tracking:
    """``count`` scans an hour apart; the last one ``delivered`` or ``out_for_delivery``."""
    start = parcel.shipped_at or datetime.now(UTC)
    cities = ["Newark, NJ", "Allentown, PA", "Chicago, IL", "Denver, CO", "Oakland, CA"]
    events = [
        TrackingEvent(at=start + timedelta(hours=h + 1), status="in_transit",
                      description=f"Arrived at facility {h + 1}", carrier_status="in_transit",
                      location=cities[h % len(cities)])
        for h in range(count - 1)
    ]  # fmt: skip
    last = "delivered" if delivered else "out_for_delivery"
    events.append(TrackingEvent(at=start + timedelta(hours=count), status=last,
                                description="Delivered, front door" if delivered else
                                "Out for delivery", carrier_status=last,
                                location="Mountain View, CA"))  # fmt: skip
    eta = start + timedelta(days=2)
    return Tracking(
        tracking_number=parcel.tracking_number, status=last, events=events,
        estimated_delivery_from=eta, estimated_delivery_until=eta + timedelta(hours=6),
        carrier_name="" if delivered else "Speedy Parcel",
    )  # fmt: skip
