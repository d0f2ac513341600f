"""Custom storefronts' tracking write-back: a callback signed with the storefront's own scheme
(verified here by the verifier its webhooks pass), an Idempotency-Key per action, a body that
validates against ``channels/schemas/custom_shipment_event.v1.json`` and carries no personal
data; 2xx done, a 4xx other than 408/429 refused; and through the real outbox: one event at
the storefront however the first attempts failed, a refusal makes a dead action and a
``channel_sync_failed`` incident."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from channels import signatures
from channels.adapters.base import SignatureInvalid
from channels.writeback import WritebackError, custom
from orders import jsonschemas
from orders.feedback import writeback_for
from orders.models import Incident
from tests.channels.writeback.helpers import an_update, drain_now, shipped_order, writebacks
from tests.factories import SalesChannelFactory

pytestmark = pytest.mark.django_db

SECRET = "storefront-signing-secret"
CALLBACK = "/hooks/orderdesk/tracking"


@pytest.fixture
def channel(httpserver: HTTPServer):
    return SalesChannelFactory(
        kind="custom", slug="storefront", webhook_secret=SECRET,
        tracking_callback_url=httpserver.url_for(CALLBACK),
    )  # fmt: skip


def verified(request: Request) -> dict:
    """The body, once its signature passes the check custom storefront webhooks pass."""
    signatures.timestamped_hmac(
        secret=SECRET, header_value=request.headers.get("X-Signature"), body=request.data,
        now=datetime.now(UTC),
    )  # fmt: skip
    return json.loads(request.data)


def test_registered_configured_and_tells_everything(channel):
    writeback = writeback_for("custom")
    assert isinstance(writeback, custom.CustomWriteback)
    assert writeback.configured(channel.pk)
    assert all(writeback.tells(s) for s in ("in_transit", "delivered", "return_to_sender"))
    unsigned = SalesChannelFactory(kind="custom", slug="no-secret",
                                   tracking_callback_url="https://shop.example/t")  # fmt: skip
    assert not writeback.configured(unsigned.pk)
    nowhere = SalesChannelFactory(kind="custom", slug="no-url", webhook_secret=SECRET)
    assert not writeback.configured(nowhere.pk)


def test_the_callback_is_signed_keyed_and_its_body_validates(httpserver, channel):
    httpserver.expect_request(CALLBACK, method="POST").respond_with_data("", status=204)
    eta = datetime(2026, 11, 5, 17, 0, tzinfo=UTC)
    update = an_update(channel.pk, estimated_delivery_from=eta - timedelta(hours=8),
                       estimated_delivery_until=eta)  # fmt: skip

    result = custom.CustomWriteback().push(update)

    [(request, _)] = httpserver.log
    body = verified(request)
    assert request.headers["Idempotency-Key"] == update.idempotency_key
    assert request.headers["Content-Type"] == "application/json"
    assert jsonschemas.errors("channels", custom.SCHEMA, body) == []
    assert body["topic"] == "shipment.created" and body["id"] == update.idempotency_key
    assert body["order"] == {"external_id": "727", "order_number": "727", "fully_shipped": False}
    shipment = body["shipment"]
    assert (shipment["reference"], shipment["status"], shipment["tracking_number"]) == (
        "shipment-12", "pre_transit", "9400100208303109505657",
    )  # fmt: skip
    assert shipment["estimated_delivery"] == {"from": "2026-11-05T09:00:00Z",
                                              "until": "2026-11-05T17:00:00Z"}  # fmt: skip
    assert shipment["lines"] == [{"external_line_id": "315", "sku": "SKU-1", "quantity": 2}]
    assert result == {"channel_ref": "shipment-12", "callback_status": 204}


def test_a_forged_signature_would_not_pass(httpserver, channel):
    httpserver.expect_request(CALLBACK, method="POST").respond_with_data("ok")
    custom.CustomWriteback().push(an_update(channel.pk))
    [(request, _)] = httpserver.log
    with pytest.raises(SignatureInvalid):
        signatures.timestamped_hmac(secret="another-secret", body=request.data,
                                    header_value=request.headers["X-Signature"],
                                    now=datetime.now(UTC))  # fmt: skip


def test_the_schema_refuses_what_it_does_not_describe():
    body = custom.event_body(an_update(1))
    assert jsonschemas.errors("channels", custom.SCHEMA, body) == []
    body["shipment"]["customer_email"] = "someone@example.com"
    assert jsonschemas.errors("channels", custom.SCHEMA, body) != []


@pytest.mark.parametrize(("status", "retryable"), [(400, False), (410, False), (408, True),
                                                   (429, True), (500, True)])  # fmt: skip
def test_refusals_and_retryable_answers(httpserver, channel, status, retryable):
    httpserver.expect_request(CALLBACK, method="POST").respond_with_json(
        {"code": "unknown_order", "message": "No such order"}, status=status
    )
    with pytest.raises(WritebackError) as caught:
        custom.CustomWriteback().push(an_update(channel.pk))
    assert caught.value.retryable is retryable and caught.value.status == status
    if not retryable:
        assert "unknown_order: No such order" in str(caught.value)


# --- through the outbox ------------------------------------------------------------------------
class LoopbackStorefront:
    """Keeps each event once by its Idempotency-Key; can fail (503, 400) or answer late."""

    def __init__(self) -> None:
        self.events: dict[str, dict] = {}
        self.keys: list[str] = []
        self.bodies: list[bytes] = []
        self.fail_with: list[int] = []
        self.slow_reply = 0.0

    def handler(self, request: Request) -> Response:
        body = verified(request)
        key = request.headers["Idempotency-Key"]
        self.keys.append(key)
        self.bodies.append(request.data)
        if self.fail_with:
            status = self.fail_with.pop(0)
            return Response(json.dumps({"message": "order is archived"}), status=status,
                            content_type="application/json")  # fmt: skip
        self.events.setdefault(key, body)
        if self.slow_reply:
            time.sleep(self.slow_reply)
            self.slow_reply = 0.0
        return Response("", status=204)


@pytest.fixture
def storefront(httpserver: HTTPServer) -> LoopbackStorefront:
    server = LoopbackStorefront()
    httpserver.expect_request(CALLBACK, method="POST").respond_with_handler(server.handler)
    return server


@pytest.mark.pipeline
def test_outbox_one_event_after_a_503_and_a_timeout(storefront, channel, settings):
    settings.CHANNEL_HTTP_TIMEOUT = (2.0, 0.5)
    order, [parcel] = shipped_order(channel, external_id="SF-1001", in_stock=True,
                                    lines=[("MUG", "sf-line-1", 2)])  # fmt: skip
    [action] = writebacks(order)
    storefront.fail_with = [503]
    assert drain_now()["rescheduled"] == 1
    storefront.slow_reply = 1.5
    assert drain_now()["rescheduled"] == 1
    time.sleep(1.2)  # the loopback serves one request at a time: let it finish the slow one
    assert drain_now()["succeeded"] == 1

    assert storefront.keys == [action.idempotency_key] * 3  # one key, every attempt
    [event] = storefront.events.values()  # the storefront keeps it once
    assert event["shipment"]["tracking_number"] == parcel.tracking_number
    assert event["shipment"]["lines"] == [{"external_line_id": "sf-line-1", "sku": "MUG",
                                           "quantity": 2}]  # fmt: skip
    assert event["order"] == {"external_id": "SF-1001", "order_number": order.order_number,
                              "fully_shipped": True}  # fmt: skip
    customer = order.customer
    for raw in storefront.bodies:  # no personal data on the wire
        assert customer.email.encode() not in raw and customer.name.encode() not in raw


@pytest.mark.pipeline
def test_outbox_a_refusal_is_a_dead_action_and_a_channel_sync_incident(storefront, channel):
    order, _parcels = shipped_order(
        channel, external_id="SF-1002", in_stock=True, lines=[("MUG", "", 1)]
    )
    storefront.fail_with = [422]
    assert drain_now()["dead"] == 1
    [action] = writebacks(order)
    assert action.status == "dead" and "order is archived" in action.last_error
    assert Incident.objects.filter(category="channel_sync_failed", order=order).count() == 1
    assert storefront.events == {}
