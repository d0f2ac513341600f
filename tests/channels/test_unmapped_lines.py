"""An order held for unmapped lines shows what the channel sent: the channel's SKU and its
variant reference, in the API, in the admin and in the ``sku_unmapped`` incident.

Shopify's own samples go in through the signed webhook with no catalogue and no mappings, so
nothing they name resolves. From the sample files:
- order_450789469_get.json: lines 466157049 IPOD2008GREEN variant 39072856, 518995019
  IPOD2008RED variant 49148385, 703073504 IPOD2008BLACK variant 457924702.
- order_1073459976_create_eur.json: one custom line 1071823188 "Big Brown Bear Boots" with
  neither a SKU nor a variant id.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client, TestCase
from django.urls import reverse
from rest_framework.test import APIClient

from channels.models import ChannelKind, SalesChannel
from orders.models import Incident, Order
from tests.channels.adapters.test_shopify import _sign as shopify_sign
from tests.channels.test_webhook import SECRET as STOREFRONT_SECRET
from tests.channels.test_webhook import SLUG as STOREFRONT
from tests.channels.test_webhook import canonical_order, envelope, post
from tests.factories import SalesChannelFactory

SAMPLES = Path(settings.BASE_DIR).parent / "shared" / "samples" / "shopify"
SECRET = "shpss_unmapped-lines-secret"

# The order detail's line fields before this change; all of them stay.
LINE_FIELDS = {"line_no", "external_line_id", "sku", "title", "quantity", "unit_price",
               "discount_allocation", "tax_allocation"}  # fmt: skip


@pytest.fixture
def shop(db) -> SalesChannel:
    return SalesChannelFactory(kind=ChannelKind.SHOPIFY, slug="shop", webhook_secret=SECRET)


def deliver_sample(client: Client, name: str, webhook_id: str) -> Order:
    """POST the sample as Shopify sends it (the bare order, signed) and run what commits ring."""
    order = json.loads((SAMPLES / name).read_bytes())["order"]
    body = json.dumps(order).encode()
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post("/webhooks/shop/", data=body, content_type="application/json",
                               headers={"X-Shopify-Hmac-Sha256": shopify_sign(body, SECRET),
                                        "X-Shopify-Topic": "orders/create",
                                        "X-Shopify-Shop-Domain": "shop.myshopify.com",
                                        "X-Shopify-Webhook-Id": webhook_id})  # fmt: skip
    assert response.status_code == 202, response.content
    return Order.objects.get(external_id=str(order["id"]))


def test_unmapped_shopify_lines_name_sku_and_variant_in_the_incident(shop, client):
    order = deliver_sample(client, "order_450789469_get.json", "unmapped-1")

    assert order.status == "on_hold"
    [incident] = Incident.objects.filter(category="sku_unmapped", order=order)
    assert incident.summary == (
        "No SKU mapping for IPOD2008GREEN (variant 39072856), IPOD2008RED (variant 49148385), "
        "IPOD2008BLACK (variant 457924702)"
    )
    assert incident.details["lines"] == [
        {"line_no": 1, "channel_sku": "IPOD2008GREEN", "variant_ref": "39072856",
         "label": "IPOD2008GREEN (variant 39072856)"},
        {"line_no": 2, "channel_sku": "IPOD2008RED", "variant_ref": "49148385",
         "label": "IPOD2008RED (variant 49148385)"},
        {"line_no": 3, "channel_sku": "IPOD2008BLACK", "variant_ref": "457924702",
         "label": "IPOD2008BLACK (variant 457924702)"},
    ]  # fmt: skip
    assert order.status_reason == incident.summary


def test_a_line_with_neither_sku_nor_variant_is_named_by_its_line_number(shop, client):
    order = deliver_sample(client, "order_1073459976_create_eur.json", "unmapped-2")

    assert order.status == "on_hold"
    [incident] = Incident.objects.filter(category="sku_unmapped", order=order)
    assert incident.summary == "No SKU mapping for line 1 (no SKU, no variant)"
    assert incident.details["lines"] == [
        {"line_no": 1, "channel_sku": "", "variant_ref": "",
         "label": "line 1 (no SKU, no variant)"},
    ]  # fmt: skip


def test_a_line_with_only_one_of_the_two_is_named_by_what_the_channel_sent(db, client):
    # Our custom storefront's canonical order, nothing in the catalogue: line 1 comes with a
    # channel SKU and no variant, line 2 with a variant and no channel SKU.
    SalesChannelFactory(kind=ChannelKind.CUSTOM, slug=STOREFRONT, webhook_secret=STOREFRONT_SECRET)
    body = canonical_order()
    body["lines"][0]["variant_ref"] = ""
    body["lines"][1]["channel_sku"] = ""
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert post(client, envelope(body)).status_code == 202

    [incident] = Incident.objects.filter(category="sku_unmapped")
    assert incident.summary == "No SKU mapping for MUG-RED, variant v-202"
    assert [entry["label"] for entry in incident.details["lines"]] == ["MUG-RED", "variant v-202"]
    assert incident.details["unmapped"] == ["MUG-RED", "v-202"]


def test_order_detail_lines_show_the_channels_sku_and_variant(shop, client, cs_user):
    order = deliver_sample(client, "order_450789469_get.json", "unmapped-3")
    api = APIClient()
    api.force_authenticate(cs_user)

    response = api.get(f"/api/v1/orders/{order.pk}/")

    assert response.status_code == 200
    lines = response.json()["lines"]
    assert [set(ln) for ln in lines] == [LINE_FIELDS | {"channel_sku", "variant_ref"}] * 3
    assert [(ln["line_no"], ln["external_line_id"], ln["sku"], ln["channel_sku"],
             ln["variant_ref"]) for ln in lines] == [
        (1, "466157049", "", "IPOD2008GREEN", "39072856"),
        (2, "518995019", "", "IPOD2008RED", "49148385"),
        (3, "703073504", "", "IPOD2008BLACK", "457924702"),
    ]  # fmt: skip


def test_order_admin_lines_show_the_channels_sku_and_variant(shop, client, cs_user):
    order = deliver_sample(client, "order_450789469_get.json", "unmapped-4")
    client.force_login(cs_user)

    response = client.get(reverse("admin:orders_order_change", args=[order.pk]))

    assert response.status_code == 200
    page = response.content.decode()
    for column, header in (("channel_sku_", "Channel SKU"), ("variant_", "Variant")):
        assert f'<th class="column-{column}">{header}' in page, header
    for value in ("IPOD2008GREEN", "39072856", "IPOD2008RED", "49148385", "457924702"):
        assert f"<p>{value}</p>" in page, value
