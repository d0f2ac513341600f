"""The webhook endpoint: verify, keep, answer. Everything else happens after the answer."""

from __future__ import annotations

import time

import structlog
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from channels import metrics
from channels.adapters import get_adapter
from channels.adapters.base import SignatureInvalid
from channels.models import InboundSource, SalesChannel
from channels.services import channel_config, inbound_event_store, kept_headers

security_log = structlog.get_logger("security")
log = structlog.get_logger(__name__)


def _error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail}, status=status)


@csrf_exempt
@require_POST
def webhook(request: HttpRequest, slug: str) -> JsonResponse:
    """``POST /webhooks/<slug>/``: 202 accepted, 200 duplicate or ping, 401 bad signature,
    404 unknown channel, 413 too large, 503 when the inbox could not be written."""
    started = time.perf_counter()
    channel = SalesChannel.objects.filter(slug=slug, is_active=True).first()
    if channel is None:
        return _error(404, "unknown_channel", f"No active channel {slug!r}")
    limit = settings.WEBHOOK_MAX_BODY_BYTES
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > limit or len(body := request.body) > limit:
        metrics.TOO_LARGE.labels(slug).inc()
        return _error(413, "payload_too_large", f"Bodies over {limit} bytes are refused")
    headers = {k.lower(): v for k, v in request.headers.items()}
    config = channel_config(channel)
    try:
        delivery = get_adapter(channel.kind).verify(config, headers, body, now=timezone.now())
    except SignatureInvalid as exc:
        metrics.SIGNATURE_FAILURES.labels(slug).inc()
        security_log.warning(
            "webhook.signature_invalid", channel=slug, reason=exc.reason, body_bytes=len(body)
        )
        return _error(401, "signature_invalid", f"Signature check failed: {exc.reason}")
    if delivery.is_ping:
        return JsonResponse({"ping": True})
    try:
        event, created = inbound_event_store(
            channel=channel,
            source=InboundSource.WEBHOOK,
            topic=delivery.topic,
            dedup_key=delivery.dedup_key,
            headers=kept_headers(headers, secret_header=config.auth_header_name),
            body=body,
            api_version=delivery.api_version,
        )
    except DatabaseError:
        log.exception("webhook.store_failed", channel=slug)
        return _error(503, "unavailable", "The event could not be stored; please retry")
    metrics.ACK_SECONDS.labels(slug).observe(time.perf_counter() - started)
    if not created:
        return JsonResponse({"duplicate": True})
    metrics.PAYLOAD_BYTES.labels(slug).observe(len(body))
    return JsonResponse(
        {"accepted": True, "event_id": event.pk, "correlation_id": event.correlation_id},
        status=202,
    )
