"""The audit trail is append-only: the model and the database refuse to change history."""

import pytest
from django.db import DatabaseError, connection, transaction

from orders.models import AppendOnlyError, OrderEvent
from tests.factories import advance, make_order


def test_order_events_cannot_be_edited_or_deleted_through_the_model(db):
    order = make_order()
    event = order.events.first()
    event.action = "rewritten"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    assert OrderEvent.objects.get(pk=event.pk).action == "received"


def test_the_database_refuses_an_update_of_an_order_event(db):
    order = make_order()
    event = order.events.first()
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic():
            OrderEvent.objects.filter(pk=event.pk).update(action="rewritten")
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("UPDATE orders_orderevent SET action = 'x' WHERE id = %s", [event.pk])
    assert OrderEvent.objects.get(pk=event.pk).action == "received"


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite keeps DELETE for `flush` (see migration 0002)"
)
def test_postgresql_refuses_a_delete_of_an_order_event(db):
    order = make_order()
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic():
            OrderEvent.objects.filter(order=order)._raw_delete(connection.alias)


def test_the_timeline_tells_the_whole_story_in_order(db):
    order = advance(make_order(), "capture_payment", "allocate", "start_fulfillment", "ship")
    rows = list(order.events.order_by("at", "id").values_list("action", "from_state", "to_state"))
    assert rows == [
        ("received", "", "received"),
        ("check", "", ""),
        ("check", "", ""),
        ("validate", "received", "validated"),
        ("capture_payment", "pending", "paid"),
        ("allocate", "validated", "allocated"),
        ("start_fulfillment", "allocated", "fulfilling"),
        ("ship", "fulfilling", "shipped"),
    ]
    assert {e.correlation_id for e in order.events.all()} == {order.correlation_id}
