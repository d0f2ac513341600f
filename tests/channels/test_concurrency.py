"""Concurrent webhook deliveries: the inbox's unique key decides, never a read before the insert.

Runs on SQLite and on PostgreSQL (the CI's second pass). Every delivery is a real request through
its own ``django.test.Client`` in its own thread, so each one uses its own database session; the
threads are released together by a barrier. Processing runs in the request thread right after the
inbox row commits (tasks are eager in tests), so it races the other deliveries too.
"""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal
from functools import partial

import pytest
from django.db import connection
from django.test import Client

from channels.models import ChannelKind, InboundEvent
from channels.signatures import sign_custom
from orders.models import Order, OrderLine, Product
from tests.channels.test_webhook import (
    SECRET,
    SLUG,
    T1,
    T2,
    URL,
    canonical_order,
    envelope,
    with_first_line_quantity,
    with_unmapped_line,
)
from tests.concurrency import race
from tests.factories import SalesChannelFactory

pytestmark = pytest.mark.django_db(transaction=True)

DELIVERIES = 200
# PostgreSQL here allows 100 sessions in all (max_connections) and other clients hold some: the
# deliveries all start together, but at most this many hold a session at the same moment.
PG_SESSION_HEADROOM = 10


def sessions_at_once(wanted: int) -> int:
    """How many deliveries may hold a database session at the same time.

    SQLite has one writer at a time whatever we do (each waits for the lock up to its 30 s
    timeout), so every delivery runs at once. PostgreSQL refuses sessions past max_connections.
    """
    if connection.vendor != "postgresql":
        return wanted
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int - count(*) FROM pg_stat_activity"
        )
        free = cursor.fetchone()[0]
    return max(2, min(wanted, free - PG_SESSION_HEADROOM))


def deliver_concurrently(bodies: list[bytes]) -> list[tuple[int, dict] | Exception]:
    """POST every body from its own thread and client, all released together."""
    signed = [(body, sign_custom(secret=SECRET, body=body, timestamp=int(time.time())))
              for body in bodies]  # fmt: skip

    def post(body: bytes, signature: str) -> tuple[int, dict]:
        response = Client().post(
            URL, data=body, content_type="application/json", HTTP_X_SIGNATURE=signature
        )
        return response.status_code, response.json()

    return race([partial(post, *s) for s in signed], at_most=sessions_at_once(len(signed)))


@pytest.fixture
def storefront(transactional_db):
    SalesChannelFactory(kind=ChannelKind.CUSTOM, slug=SLUG, webhook_secret=SECRET)
    for sku in ("MUG-RED", "TEE-L"):
        Product.objects.create(sku=sku, title=sku)


def test_the_same_event_delivered_200_times_at_once_is_stored_and_processed_once(storefront):
    body = envelope(canonical_order("W-RACE"), event_id="evt_race")

    results = deliver_concurrently([body] * DELIVERIES)

    errors = [r for r in results if isinstance(r, Exception)]
    assert errors == [], errors[:3]
    assert Counter(status for status, _ in results) == {202: 1, 200: DELIVERIES - 1}
    assert all(data == {"duplicate": True} for status, data in results if status == 200)
    [(_, accepted)] = [r for r in results if r[0] == 202]
    event = InboundEvent.objects.get()
    assert accepted["event_id"] == event.pk
    assert event.duplicate_deliveries == DELIVERIES - 1
    assert event.status == "processed"
    assert event.attempts == 1
    order = Order.objects.get()
    assert event.order_id == order.pk
    assert order.status == "validated"
    assert OrderLine.objects.count() == 2
    assert [ln.external_line_id for ln in order.lines.order_by("line_no")] == ["L1", "L2"]
    assert order.events.filter(action="received").count() == 1
    assert order.events.filter(action="validate").count() == 1


def test_create_and_update_of_the_same_order_delivered_at_once_end_in_one_order(storefront):
    # Ten orders, each created and updated at the same moment (20 deliveries in flight). Their
    # lines stay unmapped, so they are on hold and the newer version must always win.
    pairs = 10
    bodies = []
    for n in range(pairs):
        created = with_unmapped_line(canonical_order(f"W-{n}", updated_at=T1))
        updated = with_first_line_quantity(
            with_unmapped_line(canonical_order(f"W-{n}", updated_at=T2)), 3
        )
        bodies += [
            envelope(created, event_id=f"evt_c{n}", topic="order.created"),
            envelope(updated, event_id=f"evt_u{n}", topic="order.updated"),
        ]

    results = deliver_concurrently(bodies)

    errors = [r for r in results if isinstance(r, Exception)]
    assert errors == [], errors[:3]
    assert [status for status, _ in results] == [202] * len(bodies)
    assert Order.objects.count() == pairs
    assert InboundEvent.objects.count() == 2 * pairs
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {"processed"}
    for order in Order.objects.all():
        assert order.source_updated_at.isoformat() == T2
        assert order.status == "on_hold"
        lines = [(ln.line_no, ln.quantity) for ln in order.lines.order_by("line_no")]
        assert lines == [(1, 3), (2, 1)]
        assert order.total == Decimal("64.94")
        assert order.events.filter(action="received").count() == 1
        assert set(
            InboundEvent.objects.filter(dedup_key__in=[f"event:evt_c{order.external_id[2:]}",
                                                       f"event:evt_u{order.external_id[2:]}"])
            .values_list("order_id", flat=True)
        ) == {order.pk}  # fmt: skip
