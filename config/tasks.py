"""Enqueueing helpers: the doorbell. Services name tasks by string, so a lower app never imports
a higher one.

The database row (inbox event, order, outbox action) is the truth; a message only says "look at
row N now". A lost message costs latency, never data: each kind of row has a beat sweeper that
re-enqueues what is due. So ringing must never fail the work that wrote the row.
"""

from __future__ import annotations

from typing import Any

import structlog
from django.db import transaction

from config.celery import app

log = structlog.get_logger(__name__)


def _send(
    task_name: str, *, queue: str | None = None, countdown: float | None = None, **ids: Any
) -> None:
    if app.conf.task_always_eager:
        if countdown:
            # An in-process run cannot wait; running it now would defeat the delay (a retry
            # backoff). The row keeps its due time, and the sweeper takes it when it is due.
            return
        app.tasks[task_name].apply(kwargs=ids, throw=True)
        return
    options: dict[str, Any] = {}
    if queue is not None:
        if queue in {q.name for q in (app.conf.task_queues or [])}:
            options["queue"] = queue
        else:
            # No worker consumes an undeclared queue: route by the task's name instead.
            log.warning("tasks.unknown_queue", task=task_name, queue=queue)
    if countdown:
        options["countdown"] = countdown
    app.send_task(task_name, kwargs=ids, **options)


def enqueue(
    task_name: str, *, queue: str | None = None, countdown: float | None = None, **ids: Any
) -> None:
    """Send task ``task_name`` now (``ids`` are its keyword arguments: ids, never PII); run it
    in-process when CELERY_TASK_ALWAYS_EAGER is on. A broker error propagates: callers outside
    a transaction (beat sweepers) want to know."""
    _send(task_name, queue=queue, countdown=countdown, **ids)


def enqueue_on_commit(
    task_name: str, *, queue: str | None = None, countdown: float | None = None, **ids: Any
) -> None:
    """Send task ``task_name`` once the current transaction commits (a doorbell; the row is the
    truth). ``queue`` overrides the task route, ``countdown`` delays delivery (seconds).

    With a broker the callback is robust (``on_commit(..., robust=True)``): a broker that is down
    after the commit is logged, and the caller (a webhook that already stored its inbox row, a
    service whose transition committed) still succeeds; the sweeper re-enqueues the row, and the
    other after-commit callbacks of the same transaction still run.

    In eager mode (CELERY_TASK_ALWAYS_EAGER, the tests and a broker-less shell) the callback is
    not a doorbell but the task itself, run in-process, so it is registered non-robust: an
    exception there is a bug in our code, and swallowing it into a log line would let a test
    pass over a failing task. This is the same rule the outbox's dispatch uses.
    """

    def doorbell() -> None:
        _send(task_name, queue=queue, countdown=countdown, **ids)

    # Django names the callback in its log line when a robust one fails: say which task.
    doorbell.__qualname__ = f"doorbell[{task_name}]"
    transaction.on_commit(doorbell, robust=not app.conf.task_always_eager)
