"""Carrier events drive the shipment forward only, the order follows its parcels, a repeat or
a late event changes nothing, and a delivery problem reaches customer service and the customer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fulfillment.carriers.base import Tracking, TrackingEvent
from fulfillment.models import OutboundAction, Shipment
from fulfillment.models import TrackingEvent as TrackingEventRow
from fulfillment.shipments import shipment_buy_label, shipment_ship, shipments_create_for_order
from fulfillment.tracking import shipments_to_poll, tracking_record
from orders.actors import Actor
from orders.models import Incident
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse, stock

pytestmark = pytest.mark.django_db

OPS = Actor.system("test")


def shipped_order(*lines, split=False, settings=None):
    if split:
        settings.ALLOCATION_ALLOW_SPLIT = True
    order = make_order(paid=True, lines=[(sku, qty, "10.00") for sku, qty in lines])
    assert order.status == "allocated", order.status_reason
    parcels = []
    for draft in shipments_create_for_order(order_id=order.pk, actor=OPS):
        shipment = shipment_buy_label(shipment_id=draft.pk, actor=OPS)
        parcels.append(shipment_ship(shipment_id=shipment.pk, actor=OPS))
    order.refresh_from_db()
    return order, parcels


def update(shipment, *steps):
    """A carrier's tracking for ``shipment``: (status, hours after it shipped, message) steps."""
    events = [
        TrackingEvent(at=shipment.shipped_at + timedelta(hours=h), status=status,
                      description=message, carrier_status=status, location="Newark, NJ, US")
        for status, h, message in steps
    ]  # fmt: skip
    return Tracking(tracking_number=shipment.tracking_number, status=events[-1].status,
                    events=events)  # fmt: skip


def record(shipment, *steps, source="webhook"):
    return tracking_record(shipment_id=shipment.pk, tracking=update(shipment, *steps),
                           source=source)  # fmt: skip


def test_events_move_the_parcel_forward_and_the_order_is_delivered_by_the_carrier():
    add_warehouse("A")
    stock("MUG", "A", 5)
    order, [parcel] = shipped_order(("MUG", 1))
    assert order.status == "shipped"
    handover = TrackingEventRow.objects.get(shipment=parcel)
    assert (handover.status, handover.source) == ("pre_transit", "warehouse")

    result = record(parcel, ("in_transit", 1, "Arrived at facility"))
    parcel.refresh_from_db()
    assert (result.from_state, result.to_state, parcel.status) == (
        "shipped", "in_transit", "in_transit",
    )  # fmt: skip
    assert parcel.tracking_status == "in_transit"

    result = record(
        parcel,
        ("in_transit", 1, "Arrived at facility"),
        ("out_for_delivery", 5, "Out for delivery"),
        ("delivered", 8, "Delivered"),
    )
    assert (result.new_events, result.duplicates) == (2, 1)
    parcel.refresh_from_db()
    order.refresh_from_db()
    assert parcel.status == "delivered"
    assert parcel.delivered_at == parcel.shipped_at + timedelta(hours=8)
    assert order.status == "delivered"
    event = order.events.get(action="deliver")
    assert (event.actor_kind, event.actor_id) == ("carrier", "local")
    assert order.events.filter(action="tracking_event").count() == 4


def test_a_duplicate_or_late_event_changes_nothing_and_says_why():
    add_warehouse("A")
    stock("MUG", "A", 5)
    order, [parcel] = shipped_order(("MUG", 1))
    record(parcel, ("delivered", 8, "Delivered"))
    before = order.events.count()

    again = record(parcel, ("delivered", 8, "Delivered"))
    assert (again.new_events, again.duplicates, again.applied_event_id) == (0, 1, None)
    assert order.events.count() == before

    late = record(parcel, ("in_transit", 2, "Departed facility"))
    parcel.refresh_from_db()
    assert late.new_events == 1 and late.applied_event_id is None
    assert parcel.status == "delivered" and parcel.tracking_status == "delivered"
    row = TrackingEventRow.objects.filter(shipment=parcel).order_by("-pk").first()
    assert not row.applied and row.effect.startswith("recorded only: older than the newest")

    newer = record(parcel, ("in_transit", 20, "Scanned again"))
    parcel.refresh_from_db()
    assert newer.applied_event_id is None and parcel.status == "delivered"
    assert "never moves back" in TrackingEventRow.objects.order_by("-pk").first().effect


