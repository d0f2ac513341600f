"""Topics that cancel an order, through the real webhook: a captured body replayed under a
swapped topic cancels nothing, and the channel's API is asked before anything is cancelled.

Shopify and WooCommerce sign only the body; the topic and event-id headers are not signed, so
anyone holding one signed ``orders/create`` delivery can send it again with a new webhook id
and ``X-Shopify-Topic: orders/delete``. Every test POSTs a correctly signed body to
``/webhooks/<slug>/`` and lets processing run; the channels' APIs are pytest-httpserver on
loopback.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from pytest_httpserver import HTTPServer

from channels.models import ChannelKind, InboundEvent, SalesChannel
from channels.services import inbound_event_process
from orders.models import Order, OrderEvent, Product
from tests.channels.adapters.test_bigcommerce import _sign as standard_webhooks_headers
from tests.channels.adapters.test_shopify import _sign as shopify_sign
from tests.channels.adapters.test_woocommerce import _sign as woo_sign
from tests.factories import SalesChannelFactory

SAMPLES = Path(settings.BASE_DIR).parent / "shared" / "samples"
SHOP_SECRET = "shpss-destructive-secret"
WOO_SECRET = "woo-destructive-secret"
BC_SECRET = "bc-destructive-secret"
SHOP_TOKEN = "shpat-destructive-token"
API_VERSION = "2026-07"
ORDER_ID = 450789469  # the Shopify samples' order (get and cancel)
WOO_ORDER_ID = 727
SHOPIFY_ORDER_PATH = f"/admin/api/{API_VERSION}/orders/{ORDER_ID}.json"
WOO_ORDER_PATH = f"/wp-json/wc/v3/orders/{WOO_ORDER_ID}"

pytestmark = pytest.mark.django_db


def shopify_body(name: str = "order_450789469_get.json") -> bytes:
    return json.dumps(json.loads((SAMPLES / "shopify" / name).read_bytes())["order"]).encode()


def woo_body() -> bytes:
    return (SAMPLES / "woocommerce" / "order_727_get.json").read_bytes()


@pytest.fixture
def products(db) -> None:
    for sku in ("IPOD2008GREEN", "IPOD2008RED", "IPOD2008BLACK"):
        Product.objects.create(sku=sku, title=sku)


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    """POST a body to the channel's webhook; processing runs after commit, as a worker would."""

    def _deliver(slug: str, body: bytes, headers: dict[str, str]) -> InboundEvent:
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                f"/webhooks/{slug}/", data=body, content_type="application/json", headers=headers
            )
        assert response.status_code == 202, response.content
        return InboundEvent.objects.get(pk=response.json()["event_id"])

    return _deliver


@pytest.fixture
def shop(products) -> SalesChannel:
    """A Shopify channel without an API configured (a demo or webhook-only channel)."""
    return SalesChannelFactory(kind=ChannelKind.SHOPIFY, slug="shop", webhook_secret=SHOP_SECRET)


@pytest.fixture
def shop_with_api(shop: SalesChannel, httpserver: HTTPServer, settings: Any) -> SalesChannel:
    settings.CHANNEL_HTTP_BACKOFF_FACTOR = 0
    SalesChannel.objects.filter(pk=shop.pk).update(
        api_base_url=httpserver.url_for("").rstrip("/"), api_version=API_VERSION,
        credentials={"access_token": SHOP_TOKEN},
    )  # fmt: skip
    shop.refresh_from_db()
    return shop


def to_shop(deliver, body: bytes, topic: str, webhook_id: str) -> InboundEvent:
    return deliver("shop", body, {
        "X-Shopify-Hmac-Sha256": shopify_sign(body, SHOP_SECRET), "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": "jsmith.myshopify.com", "X-Shopify-API-Version": API_VERSION,
        "X-Shopify-Webhook-Id": webhook_id,
    })  # fmt: skip


