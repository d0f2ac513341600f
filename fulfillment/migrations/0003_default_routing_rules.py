"""Seed the default routing rules (names are stable: the reverse deletes them by name).

Order of evaluation and why (lower priority runs first; see fulfillment/routing.py):

10  Hazmat ships ground only            continue: sets ground + hazmat, later rules add the rest
20  Subscription renewals ...           continue: sets the lane only, later rules add the rest
100 High-value orders ship premium      continue: premium + signature, and an international
                                        high-value order still gets the 3PL and its customs data
200 International orders ... 3PL        decides: 3PL, express (unless already set), customs

A rule never overwrites what an earlier rule set, so hazmat stays ground even when the order is
high-value or international, and a high-value international order ships premium (not express)
with a signature through the customs-compliant 3PL.
"""

from django.db import migrations

DEFAULT_RULES = [
    {
        "name": "Hazmat ships ground only",
        "priority": 10,
        "description": (
            "Carriers take dangerous goods (SKUs tagged hazmat in the catalogue) by ground only. "
            "Runs first and continues, so the service level stays ground whatever the order's "
            "value or destination, and the later rules still add carrier, warehouse, lane and "
            "their flags."
        ),
        "conditions": {"sku_tags_any": ["hazmat"]},
        "actions": {"service_level": "ground", "flags": {"hazmat": True}, "continue": True},
    },
    {
        "name": "Subscription renewals use their own lane",
        "priority": 20,
        "description": (
            "Renewal orders of a subscription are picked in batches by their own lane "
            "(subscriptions). Only the lane is set; it continues, so carrier, service level and "
            "warehouse come from the rules below or the defaults."
        ),
        "conditions": {"subscription_renewal": True},
        "actions": {"lane": "subscriptions", "continue": True},
    },
    {
        "name": "High-value orders ship premium",
        "priority": 100,
        "description": (
            "Orders of 1000.00 USD or more ship premium with the local carrier and need a "
            "signature on delivery. Orders in other currencies are not converted and do not "
            "match. It continues, so a high-value international order still goes through the "
            "customs-compliant 3PL with its customs declaration (and keeps premium)."
        ),
        "conditions": {"order_total": {"gte": "1000.00", "currency": "USD"}},
        "actions": {
            "carrier": "local",
            "service_level": "premium",
            "flags": {"signature_required": True},
            "continue": True,
        },
    },
    {
        "name": "International orders go through the customs-compliant 3PL",
        "priority": 200,
        "description": (
            "Orders shipping outside the home country (HOME_COUNTRY) ship express from a 3PL "
            "warehouse that files customs, with a customs declaration: per line the HS code and "
            "origin country from the catalogue and the declared value (the line's net amount). "
            "Decides: rules below it are not applied."
        ),
        "conditions": {"destination": {"international": True}},
        "actions": {
            "warehouse_kind": "3pl",
            "service_level": "express",
            "flags": {"customs_declaration": True},
        },
    },
]


def seed(apps, schema_editor):
    """Create the default rules that are missing; a rule with the same name is left as is."""
    rule_model = apps.get_model("fulfillment", "RoutingRule")
    for rule in DEFAULT_RULES:
        rule_model.objects.get_or_create(
            name=rule["name"],
            defaults={key: value for key, value in rule.items() if key != "name"},
        )


def unseed(apps, schema_editor):
    rule_model = apps.get_model("fulfillment", "RoutingRule")
    rule_model.objects.filter(name__in=[rule["name"] for rule in DEFAULT_RULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("fulfillment", "0002_routing_shipments_outbox")]

    operations = [migrations.RunPython(seed, unseed)]
