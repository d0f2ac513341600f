"""fulfillment adds its inlines to the order's page through ``orders.admin``'s extension point,
and a broken registered inline is caught by ``manage.py check``, not by a person's page."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory

import orders.admin as orders_admin
from fulfillment.admin import OrderOutboundActionInline, OrderShipmentInline
from fulfillment.models import Warehouse
from orders.models import Order
from tests.factories import make_order


def test_order_admin_shows_the_registered_fulfillment_inlines_after_its_own():
    order_admin = admin.site._registry[Order]
    inlines = order_admin.get_inlines(RequestFactory().get("/"), None)

    assert inlines[: len(order_admin.inlines)] == list(order_admin.inlines)
    assert inlines[len(order_admin.inlines) :] == [OrderShipmentInline, OrderOutboundActionInline]
    # Registered, not patched in: the order admin's own list is untouched.
    assert OrderShipmentInline not in order_admin.inlines


def test_registering_an_inline_twice_shows_it_once():
    before = orders_admin.registered_order_inlines()

    orders_admin.register_order_inline(OrderShipmentInline)

    assert orders_admin.registered_order_inlines() == before


def test_a_registered_inline_without_a_key_to_order_fails_the_admin_checks(monkeypatch):
    class WarehouseInline(admin.TabularInline):
        model = Warehouse

    # A copy of the registry, given back after the test.
    monkeypatch.setattr(
        orders_admin, "_EXTRA_ORDER_INLINES", orders_admin.registered_order_inlines()
    )
    orders_admin.register_order_inline(WarehouseInline)

    errors = orders_admin.check_registered_order_inlines()

    assert [e.id for e in errors] == ["admin.E202"]


@pytest.mark.django_db
def test_the_order_page_renders_the_registered_inlines(client, ops_user):
    order = make_order(paid=True, lines=[("MUG", 1, "10.00")], pipeline=False)
    client.force_login(ops_user)

    page = client.get(f"/admin/orders/order/{order.pk}/change/")

    assert page.status_code == 200
    assert b"Shipments" in page.content and b"Downstream actions (outbox)" in page.content


def test_registered_panels_show_once_and_an_empty_one_shows_nothing(monkeypatch):
    from fulfillment.admin import customer_status_link

    monkeypatch.setattr(orders_admin, "_ORDER_PANELS", [customer_status_link])
    orders_admin.register_order_panel(customer_status_link)
    orders_admin.register_order_panel(lambda request, order: "")

    assert len(orders_admin._ORDER_PANELS) == 2
    order = Order(pk=7)
    [html] = orders_admin.order_panels(RequestFactory().get("/"), order)
    assert "Customer status page" in html
