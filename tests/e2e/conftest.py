"""The world the end-to-end suite runs in, built the way an operator builds it: channels,
catalogue, warehouses and stock through the production management commands; downstream
systems local (ERP file drop into a temp folder, local WMS, email); the vendors that are
pulled from (BigCommerce's REST API, Amazon's LWA + Orders API) on a loopback
pytest-httpserver that answers with the vendors' published samples, unchanged."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from channels.adapters import amazon
from channels.models import SalesChannel, SkuMapping
from orders.models import Product

SAMPLES = Path(django_settings.BASE_DIR).parent / "shared" / "samples"

SECRETS = {
    "shop": "shpss_e2e-client-secret",
    "woo": "woo-e2e-webhook-secret",
    "bc": "bc-e2e-client-secret",
    "web": "web-e2e-signing-secret",
}
BC_TOKEN = "bc-e2e-access-token"
AMAZON_TOKEN = "Atza|e2e-access-token"
AMAZON_NEXT_TOKEN = "2YgYW55IGNhcm5hbCBwbGVhc3VyZS4"  # both getOrders samples' NextToken

# sku, title, weight (g), HS code, origin. The SKUs the samples name (Shopify, BigCommerce,
# Amazon's SellerSKUs) and our own SKUs for WooCommerce's SKU-less products (mapped below).
CATALOGUE = [
    ("IPOD2008GREEN", "iPod Nano 8GB green", 200, "851981", "CN"),
    ("IPOD2008RED", "iPod Nano 8GB red", 200, "851981", "CN"),
    ("IPOD2008BLACK", "iPod Nano 8GB black", 200, "851981", "CN"),
    ("WOO-LOGO", "Woo Logo T-shirt", 180, "610910", "US"),
    ("WOO-SINGLE", "Woo Single #1", 90, "852349", "US"),
    ("WOO-ALBUM", "Woo Album #1", 110, "852349", "US"),
    ("Bar3", "Ship Your Idea - Color: Black", 150, "610910", "US"),
    ("S-ORAN", "Orange sweater", 400, "611020", "PT"),
    ("ABS", "Able Brewing System", 1800, "851671", "US"),
    ("MUG-RED", "Red mug", 350, "691200", "PT"),
    ("TEE-L", "T-shirt L", 180, "610910", "US"),
    ("AMZ-NABETA", "Amazon sandbox item", 300, "392690", "US"),
]
# Channel references that are not our SKUs: WooCommerce's SKU-less products, Amazon's SellerSKU.
MAPPINGS = [("woo", "93", "WOO-LOGO"), ("woo", "87", "WOO-SINGLE"), ("woo", "34", "WOO-ALBUM"),
            ("amzn", "NABetaASINB00551Q3CS", "AMZ-NABETA")]  # fmt: skip
ON_HAND = 10  # of every catalogue SKU, in the one warehouse
# GET /v3/orders/250/payment_actions/refunds, written from BigCommerce's documented shape
# (numbers as the v3 API sends them). Refund 3 (the one the webhook names): order product 65
# (S-ORAN) once, paid back 53.64 to braintree and 10.00 in store credit; a third payment of
# 5.00 was declined and moved nothing. Refund 2, older: shipping only.
BC_REFUNDS = """{"data": [
  {"id": 3, "order_id": 250, "user_id": 0, "created": "2019-06-25T16:25:20+00:00",
   "reason": "Damaged in transit", "total_amount": 68.64, "total_tax": 9.24,
   "uses_merchant_override_values": false,
   "payments": [
     {"id": 31, "provider_id": "braintree", "amount": 53.64, "offline": false,
      "is_declined": false, "declined_message": ""},
     {"id": 32, "provider_id": "storecredit", "amount": 10.00, "offline": true,
      "is_declined": false, "declined_message": ""},
     {"id": 33, "provider_id": "braintree", "amount": 5.00, "offline": false,
      "is_declined": true, "declined_message": "Card expired"}],
   "items": [{"item_type": "PRODUCT", "item_id": 65, "quantity": 1, "requested_amount": 68.64,
              "reason": "Damaged in transit"}]},
  {"id": 2, "order_id": 250, "user_id": 0, "created": "2019-06-24T10:00:00+00:00",
   "reason": "", "total_amount": 12.00, "total_tax": 0.91,
   "uses_merchant_override_values": false,
   "payments": [{"id": 21, "provider_id": "braintree", "amount": 12.00, "offline": false,
                 "is_declined": false, "declined_message": ""}],
   "items": [{"item_type": "SHIPPING", "item_id": 180, "quantity": null,
              "requested_amount": 12.00, "reason": ""}]}
], "meta": {}}"""
REFUNDS_PATH = "/stores/e2e/v3/orders/250/payment_actions/refunds"


def _write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture
def vendor(httpserver: HTTPServer) -> HTTPServer:
    """BigCommerce and Amazon on loopback, each answer a sample file as published."""

    def sample(name: str) -> bytes:
        return (SAMPLES / name).read_bytes()

    def amazon_orders(request: Request) -> Response:
        # Page 1: the documented example (one Pending order and a NextToken); page 2: the
        # sandbox response (two Unshipped orders, no NextToken).
        name = (
            "amazon/getOrders_v0_sandbox_TEST_CASE_200.json"
            if request.args.get("NextToken") == AMAZON_NEXT_TOKEN
            else "amazon/getOrders_v0_response_example.json"
        )
        return Response(sample(name), content_type="application/json")

    def amazon_items(request: Request) -> Response:
        # The documented items example pages on to the sandbox items with its NextToken;
        # the sandbox orders answer with the sandbox items.
        order_id = request.path.split("/")[4]
        name = "amazon/getOrderItems_v0_sandbox_TEST_CASE_200.json"
        if order_id == "902-3159896-1390916" and "NextToken" not in request.args:
            name = "amazon/getOrderItems_v0_response_example.json"
        return Response(sample(name), content_type="application/json")

    httpserver.expect_request("/auth/o2/token", method="POST").respond_with_json(
        {"access_token": AMAZON_TOKEN, "token_type": "bearer", "expires_in": 3600}
    )
    httpserver.expect_request(
        "/orders/v0/orders", headers={"x-amz-access-token": AMAZON_TOKEN}
    ).respond_with_handler(amazon_orders)
    httpserver.expect_request(
        re.compile(r"^/orders/v0/orders/[^/]+/orderItems$"),
        headers={"x-amz-access-token": AMAZON_TOKEN},
    ).respond_with_handler(amazon_items)
    bc = {"X-Auth-Token": BC_TOKEN}
    for path, name in [
        ("/stores/e2e/v2/orders/250", "bigcommerce/v2_get_order_218.json"),
        ("/stores/e2e/v2/orders/250/products", "bigcommerce/v2_get_order_products.json"),
        ("/stores/e2e/v2/orders/250/shipping_addresses",
         "bigcommerce/v2_get_order_shipping_addresses.json"),
    ]:  # fmt: skip
        httpserver.expect_request(path, headers=bc).respond_with_data(
            sample(name), content_type="application/json"
        )
    # BigCommerce publishes no refunds example: the v3 refunds of order 250, written above.
    httpserver.expect_request(REFUNDS_PATH, headers=bc).respond_with_data(
        BC_REFUNDS, content_type="application/json"
    )
    return httpserver


@pytest.fixture
def world(
    db: None, settings: Any, tmp_path: Path, vendor: HTTPServer
) -> Iterator[dict[str, SalesChannel]]:
    settings.ERP_TARGET = "filedrop"
    settings.ERP_DROP_DIR = str(tmp_path / "erp")
    settings.WMS_TARGET = "local"
    settings.NOTIFY_TARGETS = ["email"]
    settings.FULFILLMENT_AUTO_SHIP = False
    settings.CHANNEL_HTTP_BACKOFF_FACTOR = 0
    add = [
        ["--kind", "shopify", "--slug", "shop", "--secret", SECRETS["shop"],
         "--api-version", "2026-07"],
        ["--kind", "woocommerce", "--slug", "woo", "--secret", SECRETS["woo"]],
        ["--kind", "bigcommerce", "--slug", "bc", "--secret", SECRETS["bc"],
         "--api-url", vendor.url_for("/stores/e2e"),
         "--credentials", json.dumps({"access_token": BC_TOKEN})],
        ["--kind", "amazon", "--slug", "amzn", "--api-url", vendor.url_for("/").rstrip("/"),
         "--credentials", json.dumps({
             "client_id": "amzn1.application-oa2-client.e2e", "client_secret": "lwa-secret",
             "refresh_token": "Atzr|e2e-refresh", "marketplace_ids": ["ATVPDKIKX0DER"],
             "lwa_token_url": vendor.url_for("/auth/o2/token")})],
        ["--kind", "custom", "--slug", "web", "--secret", SECRETS["web"]],
    ]  # fmt: skip
    for args in add:
        call_command("add_channel", *args, stdout=io.StringIO())
    channels = {c.slug: c for c in SalesChannel.objects.all()}
    amazon.forget_token(channels["amzn"].pk)
    products = _write_csv(tmp_path / "products.csv", "sku,title,weight,hs_code,origin_country,tags",
                          [f"{s},{t},{w},{h},{o}," for s, t, w, h, o in CATALOGUE])  # fmt: skip
    call_command("import_products", str(products), stdout=io.StringIO())
    for slug, ref, sku in MAPPINGS:
        SkuMapping.objects.create(
            channel=channels[slug], external_ref=ref, product=Product.objects.get(sku=sku)
        )
    call_command("add_warehouse", "--code", "TX1", "--country", "US", "--region", "US-TX",
                 "--priority", "10", stdout=io.StringIO())  # fmt: skip
    stock = _write_csv(tmp_path / "stock.csv", "sku,warehouse,on_hand",
                       [f"{sku},TX1,{ON_HAND}" for sku, *_ in CATALOGUE])  # fmt: skip
    call_command("import_stock", str(stock), stdout=io.StringIO())
    yield channels
    amazon.forget_token(channels["amzn"].pk)
