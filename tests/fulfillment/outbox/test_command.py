"""``manage.py process_outbox``: drain due actions with a progress bar on stderr, revive dead
ones with ``--retry-dead``, print a summary, exit 1 while anything is dead."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from fulfillment.models import ActionKind, ActionStatus, PickTask
from orders.models import OrderEvent
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse
from tests.fulfillment.outbox.helpers import FakeWMS, fresh, write, write_silently

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("process_outbox", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def order():
    add_warehouse("EAST")
    return make_order(paid=True, pipeline=False)


def test_it_drains_due_actions_whose_messages_were_lost(order, capsys):
    lost = [
        write_silently(order, ActionKind.WMS_TASK, "local", {"warehouse": "EAST"}),
        write_silently(order, ActionKind.ERP_POST, "filedrop"),
        write_silently(
            order, ActionKind.NOTIFY_CUSTOMER, "email", {"template": "order_confirmation"}
        ),
    ]
    out, _err = run()

    assert "Dispatched 3 due action(s): 3 succeeded, 0 rescheduled" in out and "0 dead" in out
    assert {fresh(a).status for a in lost} == {ActionStatus.SUCCEEDED}
    assert "outbox: 100%" in capsys.readouterr().err  # tqdm writes to the process's stderr
    out, _err = run()  # safe to run twice
    assert "Dispatched 0 due action(s)" in out and PickTask.objects.count() == 1


def test_dead_actions_make_it_exit_1_until_retried(order, settings):
    settings.WMS_TARGET = "rest"
    with FakeWMS(down=True) as wms:
        settings.WMS_API_BASE = wms.url
        action = write(order, ActionKind.WMS_TASK, "rest", {"warehouse": "EAST"}, max_attempts=1)
        assert action.status == ActionStatus.DEAD

        with pytest.raises(CommandError) as exc:
            run("--no-progress")
        assert exc.value.returncode == 1 and "1 outbound action(s) are dead" in str(exc.value)

        with pytest.raises(CommandError):  # still down: dies again
            run("--retry-dead", "--no-progress")
        assert fresh(action).status == ActionStatus.DEAD

        wms.down = False
        out, _err = run("--retry-dead", str(action.pk), "--no-progress")

    assert "Revived 1 dead action(s)." in out and "1 succeeded" in out
    assert fresh(action).status == ActionStatus.SUCCEEDED and len(wms.created) == 1
    retried = OrderEvent.objects.filter(action="outbound_retried")
    assert {(e.actor_kind, e.actor_id) for e in retried} == {("system", "process_outbox")}


def test_bad_input_is_refused_clearly(order):
    action = write(order, ActionKind.WMS_TASK, "local", {"warehouse": "EAST"})
    with pytest.raises(CommandError, match="not dead"):
        run("--retry-dead", str(action.pk))
    with pytest.raises(CommandError, match="does not exist"):
        run("--retry-dead", "999999")
    with pytest.raises(CommandError, match="--limit"):
        run("--limit", "0")


def test_limit_dispatches_at_most_n(order):
    for version in (1, 2, 3):
        write_silently(order, ActionKind.WMS_TASK, "local", {"warehouse": "EAST"},
                       version=version)  # fmt: skip
    out, _err = run("--limit", "2", "--no-progress")
    assert "Dispatched 2 due action(s)" in out and PickTask.objects.count() == 2
