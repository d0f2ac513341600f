"""USPS Addresses API v3 against a real HTTP server on loopback, fed the documented answers
(USPS's OpenAPI, addresses 3.0.x: AddressResponse, ErrorMessage and its examples)."""

from __future__ import annotations

import json
import logging
import time

import pytest
from django.core.cache import cache
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from config import correlation
from orders import validation
from orders.adapters.base import AddressInput, VerifierUnavailable
from orders.adapters.usps import USPSAddressVerifier
from orders.models import Incident
from orders.validation.address import AddressCheck
from tests.orders.adapters import WHITE_HOUSE, closed_port_url, order_with, slow_server

TOKEN = {
    "access_token": "eyJ-test-token",
    "token_type": "Bearer",
    "issued_at": 1761998400000,
    "expires_in": 28799,
    "status": "approved",
    "scope": "addresses",
    "issuer": "api.usps.com",
    "client_id": "client-123",
}


def address_response(dpv: str) -> dict:
    return {
        "firm": "",
        "address": {
            "streetAddress": "1600 PENNSYLVANIA AVE NW",
            "streetAddressAbbreviation": "1600 PENNSYLVANIA AVE NW",
            "secondaryAddress": "",
            "cityAbbreviation": "WASHINGTON",
            "city": "WASHINGTON",
            "state": "DC",
            "ZIPCode": "20500",
            "ZIPPlus4": "0005",
            "urbanization": "",
        },
        "additionalInfo": {
            "deliveryPoint": "00",
            "carrierRoute": "C000",
            "DPVConfirmation": dpv,
            "DPVCMRA": "N",
            "business": "Y",
            "centralDeliveryPoint": "N",
            "vacant": "N",
        },
        "corrections": [{"code": "", "text": ""}],
        "matches": [{"code": "31", "text": "Single Response - exact match"}],
    }


NOT_FOUND = {
    "apiVersion": "v1",
    "error": {
        "code": "404",
        "message": "There is no match for the address requested.",
        "errors": [],
    },
}
MULTIPLE = {
    "apiVersion": "v1",
    "error": {
        "code": "404",
        "message": "More than one address was found matching the requested address.",
        "errors": [],
    },
}
INVALID_CITY = {
    "apiVersion": "v1",
    "error": {"code": "400", "message": "The city in the request is missing or invalid."},
}
EXPECTED_QUERY = {
    "streetAddress": "1600 Pennsylvania Ave NW",
    "city": "WASHINGTON",
    "state": "DC",
    "ZIPCode": "20500",
}


@pytest.fixture(autouse=True)
def usps(settings, httpserver: HTTPServer, db):
    settings.ADDRESS_VERIFIER = "usps"
    settings.USPS_API_BASE = httpserver.url_for("/")
    settings.USPS_CLIENT_ID = "client-123"
    settings.USPS_CLIENT_SECRET = "s3cret-value"
    settings.ADDRESS_VERIFIER_BACKOFF = 0
    settings.ADDRESS_VERIFIER_TIMEOUT = (1.0, 0.3)
    cache.clear()
    yield httpserver
    cache.clear()


def expect_token(httpserver: HTTPServer, forms: list[dict]) -> None:
    def handler(request: Request) -> Response:
        forms.append(request.form.to_dict())
        return Response(json.dumps(TOKEN), content_type="application/json")

    httpserver.expect_request("/oauth2/v3/token", method="POST").respond_with_handler(handler)


def expect_address(httpserver: HTTPServer, body: dict, status: int = 200, **kw) -> None:
    httpserver.expect_request(
        "/addresses/v3/address",
        method="GET",
        query_string=kw.pop("query", EXPECTED_QUERY),
        headers={"Authorization": "Bearer eyJ-test-token"},
    ).respond_with_json(body, status=status)


def address_calls(httpserver: HTTPServer) -> int:
    return sum(1 for req, _ in httpserver.log if req.path == "/addresses/v3/address")


def test_dpv_y_is_confirmed_and_the_token_exchange_sends_client_credentials(usps):
    forms: list[dict] = []
    expect_token(usps, forms)
    expect_address(usps, address_response("Y"))
    with correlation.bound("c-usps-test-0001"):
        result = AddressCheck().run(order_with(WHITE_HOUSE))
    assert result.outcome == validation.PASSED
    assert result.details["deliverability"] == "confirmed"
    assert result.details["confidence"] == "1.00"
    assert result.details["source"] == "usps"
    assert forms == [
        {
            "grant_type": "client_credentials",
            "client_id": "client-123",
            "client_secret": "s3cret-value",
        }
    ]
    for request, _ in usps.log:
        assert request.headers["X-Correlation-ID"] == "c-usps-test-0001"
    usps.check_assertions()


