"""Evaluating routing rules: the seeded defaults, the condition kinds, priority and first match,
and the explanation a person reads (every condition, expected vs actual, yes/no)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fulfillment.routing.evaluation import evaluate
from fulfillment.routing.facts import order_facts
from orders.models import OrderLine
from tests.factories import BusinessCustomerFactory, make_order
from tests.fulfillment.routing.conftest import (
    HAZMAT,
    HIGH_VALUE,
    INTERNATIONAL,
    SUBSCRIPTION,
    with_source,
)

pytestmark = pytest.mark.django_db


def result_for(evaluation, name):
    return next(r for r in evaluation.rules if r.name == name)


def texts(result):
    return [c.text for c in result.checks]


# --- the seeded rules ----------------------------------------------------------------------------
def test_high_value_order_ships_premium_with_a_signature(default_rules, catalogue):
    order = make_order(lines=[("CAMERA", 1, "1243.50")], pipeline=False)  # total 1250.00 USD

    evaluation = evaluate(order)

    assert evaluation.actions == {
        "carrier": "local",
        "service_level": "premium",
        "lane": "fulfillment",
        "flags": {"signature_required": True},
    }
    assert evaluation.first_match.name == HIGH_VALUE
    assert evaluation.rule_id == default_rules[HIGH_VALUE].pk
    high = result_for(evaluation, HIGH_VALUE)
    assert texts(high) == ["order total 1250.00 USD >= 1000.00 USD: yes"]
    assert high.applied and "matched; set carrier, service_level, flags.signature_required" in (
        high.note
    )
    assert texts(result_for(evaluation, INTERNATIONAL)) == [
        "destination US is international (origin US): no"
    ]
    assert evaluation.sources == {
        "carrier": HIGH_VALUE,
        "service_level": HIGH_VALUE,
        "flags.signature_required": HIGH_VALUE,
        "lane": "default",
    }
    assert evaluation.customs_lines == []


def test_order_below_the_threshold_gets_the_defaults(default_rules, catalogue):
    order = make_order(lines=[("CAMERA", 1, "993.49")], pipeline=False)  # total 999.99 USD

    evaluation = evaluate(order)

    assert evaluation.first_match is None
    assert evaluation.actions == {
        "carrier": "local",
        "service_level": "ground",
        "lane": "fulfillment",
        "flags": {},
    }
    assert texts(result_for(evaluation, HIGH_VALUE)) == [
        "order total 999.99 USD >= 1000.00 USD: no"
    ]
    assert "No rule matched (defaults)" in evaluation.summary()


def test_an_order_in_another_currency_does_not_match_and_the_explanation_says_why(
    default_rules, catalogue
):
    order = make_order(currency="EUR", lines=[("CAMERA", 1, "1243.50")], pipeline=False)

    high = result_for(evaluate(order), HIGH_VALUE)

    assert not high.matched
    assert texts(high) == [
        "order total 1250.00 EUR >= 1000.00 USD: no (the order is in EUR and the rule in USD; "
        "amounts are not converted between currencies)"
    ]
    assert high.note.startswith("did not match: order total 1250.00 EUR")


def test_international_order_goes_to_the_3pl_with_customs_lines_per_order_line(
    default_rules, catalogue
):
    order = make_order(
        country="DE",
        discount="2.00",
        pipeline=False,
        lines=[("MUG", 2, "10.00"), ("TEA", 3, "4.99"), ("POSTER", 1, "7.00")],
    )

    evaluation = evaluate(order)

    assert evaluation.first_match.name == INTERNATIONAL
    assert evaluation.actions == {
        "carrier": "local",
        "service_level": "express",
        "warehouse_kind": "3pl",
        "lane": "fulfillment",
        "flags": {"customs_declaration": True},
    }
    assert texts(result_for(evaluation, INTERNATIONAL)) == [
        "destination DE is international (origin US): yes"
    ]
    lines = {line["sku"]: line for line in evaluation.customs_lines}
    assert [
        (lines[s]["hs_code"], lines[s]["origin_country"], lines[s]["quantity"])
        for s in ("MUG", "TEA", "POSTER")
    ] == [
        ("6912.00", "PT", 2),
        ("0902.10", "CN", 3),
        ("", "US", 1),
    ]
    assert lines["MUG"]["description"] == "Stoneware mug"  # no line title: the catalogue's
    assert all(line["currency"] == "USD" for line in lines.values())
    # Declared value: each line's net amount (quantity x unit price - its discount share).
    db_lines = OrderLine.objects.filter(order=order)
    for line in db_lines:
        expected = line.unit_price * line.quantity - line.discount_allocation
        assert Decimal(lines[line.sku]["declared_value"]) == expected
    total = sum(Decimal(line["declared_value"]) for line in lines.values())
    assert total == Decimal("20.00") + Decimal("14.97") + Decimal("7.00") - Decimal("2.00")
    assert evaluation.customs_problems == ["line 3 (POSTER): no HS code in the catalogue"]


def test_subscription_renewal_takes_its_lane_and_lets_the_other_rules_decide_the_rest(
    default_rules, catalogue
):
    order = with_source(
        make_order(lines=[("CAMERA", 1, "1243.50")], pipeline=False),
        source_name="subscription_contract",
    )

    evaluation = evaluate(order)

    assert evaluation.first_match.name == SUBSCRIPTION  # the first match is the one stored
    assert [r.name for r in evaluation.applied_rules] == [SUBSCRIPTION, HIGH_VALUE]
    assert evaluation.actions["lane"] == "subscriptions"
    assert evaluation.actions["service_level"] == "premium"
    assert evaluation.actions["flags"] == {"signature_required": True}
    sub = result_for(evaluation, SUBSCRIPTION)
    assert texts(sub) == [
        "order is a subscription renewal: yes (Shopify source_name is subscription_contract)"
    ]
    assert sub.note == "matched; set lane; continues to lower-priority rules"
    assert evaluation.sources["lane"] == SUBSCRIPTION
    assert evaluation.sources["carrier"] == HIGH_VALUE


@pytest.mark.parametrize(
    ("source", "renewal"),
    [
        ({"subscription_renewal": True}, True),
        ({"created_via": "subscription"}, True),
        ({"tags": "vip, Subscription Recurring Order"}, True),
        ({"tags": ["Subscription First Order"]}, False),  # the first order renews nothing
        ({"source_name": "web"}, False),
        ({}, False),
    ],
)
def test_subscription_renewal_is_read_from_the_channel_facts(catalogue, source, renewal):
    order = with_source(make_order(pipeline=False), **source)

    assert order_facts(order)["subscription_renewal"] is renewal


def test_a_plain_renewal_gets_the_lane_and_the_defaults(default_rules, catalogue):
    order = with_source(
        make_order(lines=[("MUG", 1, "10.00")], pipeline=False), subscription_renewal=True
    )

    evaluation = evaluate(order)

    assert evaluation.actions == {
        "carrier": "local",
        "service_level": "ground",
        "lane": "subscriptions",
        "flags": {},
    }
    assert evaluation.sources["service_level"] == "default"


def test_hazmat_ships_ground_even_when_high_value_and_international(default_rules, catalogue):
    order = make_order(
        country="CA", pipeline=False, lines=[("LAMP-OIL", 1, "20.00"), ("CAMERA", 1, "1223.50")]
    )

    evaluation = evaluate(order)

    assert [r.name for r in evaluation.applied_rules] == [HAZMAT, HIGH_VALUE, INTERNATIONAL]
    assert evaluation.actions == {
        "carrier": "local",
        "service_level": "ground",
        "warehouse_kind": "3pl",
        "lane": "fulfillment",
        "flags": {"signature_required": True, "customs_declaration": True, "hazmat": True},
    }
    assert evaluation.sources["service_level"] == HAZMAT
    assert texts(result_for(evaluation, HAZMAT)) == [
        "SKU tags [electronics, hazmat] include any of [hazmat]: yes (found hazmat)"
    ]
    assert result_for(evaluation, INTERNATIONAL).note == (
        "matched; set warehouse_kind, flags.customs_declaration; kept service_level from earlier "
        "rules; decides (lower-priority rules are not applied)"
    )
    assert len(evaluation.customs_lines) == 2 and evaluation.customs_problems == []


# --- conditions ------------------------------------------------------------------------------
def test_weight_and_tags_come_from_the_catalogue_and_unknown_skus_count_as_zero(
    only_rules, catalogue
):
    only_rules("Heavy", 10, {"weight_grams": {"gte": 1000}}, {"service_level": "economy"})
    only_rules("No fragile", 20, {"sku_tags_none": ["fragile"]}, {"carrier": "other"})
    order = make_order(
        pipeline=False,
        lines=[
            ("MUG", 2, "10.00"),
            ("TEA", 3, "4.00"),
            ("GHOST", 5, "1.00"),
            ("POSTER", 1, "7.00"),
        ],
    )

    facts = order_facts(order)
    evaluation = evaluate(order)

    assert facts["weight_grams"] == 2 * 350 + 3 * 120
    assert facts["unknown_skus"] == ["GHOST"] and facts["skus_without_weight"] == ["POSTER"]
    assert facts["sku_tags"] == ["food", "fragile", "kitchen"]
    assert texts(result_for(evaluation, "Heavy")) == [
        "total weight 1060 g >= 1000 g: yes (counted as 0 g, no catalogue weight: GHOST, POSTER)"
    ]
    assert texts(result_for(evaluation, "No fragile")) == [
        "SKU tags [food, fragile, kitchen] include none of [fragile]: no (found fragile)"
    ]
    assert evaluation.actions["service_level"] == "economy"


def test_every_condition_is_explained_and_all_must_hold(only_rules, catalogue, channel):
    only_rules(
        "B2B to Canada",
        10,
        {
            "order_total": {"gte": "10.00", "lt": "500.00", "currency": "USD"},
            "destination": {
                "international": True,
                "countries_in": ["CA"],
                "countries_not_in": ["MX"],
            },
            "channels_in": ["shop"],
            "customer_type": "business",
            "subscription_renewal": False,
            "weight_grams": {"lt": 5000},
            "sku_tags_any": ["kitchen"],
        },
        {"carrier": "freight", "warehouse": "NJ1"},
    )
    business = make_order(
        channel=channel,
        customer=BusinessCustomerFactory(),
        country="CA",
        lines=[("MUG", 2, "10.00")],
        pipeline=False,
    )
    consumer = make_order(
        channel=channel, country="CA", lines=[("MUG", 2, "10.00")], pipeline=False
    )

    yes = evaluate(business)
    no = evaluate(consumer)

    assert texts(yes.rules[0]) == [
        "order total 26.50 USD >= 10.00 USD: yes",
        "order total 26.50 USD < 500.00 USD: yes",
        "destination CA is international (origin US): yes",
        "destination CA in [CA]: yes",
        "destination CA not in [MX]: yes",
        "channel shop in [shop]: yes",
        "customer type business is business: yes",
        "order is not a subscription renewal: yes",
        "total weight 700 g < 5000 g: yes",
        "SKU tags [fragile, kitchen] include any of [kitchen]: yes (found kitchen)",
    ]
    assert yes.actions["carrier"] == "freight" and yes.actions["warehouse"] == "NJ1"
    assert not no.rules[0].matched
    assert [c.text for c in no.rules[0].checks if not c.passed] == [
        "customer type consumer is business: no"
    ]
    assert no.actions["carrier"] == "local" and "warehouse" not in no.actions


# --- order of rules ------------------------------------------------------------------------------
def test_rules_run_by_priority_then_id_and_the_first_match_decides(only_rules, catalogue):
    catch_all = only_rules("Catch-all", 50, {}, {"carrier": "a"})
    first = only_rules("Same priority, older", 10, {"channels_in": ["nowhere"]}, {"carrier": "x"})
    winner = only_rules("Same priority, newer", 10, {}, {"carrier": "b", "lane": "notify"})
    order = make_order(pipeline=False)

    evaluation = evaluate(order)

    assert [r.rule_id for r in evaluation.rules] == [first.pk, winner.pk, catch_all.pk]
    assert evaluation.actions["carrier"] == "b" and evaluation.actions["lane"] == "notify"
    assert evaluation.rule_id == winner.pk
    later = evaluation.rules[2]
    assert later.matched and not later.applied
    assert later.note == "matched, but not applied: 'Same priority, newer' already decided"


def test_continue_fills_only_what_earlier_rules_left_unset(only_rules, catalogue):
    only_rules(
        "Flags first",
        1,
        {},
        {"service_level": "express", "flags": {"signature_required": True}, "continue": True},
    )
    only_rules(
        "Then the carrier",
        2,
        {},
        {
            "service_level": "economy",
            "carrier": "ups",
            "flags": {"signature_required": False, "hazmat": True},
        },
    )
    order = make_order(pipeline=False)

    evaluation = evaluate(order)

    assert evaluation.actions == {
        "carrier": "ups",
        "service_level": "express",
        "lane": "fulfillment",
        "flags": {"signature_required": True, "hazmat": True},
    }
    assert evaluation.rules[1].set_keys == ["carrier", "flags.hazmat"]


def test_inactive_rules_are_ignored(only_rules, catalogue):
    only_rules("Switched off", 1, {}, {"carrier": "never"}, is_active=False)
    only_rules("On", 2, {}, {"carrier": "used"})
    order = make_order(pipeline=False)

    evaluation = evaluate(order)

    assert [r.name for r in evaluation.rules] == ["On"]
    assert evaluation.actions["carrier"] == "used"


def test_given_rules_are_evaluated_instead_of_the_stored_ones(only_rules, catalogue):
    off = only_rules("Off", 1, {}, {"carrier": "never"}, is_active=False)
    late = only_rules("Late", 9, {}, {"carrier": "late"})
    early = only_rules("Early", 5, {"customer_type": "business"}, {"carrier": "early"})
    order = make_order(pipeline=False)

    evaluation = evaluate(order, rules=[late, off, early])

    assert [r.name for r in evaluation.rules] == ["Early", "Late"]
    assert evaluation.actions["carrier"] == "late"


def test_a_rule_stored_around_validation_never_matches_and_says_why(only_rules, catalogue):
    only_rules("Broken", 1, {"order_total": {"gte": 1000, "currency": "USD"}}, {"carrier": "x"})
    order = make_order(pipeline=False)

    evaluation = evaluate(order)

    assert not evaluation.rules[0].matched
    assert (
        evaluation.rules[0]
        .checks[0]
        .text.startswith(
            "the rule is invalid: /conditions/order_total/gte: must be a string, not 1000"
        )
    )
    assert evaluation.actions["carrier"] == "local"
