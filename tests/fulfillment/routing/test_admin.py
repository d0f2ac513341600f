"""The routing rule admin: a readable list, schema-checked editing, and the "try it on an order"
preview that explains which rule matched and why."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission

from fulfillment.models import RoutingRule
from tests.factories import make_order, make_user
from tests.fulfillment.routing.conftest import HIGH_VALUE, INTERNATIONAL

pytestmark = pytest.mark.django_db

LIST = "/admin/fulfillment/routingrule/"


def preview_url(rule):
    return f"{LIST}{rule.pk}/preview/"


def form_data(**overrides):
    data = {
        "name": "Big parcels go economy",
        "priority": "50",
        "is_active": "on",
        "description": "",
        "conditions": json.dumps({"weight_grams": {"gte": 20000}}),
        "actions": json.dumps({"service_level": "economy"}),
    }
    data.update(overrides)
    return data


def test_the_list_shows_priority_name_state_and_a_summary_in_words(client, ops_user, default_rules):
    client.force_login(ops_user)

    page = client.get(LIST)

    assert page.status_code == 200
    html = page.content.decode()
    assert HIGH_VALUE in html
    assert (
        "If total &gt;= 1000.00 USD: carrier local, premium, signature required, then continue"
    ) in html
    assert "If international: express, a 3PL warehouse, customs declaration" in html
    assert 'name="form-0-priority"' in html and 'name="form-0-is_active"' in html


def test_the_preview_of_a_real_order_shows_the_matched_rule_and_the_reasons(
    client, ops_user, default_rules, catalogue
):
    order = make_order(country="DE", lines=[("CAMERA", 1, "1243.50")], pipeline=False)
    client.force_login(ops_user)

    page = client.get(preview_url(default_rules[HIGH_VALUE]), {"order": order.external_id})

    assert page.status_code == 200
    html = page.content.decode()
    assert f"Try “{HIGH_VALUE}” on an order" in html
    assert "Matched and applied" in html
    assert "order total 1250.00 USD &gt;= 1000.00 USD: yes" in html
    assert "destination DE is international (origin US): yes" in html
    assert "order is a subscription renewal: no" in html  # a rule that did not match, and why
    assert f"{HIGH_VALUE} + {INTERNATIONAL}: carrier local, premium" in html
    assert "8525.89" in html and "1243.50 USD" in html  # the customs line
    assert "No routing decision is stored for this order yet." in html


def test_the_preview_finds_an_order_by_its_id_and_says_when_there_is_none(
    client, ops_user, default_rules
):
    order = make_order(pipeline=False)
    client.force_login(ops_user)
    rule = default_rules[INTERNATIONAL]

    by_id = client.get(preview_url(rule), {"order": f"#{order.pk}"})
    missing = client.get(preview_url(rule), {"order": "NOPE-404"})
    empty = client.get(preview_url(rule))

    assert "destination US is international (origin US): no" in by_id.content.decode()
    assert "Did not match" in by_id.content.decode()
    assert "No order has the id or external id &#x27;NOPE-404&#x27;." in missing.content.decode()
    assert empty.status_code == 200 and b"Try the rules" in empty.content


def test_the_preview_of_an_inactive_rule_says_what_it_would_do(client, ops_user, default_rules):
    rule = default_rules[HIGH_VALUE]
    RoutingRule.objects.filter(pk=rule.pk).update(is_active=False)
    order = make_order(lines=[("CAMERA", 1, "1243.50")], pipeline=False)
    client.force_login(ops_user)

    html = client.get(preview_url(rule), {"order": order.external_id}).content.decode()

    assert "(inactive: it is not used for routing)" in html
    assert "If it were active:" in html
    assert "order total 1250.00 USD &gt;= 1000.00 USD: yes" in html


def test_the_change_form_links_to_the_preview(client, ops_user, default_rules):
    rule = default_rules[HIGH_VALUE]
    client.force_login(ops_user)

    page = client.get(f"{LIST}{rule.pk}/change/")

    assert page.status_code == 200
    assert f'href="{preview_url(rule)}"' in page.content.decode()


def test_a_valid_rule_is_saved_as_structured_data(client, ops_user):
    client.force_login(ops_user)

    response = client.post(f"{LIST}add/", form_data())

    assert response.status_code == 302
    rule = RoutingRule.objects.get(name="Big parcels go economy")
    assert rule.conditions == {"weight_grams": {"gte": 20000}}
    assert rule.actions == {"service_level": "economy"}


def test_the_form_rejects_invalid_json_with_a_readable_message(client, ops_user):
    client.force_login(ops_user)

    response = client.post(f"{LIST}add/", form_data(actions='{"service_level": "economy",}'))

    assert response.status_code == 200
    assert (
        "Not valid JSON: Expecting property name enclosed in double quotes at line 1, column 29."
    ) in response.content.decode()
    assert not RoutingRule.objects.filter(name="Big parcels go economy").exists()


def test_the_form_shows_schema_errors_on_their_field(client, ops_user):
    client.force_login(ops_user)

    response = client.post(
        f"{LIST}add/",
        form_data(
            conditions=json.dumps({"order_total": {"gte": 1000, "currency": "USD"}, "vip": True}),
            actions=json.dumps({"service_level": "fast"}),
        ),
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "/order_total/gte: must be a string, not 1000" in html
    assert "unknown field(s): vip; allowed: order_total" in html
    assert (
        "/service_level: &#x27;fast&#x27; is not allowed; must be one of: economy, ground, "
        "express, premium"
    ) in html
    assert not RoutingRule.objects.filter(name="Big parcels go economy").exists()


def test_empty_conditions_mean_every_order(client, ops_user):
    client.force_login(ops_user)

    response = client.post(f"{LIST}add/", form_data(conditions=""))

    assert response.status_code == 302
    assert RoutingRule.objects.get(name="Big parcels go economy").conditions == {}


def test_view_permission_shows_rules_and_preview_but_edits_nothing(client, default_rules):
    viewer = make_user("vic")
    viewer.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label__in=["fulfillment", "orders"],
            codename__in=["view_routingrule", "view_order"],
        )
    )
    rule = default_rules[HIGH_VALUE]
    order = make_order(pipeline=False)
    client.force_login(viewer)

    listing = client.get(LIST)
    preview = client.get(preview_url(rule), {"order": order.external_id})
    change = client.post(f"{LIST}{rule.pk}/change/", form_data(name=rule.name))
    add = client.get(f"{LIST}add/")

    assert listing.status_code == 200 and 'name="form-0-priority"' not in listing.content.decode()
    assert preview.status_code == 200 and b"order total 26.50 USD" in preview.content
    assert change.status_code == 403 and add.status_code == 403
    assert RoutingRule.objects.get(pk=rule.pk).priority == rule.priority


def test_without_routing_permissions_the_preview_is_refused(client, cs_user, default_rules):
    client.force_login(cs_user)

    response = client.get(preview_url(default_rules[HIGH_VALUE]), {"order": "1"})

    assert response.status_code == 403


def test_decisions_are_listed_read_only(client, ops_user, default_rules, catalogue):
    from fulfillment.routing.services import route_order

    order = make_order(lines=[("CAMERA", 1, "1243.50")], pipeline=False)
    decision = route_order(order_id=order.pk)
    client.force_login(ops_user)

    listing = client.get("/admin/fulfillment/routingdecision/")
    detail = client.get(f"/admin/fulfillment/routingdecision/{decision.pk}/change/")

    assert listing.status_code == 200 and "carrier local, premium" in listing.content.decode()
    assert detail.status_code == 200
    assert "matched; set carrier, service_level" in detail.content.decode()
