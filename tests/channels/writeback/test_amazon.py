"""Amazon tracking write-back: confirmShipment per package with our shipment number as its
reference, the carrier code mapping, the read-back of the order (Orders API 2026-01-01) that
catches a package Amazon acknowledged and dropped, pacing, refusals; and through the real
outbox: one package however often it is retried, a refusal makes a dead action and a
``channel_sync_failed`` incident.

The read-back is served from Amazon's published searchOrders example as it is, in getOrder's
envelope (``{"order": <Order>}``). The stateful loopback of the outbox tests records each
confirmation and answers getOrder with the example's order whose ``packages`` are the ones it
recorded, each in the example package's shape.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest
from django.conf import settings
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from channels.adapters import amazon as amazon_adapter
from channels.writeback import WritebackError, amazon
from orders.feedback import ShipmentUpdateLine, writeback_for
from orders.models import Incident
from tests.channels.writeback.helpers import an_update, drain_now, shipped_order, writebacks
from tests.factories import SalesChannelFactory

pytestmark = pytest.mark.django_db

SAMPLES = Path(settings.BASE_DIR).parent / "shared" / "samples" / "amazon"
SEARCH_ORDERS = json.loads((SAMPLES / "searchOrders_2026-01-01_response_example.json").read_bytes())
SAMPLE_ORDER = SEARCH_ORDERS["orders"][0]
ORDER_ID = SAMPLE_ORDER["orderId"]  # 123-4567890-1234567
ITEM_IDS = [item["orderItemId"] for item in SAMPLE_ORDER["orderItems"]]  # 2 + 1 units
SAMPLE_TRACKING = SAMPLE_ORDER["packages"][0]["trackingNumber"]  # 1Z999AA1234567890, UPS
ACCESS_TOKEN = "Atza|IwEBIExampleAccessToken"
CONFIRM_PATH = f"/orders/v0/orders/{ORDER_ID}/shipmentConfirmation"
GET_ORDER_PATH = f"/orders/2026-01-01/orders/{ORDER_ID}"


@pytest.fixture(autouse=True)
def fresh_state():
    amazon._pacing.clear()
    yield
    amazon._pacing.clear()


@pytest.fixture
def channel(httpserver: HTTPServer):
    channel = SalesChannelFactory(
        kind="amazon", slug="amzn-us", api_base_url=httpserver.url_for("/").rstrip("/"),
        credentials={
            "client_id": "amzn1.application-oa2-client.example",
            "client_secret": "lwa-client-secret", "refresh_token": "Atzr|IwEBIExample",
            "lwa_token_url": httpserver.url_for("/auth/o2/token"),
            "marketplace_ids": ["ATVPDKIKX0DER"],
        },
    )  # fmt: skip
    amazon_adapter.forget_token(channel.pk)
    httpserver.expect_request("/auth/o2/token", method="POST").respond_with_json(
        {"access_token": ACCESS_TOKEN, "token_type": "bearer", "expires_in": 3600}
    )
    yield channel
    amazon_adapter.forget_token(channel.pk)


def sample_update(channel, **overrides):
    values = dict(
        order_external_id=ORDER_ID, order_source={"marketplace_id": "ATVPDKIKX0DER"},
        reference="shipment-12", carrier_name="UPS", service="UPS Ground",
        tracking_number=SAMPLE_TRACKING,
        lines=(ShipmentUpdateLine(external_line_id=ITEM_IDS[0], sku="ECHO", quantity=2,
                                  line_no=1),
               ShipmentUpdateLine(external_line_id=ITEM_IDS[1], sku="FIRE", quantity=1,
                                  line_no=2)),
    )  # fmt: skip
    values.update(overrides)
    return an_update(channel.pk, **values)


def serve_sample_order(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        GET_ORDER_PATH, method="GET", query_string={"includedData": "PACKAGES"},
        headers={"x-amz-access-token": ACCESS_TOKEN},
    ).respond_with_json({"order": SAMPLE_ORDER})  # fmt: skip


def posts(httpserver: HTTPServer) -> list[dict]:
    return [json.loads(r.data) for r, _ in httpserver.log if r.path == CONFIRM_PATH]


# --- the write-back on its own -----------------------------------------------------------------
def test_it_is_registered_and_configured_only_with_credentials(channel):
    writeback = writeback_for("amazon")
    assert isinstance(writeback, amazon.AmazonWriteback)
    assert writeback.configured(channel.pk)
    assert not writeback.tells("delivered") and not writeback.tells("in_transit")
    channel.tracking_writeback = False
    channel.save()
    assert not writeback.configured(channel.pk)
    bare = SalesChannelFactory(kind="amazon", slug="amzn-bare", api_base_url="https://x.example")
    assert not writeback.configured(bare.pk)


def test_confirms_the_package_and_verifies_it_in_the_order(httpserver, channel):
    httpserver.expect_request(
        CONFIRM_PATH, method="POST", headers={"x-amz-access-token": ACCESS_TOKEN}
    ).respond_with_data("", status=204, headers={"x-amzn-RateLimit-Limit": "2.0"})
    serve_sample_order(httpserver)

    result = amazon.AmazonWriteback().push(sample_update(channel))

    [body] = posts(httpserver)
    assert body == {
        "marketplaceId": "ATVPDKIKX0DER",
        "packageDetail": {
            "packageReferenceId": "12", "carrierCode": "UPS", "shippingMethod": "UPS Ground",
            "trackingNumber": SAMPLE_TRACKING, "shipDate": body["packageDetail"]["shipDate"],
            "orderItems": [{"orderItemId": ITEM_IDS[0], "quantity": 2},
                           {"orderItemId": ITEM_IDS[1], "quantity": 1}],
        },
    }  # fmt: skip
    assert body["packageDetail"]["shipDate"].endswith("Z")
    assert result == {"channel_ref": "package:12", "package_reference_id": "12",
                      "carrier_code": "UPS", "verified": True,
                      "package_status": "DELIVERED"}  # fmt: skip


def test_a_package_amazon_acknowledged_and_dropped_is_a_retryable_error(httpserver, channel):
    httpserver.expect_request(CONFIRM_PATH, method="POST").respond_with_data("", status=204)
    serve_sample_order(httpserver)  # the example's one package is not ours
    with pytest.raises(WritebackError, match="acknowledged but did not record") as caught:
        amazon.AmazonWriteback().push(sample_update(channel, tracking_number="1Z0000000000000001"))
    assert caught.value.retryable


@pytest.mark.parametrize(
    ("carrier_name", "code", "name"),
    [("USPS", "USPS", ""), ("FedEx", "FedEx", ""), ("DHLExpress", "DHL", ""),
     ("Canada Post", "Canada Post", ""), ("Local Courier", "Other", "Local Courier"),
     ("", "Other", "Other carrier")],
)  # fmt: skip
def test_carrier_codes(carrier_name, code, name):
    assert amazon.carrier_code(carrier_name) == (code, name)


def test_other_carriers_are_named_and_lines_without_an_item_id_refuse(channel):
    update = sample_update(channel, carrier_name="Local Courier")
    detail = amazon.confirmation_body(update, "ATVPDKIKX0DER")["packageDetail"]
    assert (detail["carrierCode"], detail["carrierName"]) == ("Other", "Local Courier")
    bad = sample_update(channel, lines=(ShipmentUpdateLine(external_line_id="", sku="X",
                                                           quantity=1, line_no=1),))  # fmt: skip
    with pytest.raises(WritebackError, match="no Amazon order item id") as caught:
        amazon.confirmation_body(bad, "ATVPDKIKX0DER")
    assert not caught.value.retryable


def test_a_refusal_is_not_retryable_and_carries_amazons_reason(httpserver, channel):
    httpserver.expect_request(CONFIRM_PATH, method="POST").respond_with_json(
        {"errors": [{"code": "InvalidInput", "message": "Invalid carrierCode"}]}, status=400
    )
    with pytest.raises(WritebackError) as caught:
        amazon.AmazonWriteback().push(sample_update(channel))
    assert not caught.value.retryable and caught.value.status == 400
    assert "InvalidInput: Invalid carrierCode" in str(caught.value)


def test_confirmations_are_paced_by_the_operations_rate_limit(httpserver, channel):
    httpserver.expect_request(CONFIRM_PATH, method="POST").respond_with_data(
        "", status=204, headers={"x-amzn-RateLimit-Limit": "0.5"}
    )
    serve_sample_order(httpserver)

    class Clock:
        now, sleeps = 1000.0, []

        def __call__(self):
            return self.now

        def sleep(self, seconds):
            self.sleeps.append(seconds)
            self.now += seconds

    clock = Clock()
    writeback = amazon.AmazonWriteback(sleep=clock.sleep, clock=clock)
    writeback.push(sample_update(channel))  # the default plan (2/s): nothing to wait for yet
    assert clock.sleeps == []
    writeback.push(sample_update(channel, reference="shipment-13"))  # Amazon said 0.5/s
    assert clock.sleeps == [pytest.approx(2.0)]


# --- through the outbox ------------------------------------------------------------------------
class LoopbackAmazon:
    """Records confirmations by package reference (a re-sent reference edits its package), and
    can fail or drop them."""

    def __init__(self) -> None:
        self.packages: dict[str, dict] = {}
        self.confirmations = 0
        self.fail_with: list[int] = []  # statuses to answer, one per call, before recording
        self.drop_next = 0
        self.slow_reply = 0.0  # record, then answer after this many seconds

    def confirm(self, request: Request) -> Response:
        self.confirmations += 1
        if self.fail_with:
            status = self.fail_with.pop(0)
            body = {"errors": [{"code": "InvalidInput", "message": "carrierCode is invalid"}]}
            return Response(json.dumps(body), status=status, content_type="application/json")
        detail = json.loads(request.data)["packageDetail"]
        if self.drop_next:
            self.drop_next -= 1
            return Response("", status=204)
        items = [{"orderItemId": i["orderItemId"], "quantity": i["quantity"]}
                 for i in detail["orderItems"]]  # fmt: skip
        package = copy.deepcopy(SAMPLE_ORDER["packages"][0])
        package.update(packageReferenceId=detail["packageReferenceId"],
                       carrier=detail.get("carrierName") or detail["carrierCode"],
                       shippingService=detail["shippingMethod"],
                       trackingNumber=detail["trackingNumber"], shipTime=detail["shipDate"],
                       packageItems=items, packageStatus={"status": "SHIPPED"})  # fmt: skip
        self.packages[detail["packageReferenceId"]] = package
        if self.slow_reply:
            time.sleep(self.slow_reply)
            self.slow_reply = 0.0
        return Response("", status=204)

    def get_order(self, request: Request) -> Response:
        order = {**SAMPLE_ORDER, "packages": list(self.packages.values())}
        return Response(json.dumps({"order": order}), content_type="application/json")


@pytest.fixture
def loopback(httpserver: HTTPServer, channel) -> LoopbackAmazon:
    server = LoopbackAmazon()
    httpserver.expect_request(CONFIRM_PATH, method="POST").respond_with_handler(server.confirm)
    httpserver.expect_request(GET_ORDER_PATH, method="GET").respond_with_handler(server.get_order)
    return server


@pytest.mark.pipeline
def test_outbox_one_package_after_a_503_and_a_dropped_confirmation(loopback, channel):
    lines = [("ECHO", ITEM_IDS[0], 2), ("FIRE", ITEM_IDS[1], 1)]
    order, [parcel] = shipped_order(channel, external_id=ORDER_ID, lines=lines, in_stock=True)
    [action] = writebacks(order)
    loopback.fail_with = [503, 503]

    for _attempt in range(2):  # each attempt confirms once: a POST is never repeated inside
        assert drain_now()["rescheduled"] == 1
        action.refresh_from_db()
        assert action.status == "retry_scheduled" and "503" in action.last_error
    assert loopback.confirmations == 2 and loopback.packages == {}

    loopback.drop_next = 1  # 204, and the package is not there
    assert drain_now()["rescheduled"] == 1
    action.refresh_from_db()
    assert "did not record the package" in action.last_error

    assert drain_now()["succeeded"] == 1
    action.refresh_from_db()
    parcel.refresh_from_db()
    assert action.status == "succeeded"
    assert list(loopback.packages) == [str(parcel.pk)]  # one package, however often it was sent
    package = loopback.packages[str(parcel.pk)]
    assert package["trackingNumber"] == parcel.tracking_number
    assert package["packageItems"] == [{"orderItemId": ITEM_IDS[0], "quantity": 2},
                                       {"orderItemId": ITEM_IDS[1], "quantity": 1}]  # fmt: skip
    assert parcel.channel_ref == f"package:{parcel.pk}"
    assert drain_now()["due"] == 0  # nothing more to tell Amazon


@pytest.mark.pipeline
def test_outbox_a_refusal_is_a_dead_action_and_a_channel_sync_incident(loopback, channel):
    order, _parcels = shipped_order(channel, external_id=ORDER_ID, in_stock=True,
                                    lines=[("ECHO", ITEM_IDS[0], 1)])  # fmt: skip
    loopback.fail_with = [400]
    assert drain_now()["dead"] == 1
    [action] = writebacks(order)
    assert action.status == "dead" and "carrierCode is invalid" in action.last_error
    incident = Incident.objects.get(category="channel_sync_failed", order=order)
    assert "refused" in incident.summary and "Test Buyer" not in incident.summary
    assert loopback.packages == {}


@pytest.mark.pipeline
def test_outbox_a_confirmation_answered_too_late_is_sent_again_as_an_edit(
    loopback, channel, settings
):
    settings.CHANNEL_HTTP_TIMEOUT = (2.0, 0.5)
    order, [parcel] = shipped_order(channel, external_id=ORDER_ID, in_stock=True,
                                    lines=[("ECHO", ITEM_IDS[0], 1)])  # fmt: skip
    loopback.slow_reply = 1.0  # recorded, answered after our read timeout
    assert drain_now()["rescheduled"] == 1  # not re-sent inside the session: the outbox does
    [action] = writebacks(order)
    assert action.status == "retry_scheduled" and "may have been processed" in action.last_error
    assert loopback.confirmations == 1
    assert drain_now()["succeeded"] == 1  # sent again: an edit of package n
    assert loopback.confirmations == 2  # each re-send the same package reference
    assert list(loopback.packages) == [str(parcel.pk)]
    action.refresh_from_db()
    assert action.status == "succeeded"
