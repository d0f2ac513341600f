"""Enqueueing helpers. Services name tasks by string, so a lower app never imports a higher one."""

from __future__ import annotations

import functools
from typing import Any

from django.db import transaction

from config.celery import app


def enqueue(name: str, **kwargs: Any) -> None:
    """Send task ``name`` now; run it in-process when CELERY_TASK_ALWAYS_EAGER is on."""
    if app.conf.task_always_eager:
        app.tasks[name].apply(kwargs=kwargs, throw=True)
    else:
        app.send_task(name, kwargs=kwargs)


def enqueue_on_commit(name: str, **kwargs: Any) -> None:
    """Send task ``name`` once the current transaction commits (a doorbell; the row is truth)."""
    transaction.on_commit(functools.partial(enqueue, name, **kwargs))
