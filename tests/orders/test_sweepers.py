"""Sweepers for order states that wait on a message: a lost message must not stall an order."""

from datetime import timedelta

import pytest
from django.test import TestCase
from django.utils import timezone

from orders.actors import Actor
from orders.models import Order, OrderEvent
from orders.tasks import order_allocate_sweep_task, order_allocate_task
from reviews.models import ReviewCase
from reviews.services import review_case_approve, review_case_start
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse, stock
from tests.reviews.helpers import paid_order

# The allocator and the review router run, as in production.
pytestmark = pytest.mark.pipeline


def _age(order: Order, minutes: int) -> None:
    Order.objects.filter(pk=order.pk).update(updated_at=timezone.now() - timedelta(minutes=minutes))


def _approved_with_allocate_message_lost(reviewer_user) -> Order:
    """An international order (always reviewed) approved by a reviewer; the after-commit
    ``orders.order_allocate`` message is dropped, as if the broker lost it."""
    add_warehouse("WH1")
    stock("SKU-1", "WH1", 10)
    order = paid_order(country="DE")
    assert order.status == "in_review"
    actor = Actor.for_user(reviewer_user)
    case = review_case_start(case_id=ReviewCase.objects.get(order=order).pk, actor=actor)
    with TestCase.captureOnCommitCallbacks(execute=False) as dropped:
        review_case_approve(case_id=case.pk, actor=actor)
    assert dropped  # the allocate doorbell that never rang
    order.refresh_from_db()
    return order


def test_an_approved_order_whose_allocate_message_was_lost_is_allocated_by_the_sweeper(
    db, settings, reviewer_user
):
    settings.ORDER_ALLOCATE_STUCK_AFTER_SECONDS = 60
    order = _approved_with_allocate_message_lost(reviewer_user)
    assert order.status == "validated"
    _age(order, minutes=5)

    assert order_allocate_sweep_task() == 1

    order.refresh_from_db()
    assert order.status == "allocated"


def test_the_allocate_sweeper_leaves_an_order_younger_than_the_threshold_alone(
    db, settings, reviewer_user
):
    settings.ORDER_ALLOCATE_STUCK_AFTER_SECONDS = 60
    order = _approved_with_allocate_message_lost(reviewer_user)

    assert order_allocate_sweep_task() == 0

    order.refresh_from_db()
    assert order.status == "validated"


def test_the_allocate_sweeper_does_not_touch_orders_that_moved_on(db, settings):
    settings.ORDER_ALLOCATE_STUCK_AFTER_SECONDS = 60
    add_warehouse("WH1")
    stock("SKU-1", "WH1", 10)
    allocated = make_order(paid=True)
    received = make_order(pipeline=False)
    assert (allocated.status, received.status) == ("allocated", "received")
    for order in (allocated, received):
        _age(order, minutes=5)
    events = OrderEvent.objects.count()

    assert order_allocate_sweep_task() == 0
    # A late allocate message for an order that moved on is a no-op too.
    assert order_allocate_task(order_id=allocated.pk) is None

    allocated.refresh_from_db()
    assert allocated.status == "allocated"
    assert OrderEvent.objects.count() == events


def test_a_second_allocate_sweep_does_nothing(db, settings, reviewer_user):
    settings.ORDER_ALLOCATE_STUCK_AFTER_SECONDS = 60
    order = _approved_with_allocate_message_lost(reviewer_user)
    _age(order, minutes=5)
    assert order_allocate_sweep_task() == 1
    events = OrderEvent.objects.filter(order=order).count()

    assert order_allocate_sweep_task() == 0

    order.refresh_from_db()
    assert order.status == "allocated"
    assert OrderEvent.objects.filter(order=order).count() == events
