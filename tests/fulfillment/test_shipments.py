"""Shipments from reservations: split across warehouses, partial, labels, shipping consumes
stock and moves the order; voiding gives nothing back twice."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from fulfillment.models import Reservation, Shipment
from fulfillment.shipments import (
    LineRequest,
    shipment_buy_label,
    shipment_create,
    shipment_ship,
    shipment_void,
    shipments_create_for_order,
)
from orders.actors import Actor
from orders.errors import InvalidInput, TransitionRefused
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse, levels, stock

pytestmark = pytest.mark.django_db

OPS = Actor.system("test")


def allocated(*lines, country="US"):
    order = make_order(paid=True, lines=[(sku, qty, "10.00") for sku, qty in lines],
                       country=country)  # fmt: skip
    assert order.status == "allocated", order.status_reason
    return order


def test_a_whole_order_ships_in_one_parcel_and_consumes_its_stock():
    add_warehouse("A")
    stock("MUG", "A", 10)
    order = allocated(("MUG", 3))

    [shipment] = shipments_create_for_order(order_id=order.pk, actor=OPS)
    order.refresh_from_db()
    assert order.status == "fulfilling"
    assert shipments_create_for_order(order_id=order.pk, actor=OPS) == []  # nothing left

    shipment = shipment_buy_label(shipment_id=shipment.pk, actor=OPS)
    assert shipment.status == "label_purchased"
    assert shipment.tracking_number
    pdf = PdfReader(io.BytesIO(bytes(shipment.label_pdf)))
    assert len(pdf.pages) == 1
    assert shipment.tracking_number in pdf.pages[0].extract_text()
    # Buying again changes nothing: same label, same tracking number.
    again = shipment_buy_label(shipment_id=shipment.pk, actor=OPS)
    assert again.tracking_number == shipment.tracking_number

    shipment_ship(shipment_id=shipment.pk, actor=OPS)
    order.refresh_from_db()
    assert order.status == "shipped"
    assert levels("MUG") == {"A": (7, 0)}
    assert Reservation.objects.get(order=order).status == "consumed"
    actions = list(order.events.order_by("id").values_list("action", flat=True))
    # Shipping is the parcel's first tracking event (handed to the carrier).
    assert actions[-3:] == ["reservation_consumed", "ship", "tracking_event"], actions
    assert actions.index("shipment_created") < actions.index("label_purchased")
    assert actions.index("label_purchased") < actions.index("reservation_consumed")


def test_split_across_warehouses_and_partial_shipments_keep_stock_and_states_consistent(settings):
    settings.ALLOCATION_ALLOW_SPLIT = True
    add_warehouse("A", priority=1)
    add_warehouse("B", priority=2)
    stock("MUG", "A", 2)
    stock("MUG", "B", 3)  # neither warehouse holds all 4: the order is split
    order = allocated(("MUG", 4))
    assert {(r.warehouse.code, r.quantity) for r in order.reservations.all()} == {
        ("A", 2),
        ("B", 2),
    }

    line = order.lines.get()
    first = shipment_create(order_id=order.pk, warehouse_code="B",
                            lines=[LineRequest(line.pk, 1)], actor=OPS)  # fmt: skip
    with pytest.raises(InvalidInput, match="1 reserved at B and not yet in a shipment"):
        shipment_create(order_id=order.pk, warehouse_code="B", lines=[LineRequest(line.pk, 2)],
                        actor=OPS)  # fmt: skip
    shipment_ship(shipment_id=shipment_buy_label(shipment_id=first.pk, actor=OPS).pk, actor=OPS)
    order.refresh_from_db()
    assert order.status == "partially_shipped"
    assert levels("MUG") == {"A": (2, 2), "B": (2, 1)}  # one unit left B; three still held

    rest = shipments_create_for_order(order_id=order.pk, actor=OPS)
    assert sorted((s.warehouse.code, sum(ln.quantity for ln in s.lines.all())) for s in rest) == [
        ("A", 2), ("B", 1),
    ]  # fmt: skip
    for shipment in rest:
        shipment_ship(shipment_id=shipment_buy_label(shipment_id=shipment.pk, actor=OPS).pk,
                      actor=OPS)  # fmt: skip
        order.refresh_from_db()
    assert order.status == "shipped"
    assert levels("MUG") == {"A": (0, 0), "B": (1, 0)}
    assert not order.reservations.filter(status="active").exists()


def test_voiding_a_label_gives_nothing_back_twice_and_frees_the_units_for_a_new_shipment():
    add_warehouse("A")
    stock("MUG", "A", 5)
    order = allocated(("MUG", 2))
    [shipment] = shipments_create_for_order(order_id=order.pk, actor=OPS)
    shipment_buy_label(shipment_id=shipment.pk, actor=OPS)

    assert shipment_void(shipment_id=shipment.pk, actor=OPS).status == "voided"
    assert shipment_void(shipment_id=shipment.pk, actor=OPS).status == "voided"
    assert levels("MUG") == {"A": (5, 2)}  # still reserved for the order, nothing released
    assert order.events.filter(action="shipment_voided").count() == 1
    with pytest.raises(TransitionRefused):
        shipment_ship(shipment_id=shipment.pk, actor=OPS)

    [replacement] = shipments_create_for_order(order_id=order.pk, actor=OPS)
    assert replacement.pk != shipment.pk
    assert Shipment.objects.filter(order=order).count() == 2


def test_an_order_not_allocated_cannot_ship():
    order = make_order(paid=True, lines=[("NONE", 1, "10.00")])
    assert order.status == "backordered"
    with pytest.raises(TransitionRefused, match="allowed: allocated, fulfilling"):
        shipments_create_for_order(order_id=order.pk, actor=OPS)


def test_the_api_lists_shipments_and_downloads_their_labels(api_client, cs_user, client):
    add_warehouse("A")
    stock("MUG", "A", 5)
    order = allocated(("MUG", 1))
    [draft] = shipments_create_for_order(order_id=order.pk, actor=OPS)
    api_client.force_authenticate(cs_user)

    listed = api_client.get("/api/v1/shipments/", {"order": order.pk}).json()
    assert listed["count"] == 1
    assert listed["results"][0]["label_url"] is None
    assert api_client.get(f"/api/v1/shipments/{draft.pk}/label/").status_code == 404

    shipment = shipment_buy_label(shipment_id=draft.pk, actor=OPS)
    body = api_client.get(f"/api/v1/shipments/{shipment.pk}/").json()
    assert (body["status"], body["tracking_number"], body["warehouse"]) == (
        "label_purchased", shipment.tracking_number, "A",
    )  # fmt: skip
    assert body["lines"] == [{"order_line": order.lines.get().pk, "sku": "MUG", "quantity": 1}]
    pdf = api_client.get(body["label_url"])
    assert pdf["Content-Type"] == "application/pdf"
    assert PdfReader(io.BytesIO(pdf.content)).pages[0].mediabox.width == 288  # 4 inches
    zpl = api_client.get(f"/api/v1/shipments/{shipment.pk}/label/", {"label_format": "zpl"})
    assert (
        zpl.content.decode().startswith("^XA") and shipment.tracking_number in zpl.content.decode()
    )

    # The order's own page in the API lists its parcels.
    detail = api_client.get(f"/api/v1/orders/{order.pk}/").json()
    assert [(s["id"], s["status"], s["tracking_number"]) for s in detail["shipments"]] == [
        (shipment.pk, "label_purchased", shipment.tracking_number)
    ]
    # The admin offers the same PDF to people who may see the address it prints.
    client.force_login(cs_user)
    page = client.get(f"/admin/fulfillment/shipment/{shipment.pk}/change/").content.decode()
    assert "4x6 PDF" in page
    assert client.get(f"/admin/fulfillment/shipment/{shipment.pk}/label/")["Content-Type"] == (
        "application/pdf"
    )


def test_an_international_label_declares_customs_from_the_catalogue():
    from orders.models import Product

    Product.objects.create(sku="MUG", title="Mug", weight_grams=350, hs_code="6912.00",
                           origin_country="PT")  # fmt: skip
    add_warehouse("A", country="US")
    stock("MUG", "A", 5)
    order = make_order(paid=True, lines=[("MUG", 2, "10.00")], country="DE", pipeline=False)
    from fulfillment.services import stock_reserve_for_order
    from orders.services import order_transition

    order_transition(order_id=order.pk, transition="validate", actor=OPS)
    assert stock_reserve_for_order(order_id=order.pk).outcome == "reserved"
    order_transition(order_id=order.pk, transition="allocate", actor=OPS)
    [shipment] = shipments_create_for_order(order_id=order.pk, actor=OPS)
    shipment = shipment_buy_label(shipment_id=shipment.pk, actor=OPS)
    text = PdfReader(io.BytesIO(bytes(shipment.label_pdf))).pages[0].extract_text()
    assert "6912.00" in text and "PT" in text
    assert shipment.flags["customs_lines"] == 1


def test_a_carrier_hosted_label_is_linked_not_stored(api_client, cs_user):
    """EasyPost hosts its label files: the shipment keeps the link, the API redirects to it."""
    add_warehouse("A")
    stock("MUG", "A", 5)
    order = allocated(("MUG", 1))
    [shipment] = shipments_create_for_order(order_id=order.pk, actor=OPS)
    shipment = shipment_buy_label(shipment_id=shipment.pk, actor=OPS)
    hosted = "https://easypost-files.s3.us-west-2.amazonaws.com/files/postage_label/label.pdf"
    Shipment.objects.filter(pk=shipment.pk).update(
        carrier="easypost", label_pdf=None, label_zpl="",
        flags={**shipment.flags, "label_url": hosted},
    )  # fmt: skip
    api_client.force_authenticate(cs_user)
    assert api_client.get(f"/api/v1/shipments/{shipment.pk}/").json()["label_url"] == hosted
    response = api_client.get(f"/api/v1/shipments/{shipment.pk}/label/")
    assert (response.status_code, response["Location"]) == (302, hosted)


def test_shipping_records_the_hand_over_on_the_rows_it_locked_and_writes_the_first_writeback():
    """The hand-over event and the channel's first write-back come from the shipment, order
    and channel rows the ship transaction locked and read: none of them is read again."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from fulfillment.models import OutboundAction
    from tests.factories import SalesChannelFactory

    channel = SalesChannelFactory(kind="custom", slug="storefront", webhook_secret="s",
                                  tracking_callback_url="https://shop.example/t")  # fmt: skip
    add_warehouse("A")
    stock("MUG", "A", 5)
    order = make_order(paid=True, channel=channel, lines=[("MUG", 1, "10.00")])
    [shipment] = shipments_create_for_order(order_id=order.pk, actor=OPS)
    shipment_buy_label(shipment_id=shipment.pk, actor=OPS)

    with CaptureQueriesContext(connection) as queries:
        shipment_ship(shipment_id=shipment.pk, actor=OPS)

    [sync] = OutboundAction.objects.filter(order=order, kind="channel_tracking_sync")
    assert sync.lane == "sync" and sync.payload["status"] == "pre_transit"
    assert order.events.filter(action="tracking_event").count() == 1
    froms = [q["sql"].split(" WHERE ")[0] for q in queries.captured_queries
             if q["sql"].startswith("SELECT")]  # fmt: skip
    # The shipment row is read (locked) once: the hand-over works on that row.
    whole = [f for f in froms if 'FROM "fulfillment_shipment"' in f and "label_pdf" in f]
    assert len(whole) == 1, froms
    # The channel comes with the order's locked read, never on its own.
    assert not any('FROM "channels_saleschannel"' in f for f in froms), froms
