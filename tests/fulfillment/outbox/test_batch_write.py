"""The outbox actions of one state change written at once (``actions_write``): the same rows,
keys and timeline events as ``action_write`` one by one, idempotent, one doorbell per lane; and
a success that skips the breaker reset and the incident lookup only when neither has anything
to do.

The doorbell test records Celery's ``send_task`` (Celery's API, not our code), as test_lanes
does."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import TestCase

from config.celery import app
from fulfillment.models import ActionKind, ActionStatus, CircuitBreaker, OutboundAction
from fulfillment.outbox.services import ActionSpec, action_key, action_retry_dead, actions_write
from orders.actors import Actor
from orders.errors import InvalidInput
from orders.models import Incident, IncidentStatus, OrderEvent
from orders.services import incidents_resolve
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse
from tests.fulfillment.outbox.helpers import (
    FakeWMS,
    dispatch,
    fresh,
    make_due,
    write,
    write_silently,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def order():
    add_warehouse("EAST")
    return make_order(paid=True, pipeline=False)


def specs(order) -> list[ActionSpec]:
    return [
        ActionSpec(ActionKind.ERP_POST, "filedrop", {"order_id": order.pk}, "sync"),
        ActionSpec(ActionKind.NOTIFY_CUSTOMER, "email",
                   {"order_id": order.pk, "template": "order_confirmation"}, "notify"),
        ActionSpec(ActionKind.WMS_TASK, "local", {"warehouse": "EAST"}, "fulfillment", 7),
        ActionSpec(ActionKind.LABEL_PURCHASE, "local", {"shipment_id": 7}, "fulfillment", 7),
    ]  # fmt: skip


def batch(order, items: list[ActionSpec]):
    """``actions_write`` in a transaction whose doorbells are dropped (read, not run)."""
    with transaction.atomic():
        pending = transaction.get_connection().run_on_commit
        already = len(pending)
        result = actions_write(order_id=order.pk, specs=items, correlation_id="c-batch")
        del pending[already:]
    return result


def test_it_writes_every_action_with_its_key_and_one_queued_event_each(order):
    rows, written = batch(order, specs(order))
    assert [a.pk for a in rows] == written and len(written) == 4
    stored = {(a.kind, a.target, a.version): a for a in OutboundAction.objects.all()}
    for spec in specs(order):
        action = stored[(spec.kind, spec.target, spec.version)]
        assert action.idempotency_key == action_key(
            order_id=order.pk, kind=spec.kind, target=spec.target, version=spec.version
        )
        assert (action.lane, action.status, action.correlation_id) == (
            spec.lane, ActionStatus.PENDING, "c-batch",
        )  # fmt: skip
        assert action.payload == dict(spec.payload)
    events = OrderEvent.objects.filter(order=order, action="outbound_queued")
    assert sorted(e.data["action_id"] for e in events) == sorted(written)
    assert {(e.actor_id, e.to_state, e.correlation_id) for e in events} == {
        ("outbox", ActionStatus.PENDING, "c-batch")
    }


def test_a_repeat_writes_nothing_and_returns_the_same_rows(order):
    first, _ = batch(order, specs(order))
    again, written = batch(order, specs(order))
    assert written == [] and [a.pk for a in again] == [a.pk for a in first]
    assert OutboundAction.objects.count() == 4
    assert OrderEvent.objects.filter(order=order, action="outbound_queued").count() == 4


def test_an_action_written_one_by_one_before_is_kept_and_the_rest_are_added(order):
    single = write_silently(order, ActionKind.ERP_POST, "filedrop", {"order_id": order.pk})
    rows, written = batch(order, specs(order))
    assert rows[0].pk == single.pk and single.pk not in written and len(written) == 3
    assert OrderEvent.objects.filter(order=order, action="outbound_queued").count() == 4


def test_personal_data_in_a_payload_refuses_the_whole_batch(order):
    bad = [*specs(order), ActionSpec(ActionKind.ERP_POST, "x", {"email": "a@b.example"})]
    with pytest.raises(InvalidInput) as refused:
        batch(order, bad)
    assert refused.value.code == "pii_in_payload"
    assert not OutboundAction.objects.exists()


def test_one_doorbell_per_lane_and_the_batch_task_performs_each_action(order, monkeypatch):
    sent: list[tuple[str, dict, dict]] = []
    monkeypatch.setattr(
        app, "send_task", lambda name, kwargs=None, **options: sent.append((name, kwargs, options))
    )
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        with TestCase.captureOnCommitCallbacks(execute=True):
            with transaction.atomic():
                rows, _ = actions_write(order_id=order.pk, specs=specs(order))
    finally:
        app.conf.task_always_eager = eager
    erp, notice, wms, label = (a.pk for a in rows)
    assert sent == [
        ("fulfillment.outbox_dispatch", {"action_id": erp, "lane": "sync"}, {"queue": "sync"}),
        ("fulfillment.outbox_dispatch", {"action_id": notice, "lane": "notify"},
         {"queue": "notify"}),
        ("fulfillment.outbox_dispatch_batch", {"action_ids": [wms, label], "lane": "fulfillment"},
         {"queue": "fulfillment"}),
    ]  # fmt: skip
    # The batch message as a worker runs it: each action leased, performed, recorded on its own.
    wms_only = app.tasks["fulfillment.outbox_dispatch_batch"].apply(
        kwargs={"action_ids": [wms]}, throw=True
    )
    assert wms_only.get() == {str(wms): "succeeded"}
    assert fresh(OutboundAction.objects.get(pk=wms)).status == ActionStatus.SUCCEEDED


def test_a_success_resets_a_breaker_that_counted_failures(order, settings):
    settings.WMS_TARGET = "rest"
    settings.OUTBOX_BREAKER_THRESHOLD = 5
    with FakeWMS(down=True) as wms:
        settings.WMS_API_BASE = wms.url
        action = write_silently(order, ActionKind.WMS_TASK, "rest", {"warehouse": "EAST"})
        assert dispatch(action) == "rescheduled"
        assert CircuitBreaker.objects.get(target="rest").consecutive_failures == 1
        wms.down = False
        make_due(action)
        assert dispatch(action) == "succeeded"
    assert CircuitBreaker.objects.get(target="rest").consecutive_failures == 0


def test_a_success_with_a_clean_breaker_writes_no_breaker_row(order):
    action = write(order, ActionKind.WMS_TASK, "local", {"warehouse": "EAST"})
    assert fresh(action).status == ActionStatus.SUCCEEDED
    assert not CircuitBreaker.objects.filter(target="local").exists()


def test_a_revived_action_that_succeeds_still_resolves_its_incident(order, settings):
    settings.WMS_TARGET = "rest"
    settings.OUTBOX_MAX_ATTEMPTS = 1
    with FakeWMS(down=True) as wms:
        settings.WMS_API_BASE = wms.url
        action = write_silently(order, ActionKind.WMS_TASK, "rest", {"warehouse": "EAST"})
        assert dispatch(action) == "dead"
        wms.down = False
        with TestCase.captureOnCommitCallbacks(execute=True):
            action_retry_dead(action_id=action.pk, actor=Actor.system("test"))
    assert fresh(action).status == ActionStatus.SUCCEEDED and fresh(action).attempts == 1
    incident = Incident.objects.get(order=order)
    assert incident.status == IncidentStatus.RESOLVED
    assert incidents_resolve(fingerprints=incident.fingerprint, actor=Actor.system("t"),
                             note="again") == []  # fmt: skip
