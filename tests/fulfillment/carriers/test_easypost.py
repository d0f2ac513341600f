"""EasyPost against a real HTTP server on loopback, fed EasyPost's own published responses
(``../shared/samples/easypost``, see SOURCES.md) exactly as they are.

The one thing the samples lack is an unpurchased shipment (the answer to ``POST /shipments``):
``created_shipment()`` DERIVES it from the buy response's shipment by removing what only a
purchase adds. Error bodies follow the error object of EasyPost's docs (docs.easypost.com/docs/
errors); the adapter reads their shape, not any particular code.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from config import correlation
from fulfillment.carriers import NoRateAvailable, cheapest_rate
from fulfillment.carriers.base import CarrierError, Label, Rate
from fulfillment.carriers.easypost import (
    EasyPostCarrier,
    EasyPostError,
    ounces,
    rate_from_easypost,
    service_level_for,
    tracking_from_tracker,
    tracking_status,
    verify_webhook,
)
from tests.fulfillment.carriers import domestic, international

SAMPLES = Path(django_settings.BASE_DIR).parent / "shared" / "samples" / "easypost"
API_KEY = "EZTK_test_0123456789"
BOUGHT_ID = "shp_16578f588f9546ec914afd2474e24ff5"
GROUND_RATE_ID = "rate_4d1f36fa716c4b1292cacbdf19227c2d"
TRACKING_CODE = "9400100208303109505657"


def sample_bytes(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def sample(name: str) -> Any:
    return json.loads(sample_bytes(name))


def serve(server: HTTPServer, path: str, name: str, *, method: str = "GET", **match: Any) -> None:
    """Answer ``path`` with the sample file's bytes, unchanged."""
    server.expect_request(path, method=method, **match).respond_with_data(
        sample_bytes(name), content_type="application/json"
    )


def created_shipment(reference: str = "shipment-1") -> dict[str, Any]:
    """DERIVED, not a vendor sample: the bought shipment as it was before ``/buy`` (same id,
    rates, addresses, parcel), without the label, tracking code, tracker, selected rate, fees."""
    shipment = copy.deepcopy(sample("shipment_buy_response.json"))
    shipment.update(
        reference=reference, tracking_code=None, postage_label=None, selected_rate=None,
        tracker=None, fees=[], forms=[],
    )  # fmt: skip
    return shipment


def easypost_error(status: int, code: str, message: str, errors: list | None = None) -> Response:
    body = {"error": {"code": code, "message": message, "errors": errors or []}}
    return Response(json.dumps(body), status=status, content_type="application/json")


def not_found(server: HTTPServer, reference: str) -> None:
    server.expect_request(f"/v2/shipments/{reference}", method="GET").respond_with_response(
        easypost_error(404, "NOT_FOUND", "The requested resource could not be found.")
    )


def sent_json(server: HTTPServer, path: str) -> list[dict[str, Any]]:
    return [json.loads(req.data) for req, _ in server.log if req.path == path and req.data]


def calls(server: HTTPServer, path: str, method: str | None = None) -> int:
    return sum(1 for req, _ in server.log if req.path == path and method in (None, req.method))


@pytest.fixture
def easypost(httpserver: HTTPServer, settings) -> HTTPServer:
    settings.EASYPOST_API_BASE = httpserver.url_for("/v2")
    settings.EASYPOST_API_KEY = API_KEY
    settings.EASYPOST_BACKOFF = 0  # retries against loopback need no waiting
    settings.EASYPOST_TIMEOUT = (2.0, 5.0)
    return httpserver


def bought_rate() -> Rate:
    rates = sample("shipment_buy_response.json")["rates"]
    return rate_from_easypost(next(r for r in rates if r["id"] == GROUND_RATE_ID))


