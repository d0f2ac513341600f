"""The Celery app. Queues: ingest, fulfillment, sync, notify. Beat uses django-celery-beat.

The correlation id travels in a message header and is bound around each task run, so a worker's
log lines and audit events carry the id of the work that caused them.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("orderdesk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in ("ingest", "fulfillment", "sync", "notify")]
app.autodiscover_tasks()

CORRELATION_HEADER = "correlation_id"


@signals.before_task_publish.connect
def _attach_correlation_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    from config import correlation

    cid = correlation.get()
    if headers is not None and cid and CORRELATION_HEADER not in headers:
        headers[CORRELATION_HEADER] = cid


@signals.task_prerun.connect
def _bind_correlation_id(task: Any = None, **_: Any) -> None:
    from config import correlation

    request = getattr(task, "request", None)
    cid = getattr(request, CORRELATION_HEADER, None) if request is not None else None
    if cid is None and request is not None:
        cid = (getattr(request, "headers", None) or {}).get(CORRELATION_HEADER)
    correlation.set_current(correlation.clean(cid) or correlation.get() or correlation.new())


@signals.setup_logging.connect
def _use_django_logging(**_: Any) -> None:
    """Keep Django's LOGGING (JSON) instead of Celery's own handlers."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
