"""Which carrier answers to a code, and which quote ``cheapest_rate`` buys."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

import config.settings as project_settings
from fulfillment.carriers import (
    CarrierError,
    CarrierNotConfigured,
    NoRateAvailable,
    cheapest_rate,
    get_carrier,
)
from fulfillment.carriers.base import Rate
from fulfillment.carriers.easypost import EasyPostCarrier
from fulfillment.carriers.local import LocalCarrier
from tests.fulfillment.carriers import domestic


def rate(service: str, level: str, amount: str, days: int | None = None, **more: str) -> Rate:
    return Rate(
        carrier=more.get("carrier", "easypost"), service=service, service_level=level,
        amount=Decimal(amount), currency=more.get("currency", "USD"), delivery_days=days,
    )  # fmt: skip


# --- get_carrier -------------------------------------------------------------------------------
def test_the_local_carrier_is_always_there(settings):
    settings.EASYPOST_API_KEY = ""
    carrier = get_carrier("local")
    assert isinstance(carrier, LocalCarrier) and carrier.code == "local"
    assert isinstance(get_carrier(" Local "), LocalCarrier)


def test_easypost_needs_its_api_key(settings):
    settings.EASYPOST_API_KEY = ""
    with pytest.raises(CarrierNotConfigured) as caught:
        get_carrier("easypost")
    assert "EASYPOST_API_KEY" in str(caught.value)
    assert isinstance(caught.value, CarrierError) and caught.value.retryable is False


def test_easypost_with_a_key_uses_the_configured_base_url(settings):
    settings.EASYPOST_API_KEY = "EZTK_test"
    settings.EASYPOST_API_BASE = "https://easypost.example/v2/"
    carrier = get_carrier("easypost")
    assert isinstance(carrier, EasyPostCarrier) and carrier.code == "easypost"
    assert carrier.client.base_url == "https://easypost.example/v2"


def test_easypost_defaults_to_the_vendor_api(settings):
    settings.EASYPOST_API_KEY = "EZTK_test"
    # The production defaults (config/settings.py), whatever the tests configure.
    settings.EASYPOST_API_BASE = project_settings.EASYPOST_API_BASE
    settings.EASYPOST_TIMEOUT = project_settings.EASYPOST_TIMEOUT
    carrier = get_carrier("easypost")
    assert carrier.client.base_url == "https://api.easypost.com/v2"
    assert carrier.client.timeout == (3.0, 30.0)


@pytest.mark.parametrize("code", ["dhl", "", "easy post"])
def test_an_unknown_code_is_a_clear_error(code):
    with pytest.raises(CarrierNotConfigured) as caught:
        get_carrier(code)
    assert "Unknown carrier" in str(caught.value) and "local, easypost" in str(caught.value)


# --- cheapest_rate -----------------------------------------------------------------------------
def test_the_cheapest_rate_at_the_level_or_faster_wins():
    rates = [
        rate("Slow", "economy", "3.00", 7),
        rate("Ground", "ground", "5.00", 4),
        rate("Fast and cheap", "express", "4.50", 2),
        rate("Fastest", "premium", "20.00", 1),
    ]
    assert cheapest_rate(rates, "economy").service == "Slow"
    assert cheapest_rate(rates, "ground").service == "Fast and cheap"  # faster counts too
    assert cheapest_rate(rates, "express").service == "Fast and cheap"
    assert cheapest_rate(rates, "premium").service == "Fastest"


def test_ties_go_to_fewer_days_then_carrier_and_service_name():
    rates = [
        rate("B", "ground", "5.00", 3),
        rate("Z", "ground", "5.00", 2),
        rate("A", "ground", "5.00", None),
        rate("Y", "ground", "5.00", 2),
        rate("X", "ground", "5.00", 2, carrier="local"),
    ]
    for order in itertools.permutations(rates):
        chosen = cheapest_rate(order, "ground")
        assert (chosen.carrier, chosen.service) == ("easypost", "Y")


def test_a_rate_with_unknown_days_loses_a_tie_only():
    unknown, known = rate("Unknown", "ground", "4.99"), rate("Known", "ground", "5.00", 1)
    assert cheapest_rate([known, unknown], "ground").service == "Unknown"
    assert cheapest_rate([rate("U", "ground", "5.00"), known], "ground").service == "Known"


def test_no_rate_meeting_the_level_is_a_clear_error():
    rates = [rate("Slow", "economy", "3.00", 7), rate("Ground", "ground", "5.00", 4)]
    with pytest.raises(NoRateAvailable) as caught:
        cheapest_rate(rates, "express")
    message = str(caught.value)
    assert "'express'" in message and "Ground (ground)" in message and "Slow (economy)" in message
    assert caught.value.retryable is False
    with pytest.raises(NoRateAvailable, match="offered: none"):
        cheapest_rate([], "economy")


def test_an_unknown_level_is_a_clear_error():
    with pytest.raises(NoRateAvailable, match="Unknown service level 'overnight'"):
        cheapest_rate([rate("Ground", "ground", "5.00")], "overnight")


def test_rates_with_an_unknown_level_never_qualify():
    odd = rate("Odd", "teleport", "0.01", 0)
    assert cheapest_rate([odd, rate("Slow", "economy", "3.00")], "economy").service == "Slow"


def test_rates_in_several_currencies_are_not_compared():
    rates = [rate("US", "ground", "5.00"), rate("CA", "ground", "4.00", currency="CAD")]
    with pytest.raises(NoRateAvailable, match="CAD, USD"):
        cheapest_rate(rates, "ground")


def test_the_local_carrier_quotes_feed_cheapest_rate():
    rates = get_carrier("local").rates(domestic())
    assert cheapest_rate(rates, "express").service == "Local Express"
    assert cheapest_rate(rates, "economy").service == "Local Economy"