# --- rates -------------------------------------------------------------------------------------
def test_rates_create_a_shipment_and_map_every_rate(easypost):
    not_found(easypost, "shipment-1")
    easypost.expect_request("/v2/shipments", method="POST").respond_with_json(created_shipment())
    rates = EasyPostCarrier().rates(domestic())
    mapped = {r.service: (r.service_level, r.amount, r.currency, r.delivery_days) for r in rates}
    assert mapped == {
        "USPS Express": ("express", Decimal("34.15"), "USD", 1),
        "USPS Priority": ("express", Decimal("7.42"), "USD", 2),
        "USPS GroundAdvantage": ("ground", Decimal("6.07"), "USD", 3),
    }
    assert {r.carrier for r in rates} == {"easypost"}
    assert {r.carrier_shipment_id for r in rates} == {BOUGHT_ID}
    assert GROUND_RATE_ID in {r.rate_id for r in rates}

    assert cheapest_rate(rates, "economy").service == "USPS GroundAdvantage"
    assert cheapest_rate(rates, "ground").rate_id == GROUND_RATE_ID
    assert cheapest_rate(rates, "express").service == "USPS Priority"
    with pytest.raises(NoRateAvailable):
        cheapest_rate(rates, "premium")


def test_the_shipment_request_carries_addresses_parcel_options_and_reference(easypost):
    not_found(easypost, "shipment-1")
    easypost.expect_request("/v2/shipments", method="POST").respond_with_json(created_shipment())
    EasyPostCarrier().rates(domestic(signature_required=True))
    [body] = sent_json(easypost, "/v2/shipments")
    shipment = body["shipment"]
    assert shipment["reference"] == "shipment-1"
    assert shipment["to_address"] == {
        "name": "Resident Occupant", "street1": "1600 Pennsylvania Ave NW", "city": "Washington",
        "state": "DC", "zip": "20500", "country": "US",
    }  # fmt: skip
    assert shipment["from_address"]["company"] == "Orderdesk Demo"
    assert shipment["parcel"] == {"weight": 42.4}  # 1200 g = 42.33 oz, rounded up to a tenth
    assert shipment["options"]["label_format"] == "PDF"
    assert shipment["options"]["delivery_confirmation"] == "SIGNATURE"
    assert "customs_info" not in shipment


def test_international_rates_declare_customs(easypost):
    not_found(easypost, "shipment-2")
    easypost.expect_request("/v2/shipments", method="POST").respond_with_json(
        created_shipment("shipment-2")
    )
    EasyPostCarrier().rates(international())
    [body] = sent_json(easypost, "/v2/shipments")
    customs = body["shipment"]["customs_info"]
    assert customs["customs_certify"] is True and customs["customs_signer"] == "Orderdesk Demo"
    assert customs["contents_type"] == "merchandise" and customs["eel_pfc"] == "NOEEI 30.37(a)"
    assert customs["customs_items"][0] == {
        "description": "Cotton t-shirts", "quantity": 2, "value": "23.25", "currency": "USD",
        "weight": 14.2, "code": "TSHIRT-BLK-M", "hs_tariff_number": "610910",
        "origin_country": "PT",
    }  # fmt: skip
    assert body["shipment"]["to_address"]["country"] == "FR"


def test_requests_carry_the_api_key_and_the_correlation_id(easypost):
    not_found(easypost, "shipment-1")
    easypost.expect_request("/v2/shipments", method="POST").respond_with_json(created_shipment())
    EasyPostCarrier().rates(domestic())
    assert len(easypost.log) == 2
    expected_auth = "Basic " + base64.b64encode(f"{API_KEY}:".encode()).decode()
    for request, _ in easypost.log:
        assert request.headers["X-Correlation-ID"] == "c-0123456789abcdef0123456789abcdef"
        assert request.headers["Authorization"] == expected_auth


def test_not_finding_our_reference_is_the_normal_path_not_a_failure(easypost, caplog):
    not_found(easypost, "shipment-1")
    easypost.expect_request("/v2/shipments", method="POST").respond_with_json(created_shipment())
    with caplog.at_level(logging.DEBUG):
        EasyPostCarrier().rates(domestic())
    assert not [r for r in caplog.records if "easypost.failed" in str(r.msg)]


