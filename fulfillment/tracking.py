"""Tracking: carrier events drive shipments, shipments drive their order, and every change is
told to the channel, the CRM and the customer through the outbox.

``tracking_record(shipment_id, tracking, source=...)`` is the one way in, whatever brought the
events (a carrier webhook, a poll, the warehouse handing the parcel over). In one transaction,
with the shipment row locked:

1. Every event is kept (``TrackingEvent``) under a dedup key (carrier, tracking number, the
   carrier's status and sub-status, time, message): a repeated webhook or poll inserts nothing
   and changes nothing.
2. The newest new event decides, if it is not older than the newest event already applied and
   it moves the shipment *forward*: ``shipped -> in_transit -> delivered``, ``exception`` (and
   back to ``in_transit`` when the parcel moves again), ``returned``. A shipment never moves
   backwards: a late ``in_transit`` after ``delivered`` is recorded on the timeline with the
   reason it changed nothing. Delivered and returned are final for carrier events.
3. A change writes, in the same transaction: one ``channel_tracking_sync`` action for it
   (version = the event's id, so one per shipment and change), the order's ``deliver`` once
   every parcel of a fully shipped order is delivered (actor: the carrier), and for an
   exception or a return to sender a ``delivery_exception`` incident in the carrier's words
   (one per parcel, bumped when it happens again) plus, when
   ``NOTIFY_ON_DELIVERY_EXCEPTION`` is on, a customer notification.

Milestone hooks (``on_tracking_change``) let other modules add their own actions (CRM, survey)
in that same transaction without this module knowing them.

Status vocabulary: ``fulfillment.carriers.base.TRACKING_STATUSES``. Each carrier module maps
its own statuses to it and the raw status and sub-status are kept on every event.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, timedelta

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from prometheus_client import Counter, Histogram

from fulfillment.carriers.base import TRACKING_STATUS_CODES, Tracking, TrackingEvent
from fulfillment.models import (
    ActionKind,
    Shipment,
    ShipmentStatus,
    TrackingSource,
)
from fulfillment.models import TrackingEvent as TrackingEventRow
from orders import feedback
from orders.actors import Actor
from orders.models import IncidentCategory, Order, OrderStatus, Severity
from orders.services import incident_raise, order_event_record, order_transition

log = structlog.get_logger(__name__)

SH = ShipmentStatus

# Our tracking status -> the shipment state it means (None: no state change).
SHIPMENT_STATE_FOR = {
    "unknown": None,
    "pre_transit": None,
    "in_transit": SH.IN_TRANSIT,
    "out_for_delivery": SH.IN_TRANSIT,
    "available_for_pickup": SH.IN_TRANSIT,
    "delivered": SH.DELIVERED,
    "failed_attempt": SH.EXCEPTION,
    "exception": SH.EXCEPTION,
    "cancelled": SH.EXCEPTION,
    "return_to_sender": SH.RETURNED,
}
# Forward moves a carrier event may make (from -> allowed targets, with the transition name).
FORWARD: dict[str, dict[str, str]] = {
    SH.SHIPPED: {SH.IN_TRANSIT: "mark_in_transit", SH.EXCEPTION: "report_exception",
                 SH.DELIVERED: "deliver", SH.RETURNED: "mark_returned"},
    SH.IN_TRANSIT: {SH.EXCEPTION: "report_exception", SH.DELIVERED: "deliver",
                    SH.RETURNED: "mark_returned"},
    SH.EXCEPTION: {SH.IN_TRANSIT: "mark_in_transit", SH.DELIVERED: "deliver",
                   SH.RETURNED: "mark_returned"},
}  # fmt: skip
TRACKED_STATES = (SH.SHIPPED, SH.IN_TRANSIT, SH.EXCEPTION, SH.DELIVERED, SH.RETURNED)
# Statuses whose change is told to the channel even when the shipment state stays (the first
# ``out_for_delivery`` after ``in_transit`` is news to a customer, not to our state machine).
TOLD_STATUSES = frozenset({
    "in_transit", "out_for_delivery", "available_for_pickup", "delivered", "failed_attempt",
    "exception", "return_to_sender",
})  # fmt: skip

# Outbox versions of event-driven customer notifications (notify_customer shares one version
# space per order: 1 the confirmation, 1 + n the n-th shipping confirmation).
EXCEPTION_NOTICE_VERSION_BASE = 1_000_000

EVENTS = Counter(
    "tracking_events", "Carrier tracking events recorded",
    ["carrier", "source", "status", "applied"],
)  # fmt: skip
DUPLICATES = Counter(
    "tracking_events_duplicate", "Carrier events seen again", ["carrier", "source"]
)
RECORD_SECONDS = Histogram(
    "tracking_record_seconds", "Time to record one tracking update", ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)  # fmt: skip


@dataclass(frozen=True)
class Change:
    """What one recorded update did, for hooks: the shipment after it, the event that decided,
    the shipment state before and the tracking status before."""

    shipment: Shipment
    event: TrackingEventRow
    from_state: str
    from_tracking_status: str


ChangeHook = Callable[[Change], None]
_HOOKS: list[ChangeHook] = []


def on_tracking_change(hook: ChangeHook) -> None:
    """Call ``hook(change)`` inside the recording transaction whenever an event changes a
    shipment's state or its told status (the CRM and the survey register here)."""
    if hook not in _HOOKS:
        _HOOKS.append(hook)


