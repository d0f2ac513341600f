"""The whole validation pipeline as production registers it (totals, duplicate, address,
payment, SKU mapping, fraud, stock): each failure is one categorized incident, and running the
pipeline again bumps that incident instead of opening another."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import TestCase

from fulfillment.services import stock_restock, warehouse_upsert
from orders import validation
from orders.actors import Actor
from orders.models import Incident, OrderEvent
from orders.services import order_transition
from tests.factories import BusinessCustomerFactory, CustomerFactory, make_order

pytestmark = [pytest.mark.django_db, pytest.mark.pipeline]


@pytest.fixture(autouse=True)
def warehouse():
    warehouse_upsert(code="W1", country="US")
    stock_restock(sku="SKU-1", warehouse_code="W1", on_hand=100)


def release(order, actor=None):
    """Release a hold: the pipeline runs again (after commit)."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        order_transition(order_id=order.pk, transition="release_hold",
                         actor=actor or Actor.system("test"))  # fmt: skip
    order.refresh_from_db()
    return order


def check_outcomes(order):
    return {
        e.data["check"]: e.data["outcome"]
        for e in OrderEvent.objects.filter(order=order, action="check").order_by("id")
    }


def test_a_clean_order_passes_every_check_is_allocated_and_stores_its_verdicts():
    order = make_order(paid=True)
    assert order.status == "allocated"
    assert check_outcomes(order) == {
        "totals": "passed", "duplicate": "passed", "address": "passed", "payment": "passed",
        "sku_mapped": "passed", "fraud": "passed",
    }  # fmt: skip
    assert (order.address_deliverability, order.address_confidence, order.address_source) == (
        "unknown", Decimal("0.50"), "offline",
    )  # fmt: skip
    assert order.address_checked_at is not None
    assert order.risk_score == Decimal("10.00")  # first-time customer, nothing else
    assert [s["name"] for s in order.risk_signals] == ["first_time_customer"]
    assert not Incident.objects.exists()


def totals_mismatch():
    return make_order(paid=True, total="99.00"), "schema_invalid"


def duplicate():
    customer = CustomerFactory()
    first = make_order(paid=True, customer=customer)
    assert first.status == "allocated"
    return make_order(paid=True, customer=customer), "duplicate_suspected"


def bad_address():
    order = make_order(paid=True, pipeline=False)
    order.shipping_address = {**order.shipping_address, "postal_code": "ABCDE"}
    order.save(update_fields=["shipping_address"])
    validation.order_validate(order_id=order.pk)
    order.refresh_from_db()
    return order, "address_format_invalid"


def unpaid():
    return make_order(), "payment_ineligible"


def b2b_over_limit():
    customer = BusinessCustomerFactory(credit_limit=Decimal("20.00"))
    return make_order(customer=customer), "payment_ineligible"


FAILURES = [totals_mismatch, duplicate, bad_address, unpaid, b2b_over_limit]


@pytest.mark.parametrize("make", FAILURES, ids=lambda f: f.__name__)
def test_a_failing_check_holds_the_order_with_one_incident_and_a_rerun_bumps_it(make):
    order, category = make()
    assert order.status == "on_hold"
    incident = Incident.objects.get(order=order)
    assert incident.category == category
    assert order.status_reason

    order = release(order)
    assert order.status == "on_hold"
    incident.refresh_from_db()
    assert Incident.objects.filter(order=order).count() == 1
    assert incident.occurrence_count == 2
    assert not order.reservations.exists()  # a held order reserves nothing


def test_no_stock_backorders_then_each_retry_bumps_the_same_incident():
    order = make_order(paid=True, lines=[("NOSTOCK", 1, "10.00")], shipping="0", tax="0")
    assert order.status == "backordered"
    for expected in (2, 3):
        validation.order_allocate(order_id=order.pk)
        incident = Incident.objects.get(order=order)
        assert (incident.category, incident.occurrence_count) == ("inventory_unavailable", expected)
    stock_restock(sku="NOSTOCK", warehouse_code="W1", on_hand=1)
    assert validation.order_allocate(order_id=order.pk).status == "allocated"
    incident.refresh_from_db()
    assert incident.status == "resolved"


def test_a_suspected_duplicate_released_by_a_person_goes_through(ops_user):
    customer = CustomerFactory()
    first = make_order(paid=True, customer=customer)
    second = make_order(paid=True, customer=customer)
    assert second.status == "on_hold"
    incident = Incident.objects.get(order=second)
    assert incident.details["other_order_id"] == first.pk
    assert f"Possible duplicate of order {first.pk}" in second.status_reason

    second = release(second, Actor.for_user(ops_user))
    assert second.status == "allocated"
    assert check_outcomes(second)["duplicate"] == "passed"
    incident.refresh_from_db()
    assert incident.status == "resolved"


def test_other_items_or_a_cancelled_twin_are_no_duplicate():
    customer = CustomerFactory()
    first = make_order(paid=True, customer=customer)
    other_items = make_order(paid=True, customer=customer, lines=[("SKU-1", 1, "20.00")])
    assert other_items.status == "allocated"
    order_transition(order_id=first.pk, transition="cancel", actor=Actor.system(), reason="x")
    order_transition(order_id=other_items.pk, transition="cancel", actor=Actor.system(),
                     reason="x")  # fmt: skip
    assert make_order(paid=True, customer=customer).status == "allocated"


def test_the_order_page_shows_the_address_verdict_and_the_score_breakdown_in_words(client, cs_user):
    order = make_order(paid=True, country="DE")  # international: in review
    assert order.status == "in_review"
    client.force_login(cs_user)
    page = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert "Unknown (format valid), confidence 0.50 (offline rules)" in page
    assert "+20 international: ships to DE (home US)" in page
    assert "+10 first_time_customer: no earlier order by this customer" in page
    assert "&quot;weight&quot;" not in page  # no raw JSON dump


def test_the_order_api_shows_its_reservations_and_address_verdict(api_client, cs_user):
    order = make_order(paid=True, lines=[("SKU-1", 3, "10.00")])
    api_client.force_authenticate(cs_user)
    body = api_client.get(f"/api/v1/orders/{order.pk}/").json()
    [reservation] = body["reservations"]
    assert {k: reservation[k] for k in ("line_no", "sku", "warehouse", "quantity", "status")} == {
        "line_no": 1, "sku": "SKU-1", "warehouse": "W1", "quantity": 3, "status": "active",
    }  # fmt: skip
    assert reservation["expires_at"]
    assert (body["address_deliverability"], body["address_confidence"]) == ("unknown", "0.50")
