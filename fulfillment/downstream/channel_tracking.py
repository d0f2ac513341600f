"""``channel_tracking_sync`` actions: tell the order's sales channel about one change of one
parcel, through the channel kind's write-back (``orders.feedback``; ``channels.writeback``
registers one per kind).

The action's payload names the shipment and the tracking event (ids only). At send time this
adapter reads the shipment, its lines and the event, builds a ``ShipmentUpdate`` and pushes it.

Order of a parcel's write-backs: its first one creates the channel's record of the parcel (a
Shopify fulfillment, a BigCommerce shipment...); later ones update it. Actions are dispatched
independently, so a later change may be picked up first: while the parcel has no
``channel_ref`` and an earlier write-back of it is still on its way, this one waits (a
retryable error that names the earlier action) instead of creating a second record. The
channel's ``channel_ref`` from the first success is kept on the shipment.

A channel that refuses (a 4xx other than 408/429) makes the action dead at once with the
channel's reason; the outbox raises a ``channel_sync_failed`` incident for it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import Counter, Histogram

from config import metrics
from config.integrations import IntegrationError
from fulfillment.downstream.base import DownstreamError, order_of
from orders import feedback

if TYPE_CHECKING:
    from fulfillment.models import OutboundAction, Shipment

log = structlog.get_logger(__name__)

WRITEBACKS = Counter(
    "tracking_writebacks", "Tracking write-backs to sales channels", ["channel_kind", "outcome"]
)
WRITEBACK_SECONDS = Histogram(
    "tracking_writeback_seconds", "Time of one tracking write-back", ["channel_kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)  # fmt: skip

CARRIER_NAMES = {"local": "Local Courier", "easypost": ""}


def _earlier_pending(action: OutboundAction, shipment_id: int) -> int | None:
    """The id of an earlier write-back of this parcel that has not finished, if any."""
    from fulfillment.models import ActionKind, ActionStatus, OutboundAction

    earlier = (
        OutboundAction.objects.filter(
            order_id=action.order_id, kind=ActionKind.CHANNEL_TRACKING_SYNC,
            target=action.target, payload__shipment_id=shipment_id, pk__lt=action.pk,
        )
        .exclude(status__in=(ActionStatus.SUCCEEDED, ActionStatus.DEAD))
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )  # fmt: skip
    return earlier


def shipment_update(action: OutboundAction, shipment: Shipment) -> feedback.ShipmentUpdate:
    """What the channel hears for this action (read now, from the database)."""
    from fulfillment.models import ShipmentLine, ShipmentStatus, TrackingEvent
    from orders.models import OrderLine

    order = order_of(action)
    payload = action.payload or {}
    event_id = payload.get("tracking_event_id")
    event = (
        TrackingEvent.objects.filter(pk=int(event_id), shipment_id=shipment.pk).first()
        if event_id
        else None
    )
    lines = tuple(
        feedback.ShipmentUpdateLine(
            external_line_id=sl.order_line.external_line_id, sku=sl.sku, quantity=sl.quantity,
            line_no=sl.order_line.line_no, channel_sku=sl.order_line.channel_sku,
            variant_ref=sl.order_line.variant_ref,
        )
        for sl in ShipmentLine.objects.filter(shipment_id=shipment.pk)
        .select_related("order_line")
        .order_by("order_line__line_no", "pk")
    )  # fmt: skip
    gone = (ShipmentStatus.SHIPPED, ShipmentStatus.IN_TRANSIT, ShipmentStatus.DELIVERED,
            ShipmentStatus.EXCEPTION, ShipmentStatus.RETURNED)  # fmt: skip
    shipped: dict[int, int] = {}
    for line_id, quantity in ShipmentLine.objects.filter(
        shipment__order_id=order.pk, shipment__status__in=gone
    ).values_list("order_line_id", "quantity"):
        shipped[line_id] = shipped.get(line_id, 0) + quantity
    complete = all(
        shipped.get(pk, 0) >= quantity
        for pk, quantity in OrderLine.objects.filter(order_id=order.pk).values_list(
            "pk", "quantity"
        )
    )
    return feedback.ShipmentUpdate(
        channel_id=order.channel_id, order_external_id=order.external_id,
        order_number=order.order_number, order_source=dict(order.source or {}),
        reference=f"shipment-{shipment.pk}", channel_ref=shipment.channel_ref, lines=lines,
        carrier=shipment.carrier,
        carrier_name=shipment.carrier_name or CARRIER_NAMES.get(shipment.carrier, "")
        or shipment.carrier,
        service=str((shipment.flags or {}).get("service") or shipment.service_level),
        tracking_number=shipment.tracking_number, tracking_url=shipment.tracking_url,
        status=event.status if event else str(payload.get("status") or "pre_transit"),
        message=event.message if event else "",
        occurred_at=event.occurred_at if event else shipment.shipped_at,
        estimated_delivery_from=shipment.estimated_delivery_from,
        estimated_delivery_until=shipment.estimated_delivery_until,
        shipped_at=shipment.shipped_at, order_complete=complete,
        event_id=event.pk if event else None, idempotency_key=action.idempotency_key,
        correlation_id=action.correlation_id,
    )  # fmt: skip


class ChannelTrackingAdapter:
    target = "channel"

    def perform(self, action: OutboundAction) -> dict[str, Any]:
        from fulfillment.models import Shipment

        shipment_id = (action.payload or {}).get("shipment_id")
        shipment = Shipment.objects.filter(pk=shipment_id, order_id=action.order_id).first()
        if shipment is None:
            raise DownstreamError(
                f"action {action.pk}: shipment {shipment_id} of this order does not exist",
                retryable=False,
            )
        order = order_of(action)
        kind = str(order.channel.kind)
        writeback = feedback.writeback_for(kind)
        if writeback is None:
            raise DownstreamError(f"no tracking write-back for {kind} channels", retryable=False)
        if not shipment.channel_ref:
            earlier = _earlier_pending(action, shipment.pk)
            if earlier is not None:
                WRITEBACKS.labels(kind, "waiting").inc()
                raise DownstreamError(
                    f"waits for this parcel's earlier write-back (action {earlier}) to create "
                    "the channel's record of it",
                    retryable=True,
                )
        update = shipment_update(action, shipment)
        started = time.perf_counter()
        try:
            result = dict(writeback.push(update) or {})
        except DownstreamError:
            WRITEBACKS.labels(kind, "failed").inc()
            raise
        except IntegrationError as exc:
            WRITEBACKS.labels(kind, "failed").inc()
            raise DownstreamError(
                f"{kind} refused the tracking update: {exc}"
                if not exc.retryable
                else f"{kind} tracking update failed: {exc}",
                retryable=exc.retryable,
                status=exc.status,
                retry_after=exc.retry_after,
            ) from exc
        finally:
            elapsed = time.perf_counter() - started
            WRITEBACK_SECONDS.labels(kind).observe(elapsed)
            metrics.observe("tracking_writeback", elapsed)
        WRITEBACKS.labels(kind, "succeeded").inc()
        ref = str(result.get("channel_ref") or "")[:120]
        if ref and not shipment.channel_ref:
            Shipment.objects.filter(pk=shipment.pk, channel_ref="").update(channel_ref=ref)
        log.info(
            "channel_tracking.pushed", action_id=action.pk, shipment_id=shipment.pk,
            channel_kind=kind, status=update.status,
        )  # fmt: skip
        return {**result, "status": update.status, "shipment_id": shipment.pk}
