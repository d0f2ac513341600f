"""The doorbell (``config.tasks.enqueue_on_commit``): a broker that is down after the inbox commit
never turns a stored webhook into a 5xx; the row waits ``received`` and the sweeper takes it.

The broker here is real and really unreachable: a Celery app configured like the project's, with
its broker URL on a loopback port nothing listens on, and eager mode off. It takes the place of
the project's app in ``config.tasks`` for the delivery only; nothing of ours is replaced.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings
from django.utils import timezone

import config.tasks
from channels.models import ChannelKind, InboundEvent
from channels.tasks import inbound_event_sweep_task
from config.celery import app
from config.settings import filesystem_broker_options
from config.tasks import enqueue_on_commit
from orders.models import Order
from tests.channels.test_webhook import canonical_order, envelope, post
from tests.factories import SalesChannelFactory

SLUG = "acme-store"
SECRET = "acme-signing-secret-1"


def closed_loopback_port() -> int:
    """A port that was free a moment ago: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def project_like_app(
    name: str, monkeypatch: pytest.MonkeyPatch, *, broker_url: str, **overrides: object
) -> Celery:
    """A real Celery app with the project's CELERY_* settings, not eager, on ``broker_url``.

    Celery reads CELERY_BROKER_URL from the environment before its configuration (the
    PostgreSQL + Redis pass sets it), so the environment is pointed at the broker too."""
    monkeypatch.setenv("CELERY_BROKER_URL", broker_url)
    monkeypatch.delenv("CELERY_BROKER_WRITE_URL", raising=False)
    celery = Celery(name, set_as_current=False)
    celery.config_from_object("django.conf:settings", namespace="CELERY")
    celery.conf.update(task_always_eager=False, broker_url=broker_url, **overrides)
    return celery


@pytest.fixture
def broker_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    with monkeypatch.context() as patched:
        dead = project_like_app(
            "broker-down",
            patched,
            broker_url=f"redis://127.0.0.1:{closed_loopback_port()}/0",
            broker_transport_options={},
        )
        patched.setattr(config.tasks, "app", dead)
        yield patched


@pytest.mark.django_db(transaction=True)  # real commits: on_commit runs as in production
def test_a_delivery_while_the_broker_is_down_is_stored_answered_202_and_swept_later(
    client, broker_down, caplog
):
    SalesChannelFactory(kind=ChannelKind.CUSTOM, slug=SLUG, webhook_secret=SECRET)

    with caplog.at_level(logging.ERROR, logger="django.db.backends.base"):
        response = post(client, envelope(canonical_order()))

    assert response.status_code == 202
    assert response.json()["accepted"] is True
    event = InboundEvent.objects.get()
    assert event.status == "received"
    assert event.pk == response.json()["event_id"]
    assert not Order.objects.exists()
    # The lost doorbell is logged, naming the task (ids and PII stay out of the line).
    assert any(
        "doorbell[channels.inbound_event_process]" in record.getMessage()
        for record in caplog.records
    )

    broker_down.undo()  # the broker is back (tasks in-process again, as the suite runs them)
    assert inbound_event_sweep_task() == 0  # not overdue yet: its message may still arrive
    InboundEvent.objects.filter(pk=event.pk).update(
        received_at=timezone.now() - timedelta(minutes=10)
    )
    assert inbound_event_sweep_task() == 1

    event.refresh_from_db()
    assert event.status == "processed"
    assert Order.objects.get().pk == event.order_id


@app.task(name="tests.doorbell_fails")
def doorbell_fails_task(**ids: object) -> None:
    raise RuntimeError(f"task failed for {ids}")


def test_in_eager_mode_a_failing_task_still_fails_the_caller(
    db, django_capture_on_commit_callbacks
):
    assert app.conf.task_always_eager
    with pytest.raises(RuntimeError, match="task failed"):
        with django_capture_on_commit_callbacks(execute=True):
            enqueue_on_commit("tests.doorbell_fails", order_id=1)


@pytest.fixture
def fs_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Celery:
    """The doorbells ring on a project-like app with a real (filesystem) broker of its own."""
    broker = project_like_app(
        "doorbell-fs",
        monkeypatch,
        broker_url="filesystem://",
        broker_transport_options=filesystem_broker_options(tmp_path),
    )
    monkeypatch.setattr(config.tasks, "app", broker)
    return broker


def test_queue_and_countdown_reach_the_broker(db, fs_broker, django_capture_on_commit_callbacks):
    broker = fs_broker
    with django_capture_on_commit_callbacks(execute=True):
        enqueue_on_commit("orders.order_validate", queue="notify", countdown=30, order_id=7)
        enqueue_on_commit("orders.order_allocate", queue="no-such-lane", order_id=8)

    with broker.connection_for_read() as conn:
        notify = conn.SimpleQueue("notify")
        message = notify.get(timeout=5)
        assert message.headers["task"] == "orders.order_validate"
        assert message.headers["eta"] is not None
        assert message.payload[1] == {"order_id": 7}
        notify.close()
        # An undeclared queue is not used: the task's route (orders.* -> ingest) decides.
        ingest = conn.SimpleQueue("ingest")
        message = ingest.get(timeout=5)
        assert message.headers["task"] == "orders.order_allocate"
        assert message.payload[1] == {"order_id": 8}
        ingest.close()


def test_a_follow_up_rung_outside_a_worker_goes_to_the_broker(
    db, fs_broker, django_capture_on_commit_callbacks
):
    """Validation is run inline only by a worker of its queue (INLINE_FOLLOW_UPS); rung by a
    web request or a command (no task running), its doorbell is a message as before."""
    broker = fs_broker
    assert "orders.order_validate" in settings.INLINE_FOLLOW_UPS

    with django_capture_on_commit_callbacks(execute=True):
        enqueue_on_commit("orders.order_validate", order_id=9)

    with broker.connection_for_read() as conn:
        ingest = conn.SimpleQueue("ingest")
        message = ingest.get(timeout=5)
        assert message.headers["task"] == "orders.order_validate"
        assert message.payload[1] == {"order_id": 9}
        ingest.close()


def test_in_eager_mode_a_delayed_doorbell_is_left_to_the_sweeper(
    db, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        # Would raise if run (the task always fails): a delay cannot be honoured in-process.
        enqueue_on_commit("tests.doorbell_fails", countdown=60, order_id=1)
