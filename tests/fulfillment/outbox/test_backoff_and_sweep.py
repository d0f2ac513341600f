"""Retry timing (full-jitter exponential backoff with a cap; long delays live in the database)
and the beat sweeper that re-rings the doorbell for what is due or left in flight."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.test import TestCase
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from fulfillment.models import ActionKind, ActionStatus, OutboundAction, PickTask
from fulfillment.outbox.services import backoff_seconds, outbox_sweep
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse
from tests.fulfillment.outbox.helpers import (
    FakeWMS,
    fresh,
    make_due,
    sweep,
    write,
    write_silently,
)


@given(
    retry=st.integers(min_value=0, max_value=60),
    base=st.floats(min_value=0.1, max_value=600),
    cap=st.floats(min_value=1, max_value=86400),
    seed=st.integers(),
)
def test_backoff_is_full_jitter_within_zero_and_the_capped_exponential(retry, base, cap, seed):
    delay = backoff_seconds(retry, base=base, cap=cap, rng=random.Random(seed))
    assert 0 <= delay <= min(cap, base * 2**retry)


def test_backoff_spreads_over_the_whole_window():
    rng = random.Random(7)
    samples = [backoff_seconds(3, base=30, cap=3600, rng=rng) for _ in range(2000)]
    assert max(samples) <= 240 and min(samples) >= 0
    assert min(samples) < 24 and max(samples) > 216  # not bunched: full jitter, not equal
    capped = [backoff_seconds(20, base=30, cap=3600, rng=rng) for _ in range(500)]
    assert max(capped) <= 3600 and max(capped) > 3000


@pytest.mark.django_db
@pytest.mark.parametrize("attempts_before", [1, 2, 3])
def test_a_failed_attempt_is_retried_within_the_backoff_window(settings, attempts_before):
    settings.WMS_TARGET = "rest"
    settings.OUTBOX_BREAKER_THRESHOLD = 100
    add_warehouse("EAST")
    order = make_order(paid=True, pipeline=False)
    with FakeWMS(down=True) as wms:
        settings.WMS_API_BASE = wms.url
        action = write(order, ActionKind.WMS_TASK, "rest", {"warehouse": "EAST"})
        for _ in range(attempts_before - 1):
            make_due(action)
            sweep()
        before = timezone.now()
        make_due(action)
        sweep()
    action = fresh(action)
    assert action.attempts == attempts_before + 1
    n = action.attempts - 1  # the retry's number: 0 before the first retry, 1 before the second
    window = min(3600, 30 * 2**n)
    delay = (action.next_attempt_at - before).total_seconds()
    assert action.status == ActionStatus.RETRY_SCHEDULED
    assert -1 <= delay <= window + 1


@pytest.mark.django_db
def test_the_sweeper_rings_for_lost_messages_after_a_grace_period(settings):
    add_warehouse("EAST")
    order = make_order(paid=True, pipeline=False)
    lost = write_silently(order, ActionKind.WMS_TASK, "local", {"warehouse": "EAST"})

    assert sweep() == 0  # just written: its own message may still be on its way
    assert sweep(now=timezone.now() + timedelta(seconds=31)) == 1

    assert fresh(lost).status == ActionStatus.SUCCEEDED and PickTask.objects.count() == 1
    assert sweep(now=timezone.now() + timedelta(hours=1)) == 0  # done: nothing to sweep


@pytest.mark.django_db
def test_the_sweeper_leaves_future_retries_and_live_leases_alone(settings):
    add_warehouse("EAST")
    order = make_order(paid=True, pipeline=False)
    later = write_silently(order, ActionKind.WMS_TASK, "local", {"warehouse": "EAST"})
    OutboundAction.objects.filter(pk=later.pk).update(
        next_attempt_at=timezone.now() + timedelta(minutes=10)
    )
    leased = write_silently(order, ActionKind.WMS_TASK, "local", {"warehouse": "EAST"},
                            version=2)  # fmt: skip
    row = fresh(leased)
    row.start()  # a worker holds it right now
    row.lease_expires_at = timezone.now() + timedelta(minutes=5)
    row.save()

    with TestCase.captureOnCommitCallbacks(execute=False) as callbacks:
        assert outbox_sweep(now=timezone.now() + timedelta(minutes=1)) == 0
    assert callbacks == []
    with TestCase.captureOnCommitCallbacks(execute=False) as callbacks:
        assert outbox_sweep(now=timezone.now() + timedelta(minutes=11)) == 2
    assert len(callbacks) == 2


@pytest.mark.django_db
def test_the_sweeper_respects_its_limit_oldest_first(settings):
    # One action per message, so what the sweeper sent is what was done (a message otherwise
    # also takes the lane's other due actions: test_batch_dispatch).
    settings.OUTBOX_BATCH_SIZE = 1
    add_warehouse("EAST")
    order = make_order(paid=True, pipeline=False)
    actions = [
        write_silently(order, ActionKind.WMS_TASK, "local", {"warehouse": "EAST"}, version=v)
        for v in (1, 2, 3)
    ]
    make_due(*actions)
    OutboundAction.objects.filter(pk=actions[2].pk).update(
        next_attempt_at=timezone.now() - timedelta(days=1)
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert outbox_sweep(limit=1) == 1
    assert fresh(actions[2]).status == ActionStatus.SUCCEEDED
    assert {fresh(a).status for a in actions[:2]} == {ActionStatus.PENDING}
