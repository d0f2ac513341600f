"""Payment eligibility: consumers need an accepted, secured payment; business accounts on net
terms need approval and room under their credit limit."""

from decimal import Decimal

import pytest

from orders import validation
from orders.models import Incident, Order
from tests.factories import BusinessCustomerFactory, CustomerFactory, advance, make_order
from tests.reviews.helpers import WENT_ON

# The checks as production registers them (orders.apps.ready), the payment check among them.
pytestmark = pytest.mark.pipeline


def _order(*, method="card", payments=(), total="450.00", **kwargs):
    """A received order with a payment method and payment steps, then its pipeline run."""
    order = make_order(lines=[("SKU-1", 1, total)], shipping="0", tax="0", pipeline=False,
                       **kwargs)  # fmt: skip
    Order.objects.filter(pk=order.pk).update(payment_method=method)  # not a state field
    if payments:
        advance(order, *payments)
    validation.order_validate(order_id=order.pk)
    order.refresh_from_db()
    return order


def _payment_event(order):
    return order.events.get(action="check", data__check="payment").data


def test_a_consumer_order_with_a_captured_payment_passes(db):
    order = _order(payments=["capture_payment"])
    assert order.status in WENT_ON
    assert _payment_event(order)["outcome"] == "passed"
    assert not Incident.objects.filter(category="payment_ineligible").exists()


def test_an_authorized_payment_is_enough(db):
    assert _order(payments=["authorize_payment"]).status in WENT_ON


def test_a_pending_consumer_payment_holds_the_order_with_a_payment_incident(db):
    order = _order()
    assert order.status == "on_hold"
    assert "The payment is pending: it must be authorized or captured" in order.status_reason
    incident = Incident.objects.get(category="payment_ineligible")
    assert (incident.category, incident.order_id, incident.details["check"]) == (
        "payment_ineligible", order.pk, "payment",
    )  # fmt: skip


def test_a_method_the_channel_kind_does_not_accept_is_refused(db, settings):
    settings.ACCEPTED_PAYMENT_METHODS = {"shopify": ["shopify_payments", "gift_card"]}
    refused = _order(method="PayPal", payments=["capture_payment"])
    assert refused.status == "on_hold"
    assert refused.status_reason == "Payment method paypal is not accepted on shopify orders"
    # Shopify joins gateways with "+": every one must be accepted.
    assert (
        _order(method="shopify_payments+gift_card", payments=["capture_payment"]).status in WENT_ON
    )
    assert _order(method="", payments=["capture_payment"]).status == "on_hold"


def test_every_method_is_accepted_where_the_channel_kind_is_not_configured(db, settings):
    settings.ACCEPTED_PAYMENT_METHODS = {"amazon": ["amazon_pay"]}
    assert _order(method="anything", payments=["capture_payment"]).status in WENT_ON


def test_a_consumer_cannot_buy_on_net_terms(db):
    order = _order(method="net_terms", payments=["capture_payment"])
    assert order.status == "on_hold"
    assert "only for business accounts" in order.status_reason


def test_a_net_terms_order_within_the_credit_limit_passes(db):
    acme = BusinessCustomerFactory(credit_limit=Decimal("5000"))
    order = _order(method="net_terms", customer=acme, total="450.00")
    assert order.status in WENT_ON
    data = _payment_event(order)
    assert data["message"] == "Net terms: 450.00 USD of the credit limit 5000.00 USD used"
    assert data["details"]["open_exposure"] == "0.00"


def _net_terms_order(customer, total, *steps):
    order = make_order(customer=customer, lines=[("SKU-1", 1, total)], shipping="0", tax="0",
                       pipeline=False)  # fmt: skip
    return advance(order, "grant_net_terms", *steps)


def test_open_exposure_plus_the_order_over_the_credit_limit_holds_it(db):
    acme = BusinessCustomerFactory(credit_limit=Decimal("5000"))
    _net_terms_order(acme, "3000.00")
    _net_terms_order(acme, "1800.00")
    _net_terms_order(acme, "900.00", "settle_invoice")  # paid: no longer open
    _net_terms_order(acme, "700.00", "cancel")  # cancelled: not owed

    order = _order(method="net_terms", customer=acme, total="450.00")

    assert order.status == "on_hold"
    message = ("Open net-terms exposure 4800.00 USD + this order 450.00 USD exceeds the credit "
               "limit 5000.00 USD")  # fmt: skip
    assert order.status_reason == message
    incident = Incident.objects.get(category="payment_ineligible")
    assert incident.summary == message
    assert incident.details["open_exposure"] == "4800.00"
    # No personal data in what people and logs see.
    for text in (message, str(incident.details)):
        assert acme.email not in text and acme.company_name not in text


def test_exactly_reaching_the_credit_limit_is_allowed(db):
    acme = BusinessCustomerFactory(credit_limit=Decimal("5000"))
    _net_terms_order(acme, "4550.00")
    assert _order(method="net_terms", customer=acme, total="450.00").status in WENT_ON


def test_a_pending_business_order_is_judged_by_its_net_terms(db):
    not_approved = BusinessCustomerFactory(net_terms_approved=False)
    order = _order(method="card", customer=not_approved)
    assert order.status == "on_hold"
    assert order.status_reason == "The business account is not approved for net terms"


def test_a_business_order_paid_by_card_is_judged_like_a_consumer_order(db):
    not_approved = BusinessCustomerFactory(net_terms_approved=False)
    assert _order(customer=not_approved, payments=["capture_payment"]).status in WENT_ON


def test_an_order_in_another_currency_than_the_credit_limit_is_not_converted(db):
    acme = BusinessCustomerFactory(credit_limit=Decimal("5000"), credit_currency="USD")
    order = _order(method="net_terms", customer=acme, currency="EUR")
    assert order.status == "on_hold"
    assert order.status_reason == (
        "The order is in EUR but the credit limit is in USD: amounts in different currencies "
        "are not converted"
    )


def test_open_exposure_in_another_currency_cannot_be_compared(db):
    acme = BusinessCustomerFactory(credit_limit=Decimal("5000"))
    other = make_order(customer=acme, currency="EUR", pipeline=False)
    advance(other, "grant_net_terms")
    order = _order(method="net_terms", customer=acme)
    assert order.status == "on_hold"
    assert "exposure in EUR cannot be compared with the credit limit in USD" in order.status_reason


def test_a_rerun_bumps_the_incident_and_a_later_payment_resolves_it(
    db, django_capture_on_commit_callbacks
):
    from orders.actors import Actor
    from orders.services import order_transition

    order = _order(customer=CustomerFactory())
    assert order.status == "on_hold"
    with django_capture_on_commit_callbacks(execute=True):
        order_transition(order_id=order.pk, transition="release_hold", actor=Actor.system())
    incident = Incident.objects.get(category="payment_ineligible")
    assert incident.occurrence_count == 2

    advance(order, "capture_payment")
    with django_capture_on_commit_callbacks(execute=True):
        order_transition(order_id=order.pk, transition="release_hold", actor=Actor.system())
    order.refresh_from_db()
    incident.refresh_from_db()
    assert order.status in WENT_ON
    assert incident.status == "resolved"
