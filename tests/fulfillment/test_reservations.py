"""Reserving stock for orders: the allocation strategy, all-or-nothing, idempotence, and the
reservation lifecycle (release, cancel, consume, expiry) on the real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from fulfillment.models import Reservation, StockLevel
from fulfillment.services import (
    backordered_order_ids_with_stock,
    ranked_warehouses,
    reservation_consume,
    reservation_release,
    reservations_expire,
    stock_reserve_for_order,
)
from fulfillment.tasks import backorders_retry_task, reservations_expire_task
from orders.errors import InvalidInput, NotFound
from orders.models import Incident, IncidentStatus
from orders.validation import order_allocate
from tests.factories import advance, make_order
from tests.fulfillment.helpers import add_warehouse, level, levels, stock

pytestmark = pytest.mark.django_db


def received(*lines, country="US"):
    """An order waiting for the pipeline (its message not delivered yet)."""
    return make_order(paid=True, lines=[(sku, qty, "10.00") for sku, qty in lines], country=country,
                      pipeline=False)  # fmt: skip


def active(order):
    return {
        (r.sku, r.warehouse.code): r.quantity
        for r in Reservation.objects.filter(order=order, status="active").select_related(
            "warehouse"
        )
    }


# --- strategy ----------------------------------------------------------------------------------
def test_the_whole_order_comes_from_one_warehouse_even_if_a_better_one_has_part_of_it():
    add_warehouse("A", priority=1)
    add_warehouse("B", priority=2)
    stock("MUG", "A", 10)  # A is preferred but has no TEE
    stock("MUG", "B", 10)
    stock("TEE", "B", 10)
    order = received(("MUG", 2), ("TEE", 1))

    result = stock_reserve_for_order(order_id=order.pk)

    assert result.outcome == "reserved"
    assert result.details["warehouses"] == ["B"]
    assert active(order) == {("MUG", "B"): 2, ("TEE", "B"): 1}
    assert levels("MUG") == {"A": (10, 0), "B": (10, 2)}
    assert levels("TEE") == {"B": (10, 1)}


def test_the_closest_warehouse_wins_over_a_better_priority_elsewhere():
    add_warehouse("US1", "US", priority=50)
    add_warehouse("DE1", "DE", priority=1, region="EU")
    add_warehouse("FR1", "FR", priority=5, region="EU")
    for code in ("US1", "DE1", "FR1"):
        stock("MUG", code, 5)

    us_order = received(("MUG", 1), country="US")
    assert stock_reserve_for_order(order_id=us_order.pk).details["warehouses"] == ["US1"]
    fr_order = received(("MUG", 1), country="FR")
    assert stock_reserve_for_order(order_id=fr_order.pk).details["warehouses"] == ["FR1"]
    # Austria has no warehouse: the EU ones are closer than the US one, then priority decides.
    at_order = received(("MUG", 1), country="AT")
    assert stock_reserve_for_order(order_id=at_order.pk).details["warehouses"] == ["DE1"]


def test_among_equally_close_warehouses_the_lower_priority_number_ships():
    add_warehouse("NJ1", "US", priority=20)
    add_warehouse("TX1", "US", priority=10)
    stock("MUG", "NJ1", 5)
    stock("MUG", "TX1", 5)
    order = received(("MUG", 3))

    assert stock_reserve_for_order(order_id=order.pk).details["warehouses"] == ["TX1"]


def test_the_same_subdivision_ranks_before_the_rest_of_the_country():
    add_warehouse("NJ1", "US", priority=1, region="US-NJ")
    add_warehouse("CA1", "US", priority=9, region="US-CA")
    add_warehouse("MX1", "MX", priority=0)

    ranked = ranked_warehouses(country="US", subdivision="US-CA")
    assert [w.code for w in ranked] == ["CA1", "NJ1", "MX1"]
    assert [w.code for w in ranked_warehouses(country="US")] == ["NJ1", "CA1", "MX1"]


def test_a_domestic_only_or_inactive_warehouse_is_never_used_for_other_destinations():
    add_warehouse("GB1", "GB", ships_international=False)
    add_warehouse("OLD", "US", is_active=False)
    stock("MUG", "GB1", 5)
    stock("MUG", "OLD", 5)

    order = received(("MUG", 1), country="US")
    result = stock_reserve_for_order(order_id=order.pk)

    assert result.outcome == "short"
    assert result.details["short_skus"] == ["MUG"]
    assert result.details["available"] == {"MUG": 0}
    assert Reservation.objects.count() == 0
    gb_order = received(("MUG", 1), country="GB")
    assert stock_reserve_for_order(order_id=gb_order.pk).details["warehouses"] == ["GB1"]


def test_without_split_an_order_no_single_warehouse_covers_is_short(settings):
    settings.ALLOCATION_ALLOW_SPLIT = False
    add_warehouse("A", priority=1)
    add_warehouse("B", priority=2)
    stock("MUG", "A", 1)
    stock("MUG", "B", 1)
    order = received(("MUG", 2))

    result = stock_reserve_for_order(order_id=order.pk)

    assert result.outcome == "short"
    assert result.details["short_skus"] == ["MUG"]
    assert result.details["requested"] == {"MUG": 2}
    assert result.details["available"] == {"MUG": 2}
    assert levels("MUG") == {"A": (1, 0), "B": (1, 0)}


def test_with_split_allowed_the_order_is_covered_from_several_warehouses(settings):
    settings.ALLOCATION_ALLOW_SPLIT = True
    add_warehouse("A", priority=1)
    add_warehouse("B", priority=2)
    add_warehouse("C", priority=3)
    stock("MUG", "A", 1)
    stock("MUG", "B", 1)
    stock("MUG", "C", 5)
    stock("TEE", "C", 5)
    order = received(("MUG", 2), ("TEE", 1))

    result = stock_reserve_for_order(order_id=order.pk)

    # C alone can ship everything: one warehouse still wins when one can.
    assert result.details["warehouses"] == ["C"]
    assert active(order) == {("MUG", "C"): 2, ("TEE", "C"): 1}

    split = received(("MUG", 5))  # A 1 + B 1 + C 3 (C has 3 left)
    result = stock_reserve_for_order(order_id=split.pk)
    assert result.outcome == "reserved"
    assert result.details["warehouses"] == ["A", "B", "C"]
    assert active(split) == {("MUG", "A"): 1, ("MUG", "B"): 1, ("MUG", "C"): 3}
    assert levels("MUG") == {"A": (1, 1), "B": (1, 1), "C": (5, 5)}


def test_the_summary_of_a_first_reservation_is_what_the_database_holds(settings):
    # Built from the rows it has just created (no re-read): it must say exactly what a read
    # of the active reservations says, lines in line order and warehouses by code within one.
    from fulfillment.services import _allocation_summary

    settings.ALLOCATION_ALLOW_SPLIT = True
    add_warehouse("ZED", priority=1)
    add_warehouse("ALPHA", priority=2)
    stock("MUG", "ZED", 1)
    stock("MUG", "ALPHA", 3)  # 4 MUG wanted: no single warehouse has them
    stock("TEE", "ALPHA", 2)
    order = received(("TEE", 2), ("MUG", 3), ("MUG", 1))

    result = stock_reserve_for_order(order_id=order.pk)

    assert result.outcome == "reserved"
    assert result.details == _allocation_summary(order.pk, 6).details
    assert result.details["lines"] == {
        "1": [{"sku": "TEE", "warehouse": "ALPHA", "quantity": 2}],
        "2": [{"sku": "MUG", "warehouse": "ALPHA", "quantity": 2},
              {"sku": "MUG", "warehouse": "ZED", "quantity": 1}],
        "3": [{"sku": "MUG", "warehouse": "ALPHA", "quantity": 1}],
    }  # fmt: skip
    assert result.details["warehouses"] == ["ALPHA", "ZED"]


def test_a_short_order_reserves_nothing_at_all():
    add_warehouse("A")
    stock("MUG", "A", 10)
    stock("TEE", "A", 1)
    order = received(("MUG", 3), ("TEE", 2))

    result = stock_reserve_for_order(order_id=order.pk)

    assert result.outcome == "short"
    assert result.details["short_skus"] == ["TEE"]
    assert result.details["requested"] == {"MUG": 3, "TEE": 2}
    assert result.details["available"] == {"MUG": 10, "TEE": 1}
    assert Reservation.objects.count() == 0
    assert levels("MUG") == {"A": (10, 0)}


def test_a_sku_nobody_stocks_is_short_and_two_lines_of_one_sku_add_up():
    add_warehouse("A")
    stock("MUG", "A", 3)
    assert stock_reserve_for_order(order_id=received(("GHOST", 1)).pk).details["short_skus"] == [
        "GHOST"
    ]
    order = received(("MUG", 2), ("MUG", 2))
    result = stock_reserve_for_order(order_id=order.pk)
    assert result.outcome == "short"
    assert result.details["requested"] == {"MUG": 4}


def test_running_the_allocator_again_reserves_nothing_twice():
    add_warehouse("A")
    stock("MUG", "A", 10)
    order = received(("MUG", 2), ("MUG", 3))

    first = stock_reserve_for_order(order_id=order.pk)
    again = stock_reserve_for_order(order_id=order.pk)

    assert first.details["reserved_now"] == 5
    assert again.outcome == "reserved"
    assert again.details["reserved_now"] == 0
    assert again.details["lines"] == first.details["lines"]
    assert Reservation.objects.filter(order=order).count() == 2
    assert level("MUG", "A").reserved == 5


def test_a_line_partly_uncovered_after_a_release_is_topped_up_again():
    add_warehouse("A")
    stock("MUG", "A", 10)
    stock("TEE", "A", 10)
    order = received(("MUG", 2), ("TEE", 1))
    stock_reserve_for_order(order_id=order.pk)
    tee = Reservation.objects.get(order=order, sku="TEE")
    assert reservation_release(reservation_id=tee.pk) is True

    result = stock_reserve_for_order(order_id=order.pk)

    assert result.details["reserved_now"] == 1
    assert active(order) == {("MUG", "A"): 2, ("TEE", "A"): 1}
    assert levels("TEE") == {"A": (10, 1)}


def test_a_cancelled_order_gets_no_stock():
    add_warehouse("A")
    stock("MUG", "A", 10)
    order = advance(received(("MUG", 1)), "cancel")

    result = stock_reserve_for_order(order_id=order.pk)

    assert result.outcome == "short"
    assert "cancelled" in result.details["reason"]
    assert Reservation.objects.count() == 0


def test_a_missing_order_is_refused():
    with pytest.raises(NotFound):
        stock_reserve_for_order(order_id=987654)


# --- lifecycle ---------------------------------------------------------------------------------
def reserved_order(*lines):
    add_warehouse("A")
    for sku, _ in lines:
        stock(sku, "A", 10)
    order = received(*lines)
    assert stock_reserve_for_order(order_id=order.pk).outcome == "reserved"
    return order


def test_release_frees_the_units_and_a_second_release_changes_nothing():
    order = reserved_order(("MUG", 4))
    reservation = Reservation.objects.get(order=order)

    assert reservation_release(reservation_id=reservation.pk) is True
    assert reservation_release(reservation_id=reservation.pk) is False

    reservation.refresh_from_db()
    assert reservation.status == "released"
    assert reservation.released_at is not None
    assert levels("MUG") == {"A": (10, 0)}
    assert order.events.filter(action="reservation_released").count() == 1
    assert reservation_release(reservation_id=424242) is False  # gone: quietly nothing


def test_cancelling_an_order_releases_its_reservations_through_the_hook():
    order = reserved_order(("MUG", 2), ("TEE", 3))

    advance(order, "cancel")

    assert set(Reservation.objects.filter(order=order).values_list("status", flat=True)) == {
        "released"
    }
    assert levels("MUG") == {"A": (10, 0)}
    assert levels("TEE") == {"A": (10, 0)}
    events = list(order.events.values_list("action", flat=True))
    assert events.count("reservation_released") == 2
    assert events.index("cancel") < events.index("reservation_released")


def test_consume_takes_the_units_off_the_shelf_once():
    order = reserved_order(("MUG", 4))
    reservation = Reservation.objects.get(order=order)

    assert reservation_consume(reservation_id=reservation.pk) is True
    assert reservation_consume(reservation_id=reservation.pk) is False
    assert reservation_release(reservation_id=reservation.pk) is False

    reservation.refresh_from_db()
    assert reservation.status == "consumed"
    assert levels("MUG") == {"A": (6, 0)}


def test_reservations_expire_after_their_ttl_and_free_the_stock(settings):
    settings.RESERVATION_TTL_MINUTES = 60
    order = reserved_order(("MUG", 4))
    reservation = Reservation.objects.get(order=order)
    assert reservation.expires_at - reservation.created_at == pytest.approx(
        timedelta(minutes=60), abs=timedelta(seconds=5)
    )

    assert reservations_expire(now=timezone.now() + timedelta(minutes=59)) == 0
    assert reservations_expire(now=timezone.now() + timedelta(minutes=61)) == 1
    assert reservations_expire(now=timezone.now() + timedelta(minutes=61)) == 0

    reservation.refresh_from_db()
    assert reservation.status == "expired"
    assert levels("MUG") == {"A": (10, 0)}
    assert order.events.filter(action="reservation_expired").count() == 1


def test_an_allocated_order_whose_reservation_expired_is_backordered_and_competes_again(settings):
    settings.RESERVATION_TTL_MINUTES = 60
    add_warehouse("A")
    stock("MUG", "A", 5)
    order = make_order(paid=True, lines=[("MUG", 4, "10.00")])
    assert order.status == "allocated"
    later = timezone.now() + timedelta(minutes=61)

    assert reservations_expire(now=later) == 1
    order.refresh_from_db()
    assert order.status == "backordered"
    backorder = order.events.get(action="backorder")
    assert (backorder.from_state, backorder.actor_id) == ("allocated", "expiry")
    assert backorder.data["reason"] == "its stock reservations expired"
    assert levels("MUG") == {"A": (5, 0)}

    # Meanwhile another order took 2 of the 5 freed units: the retry finds too few.
    rival = make_order(paid=True, lines=[("MUG", 2, "10.00")])
    assert rival.status == "allocated"
    assert backorders_retry_task() == 0
    stock("MUG", "A", 6)
    assert backorders_retry_task() == 1  # eager: re-reserved at once
    order.refresh_from_db()
    assert order.status == "allocated"
    assert levels("MUG") == {"A": (6, 6)}


def test_reservations_of_an_order_being_picked_do_not_expire():
    add_warehouse("A")
    stock("MUG", "A", 10)
    order = make_order(paid=True, lines=[("MUG", 1, "10.00")])
    assert order.status == "allocated"
    advance(order, "start_fulfillment")

    assert reservations_expire_task() == 0  # the beat entry point: nothing is due yet
    assert reservations_expire(now=timezone.now() + timedelta(days=365)) == 0
    assert levels("MUG") == {"A": (10, 1)}


def test_a_transition_from_an_ended_state_is_refused_by_the_model():
    order = reserved_order(("MUG", 1))
    reservation = Reservation.objects.get(order=order)
    reservation_release(reservation_id=reservation.pk)
    reservation.refresh_from_db()
    with pytest.raises(TransitionNotAllowed):
        reservation.consume()
    with pytest.raises(AttributeError):
        reservation.status = "active"  # protected: only transitions move it


# --- stock rows --------------------------------------------------------------------------------
def test_restocking_below_what_is_reserved_is_refused_with_a_clear_error():
    reserved_order(("MUG", 4))

    with pytest.raises(InvalidInput) as exc:
        stock("MUG", "A", 3)

    assert exc.value.code == "below_reserved"
    assert "4 unit(s) are reserved" in str(exc.value)
    assert levels("MUG") == {"A": (10, 4)}
    assert stock("MUG", "A", 4).on_hand == 4  # exactly what is reserved is fine


def test_restock_refuses_nonsense():
    add_warehouse("A")
    with pytest.raises(NotFound):
        stock("MUG", "NOPE", 1)
    with pytest.raises(InvalidInput):
        stock("MUG", "A", -1)
    with pytest.raises(InvalidInput):
        stock("", "A", 1)


def test_the_database_itself_refuses_reserving_more_than_on_hand():
    add_warehouse("A")
    stock("MUG", "A", 2)
    for bad in ({"reserved": 3}, {"reserved": -1}, {"on_hand": -1, "reserved": 0}):
        with pytest.raises(IntegrityError), transaction.atomic():
            StockLevel.objects.filter(sku="MUG").update(**bad)


def test_two_active_reservations_of_one_line_in_one_warehouse_are_refused_by_the_database():
    order = reserved_order(("MUG", 1))
    first = Reservation.objects.get(order=order)
    with pytest.raises(IntegrityError), transaction.atomic():
        Reservation.objects.create(order=order, order_line=first.order_line,
                                   warehouse=first.warehouse, sku="MUG", quantity=1,
                                   expires_at=first.expires_at)  # fmt: skip


# --- through the real pipeline -----------------------------------------------------------------
def test_an_order_with_stock_ends_allocated_through_the_pipeline():
    add_warehouse("A")
    stock("MUG", "A", 5)

    order = make_order(paid=True, lines=[("MUG", 2, "10.00")])

    assert order.status == "allocated"
    assert active(order) == {("MUG", "A"): 2}
    allocation = order.events.get(action="allocation")
    assert allocation.data["outcome"] == "reserved"
    assert allocation.data["warehouses"] == ["A"]
    assert not Incident.objects.filter(order=order).exists()


def test_an_order_without_stock_is_backordered_with_an_incident_then_allocated_on_restock():
    add_warehouse("A")
    stock("MUG", "A", 1)

    order = make_order(paid=True, lines=[("MUG", 2, "10.00")])

    assert order.status == "backordered"
    incident = Incident.objects.get(order=order)
    assert incident.category == "inventory_unavailable"
    assert incident.details["short_skus"] == ["MUG"]
    assert "MUG" in incident.summary
    assert Reservation.objects.count() == 0
    assert backordered_order_ids_with_stock() == []

    stock("MUG", "A", 5)
    assert backordered_order_ids_with_stock() == [order.pk]
    assert backorders_retry_task() == 1

    order.refresh_from_db()
    incident.refresh_from_db()
    assert order.status == "allocated"
    assert incident.status == IncidentStatus.RESOLVED
    assert levels("MUG") == {"A": (5, 2)}
    assert backordered_order_ids_with_stock() == []


def test_a_backordered_order_retried_without_new_stock_bumps_its_incident_once():
    add_warehouse("A")
    order = make_order(paid=True, lines=[("MUG", 1, "10.00")])
    assert order.status == "backordered"

    order_allocate(order_id=order.pk)

    incident = Incident.objects.get(order=order)
    assert incident.occurrence_count == 2
    order.refresh_from_db()
    assert order.status == "backordered"