@dataclass(frozen=True)
class RecordResult:
    shipment_id: int
    new_events: int
    duplicates: int
    applied_event_id: int | None
    from_state: str
    to_state: str
    order_delivered: bool


def dedup_key(carrier: str, tracking_number: str, event: TrackingEvent) -> str:
    raw = "\x1f".join([
        carrier, tracking_number, event.status, event.carrier_status, event.carrier_detail,
        event.at.astimezone(UTC).isoformat(), event.description[:200],
    ])  # fmt: skip
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _effect(shipment: Shipment, event: TrackingEvent, target: str | None) -> tuple[str, str]:
    """(transition name or "", effect in words) of ``event`` on the shipment as it is now."""
    state = shipment.status
    if shipment.last_event_at is not None and event.at < shipment.last_event_at:
        newest = f"{shipment.last_event_at:%Y-%m-%d %H:%M} UTC"
        return "", f"recorded only: older than the newest event ({newest})"
    if target is None:
        return "", f"recorded: {event.status} does not change a {state} shipment"
    if state in (SH.DELIVERED, SH.RETURNED):
        return "", f"recorded only: the parcel is already {state}, a shipment never moves back"
    if target == state:
        return "", f"recorded: the shipment is already {state}"
    name = FORWARD.get(state, {}).get(target)
    if name is None:
        return "", f"recorded only: {state} -> {target} is not a forward move"
    return name, f"advanced {state} -> {target}"


def _told(before: str, event: TrackingEvent, moved: bool) -> bool:
    """Whether this change is news for the channel: a move, a told status that differs from
    the last one, or the parcel's very first event (``before`` empty: usually the warehouse's
    hand-over), which makes the channel hear of the parcel at all."""
    return moved or not before or (event.status in TOLD_STATUSES and event.status != before)


def tracking_record(
    *,
    shipment_id: int,
    tracking: Tracking,
    source: str,
    inbound_id: int | None = None,
    actor: Actor | None = None,
) -> RecordResult:
    """Record what the carrier says about one shipment and act on it (see the module doc).
    Safe to repeat with the same events: the second call records and changes nothing."""
    started = time.perf_counter()
    with transaction.atomic():
        result = _record(shipment_id, tracking, source, inbound_id, actor)
    RECORD_SECONDS.labels(source).observe(time.perf_counter() - started)
    return result