@pytest.mark.parametrize("dpv", ["D", "S"])
def test_dpv_d_or_s_is_likely(usps, dpv):
    expect_token(usps, [])
    expect_address(usps, address_response(dpv))
    result = AddressCheck().run(order_with(WHITE_HOUSE))
    assert result.outcome == validation.PASSED
    assert (result.details["deliverability"], result.details["confidence"]) == ("likely", "0.70")


def test_secondary_address_and_zip_plus_4_are_sent(usps):
    expect_token(usps, [])
    query = {**EXPECTED_QUERY, "secondaryAddress": "Suite 100", "ZIPPlus4": "0005"}
    expect_address(usps, address_response("Y"), query=query)
    address = {**WHITE_HOUSE, "line2": "Suite 100", "postal_code": "20500-0005"}
    assert AddressCheck().run(order_with(address)).details["deliverability"] == "confirmed"


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (404, NOT_FOUND, "not_found"),
        (400, INVALID_CITY, "invalid_address"),
        (200, address_response("N"), "dpv_N"),
    ],
)
def test_not_found_or_dpv_n_is_undeliverable_and_holds_the_order(usps, db, status, body, reason):
    expect_token(usps, [])
    expect_address(usps, body, status=status)
    validation.register(AddressCheck())
    try:
        order = validation.order_validate(order_id=order_with(WHITE_HOUSE).pk)
    finally:
        validation.unregister("address")
    assert order.status == "on_hold"
    incident = Incident.objects.get(order=order, category="address_undeliverable")
    assert incident.details["reason"] == reason
    assert incident.details["deliverability"] == "undeliverable"
    assert "Pennsylvania" not in incident.summary and "20500" not in incident.summary


def test_multiple_matches_are_likely_not_undeliverable(usps):
    expect_token(usps, [])
    expect_address(usps, MULTIPLE, status=404)
    result = AddressCheck().run(order_with(WHITE_HOUSE))
    assert result.outcome == validation.PASSED
    assert (result.details["deliverability"], result.details["confidence"]) == ("likely", "0.50")


def test_a_500_is_tried_once_more_and_the_second_answer_counts(usps):
    """Policy: one more try after a 5xx or a failed connection, none after a read timeout."""
    expect_token(usps, [])
    usps.expect_oneshot_request("/addresses/v3/address").respond_with_data("oops", status=500)
    usps.expect_oneshot_request("/addresses/v3/address").respond_with_json(address_response("Y"))
    result = AddressCheck().run(order_with(WHITE_HOUSE))
    assert result.details["deliverability"] == "confirmed"
    assert address_calls(usps) == 2


def test_5xx_twice_warns_and_falls_back_to_the_offline_check(usps):
    expect_token(usps, [])
    usps.expect_request("/addresses/v3/address").respond_with_data("down", status=503)
    result = AddressCheck().run(order_with(WHITE_HOUSE))
    assert result.outcome == validation.WARNING
    assert "offline check only" in result.message
    assert result.details["source"] == "offline"
    assert result.details["deliverability"] == "unknown"
    assert result.details["fallback"] == "offline check only"
    assert result.details["retryable"] is True
    assert address_calls(usps) == 2
    # Nothing is cached for an unanswered question: the next run asks again.
    AddressCheck().run(order_with(WHITE_HOUSE))
    assert address_calls(usps) == 4


def test_429_is_not_retried_and_warns(usps):
    expect_token(usps, [])
    usps.expect_request("/addresses/v3/address").respond_with_json(
        {"apiVersion": "v1", "error": {"code": "429", "message": "Too Many Requests"}}, status=429
    )
    result = AddressCheck().run(order_with(WHITE_HOUSE))
    assert result.outcome == validation.WARNING
    assert address_calls(usps) == 1


def test_a_read_timeout_warns_within_the_timeout_and_is_not_retried(settings):
    body = json.dumps(address_response("Y"))
    with slow_server(
        "/addresses/v3/address", delay=1.0, body=body, fast={"/oauth2/v3/token": TOKEN}
    ) as (server, calls):
        settings.USPS_API_BASE = server.url_for("/")
        started = time.monotonic()
        result = AddressCheck().run(order_with(WHITE_HOUSE))
        elapsed = time.monotonic() - started
    assert result.outcome == validation.WARNING
    assert "offline check only" in result.message
    assert "timed out" in result.details["verifier_error"]
    assert len(calls) == 1
    assert elapsed < 0.9  # the 0.3 s read timeout, not the server's 1 s


