"""Privacy requests arriving from a channel, the inbox's part of them, and inbox retention.

A channel's compliance delivery (Shopify ``customers/data_request``, ``customers/redact``,
``shop/redact``) is verified and stored like any other; processing reads it with the adapter's
``privacy_request`` and hands it here instead of to the order path:

- ``data_request``: ``orders.privacy.subject_data_request`` writes the export and opens a
  ``privacy_request`` incident with the due date (outcome ``privacy_export``);
- ``customer_redact`` / ``shop_redact``: ``orders.privacy.subject_redact`` removes the
  customer's (or the whole channel's) personal data (outcome ``redacted``).

The inbox is this app's, so its part is registered here (``orders`` never imports channels):
events of the subject's orders, or whose body names the subject's email or customer id, are
exported, and a redaction blanks their raw body, headers and fetched payload.

Retention: ``inbound_raw_purge`` (beat, daily) blanks the raw body, headers and fetched payload
of events processed more than ``INBOX_RAW_RETENTION_DAYS`` ago (0: never). Events still
``received`` are never touched; quarantined ones keep theirs for that many days after they were
last quarantined (a person may fix and replay them until then; the incident and the errors
stay, their quoted values blanked).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import structlog
from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from channels.adapters.base import NormalizationError, PrivacyRequest
from channels.models import InboundEvent, InboundStatus, SalesChannel
from orders import privacy
from orders.actors import Actor

log = structlog.get_logger(__name__)

OUTCOME_EXPORT = "privacy_export"
OUTCOME_REDACTED = "redacted"
DONE = (
    InboundStatus.PROCESSED,
    InboundStatus.DUPLICATE,
    InboundStatus.REPLAYED,
    InboundStatus.QUARANTINED,
)


def privacy_request_of(adapter: Any, payload: Any, topic: str) -> PrivacyRequest | None:
    """The adapter's reading of a compliance delivery; None for every other topic (and for
    channels whose adapter has no compliance topics)."""
    read = getattr(adapter, "privacy_request", None)
    if read is None or not isinstance(payload, Mapping):
        return None
    request: PrivacyRequest | None = read(payload, topic)
    return request


def privacy_request_handle(
    *, event: InboundEvent, request: PrivacyRequest
) -> tuple[int | None, str]:
    """Act on one verified privacy request from the inbox; ``(None, outcome)`` for the inbox."""
    _check_shop(event.channel, request)
    outcome = privacy_request_apply(
        channel=event.channel,
        request=request,
        requested_at=event.received_at,
        actor=Actor.channel(event.channel.slug),
        details={"inbound_event_id": event.pk},
        fallback_ref=f"event-{event.pk}",
    )
    log.info("privacy.request_done", event_id=event.pk, kind=request.kind, outcome=outcome)
    return None, outcome


def privacy_request_apply(
    *,
    channel: SalesChannel,
    request: PrivacyRequest,
    requested_at: datetime,
    actor: Actor,
    details: dict[str, Any] | None = None,
    fallback_ref: str = "",
) -> str:
    """Export (``data_request``) or redact (``customer_redact``, ``shop_redact``) for one
    request; the webhook path and the ``privacy_request`` command both come here. Returns the
    outcome: ``privacy_export`` or ``redacted``."""
    subject = privacy.Subject(
        channel_id=channel.pk,
        channel_slug=channel.slug,
        customer_ref=request.customer_ref,
        email=request.email,
        phone=request.phone,
        order_external_ids=request.order_ids,
        order_ids=tuple(_orders_of_customer(channel, request.customer_ref)),
        whole_channel=request.kind == "shop_redact",
    )
    if request.kind == "data_request":
        privacy.subject_data_request(
            subject=subject,
            request_ref=request.request_ref or fallback_ref or "request",
            requested_at=requested_at,
            details={**(details or {}), "shop_domain": request.shop_domain},
        )
        return OUTCOME_EXPORT
    privacy.subject_redact(subject=subject, request=request.kind, actor=actor)
    return OUTCOME_REDACTED


def _check_shop(channel: SalesChannel, request: PrivacyRequest) -> None:
    """One app secret signs for every shop that installed the app: a request for another shop
    must not act on this channel. Where the channel names its shop (its API base URL), the
    body's ``shop_domain`` must match it."""
    host = (urlsplit(channel.api_base_url).hostname or "").lower()
    if host and request.shop_domain and host != request.shop_domain.lower():
        raise NormalizationError(
            [
                {
                    "pointer": "/shop_domain",
                    "value": request.shop_domain,
                    "message": f"the request is for another shop than this channel's ({host})",
                }
            ]
        )


