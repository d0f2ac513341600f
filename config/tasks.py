"""Enqueueing helpers: the doorbell. Services name tasks by string, so a lower app never imports
a higher one.

The database row (inbox event, order, outbox action) is the truth; a message only says "look at
row N now". A lost message costs latency, never data: each kind of row has a beat sweeper that
re-enqueues what is due. So ringing must never fail the work that wrote the row.
"""

from __future__ import annotations

import threading
from typing import Any

import structlog
from celery import current_task, signals
from django.conf import settings
from django.db import transaction

from config import correlation
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
        if not countdown and _follows_inline(task_name, queue):
            _after_this_run.append((task_name, ids, correlation.get()))
            return
        _send(task_name, queue=queue, countdown=countdown, **ids)

    # Django names the callback in its log line when a robust one fails: say which task.
    doorbell.__qualname__ = f"doorbell[{task_name}]"
    transaction.on_commit(doorbell, robust=not app.conf.task_always_eager)


# --- follow-ups run by the worker that rang them ------------------------------------------------
class _FollowUps(threading.local):
    """The follow-ups the running task rang (per thread: a threads pool runs several)."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, dict[str, Any], str | None]] = []

    def append(self, item: tuple[str, dict[str, Any], str | None]) -> None:
        self.pending.append(item)

    def take(self) -> list[tuple[str, dict[str, Any], str | None]]:
        taken, self.pending = self.pending, []
        return taken


_after_this_run = _FollowUps()


def _queue_of(task_name: str, queue: str | None) -> str | None:
    """The queue a message for ``task_name`` goes to (the override, else its route)."""
    if queue is not None:
        return queue
    routed = app.amqp.router.route({}, task_name).get("queue")
    return getattr(routed, "name", routed)


def _running_queue() -> str | None:
    """The queue of the message this worker is running now; None outside a worker, and in a
    task run in-process (eager, or a follow-up itself: one level only)."""
    task = current_task
    if not task:  # a proxy, false when this thread runs no task (a web request, a command)
        return None
    request = task.request
    if request.is_eager or request.called_directly:
        return None
    return (request.delivery_info or {}).get("routing_key")


def _follows_inline(task_name: str, queue: str | None) -> bool:
    """A doorbell for a task of ``INLINE_FOLLOW_UPS`` rung by a task of the same queue (inbox
    processing -> validation, both on ``ingest``) is run by this worker as soon as the task
    that rang it returns, instead of sent: the worker that would take the message is of the
    same kind, and nothing waits in between, so the broker hop bought only latency and CPU.
    The row stays the truth: a worker killed before the follow-up ran leaves its row to the
    sweeper, as a lost message would."""
    if task_name not in settings.INLINE_FOLLOW_UPS or app.conf.task_always_eager:
        return False
    running = _running_queue()
    return running is not None and running == _queue_of(task_name, queue)


@signals.task_postrun.connect
def _run_follow_ups(task: Any = None, **_: Any) -> None:
    """After a task's run (its own metrics and log lines closed), the follow-ups it rang, each
    under the correlation id it would have carried in its message. A failure is logged and
    left to the sweeper, as a failed task run is; the next one still runs."""
    request = getattr(task, "request", None)
    if request is None or request.is_eager:
        return
    for task_name, ids, cid in _after_this_run.take():
        try:
            with correlation.bound(cid or ""):
                app.tasks[task_name].apply(kwargs=ids, throw=True)
        except Exception:
            log.exception("tasks.follow_up_failed", task=task_name, **ids)
