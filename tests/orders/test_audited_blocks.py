"""An audited block (``orders.transitions.atomic_audited``) writes the order events of its
transaction in one INSERT as it ends, exactly the ones whose changes survive: an event recorded
in a savepoint that rolled back is gone with it, a block that fails writes none, and a read of
the timeline inside the block sees what it would have seen had each event been inserted at once.
"""

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from config import correlation
from orders.actors import Actor
from orders.models import Order, OrderEvent
from orders.transitions import Audit, atomic_audited, order_event_record, order_events_record
from tests.factories import make_order

pytestmark = pytest.mark.django_db

OPS = Actor.system("test")


def inserts(ctx: CaptureQueriesContext) -> int:
    return sum(q["sql"].startswith('INSERT INTO "orders_orderevent"') for q in ctx.captured_queries)


def actions(order: Order, after: int) -> list[str]:
    return list(order.events.filter(pk__gt=after).order_by("pk").values_list("action", flat=True))


def last_event_id() -> int:
    return OrderEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def test_the_events_of_a_block_are_one_insert_in_the_order_they_were_recorded():
    order = make_order(pipeline=False)
    mark = last_event_id()
    with CaptureQueriesContext(connection) as ctx, correlation.bound("c-block"), atomic_audited():
        order_event_record(order_id=order.pk, action="first", actor=OPS)
        with atomic_audited():  # a nested block writes nothing of its own
            order_events_record([Audit(order.pk, "second"), Audit(order.pk, "third")], actor=OPS)
        order_event_record(order_id=order.pk, action="fourth", actor=OPS)
        assert inserts(ctx) == 0
    assert inserts(ctx) == 1
    assert actions(order, mark) == ["first", "second", "third", "fourth"]
    rows = list(order.events.filter(pk__gt=mark).order_by("pk"))
    assert [r.at for r in rows] == sorted(r.at for r in rows)  # times as recorded, one by one
    assert all(r.actor_id == "test" and r.correlation_id == "c-block" for r in rows)
    # Nothing is left in the on-commit queue to write them a second time.
    assert not any(type(f).__name__ == "_HeldEvent" for _s, f, _r in connection.run_on_commit)


def test_an_event_in_a_savepoint_that_rolled_back_is_gone_with_its_change():
    order = make_order(pipeline=False)
    mark = last_event_id()
    with atomic_audited():
        order_event_record(order_id=order.pk, action="kept", actor=OPS)
        try:
            with transaction.atomic():  # a caught refusal deep inside the block
                Order.objects.filter(pk=order.pk).update(status_reason="undone")
                order_event_record(order_id=order.pk, action="undone", actor=OPS)
                raise IntegrityError("refused")
        except IntegrityError:
            pass
        order_event_record(order_id=order.pk, action="after", actor=OPS)
    assert actions(order, mark) == ["kept", "after"]
    assert Order.objects.get(pk=order.pk).status_reason != "undone"


def test_a_block_that_fails_writes_no_event():
    order = make_order(pipeline=False)
    mark = last_event_id()
    with pytest.raises(RuntimeError), atomic_audited():
        order_event_record(order_id=order.pk, action="never", actor=OPS)
        raise RuntimeError("the unit of work failed")
    assert actions(order, mark) == []


def test_a_doomed_transaction_ends_with_its_own_error_not_the_blocks():
    order = make_order(pipeline=False)
    mark = last_event_id()
    with transaction.atomic():
        with atomic_audited(savepoint=False):
            order_event_record(order_id=order.pk, action="doomed", actor=OPS)
            try:
                with transaction.atomic(savepoint=False):
                    raise IntegrityError("a caught database error dooms the transaction")
            except IntegrityError:
                pass
            assert connection.needs_rollback
        transaction.set_rollback(False)  # as a test may: the transaction carries on
    assert actions(order, mark) == []


def test_a_read_of_the_timeline_inside_the_block_sees_the_events_recorded_before_it():
    order = make_order(pipeline=False)
    with CaptureQueriesContext(connection) as ctx, atomic_audited():
        order_event_record(order_id=order.pk, action="seen", actor=OPS)
        assert order.events.filter(action="seen").exists()
        order_event_record(order_id=order.pk, action="later", actor=OPS)
    assert inserts(ctx) == 2
    assert actions(order, 0)[-2:] == ["seen", "later"]


@pytest.mark.parametrize("rolled_back", [True, False])
def test_an_event_read_inside_a_later_savepoint_survives_that_savepoint_once(rolled_back):
    # The read writes the held event inside the savepoint; its rollback must not take the
    # event of a change made before it, and a release must not leave it written twice.
    order = make_order(pipeline=False)
    mark = last_event_id()
    with atomic_audited():
        order_event_record(order_id=order.pk, action="before", actor=OPS)
        try:
            with transaction.atomic():
                order_event_record(order_id=order.pk, action="inside", actor=OPS)
                assert actions(order, mark) == ["before", "inside"]  # the read sees both
                if rolled_back:
                    raise IntegrityError("refused")
        except IntegrityError:
            pass
        order_event_record(order_id=order.pk, action="after", actor=OPS)
    expected = ["before", "after"] if rolled_back else ["before", "inside", "after"]
    assert sorted(actions(order, mark)) == sorted(expected)
    rows = order.events.filter(pk__gt=mark).order_by("at", "id")
    assert [r.action for r in rows] == expected  # the timeline's order is the recorded one
