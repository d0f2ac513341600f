"""Replenishment: reorder points set by hand or computed from what shipped, a suggestion list
that says why and follows every stock move, in the admin, the API, CSV and a command."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.utils import timezone

from fulfillment.models import ReorderPoint, Shipment
from fulfillment.replenishment import reorder_point_upsert, replenishment_suggestions
from fulfillment.services import stock_reserve_for_order
from fulfillment.shipments import shipment_buy_label, shipment_ship, shipments_create_for_order
from orders.actors import Actor
from tests.factories import make_order, make_user
from tests.fulfillment.helpers import add_warehouse, stock

pytestmark = pytest.mark.django_db

OPS = Actor.system("test")
URL = "/api/v1/replenishment/"


def ship(sku, qty):
    """An order of ``qty`` x ``sku`` allocated, labelled and handed to the carrier (now)."""
    order = make_order(paid=True, lines=[(sku, qty, "10.00")])
    assert order.status == "allocated", order.status_reason
    for draft in shipments_create_for_order(order_id=order.pk, actor=OPS):
        shipment_ship(shipment_id=shipment_buy_label(shipment_id=draft.pk, actor=OPS).pk,
                      actor=OPS)  # fmt: skip
    return order


def reserve(sku, qty):
    order = make_order(paid=True, lines=[(sku, qty, "10.00")], pipeline=False)
    assert stock_reserve_for_order(order_id=order.pk).outcome == "reserved"
    return order


@pytest.fixture
def selling_mugs(settings):
    """28 mugs shipped from A in the 28-day window: 1 a day; 12 left on hand."""
    settings.REPLENISHMENT_VELOCITY_DAYS = 28
    add_warehouse("A")
    stock("MUG", "A", 40)
    ship("MUG", 14)
    ship("MUG", 14)
    reorder_point_upsert(sku="MUG", warehouse_code="A", reorder_point=None, lead_time_days=7,
                         safety_days=3)  # fmt: skip


def test_a_computed_reorder_point_suggests_when_a_reservation_takes_available_below_it(
    selling_mugs,
):
    assert replenishment_suggestions() == []  # available 12 > ceil(1/day x (7 + 3)) = 10

    reserve("MUG", 3)

    [s] = replenishment_suggestions()
    assert (s.sku, s.warehouse, s.on_hand, s.reserved, s.available) == ("MUG", "A", 12, 3, 9)
    assert (s.velocity_per_day, s.days_of_cover) == (Decimal("1.00"), Decimal("9.0"))
    assert (s.reorder_point, s.reorder_point_source) == (10, "computed")
    # Up to the reorder point plus one lead time of demand: 10 + 7 = 17, from 9 available.
    assert (s.target, s.suggested_quantity) == (17, 8)
    assert "available 9 (on hand 12 - reserved 3)" in s.why
    assert "reorder point 10 (computed: 1.00/day x (7 lead + 3 safety days))" in s.why
    assert "9.0 days of cover" in s.why and "order 8 to reach 17" in s.why


def test_the_list_follows_the_stock_as_it_moves(selling_mugs):
    reserve("MUG", 3)
    assert len(replenishment_suggestions()) == 1
    stock("MUG", "A", 50)  # a delivery arrived
    assert replenishment_suggestions() == []
    stock("MUG", "A", 13)  # a count found fewer
    [s] = replenishment_suggestions()
    assert (s.available, s.suggested_quantity) == (10, 7)


def test_a_hand_set_point_suggests_without_sales_and_respects_order_up_to_and_minimum(settings):
    add_warehouse("A")
    add_warehouse("B", priority=2)
    stock("CAP", "A", 4)
    stock("TEE", "A", 0)
    stock("IDLE", "B", 0)  # no sales and no reorder point: never suggested
    reorder_point_upsert(sku="CAP", warehouse_code="A", reorder_point=5, lead_time_days=10,
                         safety_days=2, order_up_to=20, min_order_qty=1)  # fmt: skip
    reorder_point_upsert(sku="TEE", warehouse_code="A", reorder_point=2, lead_time_days=10,
                         safety_days=2, min_order_qty=24)  # fmt: skip

    rows = replenishment_suggestions()

    # Sorted by days of cover: TEE has none left (0 days), CAP 4 but no sales (last).
    assert [(s.sku, s.suggested_quantity, s.days_of_cover) for s in rows] == [
        ("TEE", 24, Decimal("0.0")), ("CAP", 16, None),
    ]  # fmt: skip
    assert rows[1].reorder_point_source == "set"
    assert "reorder point 5 (set by hand)" in rows[1].why
    assert "no sales in the window" in rows[1].why
    assert [s.sku for s in replenishment_suggestions(warehouse_code="B")] == []


def test_an_inactive_warehouse_gets_no_suggestions():
    add_warehouse("A", is_active=False)
    stock("CAP", "A", 0)
    reorder_point_upsert(sku="CAP", warehouse_code="A", reorder_point=5, lead_time_days=1,
                         safety_days=1)  # fmt: skip
    assert replenishment_suggestions() == []


# --- API -----------------------------------------------------------------------------------------
@pytest.fixture
def stock_reader(db):
    user = make_user("stella")
    user.user_permissions.add(
        Permission.objects.get(codename="view_stocklevel", content_type__app_label="fulfillment")
    )
    return user


def test_the_api_lists_suggestions_paginated_for_stock_readers_only(
    api_client, selling_mugs, stock_reader
):
    reserve("MUG", 3)
    assert api_client.get(URL).status_code in (401, 403)
    api_client.force_authenticate(make_user("nobody"))
    assert api_client.get(URL).status_code == 403

    api_client.force_authenticate(stock_reader)
    body = api_client.get(URL, {"page_size": 1}).json()

    assert body["count"] == 1 and body["next"] is None
    [row] = body["results"]
    assert row["sku"] == "MUG" and row["warehouse"] == "A"
    assert (row["available"], row["velocity_per_day"], row["days_of_cover"]) == (9, "1.00", "9.0")
    assert (row["reorder_point"], row["reorder_point_source"]) == (10, "computed")
    assert row["suggested_quantity"] == 8 and "order 8 to reach 17" in row["why"]
    assert api_client.get(URL, {"warehouse": "NOPE"}).json()["count"] == 0


def test_the_api_gives_the_whole_list_as_csv(api_client, selling_mugs, stock_reader):
    reserve("MUG", 3)
    api_client.force_authenticate(stock_reader)

    response = api_client.get(URL, {"format": "csv"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["sku"], r["warehouse"], r["suggested_quantity"]) for r in rows] == [
        ("MUG", "A", "8")
    ]
    assert rows[0]["reorder_point_source"] == "computed"


# --- admin ---------------------------------------------------------------------------------------
def test_the_admin_screen_shows_the_table_and_a_csv_download(client, selling_mugs, ops_user):
    reserve("MUG", 3)
    client.force_login(ops_user)

    stock_page = client.get("/admin/fulfillment/stocklevel/")
    assert b"/admin/fulfillment/reorderpoint/suggestions/" in stock_page.content

    page = client.get("/admin/fulfillment/reorderpoint/suggestions/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Replenishment suggestions" in text and "MUG" in text and "order 8 to reach 17" in text
    download = client.get("/admin/fulfillment/reorderpoint/suggestions/", {"format": "csv"})
    assert download["Content-Type"] == "text/csv"
    assert download.content.decode().splitlines()[1].startswith("MUG,A,12,3,9,")


def test_the_admin_screen_needs_the_stock_permission(client, selling_mugs):
    user = make_user("viewer")
    user.is_staff = True
    user.save()
    client.force_login(user)
    assert client.get("/admin/fulfillment/reorderpoint/suggestions/").status_code == 403


# --- commands ------------------------------------------------------------------------------------
def test_replenishment_report_prints_a_table_or_writes_csv(selling_mugs, tmp_path):
    reserve("MUG", 3)
    out = io.StringIO()
    call_command("replenishment_report", "--why", stdout=out)
    text = out.getvalue()
    assert "MUG" in text and "10 computed" in text and "order 8 to reach 17" in text
    assert "1 suggestion(s)." in text

    target = tmp_path / "reorder.csv"
    out = io.StringIO()
    call_command("replenishment_report", "--csv", str(target), "--warehouse", "A", stdout=out)
    assert "Wrote 1 suggestion(s)" in out.getvalue()
    assert target.read_text().splitlines()[0].startswith("sku,warehouse,on_hand")


def test_replenishment_report_refuses_bad_input_clearly(selling_mugs, tmp_path):
    with pytest.raises(CommandError, match="Unknown warehouse 'NOPE' \\(known: A\\)"):
        call_command("replenishment_report", "--warehouse", "NOPE")
    with pytest.raises(CommandError, match="does not exist"):
        call_command("replenishment_report", "--csv", str(tmp_path / "no" / "such.csv"))


def test_import_reorder_points_sets_rows_and_lists_the_rejected_ones(tmp_path):
    add_warehouse("A")
    path = tmp_path / "points.csv"
    path.write_text(
        "sku,warehouse,reorder_point,lead_time_days,safety_days,order_up_to,min_order_qty\n"
        "MUG,A,10,7,3,40,12\n"
        "TEE,A,,14,7,,\n"
        "CAP,NOPE,5,7,3,,\n"
        "HAT,A,x,7,3,,\n"
    )
    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("import_reorder_points", str(path), stdout=io.StringIO(), stderr=err)
    assert exit_.value.code == 1
    assert "line 4: Warehouse 'NOPE' does not exist" in err.getvalue()
    assert "line 5: reorder_point 'x' is not a whole number" in err.getvalue()
    mug = ReorderPoint.objects.get(sku="MUG")
    assert (mug.reorder_point, mug.order_up_to, mug.min_order_qty) == (10, 40, 12)
    assert ReorderPoint.objects.get(sku="TEE").reorder_point is None  # computed

    path.write_text("sku,warehouse\nMUG,A\n")
    with pytest.raises(CommandError, match="header must include reorder_point"):
        call_command("import_reorder_points", str(path))


def test_the_admin_refuses_an_order_up_to_at_or_below_the_reorder_point(client, ops_user):
    warehouse = add_warehouse("A")
    client.force_login(ops_user)
    response = client.post("/admin/fulfillment/reorderpoint/add/", {
        "sku": "MUG", "warehouse": warehouse.pk, "reorder_point": 10, "lead_time_days": 7,
        "safety_days": 3, "order_up_to": 10, "min_order_qty": 1, "notes": "",
    })  # fmt: skip
    assert response.status_code == 200
    assert "Must be above the reorder point (10)" in response.content.decode()
    assert not ReorderPoint.objects.exists()


def test_the_list_costs_the_same_few_queries_whatever_the_catalogue(
    selling_mugs, django_assert_num_queries
):
    for i in range(20):
        stock(f"SKU-{i}", "A", 0)
        reorder_point_upsert(sku=f"SKU-{i}", warehouse_code="A", reorder_point=1,
                             lead_time_days=1, safety_days=1)  # fmt: skip
    with django_assert_num_queries(4):  # warehouses, stock, reorder points, units shipped
        assert len(replenishment_suggestions()) == 20


def test_only_shipments_inside_the_velocity_window_count(selling_mugs):
    reserve("MUG", 3)
    assert len(replenishment_suggestions()) == 1
    # Both parcels left 40 days ago: nothing sold in the last 28, so no computed point.
    Shipment.objects.update(shipped_at=timezone.now() - timedelta(days=40))
    assert replenishment_suggestions() == []
