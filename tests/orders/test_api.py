"""REST API under /api/v1/: authentication, permissions, filters, pagination, order detail,
transitions and incidents."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import RequestFactory
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from orders.actors import Actor
from orders.models import Incident, Order
from orders.services import (
    LineInput,
    OrderInput,
    incident_raise,
    incident_transition,
    order_create,
)
from tests.factories import (
    CustomerFactory,
    SalesChannelFactory,
    advance,
    make_order,
    make_user,
)

ORDERS = "/api/v1/orders/"
INCIDENTS = "/api/v1/incidents/"
ORDER_MONEY = ["subtotal", "discount_total", "shipping_total", "tax_total", "total",
               "refunded_total"]  # fmt: skip
LINE_MONEY = ["unit_price", "discount_allocation", "tax_allocation"]


def detail_url(order_id: int) -> str:
    return f"{ORDERS}{order_id}/"


def transition_url(order_id: int) -> str:
    return f"{ORDERS}{order_id}/transition/"


def received_order(*, placed_at: datetime, channel=None, external_id: str = "") -> Order:
    """An order straight from ``order_create`` (its pipeline does not run: stays received)."""
    channel = channel or SalesChannelFactory()
    return order_create(
        data=OrderInput(
            channel_id=channel.pk,
            external_id=external_id or f"R-{placed_at:%Y%m%d%H%M%S%f}",
            currency="USD",
            customer_id=CustomerFactory().pk,
            lines=[LineInput(sku="SKU-1", quantity=1, unit_price=Decimal("10.00"))],
            placed_at=placed_at,
        ),
        actor=Actor.system("test"),
    )


def ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


@pytest.fixture
def as_cs(api_client, cs_user) -> APIClient:
    api_client.force_authenticate(cs_user)
    return api_client


# --- authentication ------------------------------------------------------------------------------
@pytest.mark.parametrize("url", [ORDERS, INCIDENTS])
def test_anonymous_requests_get_401_with_a_code_and_detail(api_client, db, url):
    response = api_client.get(url)

    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "not_authenticated"
    assert body["detail"]
    assert response["WWW-Authenticate"].startswith("Token")


def test_anonymous_transition_gets_401_and_changes_nothing(api_client, db):
    order = make_order()

    response = api_client.post(transition_url(order.pk), {"transition": "cancel"}, format="json")

    assert response.status_code == 401
    order.refresh_from_db()
    assert order.status == "validated"


def test_a_wrong_token_gets_401(api_client, cs_user):
    api_client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)

    response = api_client.get(ORDERS)

    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_token_authentication_lists_orders(api_client, cs_user):
    order = make_order()
    token = Token.objects.create(user=cs_user)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")

    response = api_client.get(ORDERS)

    assert ids(response) == {order.pk}


def test_a_token_issued_by_drf_create_token_authenticates(api_client, cs_user):
    order = make_order()
    out = io.StringIO()

    call_command("drf_create_token", cs_user.username, stdout=out)

    key = Token.objects.get(user=cs_user).key
    assert key in out.getvalue()
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert ids(api_client.get(ORDERS)) == {order.pk}


def test_session_authentication_lists_orders(api_client, cs_user):
    order = make_order()
    # The login throttle (django-axes) needs the request a real sign-in has.
    request = RequestFactory().post("/admin/login/")
    assert api_client.login(
        request=request, username=cs_user.username, password="pw-" + cs_user.username
    )

    assert ids(api_client.get(ORDERS)) == {order.pk}


def test_a_session_post_without_csrf_token_is_refused(cs_user):
    order = make_order()
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(cs_user)

    response = client.post(
        transition_url(order.pk), {"transition": "hold", "reason": "x"}, format="json"
    )

    assert response.status_code == 403
    order.refresh_from_db()
    assert order.status == "validated"


# --- permissions ---------------------------------------------------------------------------------
def test_a_user_without_view_order_permission_gets_403(api_client, db):
    order = make_order()
    api_client.force_authenticate(make_user("nobody"))

    for response in (
        api_client.get(ORDERS),
        api_client.get(detail_url(order.pk)),
        api_client.post(transition_url(order.pk), {"transition": "cancel"}, format="json"),
        api_client.get(INCIDENTS),
    ):
        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"
    order.refresh_from_db()
    assert order.status == "validated"


def test_orders_cannot_be_created_edited_or_deleted_through_the_api(api_client, ops_user):
    order = make_order()
    api_client.force_authenticate(ops_user)  # holds every orders permission

    assert api_client.post(ORDERS, {}, format="json").status_code == 405
    assert api_client.patch(detail_url(order.pk), {"total": "1"}, format="json").status_code == 405
    assert api_client.delete(detail_url(order.pk)).status_code == 405
    order.refresh_from_db()
    assert order.total == Decimal("26.50")


# --- list filters --------------------------------------------------------------------------------
def test_orders_filter_by_channel_slug(as_cs):
    shop = SalesChannelFactory(slug="shop")
    other = SalesChannelFactory(slug="amazon-us")
    mine = make_order(channel=shop)
    make_order(channel=other)

    assert ids(as_cs.get(ORDERS, {"channel": "shop"})) == {mine.pk}
    assert as_cs.get(ORDERS, {"channel": "shop"}).json()["results"][0]["channel"] == "shop"


def test_orders_filter_by_external_id(as_cs):
    wanted = make_order(external_id="1001")
    make_order(external_id="1002")

    assert ids(as_cs.get(ORDERS, {"external_id": "1001"})) == {wanted.pk}
    assert ids(as_cs.get(ORDERS, {"external_id": "nope"})) == set()


def test_orders_filter_by_one_status_or_several(as_cs):
    validated = make_order()
    on_hold = make_order(total="999.00")
    cancelled = advance(make_order(), "cancel")
    assert (validated.status, on_hold.status, cancelled.status) == (
        "validated", "on_hold", "cancelled",
    )  # fmt: skip

    assert ids(as_cs.get(ORDERS, {"status": "validated"})) == {validated.pk}
    assert ids(as_cs.get(f"{ORDERS}?status=validated&status=on_hold")) == {
        validated.pk,
        on_hold.pk,
    }


def test_orders_filter_by_an_unknown_status_is_a_400(as_cs):
    response = as_cs.get(ORDERS, {"status": "teleported"})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_orders_filter_by_payment_status(as_cs):
    paid = advance(make_order(), "capture_payment")
    authorized = advance(make_order(), "authorize_payment")
    make_order()

    assert ids(as_cs.get(ORDERS, {"payment_status": "paid"})) == {paid.pk}
    assert ids(as_cs.get(f"{ORDERS}?payment_status=paid&payment_status=authorized")) == {
        paid.pk,
        authorized.pk,
    }


def test_orders_filter_by_placed_after_and_before(as_cs):
    early = received_order(placed_at=datetime(2026, 1, 10, 8, 0, tzinfo=UTC))
    middle = received_order(placed_at=datetime(2026, 2, 10, 8, 0, tzinfo=UTC))
    late = received_order(placed_at=datetime(2026, 3, 10, 8, 0, tzinfo=UTC))

    after = as_cs.get(ORDERS, {"placed_after": "2026-02-01T00:00:00Z"})
    before = as_cs.get(ORDERS, {"placed_before": "2026-02-01T00:00:00Z"})
    window = as_cs.get(
        ORDERS, {"placed_after": "2026-02-01T00:00:00Z", "placed_before": "2026-03-01T00:00:00Z"}
    )

    assert ids(after) == {middle.pk, late.pk}
    assert ids(before) == {early.pk}
    assert ids(window) == {middle.pk}


def test_placed_after_includes_the_boundary_and_placed_before_excludes_it(as_cs):
    at = datetime(2026, 2, 10, 8, 0, tzinfo=UTC)
    order = received_order(placed_at=at)

    assert ids(as_cs.get(ORDERS, {"placed_after": "2026-02-10T08:00:00Z"})) == {order.pk}
    assert ids(as_cs.get(ORDERS, {"placed_before": "2026-02-10T08:00:00Z"})) == set()


def test_orders_are_listed_newest_first(as_cs):
    old = received_order(placed_at=datetime(2026, 1, 1, tzinfo=UTC))
    new = received_order(placed_at=datetime(2026, 6, 1, tzinfo=UTC))

    results = as_cs.get(ORDERS).json()["results"]

    assert [r["id"] for r in results] == [new.pk, old.pk]


# --- pagination ----------------------------------------------------------------------------------
def test_order_list_is_paginated_with_count_next_previous_results(as_cs):
    orders = [received_order(placed_at=datetime(2026, 1, d, tzinfo=UTC)) for d in (1, 2, 3)]

    first = as_cs.get(ORDERS, {"page_size": 2}).json()

    assert set(first) >= {"count", "next", "previous", "results"}
    assert first["count"] == 3
    assert first["previous"] is None
    assert [r["id"] for r in first["results"]] == [orders[2].pk, orders[1].pk]
    assert "page=2" in first["next"]
    assert "page_size=2" in first["next"]

    second = as_cs.get(first["next"]).json()
    assert [r["id"] for r in second["results"]] == [orders[0].pk]
    assert second["next"] is None
    assert second["previous"] is not None


def test_page_size_is_capped_at_500(as_cs):
    channel = SalesChannelFactory()
    for i in range(501):
        received_order(
            placed_at=datetime(2026, 1, 1, tzinfo=UTC), channel=channel, external_id=f"B{i}"
        )

    body = as_cs.get(ORDERS, {"page_size": 10_000}).json()

    assert body["count"] == 501
    assert len(body["results"]) == 500
    assert body["next"] is not None


def test_default_page_size_is_50(as_cs):
    channel = SalesChannelFactory()
    for i in range(51):
        received_order(
            placed_at=datetime(2026, 1, 1, tzinfo=UTC), channel=channel, external_id=f"D{i}"
        )

    body = as_cs.get(ORDERS).json()

    assert body["count"] == 51
    assert len(body["results"]) == 50


def test_order_list_query_count_does_not_grow_with_the_number_of_orders(
    as_cs, django_assert_max_num_queries
):
    # Distinct channels and customers, so a per-row lookup of either would show.
    for i in range(12):
        make_order(channel=SalesChannelFactory(slug=f"nplus1-{i}"))

    with django_assert_max_num_queries(5):
        response = as_cs.get(ORDERS)

    assert len(response.json()["results"]) == 12


def test_incident_list_query_count_does_not_grow_with_the_number_of_incidents(
    as_cs, django_assert_max_num_queries
):
    for i in range(8):
        make_order(total="999.00", channel=SalesChannelFactory(slug=f"inc-{i}"))

    with django_assert_max_num_queries(5):
        response = as_cs.get(INCIDENTS)

    assert len(response.json()["results"]) == 8


# --- order detail --------------------------------------------------------------------------------
def test_order_detail_has_lines_with_decimal_strings_and_the_timeline_in_order(as_cs):
    order = make_order(lines=[("SKU-1", 2, "10.00"), ("SKU-2", 1, "3.50")])

    body = as_cs.get(detail_url(order.pk)).json()

    assert [(ln["line_no"], ln["sku"], ln["quantity"]) for ln in body["lines"]] == [
        (1, "SKU-1", 2),
        (2, "SKU-2", 1),
    ]
    assert [Decimal(ln["unit_price"]) for ln in body["lines"]] == [
        Decimal("10.00"),
        Decimal("3.50"),
    ]
    assert [e["action"] for e in body["timeline"]] == ["received", "check", "check", "validate"]
    assert [e["id"] for e in body["timeline"]] == sorted(e["id"] for e in body["timeline"])
    assert [e["at"] for e in body["timeline"]] == sorted(e["at"] for e in body["timeline"])
    assert body["timeline"][-1]["to_state"] == "validated"


def test_money_is_serialized_as_strings_never_floats(as_cs):
    order = advance(make_order(), "capture_payment")
    order = advance(order, "refund_partially", amount="2.25")

    detail = as_cs.get(detail_url(order.pk)).json()
    listed = as_cs.get(ORDERS).json()["results"][0]

    for body in (detail, listed):
        for name in ORDER_MONEY:
            assert isinstance(body[name], str), name
    for line in detail["lines"]:
        for name in LINE_MONEY:
            assert isinstance(line[name], str), name
    assert Decimal(detail["total"]) == Decimal("26.50")
    assert Decimal(detail["refunded_total"]) == Decimal("2.25")
    assert Decimal(detail["lines"][0]["tax_allocation"]) == Decimal("1.50")


def test_money_is_rendered_with_the_currency_minor_units(as_cs):
    usd = make_order(lines=[("SKU-1", 2, "10.00")], shipping="5.00", tax="1.50")
    jpy = make_order(currency="JPY", lines=[("SKU-1", 1, "1200")], shipping="0", tax="0")

    usd_body = as_cs.get(detail_url(usd.pk)).json()
    jpy_body = as_cs.get(detail_url(jpy.pk)).json()

    assert usd_body["lines"][0]["unit_price"] == "10.00"
    assert usd_body["total"] == "26.50"
    assert jpy_body["lines"][0]["unit_price"] == "1200"
    assert jpy_body["total"] == "1200"


def test_missing_order_detail_is_404_with_a_code(as_cs):
    response = as_cs.get(detail_url(987654))

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


# --- transitions ---------------------------------------------------------------------------------
def test_transition_answers_200_with_the_new_state_and_a_timeline_event_by_the_user(as_cs):
    order = make_order()

    response = as_cs.post(
        transition_url(order.pk),
        {"transition": "hold", "reason": "customer called", "expected_status": "validated"},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "on_hold"
    assert body["status_reason"] == "customer called"
    assert [e["action"] for e in body["timeline"]] == [
        "received",
        "check",
        "check",
        "validate",
        "hold",
    ]
    last = body["timeline"][-1]
    assert last["actor_kind"] == "user"
    assert last["actor_id"] == "carol"
    assert (last["field"], last["from_state"], last["to_state"]) == (
        "status", "validated", "on_hold",
    )  # fmt: skip
    order.refresh_from_db()
    assert order.status == "on_hold"


def test_finance_captures_a_payment_through_the_api(api_client, finance_user):
    order = make_order()
    api_client.force_authenticate(finance_user)

    response = api_client.post(
        transition_url(order.pk), {"transition": "capture_payment"}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert body["payment_status"] == "paid"
    assert body["status"] == "validated"
    last = body["timeline"][-1]
    assert (last["action"], last["field"], last["actor_id"]) == (
        "capture_payment", "payment_status", "fred",
    )  # fmt: skip


def test_a_transition_the_state_does_not_allow_is_409_naming_the_current_state(
    api_client, ops_user
):
    order = make_order()
    api_client.force_authenticate(ops_user)
    events_before = order.events.count()

    response = api_client.post(transition_url(order.pk), {"transition": "ship"}, format="json")

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "transition_not_allowed"
    assert "validated" in body["detail"]
    order.refresh_from_db()
    assert order.status == "validated"
    assert order.events.count() == events_before


def test_starting_fulfillment_before_payment_is_409_condition_not_met(api_client, ops_user):
    order = advance(make_order(), "allocate")
    api_client.force_authenticate(ops_user)

    refused = api_client.post(
        transition_url(order.pk), {"transition": "start_fulfillment"}, format="json"
    )

    assert refused.status_code == 409
    assert refused.json()["code"] == "condition_not_met"
    assert "payment" in refused.json()["detail"]
    order.refresh_from_db()
    assert order.status == "allocated"

    advance(order, "authorize_payment")
    allowed = api_client.post(
        transition_url(order.pk), {"transition": "start_fulfillment"}, format="json"
    )
    assert allowed.status_code == 200
    assert allowed.json()["status"] == "fulfilling"


def test_an_outdated_expected_status_is_409_stale_state(as_cs):
    order = make_order()
    events_before = order.events.count()

    response = as_cs.post(
        transition_url(order.pk),
        {"transition": "cancel", "expected_status": "received"},
        format="json",
    )

    assert response.status_code == 409
    assert response.json()["code"] == "stale_state"
    assert "validated" in response.json()["detail"]
    order.refresh_from_db()
    assert order.status == "validated"
    assert order.events.count() == events_before


def test_customer_service_capturing_a_payment_is_403_permission_denied(as_cs):
    order = make_order()
    events_before = order.events.count()

    response = as_cs.post(
        transition_url(order.pk), {"transition": "capture_payment"}, format="json"
    )

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    order.refresh_from_db()
    assert order.payment_status == "pending"
    assert order.events.count() == events_before


def test_an_unknown_transition_is_400(as_cs):
    order = make_order()

    response = as_cs.post(transition_url(order.pk), {"transition": "teleport"}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert "transition" in body["errors"]


def test_a_transition_without_a_name_is_400(as_cs):
    order = make_order()

    response = as_cs.post(transition_url(order.pk), {}, format="json")

    assert response.status_code == 400


def test_a_hold_without_a_reason_is_400(as_cs):
    order = make_order()

    response = as_cs.post(transition_url(order.pk), {"transition": "hold"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "reason_required"
    order.refresh_from_db()
    assert order.status == "validated"


def test_a_transition_on_a_missing_order_is_404(as_cs):
    response = as_cs.post(
        transition_url(987654), {"transition": "cancel", "reason": "x"}, format="json"
    )

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


# --- incidents -----------------------------------------------------------------------------------
@pytest.fixture
def incidents(db):
    """An open schema_invalid incident (from the pipeline), an open sku_unmapped one and an
    acknowledged schema_invalid one."""
    held = make_order(total="999.00")
    schema_open = Incident.objects.get(order=held)
    other = make_order()
    sku = incident_raise(
        category="sku_unmapped", summary="SKU not mapped", order_id=other.pk, key="SKU-1"
    )
    held2 = make_order(total="888.00")
    acked = Incident.objects.get(order=held2)
    incident_transition(incident_id=acked.pk, transition="acknowledge", actor=Actor.system())
    return {"schema_open": schema_open, "sku": sku, "acked": acked}


def test_an_inconsistent_order_shows_up_as_a_schema_invalid_incident(as_cs):
    order = make_order(total="999.00")

    results = as_cs.get(INCIDENTS).json()["results"]

    assert order.status == "on_hold"
    assert len(results) == 1
    assert results[0]["category"] == "schema_invalid"
    assert results[0]["status"] == "open"
    assert results[0]["order"] == order.pk
    assert results[0]["order_external_id"] == order.external_id


def test_incidents_filter_by_category(as_cs, incidents):
    assert ids(as_cs.get(INCIDENTS, {"category": "sku_unmapped"})) == {incidents["sku"].pk}
    assert ids(as_cs.get(INCIDENTS, {"category": "schema_invalid"})) == {
        incidents["schema_open"].pk,
        incidents["acked"].pk,
    }


def test_incidents_filter_by_status(as_cs, incidents):
    assert ids(as_cs.get(INCIDENTS, {"status": "acknowledged"})) == {incidents["acked"].pk}
    assert ids(as_cs.get(INCIDENTS, {"status": "open"})) == {
        incidents["schema_open"].pk,
        incidents["sku"].pk,
    }
    assert ids(as_cs.get(INCIDENTS, {"status": "open", "category": "schema_invalid"})) == {
        incidents["schema_open"].pk
    }


def test_customer_service_acknowledges_then_resolves_an_incident(as_cs, incidents):
    incident = incidents["schema_open"]

    ack = as_cs.post(f"{INCIDENTS}{incident.pk}/acknowledge/", {}, format="json")
    assert ack.status_code == 200
    assert ack.json()["status"] == "acknowledged"

    resolved = as_cs.post(
        f"{INCIDENTS}{incident.pk}/resolve/", {"note": "totals fixed at source"}, format="json"
    )
    assert resolved.status_code == 200
    body = resolved.json()
    assert body["status"] == "resolved"
    assert body["resolution_note"] == "totals fixed at source"
    assert body["resolved_at"] is not None

    events = incident.order.events.filter(action__startswith="incident_").order_by("id")
    assert [(e.action, e.actor_id) for e in events] == [
        ("incident_acknowledge", "carol"),
        ("incident_resolve", "carol"),
    ]


def test_finance_cannot_acknowledge_an_incident(api_client, finance_user, incidents):
    incident = incidents["schema_open"]
    api_client.force_authenticate(finance_user)

    assert api_client.get(INCIDENTS).status_code == 200  # may look...
    response = api_client.post(f"{INCIDENTS}{incident.pk}/acknowledge/", {}, format="json")

    assert response.status_code == 403  # ...but not work them
    assert response.json()["code"] == "permission_denied"
    incident.refresh_from_db()
    assert incident.status == "open"


def test_finance_cannot_resolve_an_incident(api_client, finance_user, incidents):
    incident = incidents["acked"]
    api_client.force_authenticate(finance_user)

    response = api_client.post(f"{INCIDENTS}{incident.pk}/resolve/", {}, format="json")

    assert response.status_code == 403
    incident.refresh_from_db()
    assert incident.status == "acknowledged"


def test_acknowledging_a_resolved_incident_is_409(as_cs, incidents):
    incident = incidents["sku"]
    as_cs.post(f"{INCIDENTS}{incident.pk}/resolve/", {}, format="json")

    response = as_cs.post(f"{INCIDENTS}{incident.pk}/acknowledge/", {}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "transition_not_allowed"


def test_acknowledging_a_missing_incident_is_404(as_cs):
    response = as_cs.post(f"{INCIDENTS}987654/acknowledge/", {}, format="json")

    assert response.status_code == 404


def test_incidents_grouped_by_category_give_the_frequency_per_day(api_client, cs_user, settings):
    from orders.services import incident_raise

    # The admin's clock is not UTC: the trend must still cut days at UTC midnight.
    settings.TIME_ZONE = "America/New_York"
    first = make_order(total="999.00")  # schema_invalid, from the totals check
    second = make_order(total="998.00")
    incident_raise(category="schema_invalid", summary="again", order_id=first.pk, key="totals")
    others = [incident_raise(category="other", summary=f"other {k}", key=k) for k in "abc"]
    sku = incident_raise(category="sku_unmapped", summary="no such sku", key="NOPE")
    assert Incident.objects.count() == 6  # two totals incidents, three others, one sku
    before_midnight = datetime(2026, 11, 2, 23, 59, tzinfo=UTC)
    after_midnight = datetime(2026, 11, 3, 0, 1, tzinfo=UTC)  # still Nov 2 in New York
    first_seen = {
        Incident.objects.get(order=first, category="schema_invalid").pk: before_midnight,
        Incident.objects.get(order=second, category="schema_invalid").pk: after_midnight,
        others[0].pk: before_midnight,
        others[1].pk: after_midnight,
        others[2].pk: after_midnight,
        sku.pk: after_midnight,
    }
    for pk, at in first_seen.items():
        Incident.objects.filter(pk=pk).update(first_seen_at=at)
    api_client.force_authenticate(cs_user)

    response = api_client.get("/api/v1/incidents/", {"group_by": "category"})

    assert response.status_code == 200
    body = response.json()
    assert body["group_by"] == "category"
    # Newest day first, then by category; the first order's totals incident was seen twice.
    assert body["results"] == [
        {"category": "other", "day": "2026-11-03", "incidents": 2, "occurrences": 2},
        {"category": "schema_invalid", "day": "2026-11-03", "incidents": 1, "occurrences": 1},
        {"category": "sku_unmapped", "day": "2026-11-03", "incidents": 1, "occurrences": 1},
        {"category": "other", "day": "2026-11-02", "incidents": 1, "occurrences": 1},
        {"category": "schema_invalid", "day": "2026-11-02", "incidents": 1, "occurrences": 2},
    ]
    filtered = api_client.get("/api/v1/incidents/", {"group_by": "category", "category": "other"})
    rows = filtered.json()["results"]
    assert [(row["category"], row["day"], row["incidents"]) for row in rows] == [
        ("other", "2026-11-03", 2), ("other", "2026-11-02", 1),
    ]  # fmt: skip
    assert api_client.get("/api/v1/incidents/", {"group_by": "colour"}).status_code == 400