def placed(deliver) -> Order:
    """The captured delivery: a genuine orders/create of 450789469."""
    event = to_shop(deliver, shopify_body(), "orders/create", "wh-create-1")
    assert event.status == "processed"
    order = Order.objects.get(external_id=str(ORDER_ID))
    assert order.status != "cancelled"
    return order


def status_of(order: Order) -> str:
    order.refresh_from_db()
    return order.status


def checked(order: Order) -> list[str]:
    return [
        e.data["confirmation"]
        for e in OrderEvent.objects.filter(order=order, action="channel_cancel_checked")
    ]


# --- the body's own shape -------------------------------------------------------------------------
def test_an_orders_create_body_replayed_as_orders_delete_is_quarantined_and_cancels_nothing(
    shop, deliver
):
    order = placed(deliver)

    replay = to_shop(deliver, shopify_body(), "orders/delete", "wh-forged-2")

    assert replay.status == "quarantined"
    assert replay.errors[0]["message"].startswith('an orders/delete body must be {"id": ...} only')
    assert any(e["message"].startswith("unexpected field(s):") for e in replay.errors[1:])
    assert status_of(order) != "cancelled"
    assert checked(order) == []


def test_an_order_body_without_cancelled_at_under_orders_cancelled_is_quarantined(shop, deliver):
    order = placed(deliver)

    replay = to_shop(deliver, shopify_body(), "orders/cancelled", "wh-forged-3")

    assert replay.status == "quarantined"
    assert replay.errors[0]["message"].startswith(
        "an orders/cancelled body must be the order with cancelled_at set"
    )
    assert {"pointer": "/cancelled_at", "message": "must be of type string", "value": None} in (
        replay.errors
    )
    assert status_of(order) != "cancelled"


def test_a_woocommerce_order_body_replayed_as_order_deleted_is_quarantined(db, deliver):
    SalesChannelFactory(kind=ChannelKind.WOOCOMMERCE, slug="woo", webhook_secret=WOO_SECRET)

    def to_woo(body: bytes, topic: str, delivery_id: str) -> InboundEvent:
        return deliver("woo", body, {
            "X-WC-Webhook-Signature": woo_sign(body, WOO_SECRET), "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Delivery-ID": delivery_id, "X-WC-Webhook-Source": "https://woo.example/",
        })  # fmt: skip

    assert to_woo(woo_body(), "order.created", "d-1").status == "processed"
    order = Order.objects.get(external_id=str(WOO_ORDER_ID))

    replay = to_woo(woo_body(), "order.deleted", "d-2")

    assert replay.status == "quarantined"
    assert replay.errors[0]["message"].startswith('an order.deleted body must be {"id": ...} only')
    assert status_of(order) != "cancelled"


# --- no API to ask: the shape rule alone, and the audit says so ----------------------------------
def test_a_genuine_orders_delete_on_a_channel_without_api_cancels_and_says_not_confirmed(
    shop, deliver
):
    order = placed(deliver)

    event = to_shop(deliver, json.dumps({"id": ORDER_ID}).encode(), "orders/delete", "wh-del-4")

    assert (event.status, event.outcome) == ("processed", "cancelled")
    assert status_of(order) == "cancelled"
    assert checked(order) == ["not confirmed: no channel API configured"]


def test_a_genuine_orders_cancelled_on_a_channel_without_api_cancels_and_says_not_confirmed(
    shop, deliver
):
    order = placed(deliver)

    body = shopify_body("order_450789469_cancel_refund_gift_card.json")
    event = to_shop(deliver, body, "orders/cancelled", "wh-cancel-5")

    assert event.status == "processed"
    assert status_of(order) == "cancelled"
    assert checked(order) == ["not confirmed: no channel API configured"]