def test_when_the_reference_lookup_fails_nothing_is_created(easypost, settings):
    # Unknown whether a label was bought under this reference: creating (and later buying) a
    # second shipment could pay twice, so the call fails retryable instead.
    settings.EASYPOST_RETRIES = 1
    easypost.expect_request("/v2/shipments/shipment-1").respond_with_data("down", status=503)
    with pytest.raises(EasyPostError) as caught:
        EasyPostCarrier().rates(domestic())
    assert caught.value.retryable is True
    assert calls(easypost, "/v2/shipments/shipment-1") == 2
    assert calls(easypost, "/v2/shipments", "POST") == 0


def test_a_shipment_with_no_rates_says_what_the_carriers_said(easypost):
    not_found(easypost, "shipment-1")
    shipment = created_shipment()
    shipment.update(rates=[], messages=[
        {"carrier": "USPS", "type": "rate_error", "message": "Unable to retrieve rates."}
    ])  # fmt: skip
    easypost.expect_request("/v2/shipments", method="POST").respond_with_json(shipment)
    with pytest.raises(EasyPostError) as caught:
        EasyPostCarrier().rates(domestic())
    assert "USPS: Unable to retrieve rates." in str(caught.value)
    assert caught.value.retryable is False


# --- buy ---------------------------------------------------------------------------------------
def test_buy_returns_the_label_easypost_sold(easypost):
    serve(easypost, f"/v2/shipments/{BOUGHT_ID}/buy", "shipment_buy_response.json", method="POST")
    label = EasyPostCarrier().buy(domestic(), bought_rate())
    assert label.tracking_number == TRACKING_CODE
    assert label.carrier == "easypost" and label.carrier_shipment_id == BOUGHT_ID
    assert label.service == "USPS GroundAdvantage"
    assert label.rate.amount == Decimal("6.07") and label.rate.service_level == "ground"
    assert label.label_url.startswith("https://easypost-files.s3.us-west-2.amazonaws.com/")
    assert label.label_url.endswith(".png")  # label_pdf_url is null in this test-mode answer
    assert label.tracking_url == (
        "https://track.easypost.com/djE6dHJrXzI3OTQzMTU2MmVmODRhZjg5NTU1ZTVjOGEyMDI5YjJm"
    )
    assert sent_json(easypost, f"/v2/shipments/{BOUGHT_ID}/buy") == [
        {"rate": {"id": GROUND_RATE_ID}}
    ]


@pytest.mark.parametrize("public_url", [
    "javascript:alert(document.cookie)", "http://track.easypost.com/x", "data:text/html,<b>x</b>",
    "https://user:pw@track.easypost.com/x", " https://track.easypost.com/x",
])  # fmt: skip
def test_a_tracking_link_that_is_not_plain_https_is_dropped_not_passed_on(easypost, public_url):
    answer = sample("shipment_buy_response.json")
    answer["tracker"]["public_url"] = public_url
    easypost.expect_request(f"/v2/shipments/{BOUGHT_ID}/buy", method="POST").respond_with_json(
        answer
    )
    label = EasyPostCarrier().buy(domestic(), bought_rate())
    assert label.tracking_number == TRACKING_CODE  # the label itself is fine
    assert label.tracking_url == ""


def test_buying_an_already_bought_shipment_returns_its_label_without_buying_again(easypost):
    # Our first /buy went through but its answer was lost; the retry is refused.
    easypost.expect_request(f"/v2/shipments/{BOUGHT_ID}/buy", method="POST").respond_with_response(
        easypost_error(422, "SHIPMENT.POSTAGE.EXISTS", "Postage already exists for this shipment.")
    )
    serve(easypost, f"/v2/shipments/{BOUGHT_ID}", "shipment_buy_response.json")
    label = EasyPostCarrier().buy(domestic(), bought_rate())
    assert label.tracking_number == TRACKING_CODE
    assert label.rate.amount == Decimal("6.07")
    assert calls(easypost, f"/v2/shipments/{BOUGHT_ID}/buy") == 1


