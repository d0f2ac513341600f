"""The carriers' inbox: signed carrier webhooks kept raw, processed into tracking, replayable.

``POST /webhooks/carriers/<carrier>/`` (``fulfillment.views``) calls ``carrier_webhook_receive``:

1. Refuse what is not for us before reading more than needed: an unknown carrier (404), a body
   over ``WEBHOOK_MAX_BODY_BYTES`` (413), no webhook secret configured or a signature that does
   not verify (401). Every refusal is ``{"code", "detail"}`` with a security log line.
2. Keep the raw body in ``CarrierInboundEvent`` under a unique dedup key (EasyPost: the Event's
   ``id`` and ``updated_at``; a hash of the body when it has no id) in one insert, and ring
   ``fulfillment.carrier_event_process`` after commit. The unique index decides what is a
   repeat, never a prior read: a re-delivery is answered ``{"status": "duplicate"}`` and only
   counted. A database that cannot take the row answers 503 (the carrier retries).
3. Answer 200 ``{"status": "accepted", "event_id", "correlation_id"}``: the carrier's part is
   done. Processing happens after the answer.

``carrier_event_process`` (the task; the sweeper re-rings what a lost message left behind)
claims the event (a delivery counter first, then the row lock; a twin run waits, then finds it
done), reads it and hands what the carrier says to ``tracking.tracking_record`` (source
``webhook``): a ``tracker.updated`` / ``tracker.created`` event finds its shipment by carrier and
tracking number (or EasyPost's shipment id). Other event types are processed with a note. A body
that is not JSON, is not shaped like a tracker event, or names a parcel we do not have is
*quarantined* with readable errors and a ``schema_invalid`` incident (one per parcel we cannot
place, bumped by its tracker's further updates; it was signed: the carrier got its 200 all the
same); a person replays it once the cause is fixed (``carrier_event_replay``: admin action, API, the
``replay_carrier_event`` command). After ``CARRIER_EVENT_MAX_ATTEMPTS`` deliveries of the same
event without an outcome it is quarantined too, so a poison event cannot loop.

Retention: ``carrier_event_raw_purge`` (beat, daily) blanks bodies of events processed or
quarantined more than ``INBOX_RAW_RETENTION_DAYS`` ago, like the channels' inbox. Bodies can
hold personal data (an EasyPost tracker's ``signed_by``): only users with
``fulfillment.view_raw_carrier_payload`` see them, and no log line carries them.
"""

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
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from prometheus_client import Counter, Histogram

from config import correlation
from config.tasks import enqueue_on_commit
from fulfillment.carriers import easypost
from fulfillment.models import (
    CarrierInboundEvent,
    CarrierInboundStatus,
    Shipment,
    TrackingSource,
)
from fulfillment.tracking import tracking_record
from orders.actors import Actor
from orders.errors import NotFound
from orders.models import IncidentCategory, Severity
from orders.services import incident_fingerprint, incident_raise, incidents_resolve

log = structlog.get_logger(__name__)
security_log = structlog.get_logger("security")

ST = CarrierInboundStatus
PROCESS_TASK = "fulfillment.carrier_event_process"
# Who may read a carrier event's raw body (ops_admin by ``fulfillment.*``, superusers), and who
# may replay one.
VIEW_RAW_PAYLOAD = "fulfillment.view_raw_carrier_payload"
REPLAY_PERMISSION = "fulfillment.replay_carrierinboundevent"
# A processing run may take these; the sweeper takes the ones whose message was lost.
PROCESSABLE = (ST.RECEIVED, ST.REPLAYED)
DONE = (ST.PROCESSED, ST.QUARANTINED, ST.DUPLICATE)
TRACKER_TOPICS = frozenset({"tracker.updated", "tracker.created"})

# --- metrics (labels: carrier codes, refusal codes and outcomes: bounded, never ids) ----------
RECEIVED = Counter("carrier_webhooks_received", "Carrier webhooks stored in the inbox",
                   ["carrier"])  # fmt: skip