# --- the channel's API is asked first -------------------------------------------------------------
def test_orders_delete_for_an_order_the_shop_still_has_open_is_quarantined_as_a_replay(
    shop_with_api, deliver, httpserver, caplog
):
    order = placed(deliver)
    httpserver.expect_request(
        SHOPIFY_ORDER_PATH, headers={"X-Shopify-Access-Token": SHOP_TOKEN}
    ).respond_with_json({"order": {"id": ORDER_ID, "cancelled_at": None}})

    with caplog.at_level(logging.WARNING, logger="security"):
        event = to_shop(deliver, json.dumps({"id": ORDER_ID}).encode(), "orders/delete", "wh-6")

    assert event.status == "quarantined"
    assert event.errors[0]["message"].startswith(
        "topic says orders/delete, the channel says the order is open: possible replay"
    )
    assert status_of(order) != "cancelled"
    warnings = [r.getMessage() for r in caplog.records if r.name == "security"]
    assert any("webhook.destructive_topic_refuted" in w for w in warnings), warnings
    assert not any("bob.norman" in w.lower() or "Chestnut" in w for w in warnings)


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        pytest.param({"errors": "Not Found"}, 404, id="deleted-404"),
        pytest.param({"order": {"id": ORDER_ID, "cancelled_at": "2026-03-01T10:00:00Z"}}, 200,
                     id="cancelled-in-the-shop"),
    ],
)  # fmt: skip
def test_orders_delete_the_shop_confirms_cancels_and_says_confirmed(
    shop_with_api, deliver, httpserver, answer, status
):
    order = placed(deliver)
    httpserver.expect_request(
        SHOPIFY_ORDER_PATH, headers={"X-Shopify-Access-Token": SHOP_TOKEN}
    ).respond_with_json(answer, status=status)

    event = to_shop(deliver, json.dumps({"id": ORDER_ID}).encode(), "orders/delete", "wh-7")

    assert (event.status, event.outcome) == ("processed", "cancelled")
    assert status_of(order) == "cancelled"
    assert checked(order) == ["confirmed by the channel's API"]
    assert len(httpserver.log) == 1


@pytest.mark.parametrize(
    ("cancelled_at", "expected"),
    [pytest.param("2025-04-02T11:31:11-05:00", "cancelled", id="confirmed"),
     pytest.param(None, "quarantined", id="open-in-the-shop")],
)  # fmt: skip
def test_orders_cancelled_is_applied_only_when_the_shop_says_cancelled(
    shop_with_api, deliver, httpserver, cancelled_at, expected
):
    order = placed(deliver)
    httpserver.expect_request(SHOPIFY_ORDER_PATH).respond_with_json(
        {"order": {"id": ORDER_ID, "cancelled_at": cancelled_at}}
    )

    body = shopify_body("order_450789469_cancel_refund_gift_card.json")
    event = to_shop(deliver, body, "orders/cancelled", "wh-8")

    if expected == "cancelled":
        assert event.status == "processed"
        assert status_of(order) == "cancelled"
        assert checked(order) == ["confirmed by the channel's API"]
    else:
        assert event.status == "quarantined"
        assert "possible replay" in event.errors[0]["message"]
        assert status_of(order) != "cancelled"


def test_while_the_shop_api_is_down_the_order_is_not_cancelled_and_the_event_waits(
    shop_with_api, deliver, httpserver
):
    order = placed(deliver)
    httpserver.expect_request(SHOPIFY_ORDER_PATH).respond_with_json({}, status=503)

    event = to_shop(deliver, json.dumps({"id": ORDER_ID}).encode(), "orders/delete", "wh-9")

    assert event.status == "received"
    assert event.errors[0]["message"].startswith("will retry:")
    assert status_of(order) != "cancelled"

    # The API is back; the sweeper's retry (its lease run out) confirms and cancels.
    httpserver.clear()
    httpserver.expect_request(SHOPIFY_ORDER_PATH).respond_with_json({}, status=404)
    InboundEvent.objects.filter(pk=event.pk).update(lease_until=None)
    inbound_event_process(event_id=event.pk)
    event.refresh_from_db()
    assert (event.status, event.outcome) == ("processed", "cancelled")
    assert status_of(order) == "cancelled"