def test_a_refused_buy_with_nothing_bought_stays_refused(easypost):
    easypost.expect_request(f"/v2/shipments/{BOUGHT_ID}/buy", method="POST").respond_with_response(
        easypost_error(422, "SHIPMENT.RATE.INVALID", "A valid rate must be supplied.")
    )
    easypost.expect_request(f"/v2/shipments/{BOUGHT_ID}").respond_with_json(created_shipment())
    with pytest.raises(EasyPostError) as caught:
        EasyPostCarrier().buy(domestic(), bought_rate())
    assert caught.value.retryable is False and caught.value.status == 422
    assert "A valid rate must be supplied." in str(caught.value)
    assert caught.value.code == "SHIPMENT.RATE.INVALID"


def test_a_retry_from_scratch_finds_the_label_bought_under_our_reference(easypost):
    # The sample shipment was created with reference "123": a retry of that request rates the
    # shipment already bought under it and gets its label; nothing is created or bought anew.
    serve(easypost, "/v2/shipments/123", "shipment_buy_response.json")
    easypost.expect_request(f"/v2/shipments/{BOUGHT_ID}/buy", method="POST").respond_with_response(
        easypost_error(422, "SHIPMENT.POSTAGE.EXISTS", "Postage already exists for this shipment.")
    )
    serve(easypost, f"/v2/shipments/{BOUGHT_ID}", "shipment_buy_response.json")
    carrier = EasyPostCarrier()
    request = domestic("123")
    label = carrier.buy(request, cheapest_rate(carrier.rates(request), "ground"))
    assert label.tracking_number == TRACKING_CODE
    assert calls(easypost, "/v2/shipments", "POST") == 0


def test_buy_refuses_a_quote_of_another_carrier(easypost):
    with pytest.raises(CarrierError) as caught:
        EasyPostCarrier().buy(
            domestic(), Rate("local", "Local Ground", "ground", Decimal(1), "USD")
        )
    assert caught.value.retryable is False
    assert easypost.log == []


# --- void --------------------------------------------------------------------------------------
def refunded_label() -> Label:
    shipment = sample("shipment_refund_response.json")
    return Label(
        carrier="easypost", service="USPS GroundAdvantage",
        tracking_number=shipment["tracking_code"], carrier_shipment_id=shipment["id"],
        rate=rate_from_easypost(shipment["selected_rate"]),
    )  # fmt: skip


def test_void_asks_easypost_for_a_refund(easypost):
    label = refunded_label()
    serve(
        easypost, f"/v2/shipments/{label.carrier_shipment_id}/refund",
        "shipment_refund_response.json", method="POST",
    )  # fmt: skip
    assert EasyPostCarrier().void(label) is True


def test_a_rejected_refund_is_not_a_void(easypost):
    label = refunded_label()
    rejected = dict(sample("shipment_refund_response.json"), refund_status="rejected")  # DERIVED
    easypost.expect_request(
        f"/v2/shipments/{label.carrier_shipment_id}/refund", method="POST"
    ).respond_with_json(rejected)
    assert EasyPostCarrier().void(label) is False


def test_a_refund_refused_because_it_was_already_submitted_counts(easypost):
    label = refunded_label()
    easypost.expect_request(
        f"/v2/shipments/{label.carrier_shipment_id}/refund", method="POST"
    ).respond_with_response(easypost_error(422, "SHIPMENT.REFUND.EXISTS", "Refund exists."))
    serve(easypost, f"/v2/shipments/{label.carrier_shipment_id}", "shipment_refund_response.json")
    assert EasyPostCarrier().void(label) is True


# --- tracking ----------------------------------------------------------------------------------
def test_track_lists_the_tracker_and_maps_its_status(easypost):
    tracker = sample("tracker_create_response.json")
    # DERIVED envelope: GET /trackers answers {"trackers": [...], "has_more": ...}.
    easypost.expect_request(
        "/v2/trackers", method="GET", query_string={"tracking_code": "EZ1000000001"}
    ).respond_with_json({"trackers": [tracker], "has_more": False})
    with correlation.bound("c-feedfacefeedfacefeedfacefeedface"):
        tracking = EasyPostCarrier().track("EZ1000000001")
    assert tracking.tracking_number == "EZ1000000001"
    assert tracking.status == "pre_transit"
    assert [e.status for e in tracking.events] == ["pre_transit", "pre_transit"]
    assert tracking.events[0].at == datetime(2025, 2, 6, 19, 48, 26, tzinfo=UTC)
    assert tracking.events[0].description == "Pre-Shipment Info Sent to USPS"
    assert tracking.events[1].location == "HOUSTON, TX"
    [(request, _)] = easypost.log
    assert request.headers["X-Correlation-ID"] == "c-feedfacefeedfacefeedfacefeedface"


