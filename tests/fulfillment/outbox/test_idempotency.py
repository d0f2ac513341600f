"""Writing and dispatching outbox actions: one row per effect, one downstream call per effect,
however often the trigger fires, the message arrives or a worker comes back late."""

from __future__ import annotations

import threading

import pytest
from django.core import mail
from django.db import connection, transaction
from django.test import TestCase

from fulfillment.models import ActionKind, ActionStatus, OutboundAction, PickTask
from fulfillment.outbox.services import action_dispatch, action_write
from orders.errors import InvalidInput
from orders.models import OrderEvent
from tests.concurrency import race
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse
from tests.fulfillment.outbox.helpers import (
    FakeNetSuite,
    dispatch,
    fresh,
    wait_for,
    write,
    write_silently,
)


@pytest.fixture
def order(db):
    add_warehouse("EAST")
    return make_order(paid=True, pipeline=False)


def events(order, action: str) -> list[OrderEvent]:
    return list(OrderEvent.objects.filter(order=order, action=action).order_by("pk"))


def test_action_write_is_dispatched_after_commit_and_the_effect_happens(order):
    with TestCase.captureOnCommitCallbacks(execute=False) as callbacks:
        with transaction.atomic():
            action = action_write(
                order_id=order.pk, kind=ActionKind.WMS_TASK, target="local",
                payload={"warehouse": "EAST"}, lane="fulfillment",
            )  # fmt: skip
            assert PickTask.objects.count() == 0  # nothing is called inside the transaction
    assert len(callbacks) == 1
    assert fresh(action).status == ActionStatus.PENDING

    callbacks[0]()

    action = fresh(action)
    assert action.status == ActionStatus.SUCCEEDED and action.attempts == 1
    assert action.idempotency_key == f"{order.pk}:wms_task:local:v1"
    assert action.correlation_id == order.correlation_id
    task = PickTask.objects.get()
    assert task.idempotency_key == action.idempotency_key and task.warehouse.code == "EAST"
    assert task.lines == [{"sku": "SKU-1", "quantity": 2}]
    assert action.result == {"pick_task_id": task.pk, "created": True, "warehouse": "EAST"}
    queued, succeeded = events(order, "outbound_queued"), events(order, "outbound_succeeded")
    assert len(queued) == 1 and len(succeeded) == 1
    assert succeeded[0].data["result"]["pick_task_id"] == task.pk
    assert succeeded[0].correlation_id == order.correlation_id


def test_a_duplicate_trigger_returns_the_first_row_and_sends_one_email(order):
    first = write(order, ActionKind.NOTIFY_CUSTOMER, "email", {"template": "order_confirmation"})
    with TestCase.captureOnCommitCallbacks(execute=True) as callbacks:
        with transaction.atomic():
            again = action_write(
                order_id=order.pk, kind=ActionKind.NOTIFY_CUSTOMER, target="email",
                payload={"template": "order_confirmation"}, correlation_id="c-other",
            )  # fmt: skip

    assert again.pk == first.pk
    assert callbacks == []  # the duplicate rings no doorbell
    assert OutboundAction.objects.count() == 1
    assert len(mail.outbox) == 1
    assert len(events(order, "outbound_queued")) == 1


def test_two_writes_in_one_transaction_make_one_row_and_one_dispatch(order):
    with TestCase.captureOnCommitCallbacks(execute=True) as callbacks:
        with transaction.atomic():
            a = action_write(order_id=order.pk, kind="wms_task", target="local",
                             payload={"warehouse": "EAST"})  # fmt: skip
            b = action_write(order_id=order.pk, kind="wms_task", target="local",
                             payload={"warehouse": "EAST"})  # fmt: skip
    assert a.pk == b.pk and len(callbacks) == 1
    assert PickTask.objects.count() == 1


def test_a_new_version_is_a_new_action(order):
    v1 = write(order, ActionKind.WMS_TASK, "local", {"warehouse": "EAST"})
    v2 = write(order, ActionKind.WMS_TASK, "local", {"warehouse": "EAST"}, version=2)
    assert v1.pk != v2.pk and v2.idempotency_key.endswith(":v2")
    assert PickTask.objects.count() == 2


def test_dispatching_again_is_a_no_op(order):
    action = write(order, ActionKind.NOTIFY_CUSTOMER, "email", {"template": "order_confirmation"})
    assert dispatch(action) == "done"
    assert dispatch(action) == "done"
    assert len(mail.outbox) == 1
    assert fresh(action).attempts == 1


def test_a_missing_action_or_one_not_due_is_left_alone(order):
    assert action_dispatch(action_id=987654) == "missing"
    with TestCase.captureOnCommitCallbacks(execute=False):
        with transaction.atomic():
            action = action_write(order_id=order.pk, kind="wms_task", target="local",
                                  payload={"warehouse": "EAST"})  # fmt: skip
    OutboundAction.objects.filter(pk=action.pk).update(
        next_attempt_at=action.next_attempt_at.replace(year=2999)
    )
    assert action_dispatch(action_id=action.pk) == "not_due"
    assert fresh(action).attempts == 0 and PickTask.objects.count() == 0


