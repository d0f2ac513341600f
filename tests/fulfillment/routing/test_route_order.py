"""route_order stores the decision and puts it on the order's timeline, once per outcome."""

from __future__ import annotations

import pytest

from fulfillment.models import RoutingDecision, RoutingRule
from fulfillment.routing.services import route_order
from orders.actors import Actor
from orders.errors import NotFound
from orders.models import OrderEvent
from tests.factories import make_order, make_user
from tests.fulfillment.routing.conftest import HIGH_VALUE, INTERNATIONAL

pytestmark = pytest.mark.django_db


def routed_events(order):
    return list(OrderEvent.objects.filter(order=order, action="routed").order_by("id"))


def test_route_order_stores_the_decision_and_a_routed_timeline_event(default_rules, catalogue):
    order = make_order(country="GB", lines=[("CAMERA", 1, "1243.50")], pipeline=False)

    decision = route_order(order_id=order.pk)

    decision.refresh_from_db()
    assert decision.order_id == order.pk
    assert decision.rule == default_rules[HIGH_VALUE]  # the first matching rule
    assert decision.actions == {
        "carrier": "local",
        "service_level": "premium",
        "warehouse_kind": "3pl",
        "lane": "fulfillment",
        "flags": {"signature_required": True, "customs_declaration": True},
    }
    rules = [e for e in decision.explanation if e["kind"] == "rule"]
    assert [e["rule"] for e in rules if e["applied"]] == [HIGH_VALUE, INTERNATIONAL]
    assert any(
        c["text"] == "order total 1250.00 USD >= 1000.00 USD: yes"
        for e in rules
        for c in e["checks"]
    )
    result = decision.explanation[-1]
    assert result["kind"] == "result"
    assert result["customs"]["lines"][0]["hs_code"] == "8525.89"
    assert result["customs"]["lines"][0]["declared_value"] == "1243.50"
    [event] = routed_events(order)
    assert event.actor_kind == "system" and event.actor_id == "routing"
    assert event.correlation_id == order.correlation_id
    assert event.data == {
        "decision_id": decision.pk,
        "rule": HIGH_VALUE,
        "also": INTERNATIONAL,
        "carrier": "local",
        "service_level": "premium",
        "warehouse_kind": "3pl",
        "lane": "fulfillment",
        "flags": "signature_required, customs_declaration",
        "customs_lines": 1,
    }


def test_routing_again_with_the_same_outcome_writes_nothing_new(default_rules, catalogue):
    order = make_order(lines=[("CAMERA", 1, "1243.50")], pipeline=False)
    first = route_order(order_id=order.pk)

    again = route_order(order_id=order.pk)

    assert again.pk == first.pk
    assert RoutingDecision.objects.filter(order=order).count() == 1
    assert len(routed_events(order)) == 1


def test_a_changed_outcome_stores_a_new_decision(default_rules, catalogue):
    order = make_order(lines=[("CAMERA", 1, "1243.50")], pipeline=False)
    first = route_order(order_id=order.pk)
    RoutingRule.objects.filter(name=HIGH_VALUE).update(is_active=False)
    user = make_user("olga", "ops_admin")

    second = route_order(order_id=order.pk, actor=Actor.for_user(user))

    assert second.pk != first.pk and second.rule is None
    assert second.actions["service_level"] == "ground"
    assert RoutingDecision.objects.filter(order=order).latest().pk == second.pk
    events = routed_events(order)
    assert [e.data["rule"] for e in events] == [HIGH_VALUE, "defaults (no rule matched)"]
    assert events[1].actor_kind == "user" and events[1].actor_id == "olga"


def test_a_fixed_catalogue_entry_changes_the_customs_data_and_so_the_decision(
    default_rules, catalogue
):
    catalogue["POSTER"].hs_code = ""
    catalogue["POSTER"].save()
    order = make_order(country="FR", lines=[("POSTER", 2, "7.00")], pipeline=False)
    first = route_order(order_id=order.pk)
    assert first.explanation[-1]["customs"]["problems"] == [
        "line 1 (POSTER): no HS code in the catalogue"
    ]
    assert routed_events(order)[0].data["customs_problems"] == 1

    catalogue["POSTER"].hs_code = "4911.91"
    catalogue["POSTER"].save()
    second = route_order(order_id=order.pk)

    assert second.pk != first.pk
    assert second.explanation[-1]["customs"] == {
        "lines": [
            {
                "line_no": 1,
                "sku": "POSTER",
                "description": "Poster",
                "quantity": 2,
                "hs_code": "4911.91",
                "origin_country": "US",
                "declared_value": "14.00",
                "currency": "USD",
            }
        ],
        "problems": [],
    }


def test_the_routed_event_shows_in_the_order_timeline(default_rules, catalogue, client, ops_user):
    order = make_order(lines=[("CAMERA", 1, "1243.50")], pipeline=False)
    route_order(order_id=order.pk)
    client.force_login(ops_user)

    page = client.get(f"/admin/orders/order/{order.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "routed" in html
    assert f"rule={HIGH_VALUE}" in html and "service_level=premium" in html


def test_routing_an_unknown_order_raises_not_found(default_rules):
    with pytest.raises(NotFound, match="Order 987654 does not exist"):
        route_order(order_id=987654)
    assert not RoutingDecision.objects.exists()
