"""A hypothesis state machine over reserve / release / consume / restock / cancel / expire.

After every step, for every (sku, warehouse): ``0 <= reserved <= on_hand``, ``reserved`` equals
the sum of the active reservations there, and ``on_hand`` is what restocks and consumes made it.
Each example runs in a savepoint of pytest-django's test transaction, rolled back at its end, so
examples start from an empty stock table on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.db.models import Sum
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from fulfillment.models import Reservation, StockLevel
from fulfillment.services import (
    reservation_consume,
    reservation_release,
    reservations_expire,
    stock_reserve_for_order,
)
from orders.errors import InvalidInput
from orders.models import Order
from tests.factories import SalesChannelFactory, advance, make_order
from tests.fulfillment.helpers import add_warehouse, stock

SKUS = ["X", "Y"]
WAREHOUSES = ["A", "B"]
lines_st = st.lists(
    st.tuples(st.sampled_from(SKUS), st.integers(min_value=1, max_value=4)),
    min_size=1, max_size=2,
)  # fmt: skip


class StockMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.atomic = transaction.atomic()
        self.atomic.__enter__()
        self.override = None
        self.on_hand: dict[tuple[str, str], int] = {}
        self.orders: list[int] = []
        self.reservations: list[int] = []

    @initialize(
        split=st.booleans(),
        counts=st.lists(st.integers(min_value=0, max_value=6), min_size=4, max_size=4),
    )
    def setup_stock(self, split: bool, counts: list[int]) -> None:
        self.override = override_settings(ALLOCATION_ALLOW_SPLIT=split)
        self.override.enable()
        self.channel = SalesChannelFactory()
        for i, code in enumerate(WAREHOUSES):
            add_warehouse(code, priority=i)
        for i, (sku, code) in enumerate((s, w) for s in SKUS for w in WAREHOUSES):
            stock(sku, code, counts[i])
            self.on_hand[(sku, code)] = counts[i]

    def teardown(self) -> None:
        if self.override is not None:
            self.override.disable()
        transaction.set_rollback(True)
        self.atomic.__exit__(None, None, None)

    def _active_count(self, order_id: int) -> int:
        return Reservation.objects.filter(order_id=order_id, status="active").count()

    @rule(lines=lines_st)
    def reserve(self, lines: list[tuple[str, int]]) -> None:
        order = make_order(paid=True, channel=self.channel, pipeline=False,
                           lines=[(s, q, "1.00") for s, q in lines])  # fmt: skip
        self.orders.append(order.pk)
        before = set(Reservation.objects.values_list("pk", flat=True))
        result = stock_reserve_for_order(order_id=order.pk)
        new = set(Reservation.objects.values_list("pk", flat=True)) - before
        if result.outcome == "reserved":
            held = Reservation.objects.filter(order=order, status="active").aggregate(
                n=Sum("quantity")
            )["n"]
            assert held == sum(q for _, q in lines)
        else:
            assert new == set()  # all or nothing
        self.reservations.extend(sorted(new))

    @rule(data=st.data())
    def reserve_again(self, data: st.DataObject) -> None:
        if not self.orders:
            return
        order_id = data.draw(st.sampled_from(self.orders))
        before = list(Reservation.objects.filter(status="active").values_list("pk", "quantity"))
        result = stock_reserve_for_order(order_id=order_id)
        if result.outcome == "reserved" and result.details["reserved_now"] == 0:
            after = list(Reservation.objects.filter(status="active").values_list("pk", "quantity"))
            assert sorted(after) == sorted(before)  # idempotent: nothing taken twice
        self.reservations = list(Reservation.objects.order_by("pk").values_list("pk", flat=True))

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        if not self.reservations:
            return
        rid = data.draw(st.sampled_from(self.reservations))
        was_active = Reservation.objects.filter(pk=rid, status="active").exists()
        assert reservation_release(reservation_id=rid) is was_active

    @rule(data=st.data())
    def consume(self, data: st.DataObject) -> None:
        if not self.reservations:
            return
        rid = data.draw(st.sampled_from(self.reservations))
        r = Reservation.objects.select_related("warehouse").get(pk=rid)
        done = reservation_consume(reservation_id=rid)
        assert done is (r.status == "active")
        if done:
            self.on_hand[(r.sku, r.warehouse.code)] -= r.quantity

    @rule(sku=st.sampled_from(SKUS), code=st.sampled_from(WAREHOUSES),
          on_hand=st.integers(min_value=0, max_value=8))  # fmt: skip
    def restock(self, sku: str, code: str, on_hand: int) -> None:
        reserved = StockLevel.objects.get(sku=sku, warehouse__code=code).reserved
        if on_hand < reserved:
            with pytest.raises(InvalidInput):
                stock(sku, code, on_hand)
        else:
            stock(sku, code, on_hand)
            self.on_hand[(sku, code)] = on_hand

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        if not self.orders:
            return
        order_id = data.draw(st.sampled_from(self.orders))
        if Order.objects.get(pk=order_id).status == "cancelled":
            return
        advance(Order.objects.get(pk=order_id), "cancel")
        assert self._active_count(order_id) == 0

    @rule()
    def expire_everything(self) -> None:
        active = Reservation.objects.filter(status="active").count()
        assert reservations_expire(now=timezone.now() + timedelta(days=3650)) == active

    @invariant()
    def stock_matches_reservations(self) -> None:
        for s in StockLevel.objects.select_related("warehouse"):
            assert 0 <= s.reserved <= s.on_hand
            held = Reservation.objects.filter(
                sku=s.sku, warehouse=s.warehouse, status="active"
            ).aggregate(n=Sum("quantity"))["n"]
            assert s.reserved == (held or 0)
            assert s.on_hand == self.on_hand[(s.sku, s.warehouse.code)]


@pytest.mark.django_db
def test_reserve_release_consume_restock_keep_the_stock_invariants():
    run_state_machine_as_test(
        StockMachine,
        settings=settings(
            max_examples=20, stateful_step_count=12, deadline=None, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )  # fmt: skip
