"""The Celery app. Queues: ingest, fulfillment, sync, notify, and the fulfillment lanes routing
rules name (subscriptions). Beat uses django-celery-beat.

The correlation id travels in a message header and is bound around each task run, so a worker's
log lines and audit events carry the id of the work that caused them.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("orderdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Not "correlation_id": Celery already uses that name for the task id on its requests.
CORRELATION_HEADER = "x_correlation_id"


@signals.before_task_publish.connect
def _attach_correlation_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    from config import correlation

    cid = correlation.get()
    if headers is not None and cid and CORRELATION_HEADER not in headers:
        headers[CORRELATION_HEADER] = cid


_tokens: dict[str, Any] = {}


@signals.task_prerun.connect
def _bind_correlation_id(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """Bind the message's correlation id for the task's run (eager runs keep the caller's)."""
    from config import correlation

    request = getattr(task, "request", None)
    cid = getattr(request, CORRELATION_HEADER, None) if request is not None else None
    if cid is None and request is not None:
        cid = (getattr(request, "headers", None) or {}).get(CORRELATION_HEADER)
    cid = correlation.clean(cid)
    if cid and task_id:
        _tokens[task_id] = correlation.push(cid)


@signals.task_postrun.connect
def _unbind_correlation_id(task_id: str | None = None, **_: Any) -> None:
    from config import correlation

    token = _tokens.pop(task_id or "", None)
    if token is not None:
        correlation.pop(token)


@signals.task_prerun.connect
def _retire_old_connections(task: Any = None, **_: Any) -> None:
    """Before a task from the broker, what Django does before a request: close a connection
    past CONN_MAX_AGE or left unusable by an error, and health-check a kept one at its first
    use (CONN_HEALTH_CHECKS). With CELERY_DB_REUSE_MAX the fix-up no longer closes them all."""
    request = getattr(task, "request", None)
    if request is None or request.is_eager:
        return
    from django.db import close_old_connections

    close_old_connections()


@signals.setup_logging.connect
def _use_django_logging(**_: Any) -> None:
    """Keep Django's LOGGING (JSON) instead of Celery's own handlers."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
