"""The routing rule schema (routing_rule.v1.json) and its readable errors."""

from __future__ import annotations

import pytest

from fulfillment.routing.validation import validate_rule
from tests.fulfillment.helpers import add_warehouse

pytestmark = pytest.mark.django_db


def messages(conditions, actions):
    return [(e["pointer"], e["message"]) for e in validate_rule(conditions, actions)]


def test_the_seeded_rules_are_valid(default_rules):
    assert len(default_rules) == 4
    for rule in default_rules.values():
        assert validate_rule(rule.conditions, rule.actions) == [], rule.name


def test_a_full_rule_is_valid():
    add_warehouse("NJ1")
    conditions = {
        "order_total": {"gte": "100", "lt": "1000.50", "currency": "EUR"},
        "destination": {
            "international": True,
            "countries_in": ["DE", "FR"],
            "countries_not_in": ["CH"],
        },
        "channels_in": ["shop", "amazon-eu"],
        "customer_type": "business",
        "subscription_renewal": False,
        "weight_grams": {"gte": 0, "lt": 30000},
        "sku_tags_any": ["hazmat"],
        "sku_tags_none": ["fragile"],
    }
    actions = {
        "carrier": "local",
        "service_level": "economy",
        "warehouse": "NJ1",
        "lane": "sync",
        "flags": {"signature_required": True, "customs_declaration": False, "hazmat": True},
        "continue": True,
    }

    assert validate_rule(conditions, actions) == []
    assert validate_rule({}, {"lane": "subscriptions"}) == []


def test_a_bad_service_level_says_which_ones_are_allowed():
    assert messages({}, {"service_level": "fast"}) == [
        (
            "/actions/service_level",
            "'fast' is not allowed; must be one of: economy, ground, express, premium",
        ),
    ]


def test_an_unknown_key_is_named_with_the_allowed_ones():
    assert messages({"total": {"gte": "1"}}, {"carrier": "local", "speed": "x"}) == [
        (
            "/actions",
            "unknown field(s): speed; allowed: carrier, service_level, warehouse, "
            "warehouse_kind, lane, flags, continue",
        ),
        (
            "/conditions",
            "unknown field(s): total; allowed: order_total, destination, channels_in, "
            "customer_type, subscription_renewal, weight_grams, sku_tags_any, "
            "sku_tags_none",
        ),
    ]
    assert messages({}, {"flags": {"fragile": True}}) == [
        (
            "/actions/flags",
            "unknown field(s): fragile; allowed: signature_required, customs_declaration, hazmat",
        ),
    ]


@pytest.mark.parametrize(
    ("conditions", "actions", "expected"),
    [
        (
            {"order_total": {"gte": 1000, "currency": "USD"}},
            {"carrier": "local"},
            (
                "/conditions/order_total/gte",
                "must be a string, not 1000 (A non-negative amount as "
                'a decimal string, e.g. "1000.00" (never a float).)',
            ),
        ),
        (
            {"order_total": {"gte": "1000,00", "currency": "USD"}},
            {"carrier": "local"},
            (
                "/conditions/order_total/gte",
                "'1000,00' is not valid (A non-negative amount as a "
                'decimal string, e.g. "1000.00" (never a float).)',
            ),
        ),
        (
            {"order_total": {"currency": "USD"}},
            {"carrier": "local"},
            ("/conditions/order_total", "needs at least one of: gte, lt"),
        ),
        (
            {"order_total": {"gte": "1"}},
            {"carrier": "local"},
            ("/conditions/order_total", "missing required field(s): currency"),
        ),
        (
            {"destination": {"countries_in": ["de"]}},
            {"carrier": "local"},
            (
                "/conditions/destination/countries_in/0",
                "'de' is not valid (ISO 3166-1 alpha-2 country code, upper case.)",
            ),
        ),
        (
            {"customer_type": "b2b"},
            {"carrier": "local"},
            (
                "/conditions/customer_type",
                "'b2b' is not allowed; must be one of: consumer, business",
            ),
        ),
        (
            {"sku_tags_any": []},
            {"carrier": "local"},
            ("/conditions/sku_tags_any", "must list at least 1 item(s)"),
        ),
        (
            {"subscription_renewal": "yes"},
            {"carrier": "local"},
            ("/conditions/subscription_renewal", "must be a boolean, not 'yes'"),
        ),
        (
            {},
            {},
            (
                "/actions",
                "must set at least one of: carrier, service_level, warehouse, "
                "warehouse_kind, lane, flags, continue",
            ),
        ),
        (
            {},
            {"warehouse": "NJ1", "warehouse_kind": "3pl"},
            ("/actions", "set only one of: warehouse, warehouse_kind"),
        ),
        (
            {},
            {"lane": "Subscriptions!"},
            (
                "/actions/lane",
                "'Subscriptions!' is not valid (Fulfillment lane: a Celery queue "
                "(fulfillment, sync, notify, ingest) or a dedicated lane name.)",
            ),
        ),
        ([], {"carrier": "local"}, ("/conditions", "must be an object, not array of 0 item(s)")),
    ],
)
def test_schema_errors_are_readable(conditions, actions, expected):
    assert expected in messages(conditions, actions)


def test_what_the_schema_cannot_say_is_checked_too():
    assert messages(
        {
            "order_total": {"gte": "100", "lt": "50", "currency": "XYZ"},
            "sku_tags_any": ["Hazmat"],
            "sku_tags_none": ["hazmat"],
        },
        {"warehouse": "NOPE"},
    ) == [
        ("/conditions/order_total/currency", "unknown currency code 'XYZ'"),
        (
            "/conditions/order_total",
            "gte (100) must be below lt (50): no amount is both >= 100 and < 50",
        ),
        (
            "/conditions",
            "a tag cannot be both required (sku_tags_any) and excluded (sku_tags_none): hazmat",
        ),
        (
            "/actions/warehouse",
            "no warehouse has the code 'NOPE' (add it first, e.g. with add_warehouse)",
        ),
    ]