DUPLICATES = Counter(
    "carrier_webhooks_duplicate", "Carrier webhook re-deliveries answered and not processed again",
    ["carrier"],
)  # fmt: skip
REFUSED = Counter(
    "carrier_webhooks_refused", "Carrier webhooks refused (bad signature, too large...)",
    ["carrier", "code"],
)  # fmt: skip
QUARANTINED = Counter(
    "carrier_events_quarantined", "Carrier events kept aside with readable errors", ["carrier"]
)
PROCESSED = Counter(
    "carrier_events_processed", "Carrier events processed into tracking", ["carrier", "outcome"]
)
ACK_SECONDS = Histogram(
    "carrier_webhook_ack_seconds", "Time to answer a carrier webhook", ["carrier"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)  # fmt: skip
PROCESSING_SECONDS = Histogram(
    "carrier_event_processing_seconds", "Time to process one carrier event", ["carrier"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)  # fmt: skip


# --- what each carrier's webhooks look like --------------------------------------------------
@dataclass(frozen=True)
class CarrierWebhook:
    """How one carrier signs and names its webhook deliveries."""

    carrier: str
    secret: Callable[[], str]
    verify: Callable[[bytes, Mapping[str, str], str], bool]


WEBHOOKS: dict[str, CarrierWebhook] = {
    easypost.CODE: CarrierWebhook(
        carrier=easypost.CODE,
        secret=lambda: settings.EASYPOST_WEBHOOK_SECRET,
        verify=easypost.verify_webhook,
    ),
}


def _json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def _text(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def event_dedup_key(carrier: str, body: bytes, payload: Any) -> str:
    """The inbox key of one delivery: the carrier's Event ``id`` and its ``updated_at``, or a
    hash of the body when it has no id (never longer than the column: hashed if it would be)."""
    event_id = payload.get("id") if isinstance(payload, Mapping) else None
    if isinstance(event_id, str) and event_id:
        updated = payload.get("updated_at")
        key = f"{carrier}:{event_id}" + (f"@{updated}" if isinstance(updated, str) else "")
        if len(key) <= 200:
            return key
        return f"{carrier}:key-sha256:{hashlib.sha256(key.encode()).hexdigest()}"
    return f"{carrier}:sha256:{hashlib.sha256(body).hexdigest()}"


def _tracking_number_of(payload: Any) -> str:
    result = payload.get("result") if isinstance(payload, Mapping) else None
    return _text(result.get("tracking_code"), 100) if isinstance(result, Mapping) else ""


# --- receive ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class WebhookAnswer:
    """What ``POST /webhooks/carriers/<carrier>/`` answers: an HTTP status and a JSON body."""

    status: int
    body: dict[str, Any]


def carrier_webhook_refusal(status: int, code: str, detail: str, *, carrier: str) -> WebhookAnswer:
    """A refused delivery: ``{"code", "detail"}``, counted, with a security log line. Nothing
    here carries a header value, the secret or the body."""
    label = carrier if carrier in WEBHOOKS else "unknown"
    REFUSED.labels(label, code).inc()
    security_log.warning("carrier_webhook.refused", carrier=label, status=status, code=code)
    return WebhookAnswer(status, {"code": code, "detail": detail})


def carrier_webhook_receive(
    *,
    carrier: str,
    headers: Mapping[str, str],
    body: bytes | Callable[[], bytes],
    declared_length: int = 0,
) -> WebhookAnswer:
    """Verify one carrier webhook and keep it in the carriers' inbox (module doc). ``body`` may
    be a callable, read only once the carrier is known and ``declared_length`` is within the
    limit, so an oversized request is refused before it is read."""
    started = time.perf_counter()
    hook = WEBHOOKS.get(carrier)
    if hook is None:
        return carrier_webhook_refusal(
            404, "unknown_carrier", f"No carrier webhook {carrier!r} here", carrier=carrier
        )
    limit = settings.WEBHOOK_MAX_BODY_BYTES
    if declared_length > limit or len(raw := body() if callable(body) else body) > limit:
        return carrier_webhook_refusal(
            413, "payload_too_large", f"Bodies over {limit} bytes are refused", carrier=carrier
        )
    secret = hook.secret()
    if not secret:
        return carrier_webhook_refusal(
            401, "not_configured",
            f"No webhook secret is configured for {carrier}: every delivery is refused",
            carrier=carrier,
        )  # fmt: skip
    if not hook.verify(raw, headers, secret):
        return carrier_webhook_refusal(
            401, "signature_invalid", "Signature check failed: missing or wrong signature",
            carrier=carrier,
        )  # fmt: skip
    payload = _json(raw)
    try:
        event, created = carrier_event_store(
            carrier=carrier, dedup_key=event_dedup_key(carrier, raw, payload),
            topic=_text(payload.get("description"), 100) if isinstance(payload, Mapping) else "",
            tracking_number=_tracking_number_of(payload), body=raw,
        )  # fmt: skip
    except DatabaseError:
        log.exception("carrier_webhook.store_failed", carrier=carrier)
        return carrier_webhook_refusal(
            503, "unavailable", "The event could not be stored; please retry", carrier=carrier
        )
    ACK_SECONDS.labels(carrier).observe(time.perf_counter() - started)
    if not created:
        return WebhookAnswer(200, {"status": "duplicate", "event_id": event.pk})
    return WebhookAnswer(
        200, {"status": "accepted", "event_id": event.pk, "correlation_id": event.correlation_id}
    )


def carrier_event_store(
    *, carrier: str, dedup_key: str, topic: str, tracking_number: str, body: bytes
) -> tuple[CarrierInboundEvent, bool]:
    """Keep one delivery in one insert and ring processing after commit. ``(event, True)`` for
    a new one; ``(the event held, False)`` for a re-delivery, which only counts it."""
    try:
        with transaction.atomic():
            event = CarrierInboundEvent.objects.create(
                carrier=carrier, dedup_key=dedup_key, topic=topic, body=body,
                tracking_number=tracking_number,
                correlation_id=correlation.sign(f"carrier:{dedup_key}"),
            )  # fmt: skip
            enqueue_on_commit(PROCESS_TASK, event_id=event.pk)
    except IntegrityError:
        held = CarrierInboundEvent.objects.filter(dedup_key=dedup_key)
        held.update(
            duplicate_deliveries=F("duplicate_deliveries") + 1, last_delivery_at=timezone.now()
        )
        DUPLICATES.labels(carrier).inc()
        log.info("carrier_webhook.duplicate", carrier=carrier, dedup_key=dedup_key)
        return held.get(), False
    RECEIVED.labels(carrier).inc()
    log.info("carrier_webhook.stored", carrier=carrier, event_id=event.pk, topic=topic,
             tracking_number=tracking_number)  # fmt: skip
    return event, True


# --- process ---------------------------------------------------------------------------------
class CarrierEventInvalid(Exception):
    """The event cannot be processed as it is: ``errors`` say why ({pointer, message})."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(e["message"] for e in errors))
        self.errors = errors


def _error(pointer: str, message: str) -> dict[str, str]:
    return {"pointer": pointer, "message": message}


def carrier_event_process(*, event_id: int) -> CarrierInboundEvent | None:
    """Process one carrier event (module doc); None when it is gone, done, or held by another
    worker. Safe to repeat: the tracking dedup makes a second run record nothing."""
    # The delivery counter, committed before the work: a poison event that kills its worker
    # still counts, and is quarantined after CARRIER_EVENT_MAX_ATTEMPTS.
    counted = CarrierInboundEvent.objects.filter(pk=event_id, status__in=PROCESSABLE).update(
        attempts=F("attempts") + 1
    )
    if not counted:
        return None
    started = time.perf_counter()
    with transaction.atomic():
        # Wait for the row rather than skip it: a re-delivery's duplicate counter holds it for
        # a moment, and a twin worker holds it only while it records (no I/O). Once it is ours
        # the status is read again: what the twin finished is no longer processable.
        event = (
            CarrierInboundEvent.objects.select_for_update()
            .filter(pk=event_id, status__in=PROCESSABLE)
            .first()
        )
        if event is None:
            return None  # another worker finished it meanwhile
        with correlation.bound(event.correlation_id):
            if event.attempts > settings.CARRIER_EVENT_MAX_ATTEMPTS:
                return _quarantine(event, [_error("", (
                    f"gave up after {event.attempts - 1} attempts; see the logs of correlation "
                    f"id {event.correlation_id}"
                ))])  # fmt: skip
            try:
                outcome = _apply(event)
            except CarrierEventInvalid as exc:
                return _quarantine(event, exc.errors)
            event.mark_processed()
            event.outcome = outcome[:200]
            event.save()
    kind = "tracking" if event.shipment_id else "noted"
    PROCESSED.labels(event.carrier, kind).inc()
    PROCESSING_SECONDS.labels(event.carrier).observe(time.perf_counter() - started)
    log.info("carrier_event.processed", event_id=event.pk, shipment_id=event.shipment_id,
             outcome=kind)  # fmt: skip
    return event


def _payload(event: CarrierInboundEvent) -> Mapping[str, Any]:
    try:
        payload = json.loads(bytes(event.body).decode("utf-8"))
    except UnicodeDecodeError:
        raise CarrierEventInvalid([_error("", "the body is not UTF-8 text")]) from None
    except json.JSONDecodeError as exc:
        raise CarrierEventInvalid([_error(
            "", f"the body is not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
        )]) from None  # fmt: skip
    if not isinstance(payload, Mapping):
        raise CarrierEventInvalid([_error("", "the body is not a JSON object (an Event)")])
    return payload


def _apply(event: CarrierInboundEvent) -> str:
    """Hand a tracker event to tracking_record; what it did, in words."""
    if not bytes(event.body or b""):
        raise CarrierEventInvalid([_error("", "the body was purged (retention or redaction)")])
    payload = _payload(event)
    topic = payload.get("description")
    if topic not in TRACKER_TOPICS:
        return f"noted: {str(topic)[:60]!r} is not a tracker event; nothing to track"
    result = payload.get("result")
    if not isinstance(result, Mapping):
        raise CarrierEventInvalid([_error("/result", "a tracker event needs its Tracker here")])
    code = result.get("tracking_code")
    if not isinstance(code, str) or not code.strip():
        raise CarrierEventInvalid([_error("/result/tracking_code", "the Tracker has no "
                                          "tracking code")])  # fmt: skip
    shipment_ref = _text(result.get("shipment_id"), 120)
    shipment = _shipment_for(event.carrier, code, shipment_ref)
    if shipment is None:
        from fulfillment.returns_tracking import return_for_tracking, return_tracking_apply

        ret = return_for_tracking(event.carrier, code)
        if ret is not None:  # a return parcel's tracker: its pickup, not a shipment's story
            status = easypost.tracking_from_tracker(result).status
            outcome = return_tracking_apply(return_id=ret.pk, status=status,
                                            carrier=event.carrier)  # fmt: skip
            return f"return {ret.pk}: {status} ({outcome})"
        also = f" or EasyPost shipment {shipment_ref!r}" if shipment_ref else ""
        raise CarrierEventInvalid([_error("/result/tracking_code", (
            f"no {event.carrier} shipment has tracking number {code!r}{also}; replay this event "
            "once the shipment exists (or its tracking number is corrected)"
        ))])  # fmt: skip
    tracking = easypost.tracking_from_tracker(result)
    recorded = tracking_record(
        shipment_id=shipment.pk, tracking=tracking, source=TrackingSource.WEBHOOK,
        inbound_id=event.pk,
    )  # fmt: skip
    event.shipment_id = shipment.pk
    if recorded.from_state != recorded.to_state:
        moved = f"{recorded.from_state} -> {recorded.to_state}"
    else:
        moved = f"stays {recorded.to_state}"
    return (
        f"shipment {shipment.pk}: {recorded.new_events} new event(s), "
        f"{recorded.duplicates} already known; {moved}"
    )


def _shipment_for(carrier: str, tracking_number: str, carrier_shipment_id: str) -> Shipment | None:
    found = Shipment.objects.filter(carrier=carrier, tracking_number=tracking_number.strip())
    shipment = found.order_by("-pk").first()
    if shipment is None and carrier_shipment_id:
        by_id = Shipment.objects.filter(carrier=carrier, carrier_shipment_id=carrier_shipment_id)
        shipment = by_id.order_by("-pk").first()
    return shipment


def _incident_key(event: CarrierInboundEvent) -> str:
    """One incident per parcel we cannot place (its tracker's every update bumps it), else per
    event."""
    if event.tracking_number:
        return f"carrier_tracking:{event.carrier}:{event.tracking_number}"[:120]
    return f"carrier_event:{event.pk}"


def _quarantine(event: CarrierInboundEvent, errors: list[dict[str, str]]) -> CarrierInboundEvent:
    """Set the event aside with its errors and a ``schema_invalid`` incident for a person
    (inside the caller's transaction, row locked)."""
    event.quarantine(errors=errors)
    event.processed_at = timezone.now()
    event.outcome = ""
    event.save()
    first = errors[0] if errors else _error("", "unknown")
    incident_raise(
        category=IncidentCategory.SCHEMA_INVALID, severity=Severity.LOW,
        summary=f"{event.carrier} {event.topic or 'event'} #{event.pk} quarantined: "
        f"{first.get('pointer') or '(body)'} {first['message']}"[:255],
        details={"carrier_event_id": event.pk, "carrier": event.carrier, "topic": event.topic,
                 "tracking_number": event.tracking_number, "errors": errors[:10]},
        key=_incident_key(event),
    )  # fmt: skip
    QUARANTINED.labels(event.carrier).inc()
    log.warning("carrier_event.quarantined", event_id=event.pk, errors=len(errors),
                tracking_number=event.tracking_number)  # fmt: skip
    return event


def carrier_event_replay(*, event_id: int, actor: Actor) -> CarrierInboundEvent:
    """Process a quarantined carrier event again, now (after a fix: the shipment exists, a
    setting is right). Idempotent: an event that is not quarantined is returned unchanged.
    Still failing: it is quarantined again with the new errors."""
    event = CarrierInboundEvent.objects.filter(pk=event_id).first()
    if event is None:
        raise NotFound(f"Carrier event {event_id} does not exist")
    if event.status != ST.QUARANTINED:
        return event
    with transaction.atomic():
        locked = CarrierInboundEvent.objects.select_for_update().get(pk=event_id)
        if locked.status != ST.QUARANTINED:
            return locked  # replayed by someone else meanwhile
        locked.replay()
        locked.attempts = 0  # a fresh start: the give-up count is per quarantine
        locked.save()
    log.info("carrier_event.replayed", event_id=event_id, actor_kind=actor.kind,
             actor_id=actor.id)  # fmt: skip
    carrier_event_process(event_id=event_id)
    event = CarrierInboundEvent.objects.get(pk=event_id)
    if event.status == ST.PROCESSED:
        _settle_incident(event, actor)
    return event


def _settle_incident(event: CarrierInboundEvent, actor: Actor) -> None:
    """Resolve the quarantine's incident once nothing it stands for is still quarantined."""
    key = _incident_key(event)
    waiting = CarrierInboundEvent.objects.filter(status=ST.QUARANTINED, carrier=event.carrier)
    if (
        key.startswith("carrier_tracking:")
        and waiting.filter(tracking_number=event.tracking_number).exists()
    ):
        return
    incidents_resolve(
        fingerprints=incident_fingerprint(
            category=IncidentCategory.SCHEMA_INVALID, order_id=None, key=key
        ),
        actor=actor, note=f"Carrier event {event.pk} replayed: {event.outcome}"[:500],
    )  # fmt: skip


def carrier_event_ids_to_sweep(*, older_than_seconds: float, limit: int = 500) -> list[int]:
    """Events still waiting to be processed (``received`` or ``replayed``) for longer than
    ``older_than_seconds``: their message was lost (broker restart, worker killed)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(
        CarrierInboundEvent.objects.filter(status__in=PROCESSABLE, received_at__lt=cutoff)
        .order_by("received_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


# --- retention -------------------------------------------------------------------------------
def carrier_event_raw_purge(
    *, days: int | None = None, batch_size: int = 500, max_batches: int = 200
) -> int:
    """Blank the bodies of carrier events processed or quarantined more than
    ``INBOX_RAW_RETENTION_DAYS`` ago (0: never), in short batches; events still waiting are
    never touched. Returns how many were blanked; logs counts only."""
    days = settings.INBOX_RAW_RETENTION_DAYS if days is None else days
    if days <= 0:
        return 0
    cutoff = timezone.now() - timedelta(days=days)
    due = CarrierInboundEvent.objects.filter(status__in=DONE, processed_at__lt=cutoff).filter(
        ~Q(body=b"")
    )
    total = 0
    for _batch in range(max_batches):
        ids = list(due.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            break
        total += CarrierInboundEvent.objects.filter(pk__in=ids).update(body=b"")
    log.info("carrier_inbox.retention_purged", events=total, days=days)
    return total
