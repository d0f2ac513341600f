"""A lost race on a reservation or a shipment is the domain's ``StaleState``, with a message a
person can act on, and nothing of the losing operation stays (no audit event, no stock moved).

Two ways to lose: another session moves the row between our read and our save
(``moved_meanwhile``: what a row lock keeps out on PostgreSQL, and what SQLite cannot keep
out), and a real race of two sessions (``race``), where exactly one wins.
"""

from __future__ import annotations

import pytest
from django.db import connection

from fulfillment.models import Reservation, Shipment
from fulfillment.services import reservation_release, reservations_expire
from fulfillment.shipments import (
    shipment_buy_label,
    shipment_ship,
    shipment_void,
    shipments_create_for_order,
)
from orders.actors import Actor
from orders.errors import StaleState, TransitionRefused
from orders.models import OrderEvent
from tests.concurrency import moved_meanwhile, race
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse, levels, stock

OPS = Actor.system("test")


def allocated(sku: str = "MUG", qty: int = 2):
    add_warehouse("A")
    stock(sku, "A", 10)
    order = make_order(paid=True, lines=[(sku, qty, "10.00")])
    assert order.status == "allocated", order.status_reason
    return order


@pytest.mark.django_db
def test_a_release_that_loses_the_race_is_stale_and_gives_nothing_back():
    order = allocated()
    reservation = Reservation.objects.get(order=order)

    with moved_meanwhile(Reservation, "expired"), pytest.raises(StaleState) as lost:
        reservation_release(reservation_id=reservation.pk, actor=OPS)

    assert str(lost.value) == (
        f"Reservation {reservation.pk} was changed by someone else at the same time: "
        "reload and try again"
    )
    assert lost.value.code == "stale_state"
    assert levels("MUG") == {"A": (10, 2)}  # still reserved: the release rolled back
    assert not OrderEvent.objects.filter(order=order, action="reservation_released").exists()


@pytest.mark.django_db
def test_an_expiry_that_loses_the_race_is_stale(settings):
    order = allocated()
    reservation = Reservation.objects.get(order=order)
    Reservation.objects.filter(pk=reservation.pk).update(expires_at=reservation.created_at)

    with moved_meanwhile(Reservation, "released"), pytest.raises(StaleState, match="Reservation"):
        reservations_expire()
    assert not OrderEvent.objects.filter(order=order, action="reservation_expired").exists()


@pytest.mark.django_db
def test_a_label_recorded_over_a_shipment_that_moved_meanwhile_is_stale():
    order = allocated()
    [shipment] = shipments_create_for_order(order_id=order.pk, actor=OPS)

    with moved_meanwhile(Shipment, "voided"), pytest.raises(StaleState) as lost:
        shipment_buy_label(shipment_id=shipment.pk, actor=OPS)

    assert str(lost.value) == (
        f"Shipment {shipment.pk} was changed by someone else at the same time: reload and try again"
    )
    assert not OrderEvent.objects.filter(order=order, action="label_purchased").exists()


@pytest.mark.django_db
def test_shipping_a_shipment_that_moved_meanwhile_is_stale_and_consumes_nothing():
    order = allocated()
    [shipment] = shipments_create_for_order(order_id=order.pk, actor=OPS)
    shipment_buy_label(shipment_id=shipment.pk, actor=OPS)

    with moved_meanwhile(Shipment, "voided"), pytest.raises(StaleState, match="Shipment"):
        shipment_ship(shipment_id=shipment.pk, actor=OPS)

    assert levels("MUG") == {"A": (10, 2)}
    order.refresh_from_db()
    assert order.status == "fulfilling"
    assert not OrderEvent.objects.filter(order=order, action="reservation_consumed").exists()


@pytest.mark.django_db
def test_a_void_that_loses_the_race_is_stale_and_voiding_a_shipped_one_is_refused():
    order = allocated()
    [shipment] = shipments_create_for_order(order_id=order.pk, actor=OPS)

    with moved_meanwhile(Shipment, "label_purchased"), pytest.raises(StaleState):
        shipment_void(shipment_id=shipment.pk, actor=OPS)
    assert not OrderEvent.objects.filter(order=order, action="shipment_voided").exists()

    shipment_buy_label(shipment_id=shipment.pk, actor=OPS)
    shipment_ship(shipment_id=shipment.pk, actor=OPS)
    with pytest.raises(TransitionRefused) as refused:
        shipment_void(shipment_id=shipment.pk, actor=OPS)
    assert str(refused.value) == (
        f"Cannot void shipment {shipment.pk}: it is 'shipped' "
        "(allowed from: draft, label_purchased)"
    )


# A real race needs row locks: SQLite's whole-database lock makes the loser "database is locked".
@pytest.mark.skipif(connection.vendor != "postgresql", reason="a real race: PostgreSQL only")
@pytest.mark.django_db(transaction=True)
def test_two_sessions_voiding_one_shipment_void_it_once():
    order = allocated()
    [shipment] = shipments_create_for_order(order_id=order.pk, actor=OPS)

    results = race([lambda: shipment_void(shipment_id=shipment.pk, actor=OPS)] * 2)

    # The loser waits for the row lock, then finds it voided: a no-op, not a second void.
    assert [r.status for r in results] == ["voided", "voided"], results
    assert Shipment.objects.get(pk=shipment.pk).status == "voided"
    assert OrderEvent.objects.filter(order=order, action="shipment_voided").count() == 1
