"""One dispatch message takes the other due actions of its lane with it (``actions_dispatch``):
leases in one transaction, successes recorded in one, a failure recorded on its own, the
compare-and-set per action kept, and a lane's messages after the first find nothing to do."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from fulfillment.models import ActionKind, ActionStatus, OutboundAction
from fulfillment.outbox import services as outbox
from fulfillment.outbox.tasks import outbox_dispatch_task
from orders.models import OrderEvent
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse
from tests.fulfillment.outbox.helpers import FakeWMS, fresh, write_silently

pytestmark = pytest.mark.django_db


def _wms_actions(n: int, target: str = "local") -> list[OutboundAction]:
    add_warehouse("EAST")
    return [
        write_silently(
            make_order(paid=True, pipeline=False),
            ActionKind.WMS_TASK,
            target,
            {"warehouse": "EAST"},
            lane="fulfillment",
        )  # fmt: skip
        for _ in range(n)
    ]


def _confirmation() -> OutboundAction:
    return write_silently(
        make_order(paid=True, pipeline=False), ActionKind.NOTIFY_CUSTOMER, "email",
        {"template": "order_confirmation"}, lane="notify",
    )  # fmt: skip


def _statements(queries: CaptureQueriesContext, verb: str, table: str) -> int:
    return sum(
        1 for q in queries.captured_queries
        if q["sql"].startswith(verb) and f'"{table}"' in q["sql"].split("WHERE")[0]
    )  # fmt: skip


def test_one_message_performs_every_due_action_of_its_lane_and_leaves_other_lanes():
    wms = _wms_actions(4)
    mail = _confirmation()  # another lane's action

    with CaptureQueriesContext(connection) as queries:
        outcome = outbox_dispatch_task.run(action_id=wms[0].pk)

    assert outcome == outbox.SUCCEEDED
    assert [fresh(a).status for a in wms] == [ActionStatus.SUCCEEDED] * 4
    assert [fresh(a).attempts for a in wms] == [1] * 4
    assert fresh(mail).status == ActionStatus.PENDING  # another lane: its own message
    # Four actions, two UPDATEs of the outbox (all leases, all successes) and one INSERT of
    # their four outbound_succeeded events.
    assert _statements(queries, "UPDATE", "fulfillment_outboundaction") == 2
    assert _statements(queries, "INSERT", "orders_orderevent") == 1
    events = OrderEvent.objects.filter(action="outbound_succeeded")
    assert sorted(e.data["action_id"] for e in events) == sorted(a.pk for a in wms)
    assert {(e.to_state, e.data["attempt"]) for e in events} == {(ActionStatus.SUCCEEDED, 1)}
    assert {e.order_id for e in events} == {a.order_id for a in wms}

    # The lane's later messages (one per action) find their actions done: no call, no write.
    with CaptureQueriesContext(connection) as queries:
        assert outbox_dispatch_task.run(action_id=wms[3].pk) == outbox.DONE
    assert _statements(queries, "UPDATE", "fulfillment_outboundaction") == 0


def test_the_batch_size_bounds_what_one_message_takes(settings):
    settings.OUTBOX_BATCH_SIZE = 2
    wms = _wms_actions(3)

    outcomes = outbox.actions_dispatch(action_ids=[wms[2].pk])

    assert outcomes == {wms[2].pk: outbox.SUCCEEDED, wms[0].pk: outbox.SUCCEEDED}
    assert [fresh(a).status for a in wms] == [
        ActionStatus.SUCCEEDED, ActionStatus.PENDING, ActionStatus.SUCCEEDED,
    ]  # fmt: skip


def test_actions_not_due_done_or_missing_are_not_taken():
    wms = _wms_actions(3)
    later = timezone.now() + timedelta(hours=1)
    OutboundAction.objects.filter(pk=wms[1].pk).update(next_attempt_at=later)
    outbox.actions_dispatch(action_ids=[wms[2].pk], fill=False)

    outcomes = outbox.actions_dispatch(action_ids=[wms[1].pk, wms[2].pk, 999999])

    assert outcomes == {
        wms[1].pk: outbox.NOT_DUE, wms[2].pk: outbox.DONE, 999999: outbox.MISSING,
        wms[0].pk: outbox.SUCCEEDED,  # the lane's due one, taken along
    }  # fmt: skip
    assert fresh(wms[1]).status == ActionStatus.PENDING


def test_a_failure_in_a_batch_is_retried_on_its_own_and_the_rest_succeed(settings):
    settings.WMS_TARGET = "rest"
    settings.OUTBOX_BREAKER_THRESHOLD = 10
    wms = _wms_actions(3, target="rest")
    with FakeWMS(fail_keys={wms[1].idempotency_key}) as server:
        settings.WMS_API_BASE = server.url
        with TestCase.captureOnCommitCallbacks(execute=False):
            outcomes = outbox.actions_dispatch(action_ids=[wms[0].pk])

    assert outcomes == {
        wms[0].pk: outbox.SUCCEEDED, wms[1].pk: outbox.RESCHEDULED, wms[2].pk: outbox.SUCCEEDED,
    }  # fmt: skip
    failed = fresh(wms[1])
    assert (failed.status, failed.attempts) == (ActionStatus.RETRY_SCHEDULED, 1)
    assert failed.last_error
    assert (
        OrderEvent.objects.filter(
            action="outbound_retry_scheduled", data__action_id=wms[1].pk
        ).count()
        == 1
    )


def test_a_lease_taken_over_meanwhile_is_stale_and_the_newer_attempt_stands():
    wms = _wms_actions(2)
    outcomes, leases = outbox._lease_many([a.pk for a in wms], room=0)
    assert outcomes == {} and [lease.attempt for lease in leases] == [1, 1]

    # Our worker stalls past its lease; another worker takes the first action over and
    # records its own attempt (the real path: the lost attempt counts).
    OutboundAction.objects.filter(pk=wms[0].pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert outbox.action_dispatch(action_id=wms[0].pk) == outbox.SUCCEEDED

    recorded = outbox._record_successes([(lease, {"ours": True}) for lease in leases])

    assert recorded == {wms[0].pk: outbox.STALE, wms[1].pk: outbox.SUCCEEDED}
    taken_over = fresh(wms[0])
    assert (taken_over.status, taken_over.attempts) == (ActionStatus.SUCCEEDED, 2)
    assert "ours" not in taken_over.result
    assert fresh(wms[1]).result == {"ours": True}


def test_a_long_batch_renews_the_leases_it_has_not_used_yet(settings):
    settings.OUTBOX_LEASE_SECONDS = 0  # every call finds half its lease gone: renew first
    wms = _wms_actions(3)

    with CaptureQueriesContext(connection) as queries:
        outcomes = outbox.actions_dispatch(action_ids=[a.pk for a in wms])

    assert set(outcomes.values()) == {outbox.SUCCEEDED}
    assert [fresh(a).attempts for a in wms] == [1, 1, 1]
    renewals = [
        q["sql"] for q in queries.captured_queries
        if q["sql"].startswith("UPDATE") and "lease_expires_at" in q["sql"]
        and "status" not in q["sql"].split("WHERE")[0]
    ]  # fmt: skip
    assert len(renewals) == 3  # before each of the three calls, once


def test_a_renewal_leaves_an_action_another_worker_took():
    wms = _wms_actions(2)
    outcomes, leases = outbox._lease_many([a.pk for a in wms], room=0)
    OutboundAction.objects.filter(pk=wms[1].pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert outbox.action_dispatch(action_id=wms[1].pk) == outbox.SUCCEEDED

    kept = outbox._renew(leases, outcomes)

    assert [lease.action.pk for lease in kept] == [wms[0].pk]
    assert outcomes == {wms[1].pk: outbox.STALE}
    assert fresh(wms[0]).lease_expires_at > timezone.now() + timedelta(seconds=60)


@pytest.mark.parametrize("lane, selects", [("fulfillment", 1), ("", 2)])
def test_a_message_that_names_its_lane_locks_the_batch_in_one_select(lane, selects):
    """The doorbell says which lane it rang on: the named action and the lane's other due
    ones are locked in one SELECT (named first, so the LIMIT never leaves it out); an older
    message without the lane reads the named action first to learn it. Same outcome."""
    wms = _wms_actions(3)
    mail = _confirmation()  # another lane's action

    with CaptureQueriesContext(connection) as queries:
        outcome = outbox_dispatch_task.run(action_id=wms[2].pk, lane=lane)

    assert outcome == outbox.SUCCEEDED
    assert [fresh(a).status for a in wms] == [ActionStatus.SUCCEEDED] * 3
    assert fresh(mail).status == ActionStatus.PENDING
    leases = [q["sql"] for q in queries.captured_queries
              if q["sql"].startswith("SELECT") and '"fulfillment_outboundaction"' in q["sql"]
              and "FOR UPDATE" in q["sql"] and "SKIP LOCKED" in q["sql"]]  # fmt: skip
    if connection.vendor == "postgresql":
        assert len(leases) == selects, leases
    else:  # SQLite has no row locks: the same reads, without FOR UPDATE
        assert _statements(queries, "SELECT", "fulfillment_outboundaction") >= 2


def test_a_named_action_of_another_lane_is_still_taken_when_the_lane_is_given():
    """The lane only widens the batch: an action named by a message on another lane (a sweeper
    re-sending it, an operator's retry) is taken all the same, first."""
    [wms] = _wms_actions(1)
    outcomes = outbox.actions_dispatch(action_ids=[wms.pk], lane="notify")
    assert outcomes == {wms.pk: outbox.SUCCEEDED}
    assert fresh(wms).status == ActionStatus.SUCCEEDED


def test_a_batch_of_emails_reads_its_orders_and_their_lines_once(settings, tmp_path):
    """Three order confirmations in one message: one read of the three orders (with customer
    and channel) and one of their lines, not one of each per email; each email still says its
    own order's lines and total."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    from django.core import mail

    actions = [
        write_silently(
            make_order(paid=True, pipeline=False, lines=[(f"SKU-{i}", i, f"{i}0.00")]),
            ActionKind.NOTIFY_CUSTOMER,
            "email",
            {"template": "order_confirmation"},
            lane="notify",
        )  # fmt: skip
        for i in (1, 2, 3)
    ]
    mail.outbox.clear()

    with CaptureQueriesContext(connection) as queries:
        outcome = outbox_dispatch_task.run(action_id=actions[0].pk, lane="notify")

    assert outcome == outbox.SUCCEEDED
    assert [fresh(a).status for a in actions] == [ActionStatus.SUCCEEDED] * 3
    assert _statements(queries, "SELECT", "orders_order") == 1
    assert _statements(queries, "SELECT", "orders_orderline") == 1
    # Each action keeps its own result (the one UPDATE sets each row's), each email has its own
    # order's number and lines, none of another order's.
    ids = [fresh(a).result["message_id"] for a in actions]
    assert sorted(ids) == sorted(m.extra_headers["Message-ID"] for m in mail.outbox)
    assert len(set(ids)) == 3
    assert len(mail.outbox) == 3
    for i, action in enumerate(actions, start=1):
        order = fresh(action).order
        subject = f"Your order {order.external_id} is confirmed"
        body = next(m.body for m in mail.outbox if m.subject == subject)
        assert f"SKU-{i}" in body
        assert not {f"SKU-{j}" for j in (1, 2, 3) if j != i} & set(body.split())
