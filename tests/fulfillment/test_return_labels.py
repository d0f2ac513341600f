"""Return labels (bought through the outbox) and the return parcel's tracking to its pickup."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest
from pypdf import PdfReader
from pytest_httpserver import HTTPServer

from fulfillment.models import ActionKind, OutboundAction, ReturnPolicy
from fulfillment.outbox.services import action_dispatch
from fulfillment.return_labels import return_label_response
from fulfillment.returns import ReturnLineRequest, return_request
from fulfillment.returns_tracking import return_ids_to_poll, return_track_poll
from fulfillment.tracking_poll import tracking_poll_round
from orders.actors import Actor
from orders.models import Refund
from tests.fulfillment.carriers.test_easypost import (
    API_KEY,
    BOUGHT_ID,
    GROUND_RATE_ID,
    TRACKING_CODE,
    created_shipment,
    sample_bytes,
)
from tests.fulfillment.test_close_orders import delivered

pytestmark = pytest.mark.django_db

CS = Actor.system("cs")


@pytest.fixture(autouse=True)
def quiet(settings):
    settings.CRM_TARGETS = []
    settings.RETURN_WINDOW_DAYS_DEFAULT = 30
    settings.LOCAL_CARRIER_TRACKING_STEP_SECONDS = 0  # the simulator tells its whole story
    settings.LOCAL_CARRIER_EXCEPTION_RATE = 0


def _authorized_return(**policy):
    ReturnPolicy.objects.create(**{"name": "Standard", "window_days": 30,
                                   "auto_authorize_limit": Decimal("100"), **policy})  # fmt: skip
    order, _parcel = delivered()
    line = order.lines.get()
    ret = return_request(order_id=order.pk, via="status_page", actor=CS,
                         lines=[ReturnLineRequest(line.pk, 1, "damaged")])  # fmt: skip
    assert ret.status == "authorized"
    return order, ret


def _label_action(ret) -> OutboundAction:
    return OutboundAction.objects.get(kind=ActionKind.RETURN_LABEL, payload={"return_id": ret.pk})


def test_an_authorized_return_gets_one_local_return_label_pdf_with_its_rma_number():
    order, ret = _authorized_return()
    action = _label_action(ret)
    assert (action.target, action.version) == ("local", ret.pk)

    assert action_dispatch(action_id=action.pk) == "succeeded"
    ret.refresh_from_db()
    pdf = bytes(ret.label_pdf)
    assert pdf.startswith(b"%PDF")
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert "RETURN" in text and ret.rma_number in text
    assert ret.label_carrier == "local" and ret.label_service == "Local Ground"
    assert ret.tracking_number.startswith("LC") and ret.tracking_status == "pre_transit"
    action.refresh_from_db()
    assert action.result["tracking_number"] == ret.tracking_number
    assert set(action.result) == {"return_id", "rma_number", "carrier", "tracking_number",
                                  "status"}  # fmt: skip
    [event] = order.events.filter(action="return_label_purchased")
    assert event.data["tracking_number"] == ret.tracking_number
    assert "address" not in json.dumps(event.data) and "name" not in event.data

    # Run again (a retried action, a second worker): no second label.
    from fulfillment.return_labels import return_label_purchase

    again = return_label_purchase(return_id=ret.pk, carrier_code="local", actor=CS)
    assert again.tracking_number == ret.tracking_number and bytes(again.label_pdf) == pdf
    assert order.events.filter(action="return_label_purchased").count() == 1

    response = return_label_response(again)
    assert response is not None and response["Content-Type"] == "application/pdf"
    assert ret.rma_number in response["Content-Disposition"]


@pytest.fixture
def easypost(httpserver: HTTPServer, settings) -> HTTPServer:
    settings.EASYPOST_API_BASE = httpserver.url_for("/v2")
    settings.EASYPOST_API_KEY = API_KEY
    settings.EASYPOST_BACKOFF = 0
    settings.EASYPOST_TIMEOUT = (2.0, 5.0)
    return httpserver


def test_an_easypost_return_label_is_created_with_is_return_and_bought(easypost):
    order, ret = _authorized_return(label_carrier="easypost")
    action = _label_action(ret)
    assert action.target == "easypost"
    easypost.expect_request(f"/v2/shipments/{ret.rma_number}", method="GET").respond_with_json(
        {"error": {"code": "NOT_FOUND", "message": "not found", "errors": []}}, status=404
    )
    easypost.expect_request("/v2/shipments", method="POST").respond_with_json(
        created_shipment(reference=ret.rma_number)
    )
    easypost.expect_request(f"/v2/shipments/{BOUGHT_ID}/buy", method="POST").respond_with_data(
        sample_bytes("shipment_buy_response.json"), content_type="application/json"
    )

    assert action_dispatch(action_id=action.pk) == "succeeded"
    [create] = [json.loads(req.data) for req, _ in easypost.log
                if req.path == "/v2/shipments" and req.method == "POST"]  # fmt: skip
    shipment = create["shipment"]
    assert shipment["is_return"] is True and shipment["reference"] == ret.rma_number
    # EasyPost swaps the addresses of a return: we send the outbound shipment's (to: customer).
    assert shipment["to_address"]["country"] == order.shipping_address["country_code"]
    assert shipment["from_address"]["name"] == "A"
    [buy] = [json.loads(req.data) for req, _ in easypost.log if req.path.endswith("/buy")]
    assert buy == {"rate": {"id": GROUND_RATE_ID}}
    ret.refresh_from_db()
    assert (ret.label_carrier, ret.tracking_number, ret.carrier_shipment_id) == (
        "easypost", TRACKING_CODE, BOUGHT_ID)  # fmt: skip
    assert ret.label_url.startswith("https://") and ret.label_pdf is None


def test_a_pickup_policy_refunds_the_return_when_the_carrier_has_the_parcel():
    order, ret = _authorized_return(refund_trigger="pickup")
    action_dispatch(action_id=_label_action(ret).pk)
    assert return_ids_to_poll() == [ret.pk]

    summary = tracking_poll_round(all_in_flight=True)
    assert summary["returns"] == {"picked_up": 1}
    ret.refresh_from_db()
    assert ret.picked_up_at is not None and ret.tracking_status == "delivered"
    assert ret.status == "refunded"
    refund = Refund.objects.get(order=order)
    assert refund.source == "rma" and refund.external_id == ret.rma_number
    assert order.events.filter(action="return_picked_up").count() == 1
    assert return_ids_to_poll() == []
    assert return_track_poll(return_id=ret.pk) == "skipped"  # picked up: not asked again


def test_a_receipt_policy_does_not_refund_at_pickup():
    order, ret = _authorized_return(refund_trigger="receipt")
    action_dispatch(action_id=_label_action(ret).pk)
    assert return_track_poll(return_id=ret.pk) == "picked_up"
    ret.refresh_from_db()
    assert ret.picked_up_at is not None and ret.status == "authorized"
    assert not Refund.objects.filter(order=order).exists()


def test_a_return_without_a_label_is_not_polled():
    _order, ret = _authorized_return()
    assert return_ids_to_poll() == []
    assert return_track_poll(return_id=ret.pk) == "skipped"


def test_an_easypost_tracker_webhook_for_a_return_parcel_is_its_pickup(
    client, settings, django_capture_on_commit_callbacks
):
    from fulfillment.models import Return
    from orders.models import Incident
    from tests.fulfillment.test_carrier_webhooks import URL, signed_body, vector

    settings.EASYPOST_WEBHOOK_SECRET = vector()["secret"]
    order, ret = _authorized_return(refund_trigger="pickup")
    # Test data: the return label was EasyPost's, under the sample tracker's code.
    Return.objects.filter(pk=ret.pk).update(label_carrier="easypost", tracking_number="1")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(URL, data=signed_body(), content_type="application/json",
                               HTTP_X_HMAC_SIGNATURE=vector()["hmac_signature"])  # fmt: skip
    assert response.status_code == 200, response.content
    ret.refresh_from_db()
    assert ret.tracking_status == "in_transit" and ret.picked_up_at is not None
    assert ret.status == "refunded"
    assert Refund.objects.filter(order=order, source="rma").exists()
    assert not Incident.objects.filter(order=order).exists()