@pytest.mark.parametrize(
    ("answer", "status", "expected"),
    [
        pytest.param({"id": WOO_ORDER_ID, "status": "trash"}, 200, "cancelled", id="trashed"),
        pytest.param({"code": "woocommerce_rest_shop_order_invalid_id"}, 404, "cancelled",
                     id="deleted"),
        pytest.param({"id": WOO_ORDER_ID, "status": "processing"}, 200, "quarantined",
                     id="open-in-the-store"),
    ],
)  # fmt: skip
def test_woocommerce_order_deleted_is_confirmed_against_the_store(
    db, deliver, httpserver, settings, answer, status, expected
):
    settings.CHANNEL_HTTP_BACKOFF_FACTOR = 0
    SalesChannelFactory(
        kind=ChannelKind.WOOCOMMERCE, slug="woo", webhook_secret=WOO_SECRET,
        api_base_url=httpserver.url_for("").rstrip("/"),
        credentials={"consumer_key": "ck_test", "consumer_secret": "cs_test"},
    )  # fmt: skip

    def to_woo(body: bytes, topic: str, delivery_id: str) -> InboundEvent:
        return deliver("woo", body, {
            "X-WC-Webhook-Signature": woo_sign(body, WOO_SECRET), "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Delivery-ID": delivery_id,
        })  # fmt: skip

    to_woo(woo_body(), "order.created", "d-10")
    order = Order.objects.get(external_id=str(WOO_ORDER_ID))
    httpserver.expect_request(
        WOO_ORDER_PATH, headers={"Authorization": "Basic Y2tfdGVzdDpjc190ZXN0"}
    ).respond_with_json(answer, status=status)

    event = to_woo(json.dumps({"id": WOO_ORDER_ID}).encode(), "order.deleted", "d-11")

    if expected == "cancelled":
        assert (event.status, event.outcome) == ("processed", "cancelled")
        assert status_of(order) == "cancelled"
        assert checked(order) == ["confirmed by the channel's API"]
    else:
        assert event.status == "quarantined"
        assert event.errors[0]["message"].startswith(
            "topic says order.deleted, the channel says the order is open: possible replay"
        )
        assert status_of(order) != "cancelled"


# --- BigCommerce: a thin webhook cannot say "cancelled" ------------------------------------------
def test_a_bigcommerce_status_update_claiming_cancelled_follows_the_fetched_order(
    db, deliver, httpserver, settings
):
    """The envelope's ``new_status_id`` 5 (Cancelled) is not read: the order fetched from the
    API (status_id 7, Awaiting Payment) decides, so nothing is cancelled."""
    settings.CHANNEL_HTTP_BACKOFF_FACTOR = 0
    SalesChannelFactory(
        kind=ChannelKind.BIGCOMMERCE, slug="bc", webhook_secret=BC_SECRET,
        api_base_url=httpserver.url_for("/stores/t").rstrip("/"),
        credentials={"access_token": "bc-token"},
    )  # fmt: skip
    for path, name in [
        ("/stores/t/v2/orders/250", "v2_get_order_218.json"),
        ("/stores/t/v2/orders/250/products", "v2_get_order_products.json"),
        ("/stores/t/v2/orders/250/shipping_addresses", "v2_get_order_shipping_addresses.json"),
    ]:
        httpserver.expect_request(path).respond_with_data(
            (SAMPLES / "bigcommerce" / name).read_bytes(), content_type="application/json"
        )
    envelope = json.loads((SAMPLES / "bigcommerce" / "webhook_store_order_statusUpdated.json")
                          .read_bytes())  # fmt: skip
    envelope["data"]["status"]["new_status_id"] = 5
    body = json.dumps(envelope).encode()

    event = deliver(
        "bc",
        body,
        standard_webhooks_headers(
            body, msg_id="msg_forged_cancel", timestamp=int(time.time()), secret=BC_SECRET
        ),
    )

    assert event.status == "processed"
    assert event.fetched["order"]["status_id"] == 7
    order = Order.objects.get(channel__slug="bc")
    assert order.status != "cancelled"
    assert not order.events.filter(action="cancel").exists()
