"""``/api/v1/stock/``: who may read stock, its filters, fields and pagination, through DRF's real
stack (auth, permissions, filters, pagination) on the real database."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fulfillment.services import stock_reserve_for_order
from tests.factories import make_order, make_user
from tests.fulfillment.helpers import add_warehouse, stock

pytestmark = [pytest.mark.django_db]

URL = "/api/v1/stock/"


@pytest.fixture
def stock_reader(db):
    user = make_user("stella")
    user.user_permissions.add(
        Permission.objects.get(codename="view_stocklevel", content_type__app_label="fulfillment")
    )
    return user


@pytest.fixture
def some_stock(db):
    add_warehouse("EAST", priority=1)
    add_warehouse("WEST", priority=2)
    stock("MUG", "EAST", 6)
    stock("MUG", "WEST", 4)
    stock("TEE", "WEST", 2)
    order = make_order(paid=True, lines=[("MUG", 2, "10.00")], pipeline=False)
    assert stock_reserve_for_order(order_id=order.pk).outcome == "reserved"


def test_stock_lists_on_hand_reserved_and_available_per_sku_and_warehouse(
    api_client, stock_reader, some_stock
):
    api_client.force_authenticate(stock_reader)

    response = api_client.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert body["results"] == [
        {"sku": "MUG", "warehouse": "EAST", "on_hand": 6, "reserved": 2, "available": 4,
         "updated_at": body["results"][0]["updated_at"]},
        {"sku": "MUG", "warehouse": "WEST", "on_hand": 4, "reserved": 0, "available": 4,
         "updated_at": body["results"][1]["updated_at"]},
        {"sku": "TEE", "warehouse": "WEST", "on_hand": 2, "reserved": 0, "available": 2,
         "updated_at": body["results"][2]["updated_at"]},
    ]  # fmt: skip


def test_stock_filters_by_sku_and_by_warehouse_code(api_client, stock_reader, some_stock):
    api_client.force_authenticate(stock_reader)

    by_sku = api_client.get(URL, {"sku": "MUG"}).json()
    by_warehouse = api_client.get(URL, {"warehouse": "WEST"}).json()
    both = api_client.get(URL, {"sku": "TEE", "warehouse": "EAST"}).json()

    assert [(r["sku"], r["warehouse"]) for r in by_sku["results"]] == [
        ("MUG", "EAST"), ("MUG", "WEST"),
    ]  # fmt: skip
    assert [(r["sku"], r["warehouse"]) for r in by_warehouse["results"]] == [
        ("MUG", "WEST"), ("TEE", "WEST"),
    ]  # fmt: skip
    assert both["count"] == 0


def test_stock_is_paginated_with_page_size(api_client, stock_reader, some_stock):
    api_client.force_authenticate(stock_reader)

    first = api_client.get(URL, {"page_size": 2}).json()
    second = api_client.get(first["next"]).json()

    assert first["count"] == 3 and len(first["results"]) == 2
    assert [r["sku"] for r in second["results"]] == ["TEE"] and second["next"] is None


def test_stock_list_queries_do_not_grow_with_rows(api_client, stock_reader, some_stock):
    api_client.force_authenticate(stock_reader)
    api_client.get(URL)  # warm up the session and permission caches
    with CaptureQueriesContext(connection) as few:
        api_client.get(URL)
    for i in range(20):
        stock(f"EXTRA-{i}", "EAST", i)
    with CaptureQueriesContext(connection) as many:
        api_client.get(URL)
    assert len(many) == len(few)


def test_stock_needs_the_view_permission(api_client, some_stock):
    assert api_client.get(URL).status_code in (401, 403)
    api_client.force_authenticate(make_user("nobody"))
    response = api_client.get(URL)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_stock_is_read_only(api_client, stock_reader, some_stock):
    api_client.force_authenticate(stock_reader)
    response = api_client.post(URL, {"sku": "MUG", "warehouse": "EAST", "on_hand": 99})
    assert response.status_code in (403, 405)
