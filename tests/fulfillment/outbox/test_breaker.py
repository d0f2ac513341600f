"""The circuit breaker per downstream system: it opens after N consecutive failures, calls stop
(actions wait without using attempts), and after the cooldown one half-open trial closes it
on success or re-opens it on failure."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from fulfillment.models import (
    ActionKind,
    ActionStatus,
    CircuitBreaker,
    CircuitState,
    OutboundAction,
)
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse
from tests.fulfillment.outbox.helpers import (
    FakeWMS,
    cool_down,
    dispatch,
    fresh,
    make_due,
    write,
    write_silently,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(settings):
    settings.WMS_TARGET = "rest"
    settings.OUTBOX_BREAKER_THRESHOLD = 3
    settings.OUTBOX_BREAKER_COOLDOWN_SECONDS = 60
    add_warehouse("EAST")
    order = make_order(paid=True, pipeline=False)
    with FakeWMS(down=True) as wms:
        settings.WMS_API_BASE = wms.url
        actions = [
            write_silently(order, ActionKind.WMS_TASK, "rest", {"warehouse": "EAST"}, version=v)
            for v in range(1, 6)
        ]
        yield wms, actions


def breaker() -> CircuitBreaker:
    return CircuitBreaker.objects.get(target="rest")


def test_it_opens_after_n_failures_and_calls_stop_without_using_attempts(setup):
    wms, actions = setup
    outcomes = [dispatch(a) for a in actions]

    assert outcomes == ["rescheduled"] * 3 + ["deferred"] * 2
    assert len(wms.requests) == 3  # the last two were not called
    b = breaker()
    assert b.state == CircuitState.OPEN and b.consecutive_failures == 3
    assert b.opened_at is not None and b.retry_at == b.opened_at + timedelta(seconds=60)
    waiting = [fresh(a) for a in actions[3:]]
    assert [(a.status, a.attempts) for a in waiting] == [(ActionStatus.PENDING, 0)] * 2
    assert all(a.next_attempt_at == b.retry_at for a in waiting)
    # The failure that opened it does not wake up before the cooldown is over either.
    assert fresh(actions[2]).next_attempt_at >= b.retry_at

    make_due()
    assert dispatch(actions[0]) == "deferred" and len(wms.requests) == 3


def test_after_the_cooldown_one_trial_call_closes_it(setup):
    wms, actions = setup
    for a in actions:
        dispatch(a)
    wms.down = False
    make_due()
    cool_down("rest")

    assert dispatch(actions[3]) == "succeeded"  # the half-open trial

    b = breaker()
    assert b.state == CircuitState.CLOSED and b.consecutive_failures == 0 and b.retry_at is None
    assert [dispatch(a) for a in actions if a.pk != actions[3].pk] == ["succeeded"] * 4
    assert len(wms.created) == 5


def test_a_failed_trial_opens_it_again(setup):
    wms, actions = setup
    for a in actions:
        dispatch(a)
    make_due()
    cool_down("rest")

    assert dispatch(actions[3]) == "rescheduled"
    b = breaker()
    assert b.state == CircuitState.OPEN and b.retry_at > timezone.now() + timedelta(seconds=50)
    assert fresh(actions[3]).attempts == 1
    assert dispatch(actions[4]) == "deferred" and len(wms.requests) == 4


def test_while_a_trial_runs_the_others_wait(setup):
    wms, actions = setup
    for a in actions:
        dispatch(a)
    make_due()
    # Another worker has won the trial and is calling right now.
    CircuitBreaker.objects.filter(target="rest").update(
        state=CircuitState.HALF_OPEN, retry_at=timezone.now() + timedelta(seconds=30)
    )
    assert dispatch(actions[4]) == "deferred" and len(wms.requests) == 3
    assert fresh(actions[4]).attempts == 0


def test_breakers_are_per_target(setup):
    wms, actions = setup
    for a in actions[:3]:
        dispatch(a)
    assert breaker().state == CircuitState.OPEN
    other = write(actions[0].order, ActionKind.WMS_TASK, "local", {"warehouse": "EAST"})
    assert other.status == ActionStatus.SUCCEEDED
    assert not CircuitBreaker.objects.filter(target="local", state=CircuitState.OPEN).exists()
    assert OutboundAction.objects.filter(target="rest", attempts__gt=0).count() == 3