def test_a_tracking_number_easypost_does_not_know_is_an_error(easypost):
    easypost.expect_request("/v2/trackers").respond_with_json({"trackers": [], "has_more": False})
    with pytest.raises(EasyPostError) as caught:
        EasyPostCarrier().track("EZ9999999999")
    assert caught.value.retryable is False


def test_a_tracker_updated_webhook_reads_as_tracking():
    event = sample("event_tracker_updated_webhook_body.json")
    tracking = tracking_from_tracker(event["result"])
    assert tracking.status == "in_transit"
    assert len(tracking.events) == 7
    assert tracking.events[0].status == "pre_transit"
    assert tracking.events[0].carrier_detail == "label_created"
    assert tracking.carrier_detail == "arrived_at_facility"  # the raw sub-status is kept
    assert tracking.carrier_name == "FedEx"
    assert tracking.estimated_delivery_from == datetime(2024, 8, 5, tzinfo=UTC)
    assert tracking.estimated_delivery_until == datetime(2024, 8, 5, 23, 59, 59, tzinfo=UTC)
    assert tracking.events[-1].at == datetime(2024, 8, 2, 18, 50, tzinfo=UTC)
    assert tracking.events[-1].location == "EDISON, NJ, US"
    assert all(e.at.tzinfo is UTC for e in tracking.events)
    assert [e.at for e in tracking.events] == sorted(e.at for e in tracking.events)


def test_the_tracker_embedded_in_a_bought_shipment_reads_as_tracking():
    tracking = tracking_from_tracker(sample("shipment_buy_response.json")["tracker"])
    assert (tracking.tracking_number, tracking.status, tracking.events) == (
        TRACKING_CODE, "unknown", []
    )  # fmt: skip


@pytest.mark.parametrize(
    ("theirs", "detail", "ours"),
    [
        ("unknown", None, "unknown"), ("pre_transit", None, "pre_transit"),
        ("in_transit", None, "in_transit"), ("out_for_delivery", None, "out_for_delivery"),
        ("available_for_pickup", None, "available_for_pickup"), ("delivered", None, "delivered"),
        ("return_to_sender", None, "return_to_sender"), ("failure", None, "exception"),
        ("failure", "address_not_found", "failed_attempt"), ("error", None, "exception"),
        ("cancelled", None, "cancelled"), ("a_status_from_the_future", None, "unknown"),
        (None, None, "unknown"),
    ],
)  # fmt: skip
def test_easypost_statuses_map_to_ours(theirs, detail, ours):
    assert tracking_status(theirs, detail) == ours


# --- service levels ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("carrier", "service", "level"),
    [
        ("USPS", "GroundAdvantage", "ground"), ("USPS", "Express", "express"),
        ("USPS", "Priority", "express"), ("USPS", "MediaMail", "economy"),
        ("UPSDAP", "NextDayAir", "premium"), ("UPS", "Ground", "ground"),
        ("UPS", "2ndDayAir", "express"), ("FedEx", "FEDEX_GROUND", "ground"),
        ("FedExSmartPost", "SMART_POST", "economy"), ("FedEx", "STANDARD_OVERNIGHT", "premium"),
        ("FedEx", "FEDEX_EXPRESS_SAVER", "express"),
        ("DHLExpress", "ExpressWorldwideNonDoc", "express"),  # by keyword
        ("CanadaPost", "RegularParcel", "ground"),  # by keyword
        ("Acme", "Mystery", "economy"),  # unknown: never meets a faster request on a guess
    ],
)  # fmt: skip
def test_service_levels_from_carrier_service_names(carrier, service, level):
    assert service_level_for(carrier, service) == level


