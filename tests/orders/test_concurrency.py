"""Two sessions racing on one order: exactly one transition wins, the other is refused.

Runs on SQLite and on PostgreSQL (the CI's second pass). Each thread has its own database
connection, so the race is a real one between two sessions.
"""

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.apps import apps
from django.db import transaction
from django.db.models import Model, QuerySet
from django_fsm import ConcurrentTransition, FSMFieldMixin

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


# --- refresh_from_db of a protected FSM field, from two threads (issue 10, item 4) ---
#
# django-fsm-2's FSMModelMixin.refresh_from_db lets Django write a protected field by switching
# `protected` off on the *field*, which every instance in the process shares, and on again after.
# Refresh B switches it off; refresh A starts, sees it off, so it switches nothing; B ends and
# switches it on while A is still writing the fields it read: A raises "Direct status
# modification is not allowed". These tests hold the two refreshes in exactly that interleaving.


def _protected_fsm_models() -> list[type[Model]]:
    return [
        model for model in apps.get_models()
        if any(isinstance(f, FSMFieldMixin) and f.protected for f in model._meta.concrete_fields)
    ]  # fmt: skip


def _pausing(qs: QuerySet, before_get: Callable[[], None], row: Model | None = None) -> QuerySet:
    """``qs`` whose ``get()`` (the row read inside refresh_from_db) first runs ``before_get``;
    with ``row`` it hands back that in-memory row instead of reading the database."""

    base = type(qs)

    def get(self: QuerySet, *args: Any, **kwargs: Any) -> Any:
        before_get()
        return row if row is not None else base.get(self, *args, **kwargs)

    qs.__class__ = type("PausingQuerySet", (base,), {"get": get})
    return qs


def _refresh_while_another_thread_refreshes(
    model: type[Model], instance: Model, from_queryset: QuerySet | None = None
) -> None:
    """Refresh ``instance`` (A) while a refresh of another row of ``model`` (B) in another
    thread starts before A and ends while A is inside its read."""
    b_in_read, a_in_read = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def b_waits_for_a() -> None:
        b_in_read.set()
        assert a_in_read.wait(timeout=10)

    def refresh_b() -> None:
        try:
            other = model(pk=instance.pk + 1)
            other.refresh_from_db(
                from_queryset=_pausing(
                    model._base_manager.all(), b_waits_for_a, row=model(pk=instance.pk + 1)
                )
            )
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    b = threading.Thread(target=refresh_b)
    b.start()
    assert b_in_read.wait(timeout=10)

    def b_ends_now() -> None:
        a_in_read.set()
        b.join(timeout=10)

    qs = from_queryset if from_queryset is not None else model._base_manager.all()
    try:
        instance.refresh_from_db(from_queryset=_pausing(qs, b_ends_now))
    finally:
        a_in_read.set()
        b.join(timeout=10)
    assert not errors, errors


@pytest.mark.django_db
def test_an_order_refreshed_while_another_thread_refreshes_an_order_reloads_its_status():
    order = make_order(pipeline=False)
    stale = Order.objects.get(pk=order.pk)
    Order.objects.filter(pk=order.pk).update(status="validated")

    _refresh_while_another_thread_refreshes(Order, stale)

    assert stale.status == "validated"
    with pytest.raises(AttributeError, match="Direct status modification is not allowed"):
        stale.status = "received"  # still protected afterwards


@pytest.mark.parametrize("model", _protected_fsm_models(), ids=lambda m: m._meta.label)
def test_every_model_with_a_protected_fsm_field_refreshes_safely_from_two_threads(model):
    row = model(pk=1)
    _refresh_while_another_thread_refreshes(
        model, row, _pausing(model._base_manager.all(), lambda: None, row=model(pk=1))
    )
    name = next(f.name for f in model._meta.concrete_fields
                if isinstance(f, FSMFieldMixin) and f.protected)  # fmt: skip
    with pytest.raises(AttributeError, match="modification is not allowed"):
        setattr(row, name, "x")


@pytest.mark.django_db
def test_an_order_loads_a_deferred_or_named_state_field_and_keeps_it_protected():
    order = make_order(pipeline=False)
    Order.objects.filter(pk=order.pk).update(status="validated", payment_status="paid")

    order.refresh_from_db(fields=["status"])
    assert (order.status, order.payment_status) == ("validated", "pending")
    slim = Order.objects.only("id").get(pk=order.pk)
    assert (slim.status, slim.payment_status) == ("validated", "paid")
    for row in (order, slim):
        with pytest.raises(AttributeError, match="Direct status modification is not allowed"):
            row.status = "received"