def _record(
    shipment_id: int,
    tracking: Tracking,
    source: str,
    inbound_id: int | None,
    actor: Actor | None,
    *,
    locked: Shipment | None = None,
) -> RecordResult:
    """``locked``: the shipment row this transaction already holds locked, its order and the
    order's channel loaded with it (``shipment_ship``); else they are read, locked, here."""
    shipment = locked if locked is not None else (
        Shipment.objects.select_for_update(of=("self",))
        .select_related("order__channel")
        .get(pk=shipment_id)
    )  # fmt: skip
    carrier = shipment.carrier or "unknown"
    actor = actor or Actor.carrier(carrier)
    now = timezone.now()
    before_state, before_status = str(shipment.status), shipment.tracking_status
    events = sorted(
        (e for e in tracking.events if e.status in TRACKING_STATUS_CODES), key=lambda e: e.at
    )
    keys = {dedup_key(carrier, shipment.tracking_number, e): e for e in events}
    seen = set(
        TrackingEventRow.objects.filter(dedup_key__in=list(keys)).values_list(
            "dedup_key", flat=True
        )
    )
    fresh = [(key, event) for key, event in keys.items() if key not in seen]
    duplicates = len(keys) - len(fresh)
    if duplicates:
        DUPLICATES.labels(carrier, source).inc(duplicates)
    if tracking.estimated_delivery_from or tracking.estimated_delivery_until:
        shipment.estimated_delivery_from = tracking.estimated_delivery_from
        shipment.estimated_delivery_until = tracking.estimated_delivery_until
    if tracking.carrier_name:
        shipment.carrier_name = tracking.carrier_name[:64]
    shipment.last_tracked_at = now
    applied_row: TrackingEventRow | None = None
    decider = fresh[-1][1] if fresh else None
    rows: list[TrackingEventRow] = []
    for key, event in fresh:
        is_decider = event is decider
        name, effect = _effect(shipment, event, SHIPMENT_STATE_FOR.get(event.status))
        if not is_decider and name:
            name, effect = "", "recorded: a later event in the same update decides"
        row = TrackingEventRow(
            shipment=shipment, order_id=shipment.order_id, source=source, carrier=carrier,
            status=event.status, carrier_status=event.carrier_status[:64],
            carrier_detail=event.carrier_detail[:64], raw_status=event.raw_status[:120],
            message=event.description[:500], location=event.location[:200], occurred_at=event.at,
            estimated_delivery_from=tracking.estimated_delivery_from if is_decider else None,
            estimated_delivery_until=tracking.estimated_delivery_until if is_decider else None,
            dedup_key=key, applied=bool(name), effect=effect[:200], inbound_id=inbound_id,
        )  # fmt: skip
        row.save()  # the dedup key is unique: a concurrent twin makes this transaction fail
        rows.append(row)
        EVENTS.labels(carrier, source, event.status, str(bool(name)).lower()).inc()
        final = shipment.status in (SH.DELIVERED, SH.RETURNED)
        if is_decider and _is_current(shipment, event) and not final:
            moved = False
            if name:
                getattr(shipment, name)()
                moved = True
            told = _told(before_status, event, moved)
            shipment.tracking_status = event.status
            shipment.carrier_status = "/".join(
                p for p in (event.carrier_status, event.carrier_detail) if p
            )[:64]
            shipment.last_event_at = event.at
            if moved and shipment.status == SH.DELIVERED:
                shipment.delivered_at = event.at
            if told:
                applied_row = row
    shipment.save()
    for row in rows:
        order_event_record(
            order_id=shipment.order_id, action="tracking_event", actor=actor,
            from_state=before_state if row is applied_row else "",
            to_state=str(shipment.status) if row is applied_row else "",
            data={"shipment_id": shipment.pk, "tracking_event_id": row.pk, "status": row.status,
                  "carrier_status": row.carrier_status, "carrier_detail": row.carrier_detail,
                  "occurred_at": row.occurred_at.isoformat(), "location": row.location,
                  "message": row.message, "source": source, "effect": row.effect},
            correlation_id=shipment.order.correlation_id,
        )  # fmt: skip
    delivered = False
    if applied_row is not None:
        change = Change(shipment, applied_row, before_state, before_status)
        channel_sync_write(shipment=shipment, event=applied_row, first=not before_status)
        if shipment.status in (SH.EXCEPTION, SH.RETURNED) and before_state != shipment.status:
            # A parcel in trouble, or on its way back to us: customer service looks.
            _exception(shipment, applied_row)
        if shipment.status == SH.DELIVERED and before_state != SH.DELIVERED:
            delivered = _order_follows(shipment.order_id, carrier)
        for hook in _HOOKS:
            hook(change)
        log.info(
            "tracking.changed", shipment_id=shipment.pk, order_id=shipment.order_id,
            from_state=before_state, to_state=str(shipment.status), status=applied_row.status,
            source=source,
        )  # fmt: skip
    return RecordResult(
        shipment_id=shipment.pk, new_events=len(rows), duplicates=duplicates,
        applied_event_id=applied_row.pk if applied_row else None, from_state=before_state,
        to_state=str(shipment.status), order_delivered=delivered,
    )  # fmt: skip


def _is_current(shipment: Shipment, event: TrackingEvent) -> bool:
    return shipment.last_event_at is None or event.at >= shipment.last_event_at


def shipment_handed_over(*, shipment: Shipment, actor: Actor) -> RecordResult:
    """The parcel left the warehouse (``shipment_ship``): its first event, ``pre_transit``,
    which makes the channel hear of the parcel (its first write-back, see ``_told``). Called
    inside the ship transaction, with the shipment row it locked and its order (with the
    order's channel): they are not read again."""
    event = TrackingEvent(
        at=shipment.shipped_at or timezone.now(), status="pre_transit",
        description="Handed to the carrier", carrier_status="handed_over",
    )  # fmt: skip
    tracking = Tracking(tracking_number=shipment.tracking_number, status="pre_transit",
                        events=[event])  # fmt: skip
    return _record(shipment.pk, tracking, TrackingSource.WAREHOUSE, None, actor, locked=shipment)


