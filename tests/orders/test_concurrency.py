"""Two sessions racing on one order: exactly one transition wins, the other is refused.

Runs on SQLite and on PostgreSQL (the CI's second pass). Each thread has its own database
connection, so the race is a real one between two sessions.
"""

import pytest
from django.db import transaction
from django_fsm import ConcurrentTransition

from orders.actors import Actor
from orders.errors import DomainError, StaleState, TransitionRefused
from orders.models import Order
from orders.services import order_transition
from tests.concurrency import race
from tests.factories import make_order

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_sessions_applying_the_same_transition_only_one_wins():
    order = make_order(pipeline=False)

    def validate():
        return order_transition(order_id=order.pk, transition="validate", actor=Actor.system())

    results = race([validate, validate])

    winners = [r for r in results if isinstance(r, Order)]
    losers = [r for r in results if isinstance(r, DomainError)]
    assert len(winners) == 1, results
    assert len(losers) == 1 and isinstance(losers[0], TransitionRefused)
    assert "status is 'validated'" in str(losers[0])
    order.refresh_from_db()
    assert order.status == "validated"
    assert order.events.filter(action="validate").count() == 1


def test_two_people_acting_on_what_they_saw_only_the_first_is_applied():
    order = make_order()  # validated: both hold and cancel are allowed from here

    def hold():
        return order_transition(order_id=order.pk, transition="hold", actor=Actor.system("a"),
                                expected_status="validated", reason="check address")  # fmt: skip

    def cancel():
        return order_transition(order_id=order.pk, transition="cancel", actor=Actor.system("b"),
                                expected_status="validated", reason="customer asked")  # fmt: skip

    results = race([hold, cancel])

    winners = [r for r in results if isinstance(r, Order)]
    losers = [r for r in results if isinstance(r, Exception)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert isinstance(losers[0], StaleState)
    assert losers[0].code == "stale_state"
    order.refresh_from_db()
    assert order.status == winners[0].status
    assert order.events.filter(action__in=["hold", "cancel"]).count() == 1


def test_a_stale_copy_of_an_order_cannot_be_saved_over_a_newer_state():
    """The model's own guard (ConcurrentTransitionMixin), for code paths that do not lock."""
    make_order(pipeline=False)
    first = Order.objects.get()
    second = Order.objects.get()
    with transaction.atomic():
        first.validate()
        first.save()
    with pytest.raises(ConcurrentTransition):
        with transaction.atomic():
            second.hold(reason="late")
            second.save()
    assert Order.objects.get().status == "validated"