def test_easypost_amounts_become_exact_decimals():
    rate = {"id": "rate_1", "carrier": "USPS", "service": "Priority", "rate": "6.07000",
            "currency": "USD", "delivery_days": None, "est_delivery_days": 2}  # fmt: skip
    parsed = rate_from_easypost(rate, shipment_id="shp_1")
    assert parsed.amount == Decimal("6.07") and str(parsed.amount) == "6.07"
    assert parsed.delivery_days == 2 and parsed.carrier_shipment_id == "shp_1"
    with pytest.raises(EasyPostError):
        rate_from_easypost(dict(rate, rate=6.07))  # a float is not an amount


def test_grams_become_ounces_rounded_up():
    assert ounces(1200) == Decimal("42.4")
    assert ounces(1) == Decimal("0.1")
    assert ounces(28_350) == Decimal("1000.1")  # 1000.0017 oz: never under-declared


# --- errors, retries, timeouts -----------------------------------------------------------------
ADDRESS_NOT_FOUND = [  # the example of EasyPost's errors page
    {"field": "address", "message": "Address not found", "suggestion": None},
    {"field": "street1", "message": "House number is missing", "suggestion": None},
]


def test_a_4xx_is_not_retried_and_carries_easypost_message(easypost, caplog):
    not_found(easypost, "shipment-1")
    easypost.expect_request("/v2/shipments", method="POST").respond_with_response(
        easypost_error(422, "ADDRESS.VERIFY.FAILURE", "Address not found", ADDRESS_NOT_FOUND)
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(EasyPostError) as caught:
        EasyPostCarrier().rates(domestic())
    error = caught.value
    assert (error.retryable, error.status, error.code) == (False, 422, "ADDRESS.VERIFY.FAILURE")
    assert "Address not found" in str(error) and "street1: House number is missing" in str(error)
    assert calls(easypost, "/v2/shipments", "POST") == 1
    ours = [r for r in caplog.records if r.name.startswith("fulfillment")]
    text = "\n".join(str(r.msg) + repr(r.args) for r in ours)
    assert "easypost.failed" in text and "ADDRESS.VERIFY.FAILURE" in text
    for private in ("House number", "Pennsylvania", "20500", "Resident Occupant", API_KEY):
        assert private not in text, private


@pytest.mark.parametrize("status", [503, 429])
def test_a_get_answered_503_or_429_is_retried(easypost, status):
    easypost.expect_oneshot_request("/v2/trackers").respond_with_data("busy", status=status)
    easypost.expect_request("/v2/trackers").respond_with_json(
        {"trackers": [sample("tracker_create_response.json")], "has_more": False}
    )
    assert EasyPostCarrier().track("EZ1000000001").status == "pre_transit"
    assert calls(easypost, "/v2/trackers") == 2


def test_a_get_that_keeps_failing_gives_up_retryable(easypost, settings):
    settings.EASYPOST_RETRIES = 2
    easypost.expect_request("/v2/trackers").respond_with_data("down", status=502)
    with pytest.raises(EasyPostError) as caught:
        EasyPostCarrier().track("EZ1000000001")
    assert (caught.value.retryable, caught.value.status) == (True, 502)
    assert calls(easypost, "/v2/trackers") == 3


def test_a_post_answered_503_is_not_repeated(easypost):
    easypost.expect_request(f"/v2/shipments/{BOUGHT_ID}/buy", method="POST").respond_with_data(
        "unavailable", status=503
    )
    with pytest.raises(EasyPostError) as caught:
        EasyPostCarrier().buy(domestic(), bought_rate())
    assert (caught.value.retryable, caught.value.status) == (True, 503)
    assert calls(easypost, f"/v2/shipments/{BOUGHT_ID}/buy") == 1
    assert calls(easypost, f"/v2/shipments/{BOUGHT_ID}") == 0  # a 5xx is not "already bought"


def test_a_read_timeout_is_retryable_and_quick(easypost, settings):
    settings.EASYPOST_TIMEOUT = (1.0, 0.3)
    release = threading.Event()
    seen: list[float] = []

    def slow(request: Request) -> Response:
        seen.append(time.monotonic())
        release.wait(5)
        return Response("{}", content_type="application/json")

    easypost.expect_request(f"/v2/shipments/{BOUGHT_ID}/buy").respond_with_handler(slow)
    started = time.monotonic()
    try:
        with pytest.raises(EasyPostError) as caught:
            EasyPostCarrier().buy(domestic(), bought_rate())
        elapsed = time.monotonic() - started
    finally:
        release.set()
    assert caught.value.retryable is True and caught.value.status is None
    assert "timed out" in str(caught.value)
    assert elapsed < 1.5  # the 0.3 s read timeout, not the handler's 5 s
    assert len(seen) == 1


def test_a_refused_connection_is_retryable(settings):
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.EASYPOST_API_BASE = f"http://127.0.0.1:{port}/v2"
    settings.EASYPOST_API_KEY = API_KEY
    settings.EASYPOST_BACKOFF = 0
    with pytest.raises(EasyPostError) as caught:
        EasyPostCarrier().track("EZ1000000001")
    assert caught.value.retryable is True
    assert "could not reach" in str(caught.value)


def test_a_2xx_that_is_not_json_is_retryable(easypost):
    easypost.expect_request("/v2/trackers").respond_with_data("<html>maintenance</html>")
    with pytest.raises(EasyPostError) as caught:
        EasyPostCarrier().track("EZ1000000001")
    assert caught.value.retryable is True


# --- webhooks ----------------------------------------------------------------------------------
def webhook_body() -> bytes:
    # SOURCES.md: EasyPost signed the fixture's bytes without the newline the copy ends with.
    raw = sample_bytes("event_tracker_updated_webhook_body.json")
    assert raw.endswith(b"}\n")
    return raw[:-1]


def test_the_vendor_webhook_vector_verifies():
    vector = sample("webhook_hmac_test_vector.json")
    body = webhook_body()
    assert len(body) == 3550
    headers = {"X-Hmac-Signature": vector["hmac_signature"]}
    assert verify_webhook(body, headers, vector["secret"]) is True
    # Header names are case-insensitive (Django's request.headers, or a plain dict).
    assert verify_webhook(body, {"x-hmac-signature": vector["hmac_signature"]}, vector["secret"])


def test_the_secret_is_nfkd_normalized_as_easypost_does():
    vector = sample("webhook_hmac_test_vector.json")
    secret = vector["secret"]
    nfc_digest = hmac.new(
        unicodedata.normalize("NFC", secret).encode(), webhook_body(), hashlib.sha256
    ).hexdigest()
    assert f"hmac-sha256-hex={nfc_digest}" != vector["hmac_signature"]  # the naive key fails
    assert verify_webhook(
        webhook_body(), {"X-Hmac-Signature": vector["hmac_signature"]},
        unicodedata.normalize("NFC", secret),
    )  # fmt: skip


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body, sig, secret: (body.replace(b"in_transit", b"delivered", 1), sig, secret),
        lambda body, sig, secret: (body + b"\n", sig, secret),
        lambda body, sig, secret: (body, sig, "secret"),
        lambda body, sig, secret: (body, sig.upper(), secret),
        lambda body, sig, secret: (body, sig.removeprefix("hmac-sha256-hex="), secret),
        lambda body, sig, secret: (body, "", secret),
        lambda body, sig, secret: (body, sig, ""),
        lambda body, sig, secret: (body, "hmac-sha256-hex=é", secret),
    ],
)
def test_a_tampered_webhook_fails(tamper):
    vector = sample("webhook_hmac_test_vector.json")
    body, signature, secret = tamper(webhook_body(), vector["hmac_signature"], vector["secret"])
    assert verify_webhook(body, {"X-Hmac-Signature": signature}, secret) is False


def test_a_webhook_without_the_header_fails():
    vector = sample("webhook_hmac_test_vector.json")
    assert verify_webhook(webhook_body(), {}, vector["secret"]) is False