# --- what a change writes ----------------------------------------------------------------------
def channel_target(slug: str) -> str:
    """The outbox target of a channel's write-back: one circuit breaker per store."""
    return f"channel:{slug}"[:60]


def channel_sync_write(
    *, shipment: Shipment, event: TrackingEventRow, first: bool = False
) -> int | None:
    """One ``channel_tracking_sync`` action for this change of this parcel (idempotent: the
    event's id is its version), when the order's channel can be told (its write-back is
    configured, switched on, and takes this status; the parcel's ``first`` write-back is always
    written); the action's id."""
    from fulfillment.outbox import services as outbox

    order = shipment.order
    channel = order.channel
    writeback = feedback.writeback_for(channel.kind)
    if writeback is None or not writeback.configured(channel):  # the row read with the order
        return None
    if not first and not writeback.tells(event.status):
        return None
    action = outbox.action_write(
        order_id=order.pk, kind=ActionKind.CHANNEL_TRACKING_SYNC,
        target=channel_target(channel.slug),
        payload={"shipment_id": shipment.pk, "tracking_event_id": event.pk,
                 "status": event.status},
        lane="sync", version=event.pk, correlation_id=order.correlation_id,
    )  # fmt: skip
    return action.pk


def _exception(shipment: Shipment, event: TrackingEventRow) -> None:
    words = event.message or event.carrier_detail or event.carrier_status or event.status
    incident_raise(
        category=IncidentCategory.DELIVERY_EXCEPTION, severity=Severity.MEDIUM,
        order_id=shipment.order_id, key=f"shipment:{shipment.pk}",
        summary=f"Parcel {shipment.tracking_number} ({shipment.carrier}): {words}"[:255],
        details={"shipment_id": shipment.pk, "tracking_event_id": event.pk,
                 "status": event.status, "carrier_status": event.carrier_status,
                 "carrier_detail": event.carrier_detail, "carrier_message": event.message,
                 "location": event.location, "occurred_at": event.occurred_at.isoformat()},
    )  # fmt: skip
    if not settings.NOTIFY_ON_DELIVERY_EXCEPTION:
        return
    from fulfillment.downstream import targets_for
    from fulfillment.outbox import services as outbox

    order = shipment.order
    for target in targets_for(ActionKind.NOTIFY_CUSTOMER):
        outbox.action_write(
            order_id=order.pk, kind=ActionKind.NOTIFY_CUSTOMER, target=target,
            payload={"order_id": order.pk, "template": "delivery_exception",
                     "shipment_id": shipment.pk, "tracking_event_id": event.pk},
            lane="notify", version=EXCEPTION_NOTICE_VERSION_BASE + event.pk,
            correlation_id=order.correlation_id,
        )  # fmt: skip


def _order_follows(order_id: int, carrier: str) -> bool:
    """A fully shipped order whose every parcel is delivered becomes ``delivered``.

    The order row is locked before its parcels are counted: two parcels delivered at the same
    moment are recorded in two transactions, each holding only its own parcel, and without the
    lock each saw the other still on its way (nobody delivered the order). With it, the second
    waits for the first to commit and then counts both (parcel, then order: the lock order of
    ``shipment_ship``)."""
    order = Order.objects.select_for_update(of=("self",), no_key=True).get(pk=order_id)
    if order.status != OrderStatus.SHIPPED:
        return False
    states = set(
        Shipment.objects.filter(order_id=order_id)
        .exclude(status=SH.VOIDED)
        .values_list("status", flat=True)
    )
    if states != {SH.DELIVERED}:
        return False
    order_transition(
        order_id=order_id, transition="deliver", actor=Actor.carrier(carrier),
        expected_status=OrderStatus.SHIPPED, data={"reason": "every parcel delivered"},
    )  # fmt: skip
    return True


# --- reads -------------------------------------------------------------------------------------
def shipments_to_poll(*, quiet_seconds: float, limit: int = 200) -> Iterable[int]:
    """Ids of parcels on their way that have not heard from their carrier for
    ``quiet_seconds`` (the polling fallback), quietest first."""
    cutoff = timezone.now() - timedelta(seconds=quiet_seconds)
    return list(
        Shipment.objects.filter(status__in=(SH.SHIPPED, SH.IN_TRANSIT, SH.EXCEPTION))
        .exclude(tracking_number="")
        # Never heard of at all (shipped before tracking was recorded) counts as quietest.
        .filter(Q(last_tracked_at__isnull=True) | Q(last_tracked_at__lt=cutoff))
        .order_by(F("last_tracked_at").asc(nulls_first=True), "pk")
        .values_list("pk", flat=True)[:limit]
    )
