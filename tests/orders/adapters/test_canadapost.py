"""Canada Post AddressComplete Interactive Find against a real HTTP server on loopback, fed the
documented answers: a table of ``Items`` (Id, Type, Text, Highlight, Description), an empty
table when nothing is found, or an error table (Error, Description, Cause, Resolution)."""

from __future__ import annotations

import json
import logging
import time

import pytest
from django.core.cache import cache
from pytest_httpserver import HTTPServer

from config import correlation
from orders import validation
from orders.adapters.base import AddressInput, VerifierUnavailable
from orders.adapters.canadapost import FIND_PATH, CanadaPostAddressVerifier
from orders.models import Incident
from orders.validation.address import AddressCheck
from tests.orders.adapters import PARLIAMENT, closed_port_url, order_with, slow_server

KEY = "AA11-AA11-AA11-AA11"
EXACT = {
    "Items": [
        {
            "Id": "CAN|1016868|ENG|111-WELLINGTON-ST",
            "Type": "Address",
            "Text": "111 Wellington St",
            "Highlight": "0-3,4-14",
            "Description": "Ottawa, ON, K1A 0A9",
        }
    ]
}
OTHER_POSTCODE = {
    "Items": [{**EXACT["Items"][0], "Description": "Ottawa, ON, K1P 5J2"}]
}  # fmt: skip
CONTAINERS = {
    "Items": [
        {
            "Id": "CAN|B|1234|WELLINGTON-ST",
            "Type": "Street",
            "Text": "Wellington St",
            "Highlight": "0-10",
            "Description": "Ottawa, ON - 48 Addresses",
        },
        {
            "Id": "CAN|1016869|ENG|113-WELLINGTON-ST",
            "Type": "Address",
            "Text": "113 Wellington St",
            "Highlight": "0-3",
            "Description": "Ottawa, ON, K1A 0A4",
        },
    ]
}
NOTHING: dict = {"Items": []}
UNKNOWN_KEY = {
    "Items": [
        {
            "Error": "2",
            "Description": "Unknown key",
            "Cause": "The key you are using to access the service was not found.",
            "Resolution": "Please check that the key is correct. It should be in the form "
            "AA11-AA11-AA11-AA11.",
        }
    ]
}
SURGE = {
    "Items": [
        {
            "Error": "10",
            "Description": "Surge protector triggered",
            "Cause": "An unusually large number of requests have been processed for your account.",
            "Resolution": "Please wait and retry.",
        }
    ]
}
EXPECTED_QUERY = {
    "Key": KEY,
    "SearchTerm": "111 Wellington St, OTTAWA, ON K1A 0A9",
    "Country": "CAN",
    "LanguagePreference": "en",
}


@pytest.fixture(autouse=True)
def canadapost(settings, httpserver: HTTPServer, db):
    settings.ADDRESS_VERIFIER = "canadapost"
    settings.CANADAPOST_API_BASE = httpserver.url_for("/")
    settings.CANADAPOST_KEY = KEY
    settings.ADDRESS_VERIFIER_BACKOFF = 0
    settings.ADDRESS_VERIFIER_TIMEOUT = (1.0, 0.3)
    cache.clear()
    yield httpserver
    cache.clear()


def expect_find(httpserver: HTTPServer, body: dict, status: int = 200) -> None:
    httpserver.expect_request(
        FIND_PATH, method="GET", query_string=EXPECTED_QUERY
    ).respond_with_json(body, status=status)


def test_an_exact_match_is_confirmed_and_sends_the_documented_query(canadapost):
    expect_find(canadapost, EXACT)
    with correlation.bound("c-cp-test-0001"):
        result = AddressCheck().run(order_with(PARLIAMENT))
    assert result.outcome == validation.PASSED
    assert result.details["deliverability"] == "confirmed"
    assert result.details["confidence"] == "1.00"
    assert result.details["source"] == "canadapost"
    request, _ = canadapost.log[0]
    assert request.headers["X-Correlation-ID"] == "c-cp-test-0001"
    canadapost.check_assertions()


def test_street_spelled_out_still_matches(canadapost):
    canadapost.expect_request(FIND_PATH).respond_with_json(EXACT)
    result = AddressCheck().run(order_with({**PARLIAMENT, "line1": "111 Wellington Street"}))
    assert result.details["deliverability"] == "confirmed"


def test_the_street_without_our_postal_code_is_likely(canadapost):
    expect_find(canadapost, OTHER_POSTCODE)
    result = AddressCheck().run(order_with(PARLIAMENT))
    assert result.outcome == validation.PASSED
    assert (result.details["deliverability"], result.details["confidence"]) == ("likely", "0.70")


def test_only_other_suggestions_is_unknown_and_warns_without_holding(canadapost):
    expect_find(canadapost, CONTAINERS)
    result = AddressCheck().run(order_with(PARLIAMENT))
    assert result.outcome == validation.WARNING
    assert result.details["deliverability"] == "unknown"
    assert result.details["reason"] == "no_exact_match"
    assert not result.incident_category


