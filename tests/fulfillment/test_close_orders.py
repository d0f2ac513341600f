"""Delivered orders close by themselves once their return window has passed and their payment
is settled: the channel's policy, else the shop's, else the default; audited; safe to repeat."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from fulfillment.closing import orders_close_due, return_window_days
from fulfillment.models import ReturnPolicy, Shipment
from fulfillment.shipments import shipment_buy_label, shipment_ship, shipments_create_for_order
from fulfillment.tasks import orders_close_due_task
from orders import validation
from orders.actors import Actor
from orders.services import order_transition
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse, stock
from tests.fulfillment.test_tracking import record

pytestmark = pytest.mark.django_db

OPS = Actor.system("test")


@pytest.fixture(autouse=True)
def close_settings(settings):
    settings.RETURN_WINDOW_DAYS_DEFAULT = 30
    settings.CRM_TARGETS = []
    return settings


def delivered(*, paid: bool = True, channel=None):
    add_warehouse("A")
    stock("MUG", "A", 5)
    order = make_order(paid=paid, channel=channel, lines=[("MUG", 1, "10.00")], pipeline=paid)
    if not paid:  # authorized (secured, not settled) before the checks run
        order_transition(order_id=order.pk, transition="authorize_payment", actor=OPS)
        validation.order_validate(order_id=order.pk)
    [draft] = shipments_create_for_order(order_id=order.pk, actor=OPS)
    parcel = shipment_ship(shipment_id=shipment_buy_label(shipment_id=draft.pk, actor=OPS).pk,
                           actor=OPS)  # fmt: skip
    record(parcel, ("delivered", 8, "Delivered"))
    order.refresh_from_db()
    parcel.refresh_from_db()
    assert order.status == "delivered"
    return order, parcel


def test_an_order_closes_once_the_default_window_has_passed_and_says_why():
    order, parcel = delivered()
    inside = orders_close_due(now=parcel.delivered_at + timedelta(days=29, hours=23))
    order.refresh_from_db()
    assert (inside.closed, inside.waiting, order.status) == (0, 1, "delivered")

    after = orders_close_due(now=parcel.delivered_at + timedelta(days=30, seconds=1))
    order.refresh_from_db()
    assert (after.closed, order.status) == (1, "closed")
    event = order.events.get(action="close")
    assert (event.actor_kind, event.actor_id) == ("system", "closing")
    assert (event.from_state, event.to_state) == ("delivered", "closed")
    assert event.data["reason"] == "return window of 30 days after delivery has passed"
    assert event.data["return_window_days"] == 30


def test_closing_again_changes_nothing():
    order, parcel = delivered()
    later = parcel.delivered_at + timedelta(days=40)
    assert orders_close_due(now=later).closed == 1
    again = orders_close_due(now=later)
    assert (again.checked, again.closed) == (0, 0)
    assert order.events.filter(action="close").count() == 1


def test_the_channels_policy_wins_over_the_shops_which_wins_over_the_default():
    order, parcel = delivered()
    channel = order.channel
    assert return_window_days(channel_id=channel.pk) == 30
    ReturnPolicy.objects.create(name="Shop", window_days=14)
    assert return_window_days(channel_id=channel.pk) == 14
    ReturnPolicy.objects.create(name="Store", window_days=60, channel=channel)
    ReturnPolicy.objects.create(name="Old store", window_days=5, channel=channel, is_active=False)
    assert return_window_days(channel_id=channel.pk) == 60

    assert orders_close_due(now=parcel.delivered_at + timedelta(days=45)).closed == 0
    assert orders_close_due(now=parcel.delivered_at + timedelta(days=61)).closed == 1
    order.refresh_from_db()
    assert order.events.get(action="close").data["return_window_days"] == 60


def test_an_order_whose_payment_is_not_settled_stays_delivered():
    order, parcel = delivered(paid=False)
    assert order.payment_status == "authorized"
    result = orders_close_due(now=parcel.delivered_at + timedelta(days=90))
    order.refresh_from_db()
    assert (result.checked, result.closed, order.status) == (0, 0, "delivered")
    order_transition(order_id=order.pk, transition="capture_payment", actor=OPS)
    assert orders_close_due(now=parcel.delivered_at + timedelta(days=90)).closed == 1


def test_the_beat_task_closes_what_is_due(settings):
    order, parcel = delivered()
    assert orders_close_due_task() == 0
    # Time passes: the parcel was delivered 31 days ago.
    Shipment.objects.filter(pk=parcel.pk).update(delivered_at=timezone.now() - timedelta(days=31))
    assert orders_close_due_task() == 1
    order.refresh_from_db()
    assert order.status == "closed"
    assert "fulfillment-orders-close-due" in settings.CELERY_BEAT_SCHEDULE
    assert settings.CELERY_BEAT_SCHEDULE["fulfillment-orders-close-due"]["task"] == (
        "fulfillment.orders_close_due"
    )
