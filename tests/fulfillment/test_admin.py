"""The stock screens of the admin open, search and filter for an operations admin; stock and
reservations are read-only there (they change only through the services)."""

from __future__ import annotations

import pytest

from fulfillment.models import Reservation
from fulfillment.services import stock_reserve_for_order
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse, stock

pytestmark = pytest.mark.django_db


@pytest.fixture
def reserved(db):
    add_warehouse("EAST")
    stock("MUG", "EAST", 6)
    order = make_order(paid=True, lines=[("MUG", 2, "10.00")], pipeline=False)
    stock_reserve_for_order(order_id=order.pk)
    return Reservation.objects.get(order=order)


def test_ops_admin_sees_warehouses_stock_with_available_and_reservations(
    client, ops_user, reserved
):
    client.force_login(ops_user)

    warehouses = client.get("/admin/fulfillment/warehouse/")
    levels = client.get("/admin/fulfillment/stocklevel/", {"q": "MUG"})
    reservations = client.get(
        "/admin/fulfillment/reservation/",
        {"status__exact": "active", "warehouse__id__exact": reserved.warehouse_id},
    )
    detail = client.get(f"/admin/fulfillment/reservation/{reserved.pk}/change/")

    assert warehouses.status_code == 200 and b"EAST" in warehouses.content
    assert levels.status_code == 200
    assert b"Available" in levels.content and b'class="field-available">4<' in levels.content
    assert reservations.status_code == 200 and b"1 reservation" in reservations.content
    assert detail.status_code == 200
    assert b'name="quantity"' not in detail.content  # read-only: no form field to edit


def test_stock_and_reservations_cannot_be_added_in_the_admin(client, ops_user, reserved):
    client.force_login(ops_user)
    assert client.get("/admin/fulfillment/stocklevel/add/").status_code == 403
    assert client.get("/admin/fulfillment/reservation/add/").status_code == 403