def _bodies(channel_id: int) -> Iterator[tuple[InboundEvent, bytes]]:
    events = InboundEvent.objects.filter(channel_id=channel_id).only("pk", "order_id", "raw_body")
    for event in events.order_by("pk").iterator(chunk_size=500):
        yield event, bytes(event.raw_body or b"")


def _customer_id_of(body: bytes) -> str:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return ""
    customer = payload.get("customer") if isinstance(payload, dict) else None
    found = customer.get("id") if isinstance(customer, dict) else None
    return "" if found is None else str(found)


def _orders_of_customer(channel: SalesChannel, customer_ref: str) -> list[int]:
    """Our orders whose channel payload names this customer id (orders without an email)."""
    if not customer_ref:
        return []
    return sorted(
        {
            event.order_id
            for event, body in _bodies(channel.pk)
            if event.order_id
            and customer_ref.encode() in body
            and _customer_id_of(body) == customer_ref
        }
    )


def _subject_events(scope: privacy.Scope) -> QuerySet[InboundEvent]:
    subject = scope.subject
    events = InboundEvent.objects.filter(channel_id=subject.channel_id)
    if subject.whole_channel:
        return events
    emails = [e.encode() for e in scope.emails]
    ref = subject.customer_ref
    mentioning = [
        event.pk
        for event, body in _bodies(subject.channel_id)
        if any(e in body.lower() for e in emails)
        or (ref and ref.encode() in body and _customer_id_of(body) == ref)
    ]
    return events.filter(Q(order_id__in=scope.order_ids) | Q(pk__in=mentioning))


def _inbox_export(scope: privacy.Scope) -> list[dict[str, Any]]:
    rows = []
    for event in _subject_events(scope).order_by("received_at", "pk"):
        raw = bytes(event.raw_body or b"")
        try:
            body: Any = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = raw.decode("utf-8", "replace")
        rows.append(
            {
                "id": event.pk,
                "topic": event.topic,
                "received_at": event.received_at,
                "status": event.status,
                "body": body,
                "fetched": event.fetched,
            }
        )
    return rows


def _blank(errors: Any) -> Any:
    if not isinstance(errors, list):
        return errors
    return [{**e, "value": None} if isinstance(e, dict) else e for e in errors]


def _inbox_redact(scope: privacy.Scope) -> int:
    changed = 0
    for event in _subject_events(scope).only("pk", "raw_body", "headers", "fetched", "errors"):
        errors = privacy.scrub(_blank(event.errors), scope.known)
        if (
            bytes(event.raw_body or b"")
            or event.headers
            or event.fetched is not None
            or (errors != event.errors)
        ):
            InboundEvent.objects.filter(pk=event.pk).update(
                raw_body=b"", headers={}, fetched=None, errors=errors
            )
            changed += 1
    return changed


def register() -> None:
    privacy.register("inbound_events", export=_inbox_export, redact=_inbox_redact)


# --- retention -----------------------------------------------------------------------------------
def _not_blank() -> Q:
    return ~Q(raw_body=b"") | ~Q(headers={}) | Q(fetched__isnull=False)


def inbound_raw_purge(
    *, days: int | None = None, batch_size: int = 500, max_batches: int = 200
) -> int:
    """Blank raw bodies, headers and fetched payloads past the retention period, in batches
    (one short UPDATE each); returns how many events it blanked. Logs counts only."""
    days = settings.INBOX_RAW_RETENTION_DAYS if days is None else days
    if days <= 0:
        return 0
    cutoff = timezone.now() - timedelta(days=days)
    due = InboundEvent.objects.filter(status__in=DONE, processed_at__lt=cutoff).filter(_not_blank())
    total = 0
    for _batch in range(max_batches):
        ids = list(due.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        total += InboundEvent.objects.filter(pk__in=ids).update(
            raw_body=b"", headers={}, fetched=None
        )
    log.info("inbox.retention_purged", events=total, days=days)
    return total