def test_a_split_order_is_delivered_only_when_every_parcel_is(settings):
    add_warehouse("A", priority=1)
    add_warehouse("B", priority=2)
    stock("MUG", "A", 1)
    stock("MUG", "B", 1)
    order, parcels = shipped_order(("MUG", 2), split=True, settings=settings)
    assert len(parcels) == 2
    record(parcels[0], ("delivered", 3, "Delivered"))
    order.refresh_from_db()
    assert order.status == "shipped"
    record(parcels[1], ("delivered", 4, "Delivered"))
    order.refresh_from_db()
    assert order.status == "delivered"


def test_an_exception_raises_an_incident_in_the_carriers_words_and_tells_the_customer():
    add_warehouse("A")
    stock("MUG", "A", 5)
    order, [parcel] = shipped_order(("MUG", 1))
    record(parcel, ("in_transit", 1, "Arrived"), ("failed_attempt", 6, "No access to building"))
    parcel.refresh_from_db()
    assert parcel.status == "exception"
    incident = Incident.objects.get(category="delivery_exception", order=order)
    assert "No access to building" in incident.summary
    notices = OutboundAction.objects.filter(order=order, kind="notify_customer",
                                            payload__template="delivery_exception")  # fmt: skip
    assert notices.count() == 1
    # Moving again after the failed attempt is forward; a second attempt bumps the incident.
    record(parcel, ("in_transit", 7, "Back on the van"))
    parcel.refresh_from_db()
    assert parcel.status == "in_transit"
    assert Incident.objects.filter(category="delivery_exception").count() == 1


def test_quiet_parcels_are_offered_to_the_polling_fallback():
    add_warehouse("A")
    stock("MUG", "A", 5)
    _order, [parcel] = shipped_order(("MUG", 1))
    assert shipments_to_poll(quiet_seconds=3600) == []
    Shipment.objects.filter(pk=parcel.pk).update(
        last_tracked_at=datetime.now(UTC) - timedelta(hours=2)
    )
    assert shipments_to_poll(quiet_seconds=3600) == [parcel.pk]


def test_a_parcel_returned_to_sender_is_a_delivery_exception_for_customer_service():
    add_warehouse("A")
    stock("MUG", "A", 5)
    order, [parcel] = shipped_order(("MUG", 1))
    record(parcel, ("in_transit", 1, "Arrived"), ("return_to_sender", 30, "Refused by recipient"))
    parcel.refresh_from_db()
    order.refresh_from_db()
    assert (parcel.status, order.status) == ("returned", "shipped")
    incident = Incident.objects.get(category="delivery_exception", order=order)
    assert "Refused by recipient" in incident.summary


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_last_two_parcels_delivered_at_the_same_moment_deliver_the_order(settings):
    """Two workers record the delivery of a split order's two parcels at once: each
    transaction holds its own parcel, so without the order's row lock each saw the other still
    on its way and nobody delivered the order (found by tests/e2e/test_feedback_loop.py on
    PostgreSQL). The order is locked before its parcels are counted."""
    from django.db import connection

    from tests.concurrency import race

    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL")
    add_warehouse("A", priority=1)
    add_warehouse("B", priority=2)
    orders = []
    for _ in range(3):
        stock("MUG", "A", 1)
        stock("MUG", "B", 1)
        orders.append(shipped_order(("MUG", 2), split=True, settings=settings))
    for order, parcels in orders:
        assert len(parcels) == 2
        results = race([lambda p=p: record(p, ("delivered", 3, "Delivered")) for p in parcels])
        assert not [r for r in results if isinstance(r, Exception)], results
        order.refresh_from_db()
        assert order.status == "delivered"
        assert [r.order_delivered for r in results].count(True) == 1
