"""Fulfillment's part of a privacy request (``orders.privacy``): shipments and outbox actions.

Export: each shipment's carrier, service, tracking and dates, and each outbox action's kind,
target, state and answer (a sent email's template and Message-ID, say).

Redaction: a shipment stays (a shipping record: carrier, tracking number, rate, dates), but its
stored label (PDF, ZPL) goes: a label is the customer's name and street printed for the carrier,
and the carrier keeps its own copy. Outbox payloads and answers are scrubbed of the subject's
values (they are built to carry none; this is the belt to those braces).
"""

from __future__ import annotations

from typing import Any

from fulfillment.models import OutboundAction, Shipment
from orders import privacy


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
    for action in OutboundAction.objects.filter(order_id__in=scope.order_ids):
        payload = privacy.scrub(action.payload, scope.known)
        result = privacy.scrub(action.result, scope.known)
        if payload != action.payload or result != action.result:
            OutboundAction.objects.filter(pk=action.pk).update(payload=payload, result=result)
            changed += 1
    return changed


def register() -> None:
    privacy.register("fulfillment", export=_export, redact=_redact)
