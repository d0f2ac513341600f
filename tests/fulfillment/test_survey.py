"""After delivery: a review request scheduled in the database SURVEY_DELAY_HOURS later, only to
customers who accept marketing email, once per order, and checked again when it is sent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from fulfillment.downstream.notify_email import SUBJECTS
from fulfillment.models import ActionStatus, OutboundAction
from fulfillment.outbox.services import action_dispatch, due_action_ids, outbox_drain
from fulfillment.postpurchase import REVIEW_REQUEST_VERSION
from orders.actors import Actor
from orders.models import Customer
from orders.privacy import Subject, subject_redact
from tests.factories import CustomerFactory, SalesChannelFactory, make_order
from tests.fulfillment.helpers import add_warehouse, stock
from tests.fulfillment.outbox.helpers import make_due, sweep
from tests.fulfillment.test_tracking import record

pytestmark = pytest.mark.django_db

OPS = Actor.system("test")


@pytest.fixture(autouse=True)
def survey_settings(settings):
    settings.NOTIFY_TARGETS = ["email"]
    settings.SURVEY_DELAY_HOURS = 72
    settings.SURVEY_URL = "https://reviews.example.com/r/{order_number}"
    settings.DEFAULT_FROM_EMAIL = "Shop <orders@shop.example>"
    settings.CRM_TARGETS = []
    return settings


def delivered(*, accepts_marketing: bool = True, channel=None):
    from fulfillment.shipments import shipment_buy_label, shipment_ship, shipments_create_for_order

    add_warehouse("A")
    stock("MUG", "A", 5)
    customer = CustomerFactory(accepts_marketing=accepts_marketing)
    order = make_order(paid=True, customer=customer, channel=channel,
                       lines=[("MUG", 1, "10.00")])  # fmt: skip
    [draft] = shipments_create_for_order(order_id=order.pk, actor=OPS)
    parcel = shipment_ship(shipment_id=shipment_buy_label(shipment_id=draft.pk, actor=OPS).pk,
                           actor=OPS)  # fmt: skip
    record(parcel, ("in_transit", 1, "Arrived"), ("delivered", 8, "Delivered"))
    order.refresh_from_db()
    parcel.refresh_from_db()
    assert order.status == "delivered"
    return order, parcel


def review_requests(order):
    return OutboundAction.objects.filter(
        order=order, kind="notify_customer", payload__template="review_request"
    )


def test_a_review_request_is_scheduled_after_delivery_and_not_sent_before_it_is_due():
    order, parcel = delivered()
    [action] = review_requests(order)
    assert action.target == "email" and action.version == REVIEW_REQUEST_VERSION
    assert action.payload == {"order_id": order.pk, "template": "review_request"}
    assert action.next_attempt_at == parcel.delivered_at + timedelta(hours=72)
    # Before it is due: not among the due actions, the sweeper leaves it, a stray doorbell waits.
    now = timezone.now()
    assert action.pk not in due_action_ids(now=now)
    sweep(now=now)
    assert action_dispatch(action_id=action.pk) == "not_due"
    outbox_drain()  # process_outbox: everything due now, not this
    action.refresh_from_db()
    assert action.status == ActionStatus.PENDING and action.attempts == 0
    assert not [m for m in mail.outbox if "How was your order" in m.subject]


def test_it_is_sent_once_when_due_with_the_survey_link():
    order, parcel = delivered()
    [action] = review_requests(order)
    due = action.next_attempt_at
    assert action.pk in due_action_ids(now=due + timedelta(seconds=1))
    mail.outbox.clear()
    make_due(action)
    assert action_dispatch(action_id=action.pk) == "succeeded"
    assert action_dispatch(action_id=action.pk) == "done"
    [message] = mail.outbox
    number = order.order_number or order.external_id
    assert message.subject == SUBJECTS["review_request"].format(number=number)
    assert message.to == [order.customer.email]
    assert f"https://reviews.example.com/r/{number}" in message.body
    assert f"https://reviews.example.com/r/{number}" in message.alternatives[0][0]
    action.refresh_from_db()
    assert action.result["sent"] is True
    # Delivered again (a replayed event, a second parcel's hook): still one request.
    record(parcel, ("delivered", 8, "Delivered"))
    assert review_requests(order).count() == 1


def test_without_a_survey_url_the_email_asks_for_a_reply(settings):
    settings.SURVEY_URL = ""
    order, _parcel = delivered()
    [action] = review_requests(order)
    make_due(action)
    mail.outbox.clear()
    action_dispatch(action_id=action.pk)
    [message] = mail.outbox
    assert "reply to this email" in message.body and "https://" not in message.body


def test_the_delay_is_a_setting(settings):
    settings.SURVEY_DELAY_HOURS = 24
    order, parcel = delivered()
    [action] = review_requests(order)
    assert action.next_attempt_at == parcel.delivered_at + timedelta(hours=24)


def test_a_customer_who_does_not_accept_marketing_gets_no_request():
    order, _parcel = delivered(accepts_marketing=False)
    assert not review_requests(order).exists()


def test_no_email_target_no_request(settings):
    settings.NOTIFY_TARGETS = []
    order, _parcel = delivered()
    assert not review_requests(order).exists()


def test_consent_withdrawn_meanwhile_is_checked_at_send_time():
    order, _parcel = delivered()
    [action] = review_requests(order)
    Customer.objects.filter(pk=order.customer_id).update(accepts_marketing=False)
    make_due(action)
    mail.outbox.clear()
    assert action_dispatch(action_id=action.pk) == "succeeded"
    action.refresh_from_db()
    assert action.result == {"sent": False, "reason": "no_marketing_consent",
                             "template": "review_request"}  # fmt: skip
    assert mail.outbox == []


def test_a_customer_redacted_meanwhile_gets_nothing():
    channel = SalesChannelFactory()
    order, _parcel = delivered(channel=channel)
    [action] = review_requests(order)
    email = order.customer.email
    subject_redact(
        subject=Subject(channel_id=channel.pk, channel_slug=channel.slug, email=email,
                        order_external_ids=(order.external_id,)),
        request="test", actor=OPS,
    )  # fmt: skip
    assert Customer.objects.get(pk=order.customer_id).accepts_marketing is False
    make_due(action)
    mail.outbox.clear()
    action_dispatch(action_id=action.pk)
    action.refresh_from_db()
    assert action.result["reason"] == "no_marketing_consent"
    assert mail.outbox == []
