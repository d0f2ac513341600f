"""A lost race on an outbound action's state is the domain's ``StaleState`` with a readable
message (the outbox's lease and compare-and-set still decide who records an outcome), and two
people retrying one dead action revive it once."""

from __future__ import annotations

import pytest
from django.db import connection

from fulfillment.models import ActionKind, ActionStatus, OutboundAction
from fulfillment.outbox.services import action_dispatch, action_retry_dead
from orders.actors import Actor
from orders.errors import StaleState, TransitionRefused
from orders.models import OrderEvent
from tests.concurrency import moved_meanwhile, race
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse
from tests.fulfillment.outbox.helpers import FakeWMS, dispatch, fresh, write_silently

PERSON = Actor.system("ops")


@pytest.fixture
def dead(settings):
    """A dead action: its only attempt met a WMS answering 503."""
    settings.WMS_TARGET = "rest"
    add_warehouse("EAST")
    order = make_order(paid=True, pipeline=False)
    with FakeWMS(down=True) as wms:
        settings.WMS_API_BASE = wms.url
        action = write_silently(order, ActionKind.WMS_TASK, "rest", {"warehouse": "EAST"},
                                max_attempts=1)  # fmt: skip
        assert dispatch(action) == "dead"
    return fresh(action)


@pytest.mark.django_db
def test_a_retry_that_loses_the_race_is_stale(dead):
    with moved_meanwhile(OutboundAction, ActionStatus.PENDING), pytest.raises(StaleState) as lost:
        action_retry_dead(action_id=dead.pk, actor=PERSON)

    assert str(lost.value) == (
        f"Outbound action {dead.pk} was changed by someone else at the same time: "
        "reload and try again"
    )
    assert fresh(dead).status == ActionStatus.DEAD  # the retry rolled back
    assert not OrderEvent.objects.filter(action="outbound_retried").exists()


@pytest.mark.django_db
def test_a_lease_that_loses_the_race_is_stale_and_calls_nothing(settings):
    settings.WMS_TARGET = "rest"
    add_warehouse("EAST")
    order = make_order(paid=True, pipeline=False)
    with FakeWMS() as wms:
        settings.WMS_API_BASE = wms.url
        action = write_silently(order, ActionKind.WMS_TASK, "rest", {"warehouse": "EAST"})
        with moved_meanwhile(OutboundAction, ActionStatus.SUCCEEDED, row=action.pk):
            with pytest.raises(StaleState, match=f"Outbound action {action.pk} was changed"):
                action_dispatch(action_id=action.pk)
        assert wms.requests == []
    assert fresh(action).attempts == 0


# A real race needs row locks: SQLite's whole-database lock makes the loser "database is locked".
@pytest.mark.skipif(connection.vendor != "postgresql", reason="a real race: PostgreSQL only")
@pytest.mark.django_db(transaction=True)
def test_two_people_retrying_one_dead_action_revive_it_once(dead):
    results = race([lambda: action_retry_dead(action_id=dead.pk, actor=PERSON)] * 2)

    revived = [r for r in results if isinstance(r, OutboundAction)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(revived) == 1 and len(refused) == 1, results
    # The row lock makes the loser wait; then it finds the action revived: "not dead".
    assert isinstance(refused[0], TransitionRefused) and refused[0].code == "not_dead"
    assert OrderEvent.objects.filter(action="outbound_retried").count() == 1
