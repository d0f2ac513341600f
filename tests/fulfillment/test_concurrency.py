"""No oversell under a real race: 50 sessions allocate one unit each of a SKU that has 10 units
across two warehouses. Exactly 10 end reserved, the other 40 orders are backordered.

Runs on SQLite and on PostgreSQL (the CI's second pass): each thread has its own database
connection (closed when it is done), so the race is between real sessions.
"""

from __future__ import annotations

import pytest
from django.db.models import Sum

from fulfillment.models import Reservation, StockLevel
from fulfillment.services import reservation_release, stock_reserve_for_order
from orders.models import Incident, Order
from orders.validation import order_allocate
from tests.concurrency import race
from tests.factories import SalesChannelFactory, advance, make_order
from tests.fulfillment.helpers import add_warehouse, levels, stock

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 50


def assert_invariants():
    for s in StockLevel.objects.all():
        assert 0 <= s.reserved <= s.on_hand, s
        held = Reservation.objects.filter(
            sku=s.sku, warehouse=s.warehouse, status="active"
        ).aggregate(n=Sum("quantity"))["n"]
        assert s.reserved == (held or 0), s


def test_fifty_sessions_race_for_ten_units_and_exactly_ten_are_reserved():
    add_warehouse("EAST", priority=1)
    add_warehouse("WEST", priority=2)
    stock("RACE", "EAST", 6)
    stock("RACE", "WEST", 4)
    channel = SalesChannelFactory()
    orders = [
        advance(
            make_order(paid=True, channel=channel, lines=[("RACE", 1, "10.00")], pipeline=False),
            "validate",
        )  # fmt: skip
        for _ in range(THREADS)
    ]

    results = race([lambda oid=o.pk: order_allocate(order_id=oid) for o in orders])

    errors = [r for r in results if isinstance(r, Exception)]
    assert errors == [], errors[:3]
    statuses = sorted(Order.objects.values_list("status", flat=True))
    assert statuses.count("allocated") == 10, statuses
    assert statuses.count("backordered") == THREADS - 10, statuses
    assert levels("RACE") == {"EAST": (6, 6), "WEST": (4, 4)}
    assert Reservation.objects.filter(status="active").count() == 10
    assert Incident.objects.filter(category="inventory_unavailable").count() == THREADS - 10
    assert_invariants()


def test_racing_reserve_and_release_never_oversells_and_releases_once():
    add_warehouse("EAST", priority=1)
    add_warehouse("WEST", priority=2)
    stock("RACE", "EAST", 6)
    stock("RACE", "WEST", 4)
    channel = SalesChannelFactory()
    holders = [make_order(paid=True, channel=channel, lines=[("RACE", 1, "10.00")], pipeline=False)
               for _ in range(10)]  # fmt: skip
    for order in holders:
        assert stock_reserve_for_order(order_id=order.pk).outcome == "reserved"
    held = list(Reservation.objects.values_list("pk", flat=True))
    newcomers = [make_order(paid=True, channel=channel, lines=[("RACE", 1, "10.00")],
                            pipeline=False) for _ in range(20)]  # fmt: skip

    calls = [lambda rid=rid: reservation_release(reservation_id=rid) for rid in held]
    calls += [lambda rid=rid: reservation_release(reservation_id=rid) for rid in held]  # twice
    calls += [lambda oid=o.pk: stock_reserve_for_order(order_id=oid) for o in newcomers]
    results = race(calls)

    errors = [r for r in results if isinstance(r, Exception)]
    assert errors == [], errors[:3]
    # Each reservation released exactly once: ten True, and the ten repeats False.
    assert results[:20].count(True) == 10 and results[:20].count(False) == 10
    assert Reservation.objects.filter(pk__in=held, status="released").count() == 10
    # A newcomer got its unit or was told short; how many won depends on when the releases
    # landed, but every unit they hold is on the books exactly once.
    outcomes = [r.outcome for r in results[20:]]
    assert set(outcomes) <= {"reserved", "short"}, outcomes
    won = outcomes.count("reserved")
    east, west = (levels("RACE")[w] for w in ("EAST", "WEST"))
    assert (east[0], west[0], east[1] + west[1]) == (6, 4, won)
    assert Reservation.objects.filter(status="active").count() == won
    assert_invariants()

    # Once the releases are all in, the losers try again: exactly the ten freed units go, to
    # exactly ten newcomers, and the other ten stay short.
    for order, result in zip(newcomers, results[20:], strict=True):
        if result.outcome == "short":
            stock_reserve_for_order(order_id=order.pk)
    active = Reservation.objects.filter(status="active")
    assert active.count() == 10
    winners = set(active.values_list("order_id", flat=True))
    assert len(winners) == 10 and winners <= {o.pk for o in newcomers}
    assert levels("RACE") == {"EAST": (6, 6), "WEST": (4, 4)}
    assert_invariants()
