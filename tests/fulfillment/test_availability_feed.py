"""The storefront's availability feed: available to sell across the warehouses that serve a
destination, InStock only on confirmed stock, handling and transit times measured from our own
shipped and delivered parcels (or left out when too few), token-protected, cached and fresh
after a stock move."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from fulfillment.carriers.base import Tracking, TrackingEvent
from fulfillment.models import Shipment
from fulfillment.services import stock_reserve_for_order
from fulfillment.shipments import shipment_buy_label, shipment_ship, shipments_create_for_order
from fulfillment.tracking import tracking_record
from orders.actors import Actor
from orders.models import Order
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse, stock

pytestmark = pytest.mark.django_db

OPS = Actor.system("test")
TOKEN = "feed-token-123"
JSON_URL = "/feeds/availability.json"
JSONLD_URL = "/feeds/availability.jsonld"


@pytest.fixture(autouse=True)
def feed_on(settings):
    settings.AVAILABILITY_FEED_TOKEN = TOKEN
    settings.AVAILABILITY_MIN_SAMPLES = 3
    settings.AVAILABILITY_WINDOW_DAYS = 28
    cache.clear()
    yield
    cache.clear()


def get(client, url=JSON_URL, **params):
    return client.get(url, params, headers={"Authorization": f"Bearer {TOKEN}"})


def by_sku(body):
    return {item["sku"]: item for item in body["skus"]}


@pytest.fixture
def two_warehouses():
    """NJ (US, domestic only) and NL (ships anywhere). MUG: 5 at NJ (2 reserved), 3 at NL;
    TEE: 4 at NJ only; CAP: rows everywhere, none on hand."""
    add_warehouse("NJ", country="US", priority=1, ships_international=False)
    add_warehouse("NL", country="NL", priority=2, ships_international=True)
    stock("MUG", "NJ", 5)
    stock("MUG", "NL", 3)
    stock("TEE", "NJ", 4)
    stock("CAP", "NJ", 0)
    stock("CAP", "NL", 0)
    order = make_order(paid=True, lines=[("MUG", 2, "10.00")], pipeline=False)
    assert stock_reserve_for_order(order_id=order.pk).outcome == "reserved"


def ship(sku, qty, *, ordered_days_ago=0):
    """A US order shipped now, placed ``ordered_days_ago`` days before."""
    order = make_order(paid=True, lines=[(sku, qty, "10.00")])
    assert order.status == "allocated", order.status_reason
    Order.objects.filter(pk=order.pk).update(
        placed_at=timezone.now() - timedelta(days=ordered_days_ago)
    )
    parcels = []
    for draft in shipments_create_for_order(order_id=order.pk, actor=OPS):
        label = shipment_buy_label(shipment_id=draft.pk, actor=OPS)
        parcels.append(shipment_ship(shipment_id=label.pk, actor=OPS))
    return parcels


def deliver(parcel, hours):
    """The carrier says it was delivered ``hours`` after it shipped."""
    event = TrackingEvent(at=parcel.shipped_at + timedelta(hours=hours), status="delivered",
                          description="Delivered", carrier_status="delivered")  # fmt: skip
    tracking_record(
        shipment_id=parcel.pk, source="webhook",
        tracking=Tracking(tracking_number=parcel.tracking_number, status="delivered",
                          events=[event]),
    )  # fmt: skip


# --- token -------------------------------------------------------------------------------------
def test_the_feed_is_off_without_a_token_setting_and_refuses_a_missing_or_wrong_token(
    client, settings, two_warehouses
):
    assert client.get(JSON_URL, {"token": TOKEN}).status_code == 200
    assert get(client).status_code == 200

    missing = client.get(JSON_URL)
    assert missing.status_code == 401 and missing.json()["code"] == "not_authenticated"
    assert missing["WWW-Authenticate"].startswith("Bearer")
    wrong = client.get(JSON_URL, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert client.get(JSONLD_URL, {"token": "nope"}).status_code == 401

    settings.AVAILABILITY_FEED_TOKEN = ""
    off = client.get(JSON_URL, {"token": ""})
    assert off.status_code == 404 and off.json() == {"code": "not_found", "detail": "Not found."}


def test_bad_destination_parameters_are_a_400_in_json(client, two_warehouses):
    assert get(client, country="USA").json()["code"] == "invalid"
    assert get(client, region="CA").status_code == 400


# --- numbers -----------------------------------------------------------------------------------
def test_available_sums_the_warehouses_that_serve_the_destination(client, two_warehouses):
    everywhere = by_sku(get(client).json())
    assert everywhere["MUG"]["available"] == 6  # (5 - 2) at NJ + 3 at NL

    us = get(client, country="US").json()
    assert us["warehouses"] == ["NJ", "NL"]
    mug = by_sku(us)["MUG"]
    assert mug["warehouses"] == [{"code": "NJ", "available": 3}, {"code": "NL", "available": 3}]
    assert (mug["available"], mug["availability"], mug["ships_from"]) == (6, "InStock", "NJ")

    # NJ ships domestic only: to Germany only NL's units count.
    de = by_sku(get(client, country="DE").json())
    assert (de["MUG"]["available"], de["MUG"]["ships_from"]) == (3, "NL")
    assert (de["TEE"]["available"], de["TEE"]["availability"]) == (0, "BackOrder")

    assert by_sku(get(client, sku="TEE").json()).keys() == {"TEE"}


def test_in_stock_only_on_confirmed_stock_else_backorder_or_out_of_stock(
    client, settings, two_warehouses
):
    us = by_sku(get(client, country="US").json())
    assert (us["MUG"]["availability"], us["TEE"]["availability"]) == ("InStock", "InStock")
    assert us["CAP"]["availability"] == "BackOrder"  # the allocator backorders such orders

    settings.AVAILABILITY_BACKORDERS = False
    cache.clear()
    assert by_sku(get(client, country="US").json())["CAP"]["availability"] == "OutOfStock"

    jsonld = json.loads(get(client, JSONLD_URL, country="US").content)
    availability = {offer["sku"]: offer["availability"] for offer in jsonld["@graph"]}
    assert availability == {"CAP": "https://schema.org/OutOfStock",
                            "MUG": "https://schema.org/InStock",
                            "TEE": "https://schema.org/InStock"}  # fmt: skip


# --- handling and transit, measured ------------------------------------------------------------
def test_too_few_shipments_leave_the_times_out_and_say_so(client, two_warehouses):
    body = get(client, country="US").json()
    mug = by_sku(body)["MUG"]
    assert mug["handling_time"] is None
    assert mug["handling_time_note"].startswith("not enough data: 0 shipment(s)")
    assert body["transit_time"] is None
    assert body["transit_time_note"].startswith("not enough data: 0 delivered parcel(s) to US")

    offer = next(o for o in json.loads(get(client, JSONLD_URL, country="US").content)["@graph"]
                 if o["sku"] == "MUG")  # fmt: skip
    details = offer["shippingDetails"]
    assert details["shippingDestination"] == {"@type": "DefinedRegion", "addressCountry": "US"}
    assert "deliveryTime" not in details


def test_same_day_shippers_promise_0_to_1_days_and_transit_comes_from_delivered_parcels(
    client, two_warehouses
):
    stock("MUG", "NJ", 20)
    parcels = [p for _ in range(3) for p in ship("MUG", 1)]
    for parcel, hours in zip(parcels, (20, 40, 70), strict=True):
        deliver(parcel, hours)
    assert Shipment.objects.filter(status="delivered").count() == 3

    body = get(client, country="US").json()
    mug = by_sku(body)["MUG"]
    assert mug["handling_time"]["min_days"] == 0 and mug["handling_time"]["max_days"] == 1
    assert mug["handling_time"]["basis"].startswith("100% of 3 shipments left the day")
    # 0.83, 1.67 and 2.92 days: p50 1.67 -> 2, p90 2.92 -> 3.
    assert (body["transit_time"]["min_days"], body["transit_time"]["max_days"]) == (2, 3)
    assert body["transit_zone"] == "US"

    # Enough parcels went to Illinois for a zone of its own.
    assert get(client, country="US", region="IL").json()["transit_zone"] == "US-IL"
    assert get(client, country="US", region="NY").json()["transit_zone"] == "US"

    jsonld = json.loads(get(client, JSONLD_URL, country="US", region="IL").content)
    assert jsonld["@context"] == "https://schema.org"
    offer = next(o for o in jsonld["@graph"] if o["sku"] == "MUG")
    assert offer["@type"] == "Offer"
    details = offer["shippingDetails"]
    assert details["@type"] == "OfferShippingDetails"
    assert details["shippingDestination"] == {
        "@type": "DefinedRegion", "addressCountry": "US", "addressRegion": "IL",
    }  # fmt: skip
    delivery = details["deliveryTime"]
    assert delivery["@type"] == "ShippingDeliveryTime"
    assert delivery["handlingTime"] == {"@type": "QuantitativeValue", "minValue": 0,
                                        "maxValue": 1, "unitCode": "DAY"}  # fmt: skip
    assert delivery["transitTime"] == {"@type": "QuantitativeValue", "minValue": 2,
                                       "maxValue": 3, "unitCode": "DAY"}  # fmt: skip
    # The same through ?format=jsonld, served as JSON-LD.
    same = get(client, JSON_URL, country="US", region="IL", format="jsonld")
    assert same["Content-Type"] == "application/ld+json"
    assert json.loads(same.content) == jsonld


def test_a_slower_warehouse_promises_its_measured_p50_to_p90_days(client, two_warehouses):
    stock("MUG", "NJ", 20)
    for days in (0, 1, 3):
        ship("MUG", 1, ordered_days_ago=days)

    mug = by_sku(get(client, country="US").json())["MUG"]

    assert (mug["handling_time"]["min_days"], mug["handling_time"]["max_days"]) == (1, 3)
    assert mug["handling_time"]["basis"].startswith("33% of 3 shipments")


# --- cache -------------------------------------------------------------------------------------
def test_the_answer_is_cached_and_fresh_after_a_stock_move(
    client, two_warehouses, django_assert_max_num_queries
):
    assert by_sku(get(client, country="US").json())["MUG"]["available"] == 6
    with django_assert_max_num_queries(3):  # the stock version only: the rest is cached
        assert by_sku(get(client, country="US").json())["MUG"]["available"] == 6

    stock("MUG", "NL", 10)
    assert by_sku(get(client, country="US").json())["MUG"]["available"] == 13

    order = make_order(paid=True, lines=[("MUG", 4, "10.00")], pipeline=False)
    assert stock_reserve_for_order(order_id=order.pk).outcome == "reserved"
    assert by_sku(get(client, country="US").json())["MUG"]["available"] == 9
