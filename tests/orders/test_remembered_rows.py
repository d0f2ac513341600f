"""A locked row saves only what changed since it was read (``FSMRowMixin.row_remember``, which
``row_lock`` calls), so one transaction can hand the row down its steps
(``order_transition(locked=...)``) instead of reading it again in each, without writing a
stale value over a column another step set meanwhile."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from orders.actors import Actor
from orders.errors import StaleState
from orders.models import Order
from orders.services import order_transition
from orders.transitions import row_lock
from tests.factories import make_order

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("test")


def _updates(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith('UPDATE "orders')]


def test_a_transition_on_a_handed_down_row_keeps_what_another_step_wrote_meanwhile():
    order = make_order(pipeline=False)
    with transaction.atomic():
        row = row_lock(Order.objects.all(), order.pk)
        # Another step of the same transaction sets a column with a queryset update.
        Order.objects.filter(pk=order.pk).update(risk_score=Decimal("42.00"))
        with CaptureQueriesContext(connection) as queries:
            moved = order_transition(order_id=order.pk, transition="capture_payment",
                                     actor=SYSTEM, locked=row)  # fmt: skip
    assert moved is row and row.payment_status == "paid"
    [update] = _updates(queries)
    assert '"payment_status"' in update and '"updated_at"' in update
    assert '"risk_score"' not in update and '"shipping_address"' not in update
    assert not [q for q in queries.captured_queries if 'FROM "orders_order"' in q["sql"]]
    order.refresh_from_db()
    assert (order.payment_status, order.risk_score) == ("paid", Decimal("42.00"))


def test_a_row_never_remembered_saves_every_column_as_before():
    order = make_order(pipeline=False)
    with transaction.atomic():
        row = Order.objects.select_for_update().get(pk=order.pk)
        Order.objects.filter(pk=order.pk).update(risk_score=Decimal("42.00"))
        with CaptureQueriesContext(connection) as queries:
            row.save()
    [update] = _updates(queries)
    assert '"risk_score"' in update  # the stale value goes back: why rows were not handed down
    order.refresh_from_db()
    assert order.risk_score is None


def test_a_value_changed_in_place_is_saved():
    order = make_order(pipeline=False)
    with transaction.atomic():
        row = row_lock(Order.objects.all(), order.pk)
        row.shipping_address["line2"] = "Unit 5"  # a JSON object changed in place
        row.save()
    order.refresh_from_db()
    assert order.shipping_address["line2"] == "Unit 5"


def test_a_handed_down_row_whose_state_moved_elsewhere_is_stale():
    order = make_order(pipeline=False)
    with pytest.raises(StaleState), transaction.atomic():
        row = row_lock(Order.objects.all(), order.pk)
        # Another copy of the row moves it first (the same transaction, another step).
        order_transition(order_id=order.pk, transition="capture_payment", actor=SYSTEM)
        order_transition(order_id=order.pk, transition="capture_payment", actor=SYSTEM,
                         locked=row)  # fmt: skip
    order.refresh_from_db()
    assert order.payment_status == "pending"  # the whole transaction rolled back


def test_only_a_remembered_row_of_the_same_order_is_taken():
    order, other = make_order(pipeline=False), make_order(pipeline=False)
    with transaction.atomic():
        plain = Order.objects.get(pk=order.pk)
        with pytest.raises(RuntimeError):
            order_transition(order_id=order.pk, transition="capture_payment", actor=SYSTEM,
                             locked=plain)  # fmt: skip
        with pytest.raises(RuntimeError):
            order_transition(order_id=order.pk, transition="capture_payment", actor=SYSTEM,
                             locked=row_lock(Order.objects.all(), other.pk))  # fmt: skip


def test_a_refresh_is_what_a_later_save_compares_with():
    order = make_order(pipeline=False)
    with transaction.atomic():
        row = row_lock(Order.objects.all(), order.pk)
        Order.objects.filter(pk=order.pk).update(risk_score=Decimal("7.00"))
        row.refresh_from_db()
        with CaptureQueriesContext(connection) as queries:
            row.save()
    [update] = _updates(queries)
    assert '"risk_score"' not in update and '"updated_at"' in update


def test_validate_asks_once_whether_the_locked_order_has_lines():
    order = make_order(pipeline=False)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        moved = order_transition(order_id=order.pk, transition="validate", actor=SYSTEM)
    asked = [q["sql"] for q in queries.captured_queries if 'FROM "orders_orderline"' in q["sql"]]
    assert len(asked) == 1, asked  # transition_check asks; django-fsm's own check reuses it
    assert moved.status == "validated"
    assert "_has_lines_until_saved" not in moved.__dict__  # a save forgets the answer


def test_an_order_without_lines_is_still_refused_validation():
    from orders.errors import TransitionRefused
    from orders.models import OrderLine

    order = make_order(pipeline=False)
    OrderLine.objects.filter(order=order).delete()
    with pytest.raises(TransitionRefused) as refused, transaction.atomic():
        order_transition(order_id=order.pk, transition="validate", actor=SYSTEM)
    assert str(refused.value) == "Cannot validate: the order has no lines"


def test_a_move_in_a_savepoint_lets_a_caller_that_catches_a_refusal_carry_on():
    from orders.errors import TransitionRefused

    order = make_order(pipeline=False)
    with transaction.atomic():
        with pytest.raises(TransitionRefused):
            order_transition(order_id=order.pk, transition="ship", actor=SYSTEM)
        # The caller's transaction is still usable: the refused move rolled back its savepoint.
        order_transition(order_id=order.pk, transition="capture_payment", actor=SYSTEM)
    order.refresh_from_db()
    assert order.payment_status == "paid"


def test_without_a_savepoint_a_move_costs_none_and_a_refusal_ends_the_callers_unit():
    from django.db.transaction import TransactionManagementError

    from orders.errors import TransitionRefused

    order = make_order(pipeline=False)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        order_transition(order_id=order.pk, transition="capture_payment", actor=SYSTEM,
                         savepoint=False)  # fmt: skip
    assert not [q for q in queries.captured_queries if "SAVEPOINT" in q["sql"]]
    with pytest.raises(TransactionManagementError), transaction.atomic():
        with pytest.raises(TransitionRefused):
            order_transition(order_id=order.pk, transition="ship", actor=SYSTEM,
                             savepoint=False)  # fmt: skip
        # The caller promised not to carry on: its whole unit is rolled back.
        order_transition(order_id=order.pk, transition="validate", actor=SYSTEM)
    order.refresh_from_db()
    assert (order.status, order.payment_status) == ("received", "paid")
