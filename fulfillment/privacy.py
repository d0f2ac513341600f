"""Fulfillment's part of a privacy request (``orders.privacy``): shipments, their tracking,
the carriers' inbox and outbox actions.

Export: each shipment's carrier, service, tracking and dates, each tracking event (time, status,
the carrier's words, place), each carrier webhook about the order's parcels (with its body), and
each outbox action's kind, target, state and answer (a sent email's template and Message-ID).

Redaction: a shipment stays (a shipping record: carrier, tracking number, rate, dates), but its
stored label (PDF, ZPL) goes: a label is the customer's name and street printed for the carrier,
and the carrier keeps its own copy. Carrier webhook bodies about the order's parcels are blanked
whole (an EasyPost tracker names who signed for the parcel, ``signed_by``); their errors keep
no values. Tracking events keep their status and time, but their message and place are
scrubbed of the subject's values (a carrier may write "left with J. Doe" or the street). Outbox
payloads and answers are scrubbed likewise (they are built to carry none; this is the belt to
those braces).
"""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Q, QuerySet

from fulfillment.models import CarrierInboundEvent, OutboundAction, Shipment, TrackingEvent
from orders import privacy


def _carrier_events(order_ids: list[int]) -> QuerySet[CarrierInboundEvent]:
    """Carrier webhooks about the orders' parcels: matched to one, or (quarantined before the
    parcel was known) naming one's carrier and tracking number."""
    parcels = list(
        Shipment.objects.filter(order_id__in=order_ids)
        .exclude(tracking_number="")
        .values_list("carrier", "tracking_number")
    )
    named = Q(pk__in=[])
    for carrier, number in parcels:
        named |= Q(carrier=carrier, tracking_number=number)
    return CarrierInboundEvent.objects.filter(Q(shipment__order_id__in=order_ids) | named)


def _body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return raw.decode("utf-8", "replace")


def _export(scope: privacy.Scope) -> dict[str, list[dict[str, Any]]]:
    shipments = Shipment.objects.filter(order_id__in=scope.order_ids).order_by("pk")
    actions = OutboundAction.objects.filter(order_id__in=scope.order_ids).order_by("pk")
    return {
        "shipments": [
            {
                "id": s.pk,
                "order_id": s.order_id,
                "status": s.status,
                "carrier": s.carrier,
                "service_level": s.service_level,
                "tracking_number": s.tracking_number,
                "tracking_url": s.tracking_url,
                "created_at": s.created_at,
                "shipped_at": s.shipped_at,
                "delivered_at": s.delivered_at,
                "has_label": bool(s.label_pdf) or bool(s.label_zpl),
            }
            for s in shipments.defer("label_pdf", "label_zpl")
        ],
        "tracking_events": [
            {
                "shipment_id": e.shipment_id,
                "occurred_at": e.occurred_at,
                "status": e.status,
                "carrier_status": e.carrier_status,
                "carrier_detail": e.carrier_detail,
                "message": e.message,
                "location": e.location,
                "source": e.source,
            }
            for e in TrackingEvent.objects.filter(order_id__in=scope.order_ids).order_by(
                "occurred_at", "pk"
            )
        ],
        "carrier_events": [
            {
                "id": e.pk,
                "carrier": e.carrier,
                "topic": e.topic,
                "tracking_number": e.tracking_number,
                "received_at": e.received_at,
                "status": e.status,
                "body": _body(bytes(e.body or b"")),
            }
            for e in _carrier_events(scope.order_ids).order_by("received_at", "pk")
        ],
        "outbound_actions": [
            {
                "id": a.pk,
                "order_id": a.order_id,
                "kind": a.kind,
                "target": a.target,
                "status": a.status,
                "payload": a.payload,
                "result": a.result,
                "completed_at": a.completed_at,
            }
            for a in actions
        ],
    }


def _redact(scope: privacy.Scope) -> int:
    changed = (
        Shipment.objects.filter(order_id__in=scope.order_ids)
        .exclude(label_pdf__isnull=True, label_zpl="")
        .update(label_pdf=None, label_zpl="")
    )
    for event in _carrier_events(scope.order_ids).only("pk", "body", "errors"):
        errors = [{**e, "value": None} if isinstance(e, dict) and "value" in e else e
                  for e in privacy.scrub(event.errors, scope.known)]  # fmt: skip
        if bytes(event.body or b"") or errors != event.errors:
            CarrierInboundEvent.objects.filter(pk=event.pk).update(body=b"", errors=errors)
            changed += 1
    tracked = TrackingEvent.objects.filter(order_id__in=scope.order_ids)
    for row in tracked.only("pk", "message", "location"):
        message = privacy.scrub(row.message, scope.known)
        location = privacy.scrub(row.location, scope.known)
        if message != row.message or location != row.location:
            TrackingEvent.objects.filter(pk=row.pk).update(message=message, location=location)
            changed += 1
    for action in OutboundAction.objects.filter(order_id__in=scope.order_ids):
        payload = privacy.scrub(action.payload, scope.known)
        result = privacy.scrub(action.result, scope.known)
        if payload != action.payload or result != action.result:
            OutboundAction.objects.filter(pk=action.pk).update(payload=payload, result=result)
            changed += 1
    return changed


def register() -> None:
    privacy.register("fulfillment", export=_export, redact=_redact)