def test_payloads_refuse_personal_data(order):
    with pytest.raises(InvalidInput) as exc:
        action_write(order_id=order.pk, kind="notify_customer", target="email",
                     payload={"template": "x", "customer": {"email": "a@b.example"}})  # fmt: skip
    assert exc.value.code == "pii_in_payload"
    with pytest.raises(InvalidInput):
        action_write(order_id=order.pk, kind="teleport", target="x", payload={})
    assert OutboundAction.objects.count() == 0


def test_dispatch_refuses_to_run_inside_a_transaction(order):
    with TestCase.captureOnCommitCallbacks(execute=False):
        with transaction.atomic():
            action = action_write(order_id=order.pk, kind="wms_task", target="local",
                                  payload={"warehouse": "EAST"})  # fmt: skip
    with transaction.atomic(), pytest.raises(RuntimeError, match="outside a transaction"):
        action_dispatch(action_id=action.pk)
    assert fresh(action).status == ActionStatus.PENDING


def test_a_duplicate_netsuite_trigger_makes_one_sales_order(order, settings):
    with FakeNetSuite() as netsuite:
        settings.NETSUITE_API_BASE = netsuite.url
        settings.NETSUITE_TOKEN = "tok"
        first = write(order, ActionKind.ERP_POST, "netsuite")
        second = write(order, ActionKind.ERP_POST, "netsuite")
        assert dispatch(first) == "done"
    assert first.pk == second.pk
    assert netsuite.creates == 1 and len(netsuite.posts) == 1


# --- real races: each thread is a worker with its own database connection -------------------
def _write_in_own_transaction(order_id: int) -> int:
    with transaction.atomic():
        action = action_write(order_id=order_id, kind="wms_task", target="local",
                              payload={"warehouse": "EAST"})  # fmt: skip
    return action.pk  # committed: its dispatch ran in this thread (eager)


@pytest.mark.django_db(transaction=True)
def test_concurrent_triggers_write_one_row_and_make_one_pick_task():
    add_warehouse("EAST")
    order = make_order(paid=True, pipeline=False)

    results = race([lambda: _write_in_own_transaction(order.pk) for _ in range(8)])

    assert not [r for r in results if isinstance(r, Exception)], results
    assert len(set(results)) == 1
    assert OutboundAction.objects.count() == 1 and PickTask.objects.count() == 1
    assert OutboundAction.objects.get().status == ActionStatus.SUCCEEDED
    assert OrderEvent.objects.filter(order=order, action="outbound_succeeded").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_one_message_call_netsuite_once(settings):
    order = make_order(paid=True, pipeline=False)
    with FakeNetSuite(slow=0.3) as netsuite:
        settings.NETSUITE_API_BASE, settings.NETSUITE_TOKEN = netsuite.url, "tok"
        action = write_silently(order, "erp_post", "netsuite")  # its message is "in Redis"

        results = race([lambda: action_dispatch(action_id=action.pk) for _ in range(6)])

    assert sorted(map(str, results)).count("succeeded") == 1, results
    assert set(results) <= {"succeeded", "busy", "done"}, results
    assert len(netsuite.posts) == 1 and netsuite.creates == 1
    assert fresh(action).attempts == 1


@pytest.mark.django_db(transaction=True)
def test_a_stale_worker_finishing_late_records_nothing_and_netsuite_has_one_order(settings):
    """Worker A leases the action and hangs in NetSuite's create; its lease runs out, worker
    B takes over and succeeds; then A's call returns. A's outcome is not recorded."""
    order = make_order(paid=True, pipeline=False)
    hold = threading.Event()
    with FakeNetSuite(hold=hold) as netsuite:
        settings.NETSUITE_API_BASE, settings.NETSUITE_TOKEN = netsuite.url, "tok"
        worker_a: list = []

        def run_a():
            try:  # the trigger commits; its doorbell runs worker A in this thread (eager)
                with transaction.atomic():
                    worker_a.append(
                        action_write(
                            order_id=order.pk,
                            kind="erp_post",
                            target="netsuite",
                            payload={"order_id": order.pk},
                        )
                    )
            except Exception as exc:
                worker_a.append(exc)
            finally:
                connection.close()

        thread = threading.Thread(target=run_a)
        thread.start()
        wait_for(lambda: len(netsuite.posts) == 1)  # A is inside the call, lease committed
        action = OutboundAction.objects.get()
        assert action.status == ActionStatus.IN_FLIGHT and action.attempts == 1
        # A's lease runs out (it is stuck longer than OUTBOX_LEASE_SECONDS).
        OutboundAction.objects.filter(pk=action.pk).update(
            lease_expires_at=action.lease_expires_at.replace(year=2000)
        )

        assert action_dispatch(action_id=action.pk) == "succeeded"  # worker B
        b_result = fresh(action).result
        hold.set()  # A's create comes back: NetSuite refuses the duplicate, A finds B's order
        thread.join(timeout=30)

    assert not [r for r in worker_a if isinstance(r, Exception)], worker_a
    action = fresh(action)
    assert action.status == ActionStatus.SUCCEEDED and action.attempts == 2
    assert action.result == b_result and b_result["created"] is True
    assert netsuite.creates == 1
    assert len(netsuite.posts) == 2  # A's call did go out; NetSuite's external id held
    assert OrderEvent.objects.filter(order=order, action="outbound_succeeded").count() == 1
    assert all(p["headers"]["X-Correlation-Id"] == order.correlation_id for p in netsuite.posts)