def test_connection_refused_warns_and_the_pipeline_does_not_hold_the_order(settings, db):
    settings.USPS_API_BASE = closed_port_url()
    saved = validation.registered()
    for check in saved:  # only this check: the others' verdicts are not under test here
        validation.unregister(check.name)
    validation.register(AddressCheck())
    try:
        order = validation.order_validate(order_id=order_with(WHITE_HOUSE).pk)
    finally:
        validation.unregister("address")
        for check in saved:
            validation.register(check)
    assert order.status != "on_hold"  # validated (then allocated or backordered: not ours)
    assert not Incident.objects.filter(order=order, category__startswith="address").exists()
    event = order.events.get(action="check", data__check="address")
    assert event.data["outcome"] == "warning"
    assert "offline check only" in event.data["message"]
    assert "could not reach" in event.data["details"]["verifier_error"]


def test_the_token_is_cached_across_addresses(usps):
    forms: list[dict] = []
    expect_token(usps, forms)
    usps.expect_request("/addresses/v3/address").respond_with_json(address_response("Y"))
    AddressCheck().run(order_with(WHITE_HOUSE))
    AddressCheck().run(order_with({**WHITE_HOUSE, "line1": "1650 Pennsylvania Ave NW"}))
    assert len(forms) == 1
    assert address_calls(usps) == 2


def test_a_refused_token_is_renewed_once(usps):
    forms: list[dict] = []
    expect_token(usps, forms)
    usps.expect_oneshot_request("/addresses/v3/address").respond_with_json(
        {"apiVersion": "v1", "error": {"code": "401", "message": "Unauthorized"}}, status=401
    )
    usps.expect_oneshot_request("/addresses/v3/address").respond_with_json(address_response("Y"))
    result = AddressCheck().run(order_with(WHITE_HOUSE))
    assert result.details["deliverability"] == "confirmed"
    assert len(forms) == 2


def test_bad_credentials_warn_and_are_not_retryable(usps):
    usps.expect_request("/oauth2/v3/token", method="POST").respond_with_json(
        {"error": "invalid_client", "error_description": "bad client"}, status=401
    )
    result = AddressCheck().run(order_with(WHITE_HOUSE))
    assert result.outcome == validation.WARNING
    assert result.details["retryable"] is False


def test_a_second_identical_address_is_answered_from_the_cache(usps):
    expect_token(usps, [])
    expect_address(usps, address_response("Y"))
    first = AddressCheck().run(order_with(WHITE_HOUSE))
    requests_before = len(usps.log)
    # Same address, other spelling of the state and spacing: the same normalized address.
    second = AddressCheck().run(order_with({**WHITE_HOUSE, "region_code": "dc"}))
    assert len(usps.log) == requests_before
    assert first.details["cached"] is False and second.details["cached"] is True
    assert second.details["deliverability"] == "confirmed"


def test_the_cache_lasts_address_cache_seconds(usps, settings):
    settings.ADDRESS_CACHE_SECONDS = 0  # Django: 0 means "expire at once"
    expect_token(usps, [])
    expect_address(usps, address_response("Y"))
    AddressCheck().run(order_with(WHITE_HOUSE))
    AddressCheck().run(order_with(WHITE_HOUSE))
    assert address_calls(usps) == 2


def test_logs_carry_no_address_and_no_secret(usps, caplog):
    expect_token(usps, [])
    usps.expect_request("/addresses/v3/address").respond_with_data("down", status=503)
    with caplog.at_level(logging.DEBUG):
        AddressCheck().run(order_with(WHITE_HOUSE))
    # Ours only: urllib3's DEBUG lines and the test server's access log quote the URL.
    ours = [r for r in caplog.records if r.name.startswith("orders")]
    text = "\n".join(str(r.msg) + repr(r.args) for r in ours)
    assert "address_verifier.failed" in text and "address.verifier_unavailable" in text
    for secret in ("Pennsylvania", "20500", "s3cret", "eyJ-test-token"):
        assert secret not in text, secret


def test_adapter_answers_with_a_dataclass(usps):
    expect_token(usps, [])
    expect_address(usps, address_response("Y"))
    address = AddressInput(
        line1="1600 Pennsylvania Ave NW", city="WASHINGTON", region_code="DC",
        postal_code="20500", country_code="US",
    )  # fmt: skip
    with USPSAddressVerifier() as verifier:
        verification = verifier.verify(address)
    assert (verification.deliverability, verification.reason) == ("confirmed", "dpv_Y")


def test_missing_credentials_are_a_configuration_error(settings):
    settings.USPS_CLIENT_ID = ""
    with USPSAddressVerifier() as verifier, pytest.raises(VerifierUnavailable) as caught:
        verifier.verify(
            AddressInput(
                line1="1", city="X", region_code="DC", postal_code="20500", country_code="US"
            )  # fmt: skip
        )
    assert caught.value.retryable is False
