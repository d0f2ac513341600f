"""With a real broker (not eager), the doorbell goes to the action's lane (Celery queue); a
short retry delay rides on a countdown, a long one stays in the database for the sweeper.

Celery's ``send_task`` is replaced by a recorder here (Celery's API, not our code): the message
itself is what is checked, without a broker other test runs might read."""

from __future__ import annotations

import logging

import pytest
from django.test import TestCase
from django.utils import timezone

from config.celery import app
from fulfillment.models import ActionKind, ActionStatus
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse
from tests.fulfillment.outbox.helpers import FakeWMS, dispatch, fresh, write, write_silently

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    calls: list[tuple[str, dict, dict]] = []
    monkeypatch.setattr(
        app, "send_task", lambda name, kwargs=None, **options: calls.append((name, kwargs, options))
    )
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        yield calls
    finally:
        app.conf.task_always_eager = eager


@pytest.fixture
def order():
    add_warehouse("EAST")
    return make_order(paid=True, pipeline=False)


def test_the_doorbell_rings_on_the_actions_lane_after_commit(order, sent):
    action = write(order, ActionKind.NOTIFY_CUSTOMER, "email", {"template": "order_confirmation"},
                   lane="notify")  # fmt: skip
    assert sent == [
        ("fulfillment.outbox_dispatch", {"action_id": action.pk, "lane": "notify"},
         {"queue": "notify"}),
    ]  # fmt: skip
    assert fresh(action).status == ActionStatus.PENDING  # a worker will take it


def test_an_unknown_lane_falls_back_to_the_routes(order, sent):
    action = write(order, ActionKind.WMS_TASK, "local", {"warehouse": "EAST"}, lane="nowhere")
    assert sent == [
        ("fulfillment.outbox_dispatch", {"action_id": action.pk, "lane": "nowhere"}, {})
    ]


def test_a_short_retry_gets_a_countdown_and_a_long_one_waits_in_the_database(order, sent, settings):
    settings.WMS_TARGET = "rest"
    settings.OUTBOX_BACKOFF_BASE_SECONDS = 1  # the first retry: within [0, 1] s
    with FakeWMS(down=True) as wms:
        settings.WMS_API_BASE = wms.url
        action = write_silently(order, ActionKind.WMS_TASK, "rest", {"warehouse": "EAST"},
                                lane="fulfillment")  # fmt: skip
        assert dispatch(action) == "rescheduled"
        [(name, kwargs, options)] = sent
        assert kwargs == {"action_id": action.pk, "lane": "fulfillment"}
        assert options["queue"] == "fulfillment"
        assert 0 < options["countdown"] <= 1

        sent.clear()
        settings.OUTBOX_BACKOFF_BASE_SECONDS = 3600  # the next one: up to an hour
        settings.OUTBOX_COUNTDOWN_MAX_SECONDS = 0
        action = fresh(action)
        type(action).objects.filter(pk=action.pk).update(next_attempt_at=timezone.now())
        with TestCase.captureOnCommitCallbacks(execute=True):
            assert dispatch(action) == "rescheduled"
    assert sent == []  # no ETA message: the sweeper picks it up when it is due
    assert fresh(action).attempts == 2


@pytest.fixture
def broker_down(monkeypatch):
    """A broker that refuses every message (Celery's API replaced, as ``sent`` does)."""
    from kombu.exceptions import OperationalError

    def refuse(name, kwargs=None, **options):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(app, "send_task", refuse)
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        yield
    finally:
        app.conf.task_always_eager = eager


def test_a_broker_that_is_down_does_not_fail_the_committed_write(order, broker_down, caplog):
    with caplog.at_level(logging.ERROR, logger="django.db.backends.base"):
        action = write(order, ActionKind.WMS_TASK, "local", {"warehouse": "EAST"}, lane="notify")
    assert fresh(action).status == ActionStatus.PENDING  # stored: the sweeper re-rings
    assert order.events.filter(action="outbound_queued").count() == 1
    assert any(
        "doorbell[fulfillment.outbox_dispatch]" in record.getMessage() for record in caplog.records
    )
