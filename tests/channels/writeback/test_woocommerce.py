"""WooCommerce tracking write-back: the Shipment Tracking extension when the store has it
(adopting our tracking on a retry), else an order note carrying our reference; the order
completed once when fully shipped; delivery events as private notes; refusals with the
store's reason; and through the real outbox: one tracking however the first attempt failed,
a refusal makes a dead action and a ``channel_sync_failed`` incident.

The orders are WooCommerce's published examples as they are (``order_727_get.json``:
processing; order 723 of ``orders_list.json``: completed). The Shipment Tracking and order note
answers are built here in the shapes those endpoints answer (no published example exists).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from django.conf import settings
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from channels.writeback import WritebackError, woocommerce
from orders.feedback import writeback_for
from orders.models import Incident
from tests.channels.writeback.helpers import an_update, drain_now, shipped_order, writebacks
from tests.factories import SalesChannelFactory

pytestmark = pytest.mark.django_db

SAMPLES = Path(settings.BASE_DIR).parent / "shared" / "samples" / "woocommerce"
ORDER_727 = json.loads((SAMPLES / "order_727_get.json").read_bytes())
ORDER_723 = next(o for o in json.loads((SAMPLES / "orders_list.json").read_bytes())
                 if o["id"] == 723)  # fmt: skip
LINE_IDS = [str(line["id"]) for line in ORDER_727["line_items"]]  # 315 (2 units), 316 (1)
TRACKINGS = "/wp-json/wc-shipment-tracking/v3/orders/{id}/shipment-trackings"
NOTES = "/wp-json/wc/v3/orders/{id}/notes"
ORDER = "/wp-json/wc/v3/orders/{id}"
NO_ROUTE = {"code": "rest_no_route", "message": "No route was found matching the URL and "
            "request method.", "data": {"status": 404}}  # fmt: skip


@pytest.fixture
def channel(httpserver: HTTPServer):
    return SalesChannelFactory(
        kind="woocommerce", slug="woo", api_base_url=httpserver.url_for("/").rstrip("/"),
        credentials={"consumer_key": "ck_example", "consumer_secret": "cs_example"},
    )  # fmt: skip


def requests_to(httpserver: HTTPServer, method: str, path: str) -> list[dict]:
    return [json.loads(r.data) for r, _ in httpserver.log
            if r.method == method and r.path == path]  # fmt: skip


def note(note_id: int, text: str, customer_note: bool = False) -> dict:
    return {"id": note_id, "author": "orderdesk", "date_created": "2026-11-02T10:00:00",
            "date_created_gmt": "2026-11-02T10:00:00", "note": text,
            "customer_note": customer_note}  # fmt: skip


def test_registered_configured_and_what_it_tells(channel):
    writeback = writeback_for("woocommerce")
    assert isinstance(writeback, woocommerce.WooCommerceWriteback)
    assert writeback.configured(channel.pk)
    assert writeback.tells("delivered") and writeback.tells("failed_attempt")
    assert not writeback.tells("in_transit") and not writeback.tells("out_for_delivery")
    keyless = SalesChannelFactory(kind="woocommerce", slug="woo-bare",
                                  api_base_url="https://shop.example")  # fmt: skip
    assert not writeback.configured(keyless.pk)


def test_with_the_extension_a_tracking_is_posted(httpserver, channel):
    path = TRACKINGS.format(id=727)
    httpserver.expect_request(path, method="GET").respond_with_json([])
    httpserver.expect_request(path, method="POST").respond_with_json(
        {"tracking_id": "a1b2c3", "tracking_provider": "USPS", "tracking_number":
         "9400100208303109505657", "date_shipped": "2026-11-02"}, status=201,
    )  # fmt: skip

    result = woocommerce.WooCommerceWriteback().push(an_update(channel.pk))

    [body] = requests_to(httpserver, "POST", path)
    assert body == {"tracking_provider": "USPS", "tracking_number": "9400100208303109505657",
                    "date_shipped": body["date_shipped"]}  # fmt: skip
    assert result == {"channel_ref": "tracking:a1b2c3", "via": "shipment_tracking",
                      "adopted": False}  # fmt: skip
    assert httpserver.log[0][0].authorization.username == "ck_example"


def test_a_carrier_the_extension_does_not_know_is_a_custom_provider_with_its_link(
    httpserver, channel
):
    path = TRACKINGS.format(id=727)
    httpserver.expect_request(path, method="GET").respond_with_json([])
    httpserver.expect_request(path, method="POST").respond_with_json({"tracking_id": "x9"})
    woocommerce.WooCommerceWriteback().push(
        an_update(channel.pk, carrier_name="Local Courier", tracking_url="https://t.example/1")
    )
    [body] = requests_to(httpserver, "POST", path)
    assert body["custom_tracking_provider"] == "Local Courier"
    assert body["custom_tracking_link"] == "https://t.example/1"
    assert "tracking_provider" not in body


def test_a_retry_adopts_the_tracking_the_first_attempt_made(httpserver, channel):
    path = TRACKINGS.format(id=727)
    httpserver.expect_request(path, method="GET").respond_with_json(
        [{"tracking_id": "a1b2c3", "tracking_number": "9400100208303109505657"}]
    )
    result = woocommerce.WooCommerceWriteback().push(an_update(channel.pk))
    assert result["channel_ref"] == "tracking:a1b2c3" and result["adopted"] is True
    assert requests_to(httpserver, "POST", path) == []


def test_without_the_extension_a_note_with_our_reference_and_the_customer_setting(
    httpserver, channel
):
    httpserver.expect_request(TRACKINGS.format(id=727)).respond_with_json(NO_ROUTE, status=404)
    notes = NOTES.format(id=727)
    httpserver.expect_request(notes, method="GET").respond_with_json([])
    httpserver.expect_request(notes, method="POST").respond_with_json(note(281, "x"), status=201)

    result = woocommerce.WooCommerceWriteback().push(an_update(channel.pk))

    [body] = requests_to(httpserver, "POST", notes)
    assert body["customer_note"] is False  # writeback_notify_customer is off: our email tells
    assert "[orderdesk shipment-12]" in body["note"]
    assert "9400100208303109505657" in body["note"] and "USPS" in body["note"]
    assert result == {"channel_ref": "note:281", "via": "order_note", "note_id": 281}


def test_a_customer_note_when_the_channel_says_so_and_a_retry_finds_it(httpserver, channel):
    channel.writeback_notify_customer = True
    channel.save()
    httpserver.expect_request(TRACKINGS.format(id=727)).respond_with_json(NO_ROUTE, status=404)
    notes = NOTES.format(id=727)
    httpserver.expect_request(notes, method="GET").respond_with_json(
        [note(280, "Order status changed from Pending payment to Processing."),
         note(281, "Shipped with USPS [orderdesk shipment-12]", customer_note=True)]
    )  # fmt: skip
    result = woocommerce.WooCommerceWriteback().push(an_update(channel.pk))
    assert result["channel_ref"] == "note:281"
    assert requests_to(httpserver, "POST", notes) == []


def test_a_fully_shipped_order_is_completed_once(httpserver, channel):
    httpserver.expect_request(TRACKINGS.format(id=727), method="GET").respond_with_json(
        [{"tracking_id": "a1", "tracking_number": "9400100208303109505657"}]
    )
    httpserver.expect_request(ORDER.format(id=727), method="GET").respond_with_json(ORDER_727)
    httpserver.expect_request(ORDER.format(id=727), method="PUT").respond_with_json(ORDER_727)
    result = woocommerce.WooCommerceWriteback().push(an_update(channel.pk, order_complete=True))
    assert requests_to(httpserver, "PUT", ORDER.format(id=727)) == [{"status": "completed"}]
    assert result["order_completed"] is True

    # Order 723 is completed already: nothing is put.
    httpserver.expect_request(TRACKINGS.format(id=723), method="GET").respond_with_json(
        [{"tracking_id": "a2", "tracking_number": "9400100208303109505657"}]
    )
    httpserver.expect_request(ORDER.format(id=723), method="GET").respond_with_json(ORDER_723)
    result = woocommerce.WooCommerceWriteback().push(
        an_update(channel.pk, order_external_id="723", order_complete=True)
    )
    assert result["order_completed"] is False
    assert requests_to(httpserver, "PUT", ORDER.format(id=723)) == []

    channel.writeback_complete_order = False
    channel.save()
    result = woocommerce.WooCommerceWriteback().push(an_update(channel.pk, order_complete=True))
    assert "order_completed" not in result


def test_a_delivery_is_a_private_note_naming_the_event(httpserver, channel):
    notes = NOTES.format(id=727)
    httpserver.expect_request(notes, method="GET").respond_with_json([])
    httpserver.expect_request(notes, method="POST").respond_with_json(note(290, "x"))
    result = woocommerce.WooCommerceWriteback().push(
        an_update(channel.pk, channel_ref="tracking:a1", status="delivered", event_id=77)
    )
    [body] = requests_to(httpserver, "POST", notes)
    assert body == {"note": "Parcel 9400100208303109505657: Delivered. "
                    "[orderdesk shipment-12 delivered 77]", "customer_note": False}  # fmt: skip
    assert result == {"channel_ref": "tracking:a1", "event_note_id": 290}


def test_a_refusal_is_not_retryable_and_carries_the_stores_reason(httpserver, channel):
    path = TRACKINGS.format(id=727)
    httpserver.expect_request(path, method="GET").respond_with_json(
        {"code": "woocommerce_rest_authentication_error", "message": "Invalid signature - "
         "provided signature does not match.", "data": {"status": 401}}, status=401,
    )  # fmt: skip
    with pytest.raises(WritebackError) as caught:
        woocommerce.WooCommerceWriteback().push(an_update(channel.pk))
    assert not caught.value.retryable and caught.value.status == 401
    assert "woocommerce_rest_authentication_error" in str(caught.value)


# --- through the outbox ------------------------------------------------------------------------
class LoopbackStore:
    """A store with the Shipment Tracking extension that keeps the trackings posted to it; a
    POST can fail before (503, 400) or after it recorded (a reply slower than our timeout)."""

    def __init__(self) -> None:
        self.trackings: list[dict] = []
        self.posts = 0
        self.puts: list[dict] = []
        self.fail_with: list[int] = []
        self.slow_reply = 0.0

    def trackings_handler(self, request: Request) -> Response:
        if request.method == "GET":
            return Response(json.dumps(self.trackings), content_type="application/json")
        self.posts += 1
        if self.fail_with:
            status = self.fail_with.pop(0)
            body = {"code": "woocommerce_rest_invalid_tracking", "message": "Invalid provider."}
            return Response(json.dumps(body), status=status, content_type="application/json")
        tracking = {**json.loads(request.data), "tracking_id": f"t{len(self.trackings) + 1}"}
        self.trackings.append(tracking)
        if self.slow_reply:
            time.sleep(self.slow_reply)  # recorded, but the answer comes too late
            self.slow_reply = 0.0
        return Response(json.dumps(tracking), status=201, content_type="application/json")

    def order_handler(self, request: Request) -> Response:
        if request.method == "PUT":
            self.puts.append(json.loads(request.data))
        order = {**ORDER_727, "status": "completed"} if self.puts else ORDER_727
        return Response(json.dumps(order), content_type="application/json")


@pytest.fixture
def store(httpserver: HTTPServer) -> LoopbackStore:
    store = LoopbackStore()
    httpserver.expect_request(TRACKINGS.format(id=727)).respond_with_handler(
        store.trackings_handler
    )
    httpserver.expect_request(ORDER.format(id=727)).respond_with_handler(store.order_handler)
    return store


@pytest.mark.pipeline
def test_outbox_one_tracking_after_a_timeout_and_a_503_and_the_order_completed_once(
    store, channel, settings
):
    settings.CHANNEL_HTTP_TIMEOUT = (2.0, 0.5)
    lines = [("MUG", LINE_IDS[0], 2), ("CAP", LINE_IDS[1], 1)]
    order, [parcel] = shipped_order(channel, external_id="727", lines=lines, in_stock=True)
    [action] = writebacks(order)
    store.fail_with = [503]
    assert drain_now()["rescheduled"] == 1
    action.refresh_from_db()
    assert "503" in action.last_error and store.trackings == []

    store.slow_reply = 1.5  # the store records it and answers after our read timeout
    assert drain_now()["rescheduled"] == 1
    action.refresh_from_db()
    assert "timed out" in action.last_error and len(store.trackings) == 1
    time.sleep(1.2)  # the loopback serves one request at a time: let it finish the slow one

    assert drain_now()["succeeded"] == 1
    parcel.refresh_from_db()
    assert store.posts == 2  # the 503 and the slow one: the retry adopted the slow one's
    assert [t["tracking_number"] for t in store.trackings] == [parcel.tracking_number]
    assert parcel.channel_ref == "tracking:t1"
    assert store.puts == [{"status": "completed"}]


@pytest.mark.pipeline
def test_outbox_a_refusal_is_a_dead_action_and_a_channel_sync_incident(store, channel):
    order, _parcels = shipped_order(channel, external_id="727", in_stock=True,
                                      lines=[("MUG", LINE_IDS[0], 1)])  # fmt: skip
    store.fail_with = [400]
    assert drain_now()["dead"] == 1
    [action] = writebacks(order)
    assert action.status == "dead" and "Invalid provider." in action.last_error
    assert Incident.objects.filter(category="channel_sync_failed", order=order).count() == 1
    assert store.trackings == [] and store.puts == []
