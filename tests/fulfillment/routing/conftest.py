"""Routing tests: the seeded rules, a small catalogue, and orders with channel facts."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.apps import apps

import fulfillment.routing.admin  # noqa: F401  (registers the routing admin screens)
from fulfillment.models import RoutingRule
from orders.models import Order, Product

SEED = importlib.import_module("fulfillment.migrations.0003_default_routing_rules")
HAZMAT = "Hazmat ships ground only"
SUBSCRIPTION = "Subscription renewals use their own lane"
HIGH_VALUE = "High-value orders ship premium"
INTERNATIONAL = "International orders go through the customs-compliant 3PL"


@pytest.fixture
def default_rules(db) -> dict[str, RoutingRule]:
    """The rules migration 0003 seeds (seeded again if a transactional test flushed them)."""
    SEED.seed(apps, None)
    return {
        r.name: r
        for r in RoutingRule.objects.filter(
            name__in=[HAZMAT, SUBSCRIPTION, HIGH_VALUE, INTERNATIONAL]
        )
    }


@pytest.fixture
def only_rules(db):
    """Switch the seeded rules off so a test sees only the rules it creates."""
    RoutingRule.objects.update(is_active=False)

    def make(name: str, priority: int, conditions: dict, actions: dict, **kw: Any) -> RoutingRule:
        return RoutingRule.objects.create(
            name=name, priority=priority, conditions=conditions, actions=actions, **kw
        )

    return make


@pytest.fixture
def catalogue(db) -> dict[str, Product]:
    rows = [
        ("CAMERA", "Mirrorless camera", 900, "8525.89", "JP", ["electronics"]),
        ("MUG", "Stoneware mug", 350, "6912.00", "PT", ["kitchen", "fragile"]),
        ("TEA", "Green tea 100 g", 120, "0902.10", "CN", ["food"]),
        ("LAMP-OIL", "Lamp oil 1 l", 1000, "2710.19", "DE", ["Hazmat"]),
        ("POSTER", "Poster", None, "", "US", []),
    ]
    return {
        sku: Product.objects.create(
            sku=sku, title=title, weight_grams=weight, hs_code=hs, origin_country=origin, tags=tags
        )
        for sku, title, weight, hs, origin, tags in rows
    }


def with_source(order: Order, **source: Any) -> Order:
    """Give an order the channel facts a normalizer would have stored (``order.source``)."""
    Order.objects.filter(pk=order.pk).update(source={**(order.source or {}), **source})
    order.refresh_from_db()
    return order
