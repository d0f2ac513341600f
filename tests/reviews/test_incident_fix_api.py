"""The REST side of the incident screen's fixes, through the same services and the real
pipeline: ``POST /api/v1/sku-mappings/`` (map a channel reference, release the orders held
for it) and ``POST /api/v1/orders/<id>/shipping-address/`` (correct a held order's address and
release it)."""

from __future__ import annotations

import pytest
from django.test import TestCase

from channels.models import SkuMapping
from orders.models import Order, OrderEvent, Product
from orders.personal_data import REDACTED
from tests.factories import SalesChannelFactory, make_user
from tests.reviews.test_incident_screen import NO_POSTCODE, WENT_ON, held_order, paid_order

pytestmark = pytest.mark.django_db

MAPPINGS = "/api/v1/sku-mappings/"


@pytest.fixture
def world(db):
    from tests.fulfillment.helpers import add_warehouse, stock

    Product.objects.create(sku="MUG-RED", title="Red mug")
    add_warehouse("EAST")
    stock("MUG-RED", "EAST", 50)
    return SalesChannelFactory(slug="shop")


def api_post(api_client, url, body):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return api_client.post(url, body, format="json")


def test_a_mapping_releases_the_held_orders_and_says_how_many(api_client, cs_user, world):
    first, second = held_order(world), held_order(world)
    api_client.force_authenticate(cs_user)

    response = api_post(api_client, MAPPINGS,
                        {"channel": "shop", "external_ref": "v-red", "sku": "MUG-RED"})  # fmt: skip

    assert response.status_code == 201, response.content
    body = response.json()
    assert body == {"id": SkuMapping.objects.get().pk, "channel": "shop", "external_ref": "v-red",
                    "sku": "MUG-RED", "created": True, "released": 2,
                    "released_orders": [first.pk, second.pk], "still_held_orders": []}  # fmt: skip
    assert set(Order.objects.values_list("status", flat=True)) <= set(WENT_ON)

    again = api_post(api_client, MAPPINGS,
                     {"channel": "shop", "external_ref": "v-red", "sku": "MUG-RED"})  # fmt: skip
    assert again.status_code == 200
    assert (again.json()["created"], again.json()["released"]) == (False, 0)


@pytest.mark.parametrize("body,code", [
    ({"channel": "shop", "external_ref": "v-red", "sku": "NOPE"}, "unknown_sku"),
    ({"channel": "nowhere", "external_ref": "v-red", "sku": "MUG-RED"}, "unknown_channel"),
    ({"channel": "shop", "external_ref": "", "sku": "MUG-RED"}, "invalid"),
])  # fmt: skip
def test_a_bad_mapping_is_a_400_that_says_why(api_client, cs_user, world, body, code):
    held_order(world)
    api_client.force_authenticate(cs_user)

    response = api_post(api_client, MAPPINGS, body)

    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert not SkuMapping.objects.exists()


@pytest.mark.parametrize("role", ["reviewer", "finance"])
def test_roles_that_may_not_add_mappings_get_403(api_client, world, role):
    order = held_order(world)
    api_client.force_authenticate(make_user(f"u-{role}", role))

    response = api_post(api_client, MAPPINGS,
                        {"channel": "shop", "external_ref": "v-red", "sku": "MUG-RED"})  # fmt: skip

    assert response.status_code == 403
    assert not SkuMapping.objects.exists()
    assert Order.objects.get(pk=order.pk).status == "on_hold"


def url(order: Order) -> str:
    return f"/api/v1/orders/{order.pk}/shipping-address/"


FIXED = {"line1": "1 Main Street", "city": "Springfield", "region_code": "IL",
         "postal_code": "62701", "country_code": "US"}  # fmt: skip


def test_a_corrected_address_releases_the_order_and_the_timeline_redacts_the_street(
    api_client, cs_user, world
):
    order = paid_order(world, address=NO_POSTCODE)
    assert order.status == "on_hold"
    api_client.force_authenticate(cs_user)

    response = api_post(api_client, url(order), FIXED)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "received"  # released; its pipeline runs after the answer
    assert Order.objects.get(pk=order.pk).status in WENT_ON
    assert body["shipping_address"]["postal_code"] == "62701"
    [event] = [e for e in body["timeline"] if e["action"] == "shipping_address_corrected"]
    # Customer service has no raw payloads: the street lines of the snapshot are redacted.
    assert event["data"]["before"]["line1"] == REDACTED
    assert event["data"]["after"]["line1"] == REDACTED
    assert event["data"]["after"]["postal_code"] == "62701"
    stored = OrderEvent.objects.get(pk=event["id"])
    assert stored.data["after"]["line1"] == "1 Main Street"  # kept whole in the database


def test_without_release_the_address_is_saved_and_the_order_stays_held(api_client, cs_user, world):
    order = paid_order(world, address=NO_POSTCODE)
    api_client.force_authenticate(cs_user)

    response = api_post(api_client, url(order), {**FIXED, "release": False})

    assert response.status_code == 200
    assert response.json()["status"] == "on_hold"
    assert Order.objects.get(pk=order.pk).shipping_address["postal_code"] == "62701"


def test_an_order_that_is_not_held_is_a_409(api_client, cs_user, world):
    order = paid_order(world, address={**NO_POSTCODE, "postal_code": "62701"})
    assert order.status in WENT_ON
    api_client.force_authenticate(cs_user)

    response = api_post(api_client, url(order), FIXED)

    assert response.status_code == 409
    assert response.json()["code"] == "not_on_hold"


def test_a_missing_city_is_a_400_naming_it(api_client, cs_user, world):
    order = paid_order(world, address=NO_POSTCODE)
    api_client.force_authenticate(cs_user)

    response = api_post(api_client, url(order), {**FIXED, "city": ""})

    assert response.status_code == 400
    assert "city" in response.json()["errors"]


@pytest.mark.parametrize("role", ["finance", "ops_admin"])
def test_roles_without_street_lines_may_not_correct_an_address(api_client, world, role):
    """Finance and operations see no street addresses, so they do not correct them."""
    order = paid_order(world, address=NO_POSTCODE)
    api_client.force_authenticate(make_user(f"u-{role}", role))

    response = api_post(api_client, url(order), FIXED)

    assert response.status_code == 403
    assert Order.objects.get(pk=order.pk).shipping_address == NO_POSTCODE


def test_a_mapping_whose_orders_the_user_may_not_release_is_not_kept(api_client, world):
    """Map and release is one transaction: refused at the release, the mapping is undone too."""
    from django.contrib.auth.models import Permission

    order = held_order(world)
    mapper = make_user("mapper")
    mapper.user_permissions.add(Permission.objects.get(codename="add_skumapping"))
    api_client.force_authenticate(mapper)

    response = api_post(api_client, MAPPINGS,
                        {"channel": "shop", "external_ref": "v-red", "sku": "MUG-RED"})  # fmt: skip

    assert response.status_code == 403, response.content
    assert not SkuMapping.objects.exists()
    assert Order.objects.get(pk=order.pk).status == "on_hold"
