"""After the last attempt an action is dead: a ``downstream_failed`` incident for a person (one
per action, bumped when it dies again) and a one-click retry through the API, the admin and
``process_outbox``. A poison message (its worker killed every time) ends dead too."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import TestCase
from django.utils import timezone

from fulfillment.models import ActionKind, ActionStatus, OutboundAction, PickTask
from fulfillment.outbox.services import action_retry_dead
from orders.actors import Actor
from orders.errors import TransitionRefused
from orders.models import Incident, IncidentCategory, IncidentStatus, OrderEvent
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse
from tests.fulfillment.outbox.helpers import (
    FakeWMS,
    dispatch,
    fresh,
    make_due,
    sweep,
    write,
    write_silently,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def wms(settings):
    settings.WMS_TARGET = "rest"
    settings.OUTBOX_BREAKER_THRESHOLD = 100  # not about the breaker
    add_warehouse("EAST")
    with FakeWMS(down=True) as server:
        settings.WMS_API_BASE = server.url
        yield server


def kill(order, max_attempts=3) -> OutboundAction:
    """An action that uses all its attempts against a WMS answering 503."""
    action = write(order, ActionKind.WMS_TASK, "rest", {"warehouse": "EAST"},
                   max_attempts=max_attempts)  # fmt: skip
    while fresh(action).status != ActionStatus.DEAD:
        make_due(action)
        assert dispatch(action) in ("rescheduled", "dead")
    return fresh(action)


def incidents() -> list[Incident]:
    return list(Incident.objects.filter(category=IncidentCategory.DOWNSTREAM_FAILED))


def test_the_last_attempt_makes_it_dead_with_one_incident(wms):
    order = make_order(paid=True, pipeline=False)
    action = write(order, ActionKind.WMS_TASK, "rest", {"warehouse": "EAST"}, max_attempts=3)
    make_due(action)
    dispatch(action)
    assert fresh(action).status == ActionStatus.RETRY_SCHEDULED and not incidents()
    make_due(action)
    assert dispatch(action) == "dead"

    action = fresh(action)
    assert action.status == ActionStatus.DEAD and action.attempts == 3
    assert len(wms.requests) == 3
    [incident] = incidents()
    assert incident.order_id == order.pk and incident.status == IncidentStatus.OPEN
    assert incident.severity == "high" and incident.occurrence_count == 1
    assert "failed after 3 attempt(s)" in incident.summary and "HTTP 503" in incident.summary
    assert incident.details["outbound_action_id"] == action.pk
    dead = OrderEvent.objects.get(order=order, action="outbound_dead")
    assert dead.data["incident_id"] == incident.pk
    assert OrderEvent.objects.filter(order=order, action="outbound_retry_scheduled").count() == 2
    # Dead stays dead: neither a late message nor the sweeper calls it again.
    make_due(action)
    assert dispatch(action) == "done" and sweep() == 0
    assert len(wms.requests) == 3


def test_a_retry_that_dies_again_bumps_the_same_incident_and_a_success_resolves_it(wms):
    order = make_order(paid=True, pipeline=False)
    action = kill(order)
    ops = Actor.system("ops")

    with TestCase.captureOnCommitCallbacks(execute=True):
        revived = action_retry_dead(action_id=action.pk, actor=ops)
    assert revived.attempts == 0  # revive starts the retry policy over
    assert fresh(action).attempts == 1  # ... and dispatched after commit: 503 again
    action = kill(order)
    [incident] = incidents()
    assert incident.occurrence_count == 2 and action.attempts == 3

    wms.down = False
    with TestCase.captureOnCommitCallbacks(execute=True):
        action_retry_dead(action_id=action.pk, actor=ops)
    action = fresh(action)
    assert action.status == ActionStatus.SUCCEEDED and len(wms.created) == 1
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED
    retried = OrderEvent.objects.filter(order=order, action="outbound_retried")
    assert [(e.actor_kind, e.actor_id) for e in retried] == [("system", "ops")] * 2


def test_only_a_dead_action_can_be_retried(wms):
    order = make_order(paid=True, pipeline=False)
    action = write(order, ActionKind.WMS_TASK, "rest", {"warehouse": "EAST"})
    with pytest.raises(TransitionRefused) as exc:
        action_retry_dead(action_id=action.pk, actor=Actor.system("ops"))
    assert exc.value.code == "not_dead"


def killed_mid_call(action: OutboundAction) -> None:
    """What a worker SIGKILLed during the downstream call leaves: the lease it took (the
    attempt counted) and no outcome. Its lease then runs out."""
    row = fresh(action)
    if row.status == ActionStatus.IN_FLIGHT:  # the previous worker's lease: taken over
        row.schedule_retry()
    row.start()
    row.lease_expires_at = timezone.now() - timedelta(seconds=1)
    row.save()


def test_an_attempt_lost_with_its_worker_counts_and_the_next_one_goes_ahead():
    add_warehouse("EAST")
    order = make_order(paid=True, pipeline=False)
    action = write_silently(order, ActionKind.WMS_TASK, "local", {"warehouse": "EAST"})
    killed_mid_call(action)

    assert sweep() == 1  # in flight with an expired lease: swept

    action = fresh(action)
    assert action.status == ActionStatus.SUCCEEDED and action.attempts == 2
    lost = OrderEvent.objects.get(order=order, action="outbound_attempt_lost")
    assert lost.data["attempt"] == 1


def test_a_poison_message_ends_dead_instead_of_looping():
    """Every delivery's worker is killed mid-call. Attempts are counted when the lease is
    taken, so once max_attempts are used the action goes dead instead of being tried again."""
    add_warehouse("EAST")
    order = make_order(paid=True, pipeline=False)
    action = write_silently(order, ActionKind.WMS_TASK, "local", {"warehouse": "EAST"},
                            max_attempts=2)  # fmt: skip
    killed_mid_call(action)
    killed_mid_call(action)

    assert dispatch(action) == "dead"

    action = fresh(action)
    assert action.status == ActionStatus.DEAD and action.attempts == 2
    assert "lease expired" in action.last_error
    assert not PickTask.objects.exists()  # not called a third time
    [incident] = incidents()
    assert incident.details["outbound_action_id"] == action.pk
