"""The inbox: storing deliveries durably, processing them into orders, quarantine and replay."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from channels import catalogue, metrics, privacy, refunds_in, signatures
from channels.adapters import get_adapter
from channels.adapters.base import (
    AdapterError,
    ChannelAdapter,
    ChannelConfig,
    NormalizationError,
    SignatureInvalid,
)
from channels.models import InboundEvent, InboundSource, InboundStatus, SalesChannel, SkuMapping
from channels.selectors import active_channel_by_slug
from config import correlation
from config import metrics as step_metrics
from config.tasks import enqueue_on_commit
from orders import jsonschemas, money
from orders.actors import Actor
from orders.canonical import canonical_errors, order_cancel_from_channel, order_upsert
from orders.errors import DomainError, InvalidInput, NotFound, PermissionRefused, StaleState
from orders.models import IncidentCategory, OrderLine, OrderStatus, Product
from orders.services import (
    incident_fingerprint,
    incident_raise,
    incidents_resolve,
    order_transition,
)
from orders.transitions import order_event_record

log = structlog.get_logger(__name__)
security_log = structlog.get_logger("security")

# Headers never kept with an event: credentials of any kind, and every channel's signature
# (a stored body with its signature is a delivery anyone who reads the inbox could replay).
# The channel's own auth header (BigCommerce without signatures) is dropped as well.
SIGNATURE_HEADERS = frozenset({
    "x-shopify-hmac-sha256",  # Shopify
    "x-wc-webhook-signature",  # WooCommerce
    "webhook-signature",  # Standard Webhooks (BigCommerce)
    "x-signature",  # custom storefronts
})  # fmt: skip
SECRET_HEADERS = (
    frozenset({"authorization", "cookie", "x-api-key", "proxy-authorization"}) | SIGNATURE_HEADERS
)


# Who may read an event's raw body, headers and fetched payload, and the values its errors
# quote: ops_admin (by ``channels.*``) and superusers.
VIEW_RAW_PAYLOAD = "channels.view_raw_payload"


def inbound_errors_shown(errors: list[dict[str, Any]], *, raw: bool) -> list[dict[str, Any]]:
    """An event's errors as a user may see them: without the values they quote unless the
    user may view raw payloads (a value can be personal data the redaction did not know)."""
    if raw:
        return errors
    return [{**error, "value": None if error.get("value") is None else "[redacted]"}
            for error in errors]  # fmt: skip


def channel_config(channel: SalesChannel) -> ChannelConfig:
    return ChannelConfig(
        id=channel.pk,
        slug=channel.slug,
        kind=channel.kind,
        secret=channel.webhook_secret,
        previous_secret=channel.previous_secret_accepted(),
        auth_header_name=channel.auth_header_name.lower(),
        auth_header_value=channel.auth_header_value,
        api_base_url=channel.api_base_url.rstrip("/"),
        api_version=channel.api_version,
        credentials=dict(channel.credentials or {}),
        rounding=channel.rounding,
        default_currency=channel.default_currency,
    )


def kept_headers(headers: Mapping[str, str], *, secret_header: str = "") -> dict[str, str]:
    drop = SECRET_HEADERS | ({secret_header.lower()} if secret_header else set())
    return {k.lower(): v for k, v in headers.items() if k.lower() not in drop}


def body_dedup_key(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


class ChannelGone(DatabaseError):
    """The channel an event was to be stored under no longer exists (a web process's cached
    row of a channel deleted, or deleted and made again, elsewhere)."""


def inbound_event_store(
    *,
    channel: SalesChannel,
    source: str,
    topic: str,
    dedup_key: str,
    headers: Mapping[str, str],
    body: bytes,
    api_version: str = "",
) -> tuple[InboundEvent | None, bool]:
    """Keep a delivery in the inbox in one insert and ring processing after commit.

    Returns ``(event, True)`` for a new event, ``(None, False)`` for a re-delivery of a dedup key
    we hold (its row only counts the duplicate). The unique index decides, never a prior read.
    """
    cid = correlation.sign(f"{channel.slug}:{dedup_key}")
    row = InboundEvent(
        channel=channel,
        source=source,
        topic=topic[:64],
        api_version=api_version[:32],
        dedup_key=dedup_key[:200],
        headers=dict(headers),
        raw_body=body,
        body_bytes=len(body),
        correlation_id=cid,
    )
    try:
        if transaction.get_connection().in_atomic_block:
            # Inside a caller's transaction (a poll, a file import): a savepoint, so that a
            # duplicate rolls back only this insert; the doorbell rings when the caller commits.
            with transaction.atomic():
                row.save(force_insert=True)
        else:
            # The webhook path: one INSERT in autocommit is its own transaction (one round trip
            # instead of BEGIN, INSERT, COMMIT), and the doorbell below rings after it committed.
            row.save(force_insert=True)
    except IntegrityError:
        counted = InboundEvent.objects.filter(channel=channel, dedup_key=dedup_key[:200]).update(
            duplicate_deliveries=F("duplicate_deliveries") + 1, last_delivery_at=timezone.now()
        )
        if not counted:
            # Not a dedup-key clash: the channel row itself is gone (a cached channel deleted
            # meanwhile). Never answer "duplicate" for an event that was not stored.
            raise ChannelGone("the inbound event's channel row is gone") from None
        metrics.DUPLICATES.labels(channel.slug, topic).inc()
        return None, False
    event = row
    enqueue_on_commit("channels.inbound_event_process", event_id=event.pk)
    metrics.RECEIVED.labels(channel.slug, topic).inc()
    return event, True


@dataclass(frozen=True)
class WebhookAnswer:
    """What ``POST /webhooks/<slug>/`` answers: an HTTP status and a JSON body."""

    status: int
    body: dict[str, Any]


def webhook_refusal(
    status: int, code: str, detail: str, *, slug: str, **extra: Any
) -> WebhookAnswer:
    """A refused delivery: ``{"code", "detail"}`` (and ``extra``), with a security log line
    saying why. Nothing here carries a header value, a secret or the body."""
    security_log.warning("webhook.refused", channel=slug, status=status, code=code, **extra)
    return WebhookAnswer(status, {"code": code, "detail": detail, **extra})


def webhook_receive(
    *,
    slug: str,
    headers: Mapping[str, str],
    body: bytes | Callable[[], bytes],
    declared_length: int = 0,
) -> WebhookAnswer:
    """Verify one webhook delivery and keep it in the inbox; processing is rung after commit.

    The one path for a vendor's delivery: the webhook view and the demo call it. Answers: 202
    accepted, 200 duplicate or ping, 401 bad signature (with the reason's class), 404 unknown
    channel, 413 too large, 503 when the channel or the inbox could not be read or written;
    every refusal through ``webhook_refusal``. A previous secret in its grace window is
    accepted. ``body`` may be a callable, read only once the channel
    is known and ``declared_length`` (the Content-Length) is within the limit, so that an
    oversized request is refused before it is read.
    """
    started = time.perf_counter()
    try:
        channel = active_channel_by_slug(slug)
    except DatabaseError:
        log.exception("webhook.channel_lookup_failed", channel=slug)
        return webhook_refusal(
            503, "unavailable", "The event could not be stored; please retry", slug=slug
        )
    if channel is None:
        return webhook_refusal(404, "unknown_channel", f"No active channel {slug!r}", slug=slug)
    limit = settings.WEBHOOK_MAX_BODY_BYTES
    if declared_length > limit or len(raw := body() if callable(body) else body) > limit:
        metrics.TOO_LARGE.labels(slug).inc()
        return webhook_refusal(
            413, "payload_too_large", f"Bodies over {limit} bytes are refused", slug=slug
        )
    headers = {k.lower(): v for k, v in headers.items()}
    config = channel_config(channel)
    try:
        try:
            delivery, matched = _verify(channel, config, headers, raw)
        except SignatureInvalid:
            # The channel may come from this process's cache: a secret rotated (or the channel
            # switched off) in another process must count before a delivery is refused.
            current = active_channel_by_slug(slug, fresh=True)
            if current is None:
                return webhook_refusal(
                    404, "unknown_channel", f"No active channel {slug!r}", slug=slug
                )
            if channel_config(current) == config:
                raise
            channel, config = current, channel_config(current)
            delivery, matched = _verify(channel, config, headers, raw)
    except SignatureInvalid as exc:
        metrics.SIGNATURE_FAILURES.labels(slug).inc()
        return webhook_refusal(
            401, "signature_invalid", f"Signature check failed: {exc.reason}", slug=slug,
            reason=exc.code,
        )  # fmt: skip
    except DatabaseError:
        log.exception("webhook.channel_lookup_failed", channel=slug)
        return webhook_refusal(
            503, "unavailable", "The event could not be stored; please retry", slug=slug
        )
    metrics.SIGNATURE_MATCHES.labels(slug, matched).inc()
    if matched == "previous":
        security_log.info("webhook.previous_secret_matched", channel=slug)
    if delivery.is_ping:
        return WebhookAnswer(200, {"ping": True})

    def store(channel: SalesChannel, config: ChannelConfig) -> tuple[InboundEvent | None, bool]:
        return inbound_event_store(
            channel=channel,
            source=InboundSource.WEBHOOK,
            topic=delivery.topic,
            dedup_key=delivery.dedup_key,
            headers=kept_headers(headers, secret_header=config.auth_header_name),
            body=raw,
            api_version=delivery.api_version,
        )

    try:
        try:
            event, created = store(channel, config)
        except ChannelGone:
            # The cached row was deleted (or made again) elsewhere: read it afresh, check the
            # signature against it if its settings changed, and store once more.
            current = active_channel_by_slug(slug, fresh=True)
            if current is None:
                return webhook_refusal(
                    404, "unknown_channel", f"No active channel {slug!r}", slug=slug
                )
            if channel_config(current) != config:
                try:
                    _verify(current, channel_config(current), headers, raw)
                except SignatureInvalid as exc:
                    metrics.SIGNATURE_FAILURES.labels(slug).inc()
                    return webhook_refusal(
                        401, "signature_invalid", f"Signature check failed: {exc.reason}",
                        slug=slug, reason=exc.code,
                    )  # fmt: skip
            channel, config = current, channel_config(current)
            event, created = store(channel, config)
    except DatabaseError:
        log.exception("webhook.store_failed", channel=slug)
        return webhook_refusal(
            503, "unavailable", "The event could not be stored; please retry", slug=slug
        )
    metrics.ACK_SECONDS.labels(slug).observe(time.perf_counter() - started)
    if not created or event is None:
        return WebhookAnswer(200, {"duplicate": True})
    metrics.PAYLOAD_BYTES.labels(slug).observe(len(raw))
    return WebhookAnswer(
        202, {"accepted": True, "event_id": event.pk, "correlation_id": event.correlation_id}
    )


def _verify(
    channel: SalesChannel, config: ChannelConfig, headers: Mapping[str, str], raw: bytes
) -> tuple[Any, str]:
    return signatures.verify_rotating(
        get_adapter(channel.kind).verify, config, headers, raw, now=timezone.now()
    )


def _claim(event_id: int) -> bool:
    """Take the event for this worker: still ``received`` and not leased by another."""
    now = timezone.now()
    return bool(
        InboundEvent.objects.filter(pk=event_id, status=InboundStatus.RECEIVED)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(
            lease_until=now + timedelta(seconds=settings.INGEST_LEASE_SECONDS),
            attempts=F("attempts") + 1,
        )
    )


def inbound_event_process(*, event_id: int) -> InboundEvent | None:
    """Turn one inbox event into an order change; idempotent and safe to run concurrently.

    An event that another worker holds, or that is no longer ``received``, is left alone. A
    payload that fails its schema or normalization is quarantined with readable errors; a
    channel API that is down leaves the event to be retried later by the sweeper.
    """
    if not _claim(event_id):
        return None
    event = InboundEvent.objects.select_related("channel").get(pk=event_id)
    started = time.perf_counter()
    with correlation.bound(event.correlation_id):
        if event.attempts > settings.INGEST_MAX_ATTEMPTS:
            return _quarantine(event, [{
                "pointer": "", "value": None,
                "message": f"gave up after {event.attempts - 1} attempts; see the logs of "
                f"correlation id {event.correlation_id}",
            }])  # fmt: skip
        try:
            order_id, outcome = _apply(event)
        except NormalizationError as exc:
            return _quarantine(event, exc.errors)
        except AdapterError as exc:
            if not exc.retryable:
                return _quarantine(event, [{"pointer": "", "message": str(exc), "value": None}])
            _retry_later(event, str(exc))
            return None
        # The final state in one statement, while the event is still ``received`` (the lease
        # keeps other workers off it; one that took it over after the lease ran out has
        # recorded the same outcome, the order upsert being idempotent, and is left alone).
        # The transition sets the values; the raw body and headers are never written back.
        if outcome == "unchanged":
            event.mark_duplicate(order_id=order_id)
        else:
            event.mark_processed(order_id=order_id, outcome=outcome)
        written = InboundEvent.objects.filter(pk=event.pk, status=InboundStatus.RECEIVED).update(
            **{name: getattr(event, name) for name in InboundEvent.FINAL_STATE_FIELDS}
        )
        if not written:
            log.warning("inbound.taken_over", event_id=event.pk, order_id=order_id)
            return None
    metrics.PROCESSED.labels(event.channel.slug, event.topic, outcome).inc()
    elapsed = time.perf_counter() - started
    metrics.PROCESSING_SECONDS.labels(event.channel.slug).observe(elapsed)
    step_metrics.observe("processing", elapsed)
    log.info("inbound.processed", event_id=event.pk, order_id=order_id, outcome=outcome)
    return event


def _retry_later(event: InboundEvent, reason: str) -> None:
    """Keep the event ``received`` with a lease that grows with each attempt; the sweeper
    re-enqueues it once the lease runs out (the delay lives in the database, not the broker)."""
    delay = min(settings.INGEST_RETRY_BASE_SECONDS * 2 ** (event.attempts - 1), 3600)
    InboundEvent.objects.filter(pk=event.pk).update(
        lease_until=timezone.now() + timedelta(seconds=delay),
        errors=[{"pointer": "", "message": f"will retry: {reason}", "value": None}],
    )
    log.warning("inbound.retry_later", event_id=event.pk, attempts=event.attempts, delay=delay)


def _payload(event: InboundEvent) -> Any:
    try:
        return json.loads(bytes(event.raw_body).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = (
            f" at line {exc.lineno} column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise NormalizationError(
            [{"pointer": "", "message": f"the body is not valid JSON{where}", "value": None}]
        ) from None


def _apply(event: InboundEvent) -> tuple[int | None, str]:
    """Validate, fetch if needed, normalize, resolve SKUs and upsert. No transaction is held
    while the channel's API is called."""
    channel = event.channel
    config = channel_config(channel)
    adapter = get_adapter(channel.kind)
    payload = _payload(event)
    schema = adapter.payload_schema(event.topic, event.api_version)
    problems = jsonschemas.errors("channels", schema, payload)
    shape = adapter.destructive_topics.get(event.topic)
    if problems:
        if shape is not None:  # say first why the body cannot be what its topic claims
            problems = [{"pointer": "", "message": shape, "value": None}, *problems]
        raise NormalizationError(problems)
    request = privacy.privacy_request_of(adapter, payload, event.topic)
    if request is not None:  # a privacy-law request, not an order (channels/privacy.py)
        return privacy.privacy_request_handle(event=event, request=request)
    refund = refunds_in.refund_of(adapter, config, payload, event.topic)
    if refund is not None:  # a refund-only delivery (channels/refunds_in.py)
        return refunds_in.refund_apply(event=event, channel=channel, refund=refund)
    actor = Actor.channel(channel.slug)
    # A topic that cancels: the channel's API must agree first (the topic header is unsigned).
    confirmation = _confirm_cancel(event, adapter, config, payload) if shape is not None else ""

    cancelled = adapter.cancelled_external_id(payload, event.topic)
    if cancelled is not None:
        try:
            result = order_cancel_from_channel(
                channel_id=channel.pk, external_id=cancelled, actor=actor
            )
        except DomainError as exc:
            raise NormalizationError(
                [{"pointer": "/id", "message": str(exc), "value": cancelled}]
            ) from None
        _record_confirmation(event, result.order_id, confirmation, actor)
        return result.order_id, result.outcome

    fetched = adapter.fetch(config, payload)
    if fetched is not None:
        InboundEvent.objects.filter(pk=event.pk).update(fetched=fetched)
        problems = jsonschemas.errors("channels", adapter.fetched_schema(), fetched)
        if problems:
            raise NormalizationError(problems)
        payload = fetched
    try:
        canonical = adapter.normalize(payload, config, event.topic)
    except InvalidInput as exc:  # a channel setting the payload cannot be read with
        raise NormalizationError([{"pointer": "", "message": str(exc), "value": None}]) from None
    problems = canonical_errors(canonical)
    if problems:
        raise NormalizationError(problems)
    try:
        money.validate_currency(canonical["currency"])
    except InvalidInput as exc:
        raise NormalizationError(
            [{"pointer": "/currency", "message": str(exc), "value": canonical["currency"]}]
        ) from None
    catalogue.resolve_canonical(channel_id=channel.pk, canonical=canonical)
    try:
        result = order_upsert(
            channel_id=channel.pk, canonical=canonical, actor=actor, rounding=channel.rounding
        )
    except (IntegrityError, DataError) as exc:
        # The schemas should catch everything the database refuses; if one slips through, the
        # event is kept for a person rather than retried forever.
        raise NormalizationError([{
            "pointer": "", "value": None,
            "message": f"the order could not be stored ({type(exc).__name__}); "
            "a value is out of the range this system accepts",
        }]) from None  # fmt: skip
    if confirmation:
        _record_confirmation(event, result.order_id, confirmation, actor)
    return result.order_id, result.outcome


CONFIRMED = "confirmed by the channel's API"
NOT_CONFIRMED = "not confirmed: no channel API configured"


def _confirm_cancel(
    event: InboundEvent, adapter: ChannelAdapter, config: ChannelConfig, payload: Any
) -> str:
    """Ask the channel whether the order of a destructive-topic delivery is really cancelled
    or deleted. The channel saying it is open quarantines the event (a likely replay with a
    swapped topic); an API that cannot be asked raises AdapterError (retryable: the event
    waits, nothing is cancelled meanwhile). Returns what goes into the order's audit."""
    verdict = adapter.confirm_cancel(config, payload, event.topic)
    if verdict is None:
        log.info("inbound.cancel_not_confirmed", event_id=event.pk, topic=event.topic)
        return NOT_CONFIRMED
    if not verdict:
        security_log.warning(
            "webhook.destructive_topic_refuted", channel=config.slug, topic=event.topic,
            event_id=event.pk, dedup_key=event.dedup_key,
        )  # fmt: skip
        raise NormalizationError([{
            "pointer": "", "value": None,
            "message": f"topic says {event.topic}, the channel says the order is open: possible "
            "replay of a captured delivery under a swapped topic; nothing was cancelled",
        }])  # fmt: skip
    return CONFIRMED


def _record_confirmation(
    event: InboundEvent, order_id: int | None, confirmation: str, actor: Actor
) -> None:
    """Audit how a destructive topic was checked, on the order it touched."""
    if order_id is not None:
        order_event_record(
            order_id=order_id, action="channel_cancel_checked", actor=actor,
            data={"topic": event.topic, "inbound_event_id": event.pk,
                  "confirmation": confirmation},
            correlation_id=event.correlation_id,
        )  # fmt: skip


def _incident_key(event: InboundEvent) -> str:
    return f"inbound_event:{event.pk}"


def _quarantine(event: InboundEvent, errors: list[dict[str, Any]]) -> InboundEvent:
    with transaction.atomic():
        locked = InboundEvent.objects.select_for_update().get(pk=event.pk)
        locked.quarantine(errors=errors)
        locked.save()
        first = errors[0] if errors else {"pointer": "", "message": "unknown"}
        incident_raise(
            category=IncidentCategory.SCHEMA_INVALID,
            summary=f"{event.channel.slug} {event.topic or 'delivery'} quarantined: "
            f"{first.get('pointer') or '(body)'} {first['message']}",
            details={"inbound_event_id": event.pk, "channel": event.channel.slug,
                     "topic": event.topic, "errors": errors[:10]},
            key=_incident_key(event),
        )  # fmt: skip
    metrics.QUARANTINED.labels(event.channel.slug, event.topic).inc()
    log.warning("inbound.quarantined", event_id=event.pk, errors=len(errors))
    return locked


def inbound_event_replay(*, event_id: int, actor: Actor) -> InboundEvent:
    """Process a quarantined event again (after a fix: a mapping, a schema, a vendor resend).

    Idempotent: replaying an event that was already replayed or processed changes nothing. On
    success its incident is resolved; on failure it stays quarantined with the new errors.
    """
    event = InboundEvent.objects.select_related("channel").filter(pk=event_id).first()
    if event is None:
        raise NotFound(f"Inbound event {event_id} does not exist")
    if event.status != InboundStatus.QUARANTINED:
        return event
    with correlation.bound(event.correlation_id):
        InboundEvent.objects.filter(pk=event.pk).update(attempts=F("attempts") + 1)
        try:
            order_id, outcome = _apply(event)
        except (NormalizationError, AdapterError) as exc:
            errors = exc.errors if isinstance(exc, NormalizationError) else [
                {"pointer": "", "message": str(exc), "value": None}
            ]  # fmt: skip
            return _quarantine(event, errors)
        with transaction.atomic():
            locked = InboundEvent.objects.select_for_update().get(pk=event.pk)
            if locked.status != InboundStatus.QUARANTINED:
                return locked  # replayed by someone else meanwhile
            locked.mark_replayed(order_id=order_id, outcome=outcome)
            locked.save()
            incidents_resolve(
                fingerprints=incident_fingerprint(
                    category=IncidentCategory.SCHEMA_INVALID, order_id=None,
                    key=_incident_key(event),
                ),
                actor=actor, note=f"Replayed successfully ({outcome})",
            )  # fmt: skip
    log.info("inbound.replayed", event_id=event.pk, order_id=order_id, outcome=outcome)
    return locked


def inbound_event_ids_to_sweep(*, older_than_seconds: int, limit: int = 500) -> list[int]:
    """Events still ``received`` whose message was lost or whose retry lease ran out."""
    now = timezone.now()
    return list(
        InboundEvent.objects.filter(
            status=InboundStatus.RECEIVED,
            received_at__lt=now - timedelta(seconds=older_than_seconds),
        )
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )


def inbound_event_ingest_file(
    *, channel: SalesChannel, body: bytes, topic: str, dedup_key: str = ""
) -> tuple[InboundEvent | None, bool]:
    """Import a payload as if the channel had delivered it (backfills, support cases)."""
    return inbound_event_store(
        channel=channel,
        source=InboundSource.FILE,
        topic=topic,
        dedup_key=dedup_key or body_dedup_key(body),
        headers={"x-imported-by": "ingest_file"},
        body=body,
    )


@transaction.atomic
def sales_channel_upsert(
    *, slug: str, kind: str, **fields: Any
) -> tuple[SalesChannel, bool, list[str]]:
    """Create the channel with this slug, or set these fields on the one that exists; safe to
    run twice. Returns (channel, created, names of the fields that changed). The values are
    the caller's to check (``add_channel`` validates its options first)."""
    values = {"kind": kind, **fields}
    channel, created = SalesChannel.objects.get_or_create(
        slug=slug, defaults={"name": values.get("name") or slug.replace("-", " ").title()}
    )
    changed = [key for key, value in values.items() if getattr(channel, key) != value]
    for key, value in values.items():
        if key == "webhook_secret":
            channel.webhook_secret_replace(value)  # the old one stays valid for a grace window
        else:
            setattr(channel, key, value)
    channel.save()
    return channel, created, changed


# --- SKU mappings ------------------------------------------------------------------------------
PERM_ADD_SKU_MAPPING = "channels.add_skumapping"


@dataclass(frozen=True)
class SkuMapOutcome:
    mapping: SkuMapping
    created: bool
    released: list[int]  # orders released from their hold, the pipeline runs them again
    still_held: list[int]  # held for this reference too, but another one is still unmapped


def _orders_held_for(channel_id: int, external_ref: str) -> dict[int, set[tuple[str, str]]]:
    """The orders on hold on the channel with a line that has no SKU of ours and names
    ``external_ref`` (as variant or channel SKU), each with the (variant, channel SKU) of
    every line still without a SKU (two queries)."""
    wanted = set(
        OrderLine.objects.filter(
            order__channel_id=channel_id, order__status=OrderStatus.ON_HOLD, sku=""
        )
        .filter(Q(variant_ref=external_ref) | Q(channel_sku=external_ref))
        .values_list("order_id", flat=True)
    )
    refs: dict[int, set[tuple[str, str]]] = {pk: set() for pk in wanted}
    for order_id, variant_ref, channel_sku in OrderLine.objects.filter(
        order_id__in=wanted, sku=""
    ).values_list("order_id", "variant_ref", "channel_sku"):
        refs[order_id].add((variant_ref, channel_sku))
    return refs


@transaction.atomic
def sku_map_and_release(
    *, channel_id: int, external_ref: str, sku: str, actor: Actor
) -> SkuMapOutcome:
    """Map a channel's product reference to one of our products, then release every order on
    hold on that channel whose unmapped lines all resolve now (their pipeline runs again after
    commit: the SKU check finds the mapping, passes and resolves its incident).

    Idempotent: the same mapping again creates nothing and releases only what is still held.
    A reference already mapped to another product is refused (change it in the admin, on
    purpose). Each released order's timeline names the mapping and who made it.
    """
    external_ref, sku = external_ref.strip(), sku.strip()
    if not external_ref:
        raise InvalidInput("Say which channel reference to map", code="external_ref_required")
    if not sku:
        raise InvalidInput("Pick one of our products (by SKU)", code="sku_required")
    channel = SalesChannel.objects.filter(pk=channel_id).first()
    if channel is None:
        raise NotFound(f"Sales channel {channel_id} does not exist")
    product = Product.objects.filter(sku=sku).first()
    if product is None:
        raise InvalidInput(f"No product with SKU {sku!r} in the catalogue", code="unknown_sku")
    existing = (
        SkuMapping.objects.select_for_update()
        .select_related("product")
        .filter(channel=channel, external_ref=external_ref)
        .first()
    )
    created = existing is None
    if existing is not None and existing.product_id != product.pk:
        raise InvalidInput(
            f"{external_ref!r} on {channel.slug} is already mapped to {existing.product.sku}; "
            "change that mapping in the admin if it is wrong",
            code="already_mapped",
        )
    if existing is None:
        if actor.user is not None and not actor.user.has_perm(PERM_ADD_SKU_MAPPING):
            raise PermissionRefused("You do not have permission to add SKU mappings")
        try:
            with transaction.atomic():  # a savepoint: a concurrent twin may win the insert
                mapping = SkuMapping.objects.create(
                    channel=channel, external_ref=external_ref, product=product
                )
        except IntegrityError:
            mapping = SkuMapping.objects.get(channel=channel, external_ref=external_ref)
            created = False
            if mapping.product_id != product.pk:
                raise InvalidInput(
                    f"{external_ref!r} on {channel.slug} was just mapped to another product",
                    code="already_mapped",
                ) from None
    else:
        mapping = existing
    released, still_held = [], []
    for order_id, refs in sorted(_orders_held_for(channel.pk, external_ref).items()):
        lines = sorted(refs)
        resolved = catalogue.resolve_sku_map(
            channel_id=channel.pk, refs=[v for v, _ in lines], channel_skus=[c for _, c in lines]
        )
        if not all(catalogue.resolve_line_sku(resolved, variant_ref=v, channel_sku=c)
                   for v, c in lines):  # fmt: skip
            still_held.append(order_id)
            continue
        try:
            order_transition(
                order_id=order_id, transition="release_hold", actor=actor,
                expected_status=OrderStatus.ON_HOLD,
                reason=f"SKU mapping {external_ref} -> {product.sku}",
                data={"sku_mapping": {"channel": channel.slug, "external_ref": external_ref,
                                      "sku": product.sku, "created": created}},
            )  # fmt: skip
        except StaleState:
            continue  # released or cancelled by someone else meanwhile: not ours to move
        released.append(order_id)
    log.info(
        "sku_mapping.applied", mapping_id=mapping.pk, channel_id=channel.pk, created=created,
        released=len(released), still_held=len(still_held), actor_kind=str(actor.kind),
    )  # fmt: skip
    return SkuMapOutcome(mapping=mapping, created=created, released=released,
                         still_held=still_held)  # fmt: skip
