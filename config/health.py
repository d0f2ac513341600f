"""Liveness and readiness probes (open to anyone), and the Prometheus metrics (a token)."""

from __future__ import annotations

import hmac
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and serving requests; touches no dependency."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _check_broker() -> str:
    url: str = settings.CELERY_BROKER_URL
    if settings.CELERY_TASK_ALWAYS_EAGER or url.startswith("memory://"):
        return "not configured (tasks run in-process)"
    if url.startswith("filesystem://"):
        # settings.py builds the options as dict[str, object]; the folder is a string.
        queue_dir = Path(str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]))
        if not queue_dir.is_dir():
            raise OSError(f"broker folder {queue_dir} is missing")
        probe = queue_dir / ".readyz"
        probe.write_text("ok")
        probe.unlink()
        return "ok"
    from kombu import Connection

    with Connection(url, connect_timeout=1) as conn:
        # No retry: a probe must answer within an orchestrator's 1 s timeout.
        conn.ensure_connection(max_retries=0, timeout=1)
    return "ok"


@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready to do work: the database answers and, when one is configured, the broker too.

    Answers 503 naming the failing part, so an orchestrator (and a person) sees what is down.
    """
    checks: dict[str, str] = {}
    failing: list[str] = []
    for name, check in (("database", _check_database), ("broker", _check_broker)):
        try:
            checks[name] = check()
        except Exception as exc:  # any failure of a dependency means "not ready"
            checks[name] = f"error: {type(exc).__name__}"
            failing.append(name)
    if failing:
        return JsonResponse(
            {"status": "unavailable", "failing": failing, "checks": checks}, status=503
        )
    return JsonResponse({"status": "ok", "checks": checks})


def _metrics_refusal(request: HttpRequest) -> JsonResponse | None:
    """None when the caller may read /metrics: no METRICS_TOKEN is set (development), the
    request carries ``Authorization: Bearer <METRICS_TOKEN>``, or a staff user is signed in.
    Otherwise 401 (no credentials) or 403 (wrong ones)."""
    token: str = settings.METRICS_TOKEN
    if not token:
        return None
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return None
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_active and user.is_staff:
        return None
    if scheme or (user is not None and user.is_authenticated):
        return JsonResponse(
            {"code": "permission_denied", "detail": "This token or user may not read metrics."},
            status=403,
        )
    response = JsonResponse(
        {"code": "not_authenticated", "detail": "Metrics need Authorization: Bearer <token>."},
        status=401,
    )
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


@require_GET
@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition (with ``METRICS_TOKEN`` set: for that bearer token or a signed-in
    staff user only). Under gunicorn set PROMETHEUS_MULTIPROC_DIR so that every worker
    process's counts are summed."""
    import os

    refusal = _metrics_refusal(request)
    if refusal is not None:
        return refusal

    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
        multiprocess,
    )

    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