def test_no_items_is_undeliverable_and_holds_the_order(canadapost):
    expect_find(canadapost, NOTHING)
    validation.register(AddressCheck())
    try:
        order = validation.order_validate(order_id=order_with(PARLIAMENT).pk)
    finally:
        validation.unregister("address")
    assert order.status == "on_hold"
    incident = Incident.objects.get(order=order, category="address_undeliverable")
    assert incident.details["source"] == "canadapost"
    assert incident.summary == "Canada Post reports the shipping address undeliverable (not_found)"


@pytest.mark.parametrize(("body", "retryable"), [(UNKNOWN_KEY, False), (SURGE, True)])
def test_an_error_table_warns_and_falls_back(canadapost, body, retryable):
    expect_find(canadapost, body)
    result = AddressCheck().run(order_with(PARLIAMENT))
    assert result.outcome == validation.WARNING
    assert "offline check only" in result.message
    assert result.details["retryable"] is retryable
    assert KEY not in json.dumps(result.details)


def test_a_500_is_tried_once_more(canadapost):
    canadapost.expect_oneshot_request(FIND_PATH).respond_with_data("oops", status=500)
    canadapost.expect_oneshot_request(FIND_PATH).respond_with_json(EXACT)
    result = AddressCheck().run(order_with(PARLIAMENT))
    assert result.details["deliverability"] == "confirmed"
    assert len(canadapost.log) == 2


def test_a_read_timeout_warns_in_time(settings):
    with slow_server(FIND_PATH, delay=1.0, body=json.dumps(EXACT)) as (server, calls):
        settings.CANADAPOST_API_BASE = server.url_for("/")
        started = time.monotonic()
        result = AddressCheck().run(order_with(PARLIAMENT))
        elapsed = time.monotonic() - started
    assert result.outcome == validation.WARNING
    assert "timed out" in result.details["verifier_error"]
    assert len(calls) == 1
    assert elapsed < 0.9


def test_connection_refused_does_not_hold_the_order(settings):
    settings.CANADAPOST_API_BASE = closed_port_url()
    saved = validation.registered()
    for check in saved:
        validation.unregister(check.name)
    validation.register(AddressCheck())
    try:
        order = validation.order_validate(order_id=order_with(PARLIAMENT).pk)
    finally:
        validation.unregister("address")
        for check in saved:
            validation.register(check)
    assert order.status != "on_hold"
    event = order.events.get(action="check", data__check="address")
    assert event.data["outcome"] == "warning"
    assert event.data["message"] == "Canada Post verifier unavailable, offline check only"


def test_a_second_identical_address_makes_no_request(canadapost):
    expect_find(canadapost, EXACT)
    AddressCheck().run(order_with(PARLIAMENT))
    assert len(canadapost.log) == 1
    # The same address with the postal code written without its space: same normalized form.
    second = AddressCheck().run(order_with({**PARLIAMENT, "postal_code": "k1a 0a9"}))
    assert len(canadapost.log) == 1
    assert second.details["cached"] is True


def test_an_undeliverable_answer_is_cached_too(canadapost):
    expect_find(canadapost, NOTHING)
    AddressCheck().run(order_with(PARLIAMENT))
    again = AddressCheck().run(order_with(PARLIAMENT))
    assert again.outcome == validation.FAILED
    assert len(canadapost.log) == 1


def test_a_us_address_is_not_sent_to_canada_post(canadapost):
    from tests.orders.adapters import WHITE_HOUSE

    result = AddressCheck().run(order_with(WHITE_HOUSE))
    assert result.details["source"] == "offline"
    assert canadapost.log == []


def test_the_key_and_the_address_stay_out_of_our_logs(canadapost, caplog):
    expect_find(canadapost, UNKNOWN_KEY)
    with caplog.at_level(logging.DEBUG):
        AddressCheck().run(order_with(PARLIAMENT))
    ours = [r for r in caplog.records if r.name.startswith("orders")]
    text = "\n".join(str(r.msg) + repr(r.args) for r in ours)
    assert "address_verifier.failed" in text
    for secret in (KEY, "Wellington", "K1A"):
        assert secret not in text, secret


def test_missing_key_is_a_configuration_error(settings):
    settings.CANADAPOST_KEY = ""
    address = AddressInput(
        line1="111 Wellington St", city="OTTAWA", region_code="ON", postal_code="K1A 0A9",
        country_code="CA",
    )  # fmt: skip
    with CanadaPostAddressVerifier() as verifier, pytest.raises(VerifierUnavailable) as caught:
        verifier.verify(address)
    assert caught.value.retryable is False


def test_a_unit_is_written_before_the_civic_number():
    address = AddressInput(
        line1="111 Wellington St", line2="200", city="OTTAWA", region_code="ON",
        postal_code="K1A 0A9", country_code="CA",
    )  # fmt: skip
    assert CanadaPostAddressVerifier.search_term(address) == (
        "200-111 Wellington St, OTTAWA, ON K1A 0A9"
    )
