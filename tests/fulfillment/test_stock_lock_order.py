"""Stock rows are locked in one order by every writer (DESIGN pitfall 7), found by the soak.

The allocator updates (locks) an order's stock rows sorted by (sku, warehouse). Shipping
consumed them in the order of the shipment's lines instead, so shipping an order of
GREEN, RED, BLACK locked GREEN first while an allocation of BLACK, GREEN locked BLACK first:
on PostgreSQL each waited for the other ("deadlock detected ... while updating tuple in
relation fulfillment_stocklevel", seen in bench/soak.py), and one of them failed.
"""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fulfillment.shipments import shipment_buy_label, shipment_ship, shipments_create_for_order
from orders.actors import Actor
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse, stock

pytestmark = pytest.mark.django_db

OPS = Actor.system("test")
# Line order on purpose not the sorted order (as Shopify's sample order lists its iPods).
SKUS = ["IPOD2008GREEN", "IPOD2008RED", "IPOD2008BLACK"]
STOCK_UPDATE = re.compile(r'UPDATE "fulfillment_stocklevel" SET .* WHERE .*"sku" = \'?([\w-]+)')


def stock_rows_updated(queries: CaptureQueriesContext) -> list[str]:
    """The SKUs of the stock rows updated, in the order the statements ran."""
    skus = []
    for query in queries.captured_queries:
        m = STOCK_UPDATE.search(query["sql"].replace("%s", "?"))
        if m:
            skus.append(m.group(1))
    return skus


@pytest.fixture
def warehouse(db) -> None:
    add_warehouse("A")
    for sku in SKUS:
        stock(sku, "A", 10)


def test_allocation_locks_stock_rows_in_sku_order(warehouse):
    with CaptureQueriesContext(connection) as queries:
        order = make_order(paid=True, lines=[(sku, 1, "10.00") for sku in SKUS])

    assert order.status == "allocated", order.status_reason
    assert stock_rows_updated(queries) == sorted(SKUS)


def test_shipping_locks_stock_rows_in_the_allocators_order(warehouse):
    order = make_order(paid=True, lines=[(sku, 1, "10.00") for sku in SKUS])
    assert order.status == "allocated", order.status_reason
    [shipment] = shipments_create_for_order(order_id=order.pk, actor=OPS)
    shipment_buy_label(shipment_id=shipment.pk, actor=OPS)
    assert [line.sku for line in shipment.lines.order_by("pk")] == SKUS  # the line order

    with CaptureQueriesContext(connection) as queries:
        shipment_ship(shipment_id=shipment.pk, actor=OPS)

    assert stock_rows_updated(queries) == sorted(SKUS)
