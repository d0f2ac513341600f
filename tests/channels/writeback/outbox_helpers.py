"""Shipped orders of a channel, and the outbox run that tells the channel about them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from channels.models import SalesChannel
from fulfillment.models import ActionStatus, OutboundAction, Shipment
from fulfillment.outbox.services import outbox_drain
from fulfillment.shipments import shipment_buy_label, shipment_ship, shipments_create_for_order
from orders.actors import Actor
from orders.feedback import ShipmentUpdate, ShipmentUpdateLine
from orders.models import Order, OrderLine
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse, stock

OPS = Actor.system("test")


def shipped_order(
    channel: SalesChannel, lines: list[tuple[str, int]], *, external_id: str,
    line_ids: list[str] | None = None,
) -> tuple[Order, list[Shipment]]:  # fmt: skip
    """An order of ``channel`` (its line ids the channel's own), labelled and shipped: each
    parcel's hand-over writes its first ``channel_tracking_sync`` action."""
    add_warehouse("A")
    for sku, quantity in lines:
        stock(sku, "A", quantity + 5)
    order = make_order(
        channel=channel, paid=True, external_id=external_id,
        lines=[(sku, quantity, "10.00") for sku, quantity in lines],
    )  # fmt: skip
    assert order.status == "allocated", order.status_reason
    for line, line_id in zip(
        OrderLine.objects.filter(order=order).order_by("line_no"), line_ids or [], strict=False
    ):
        OrderLine.objects.filter(pk=line.pk).update(external_line_id=line_id)
    parcels = []
    for draft in shipments_create_for_order(order_id=order.pk, actor=OPS):
        shipment = shipment_buy_label(shipment_id=draft.pk, actor=OPS)
        parcels.append(shipment_ship(shipment_id=shipment.pk, actor=OPS))
    order.refresh_from_db()
    return order, parcels


def writebacks(order: Order) -> list[OutboundAction]:
    return list(OutboundAction.objects.filter(order=order, kind="channel_tracking_sync")
                .order_by("pk"))  # fmt: skip


def drain_now() -> dict[str, int]:
    """Make every scheduled retry due, then run the outbox once."""
    OutboundAction.objects.filter(status=ActionStatus.RETRY_SCHEDULED).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    return outbox_drain()


def an_update(channel_id: int, **overrides: Any) -> ShipmentUpdate:
    """A parcel's first write-back, as the outbox adapter builds it."""
    shipped = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    values: dict[str, Any] = {
        "channel_id": channel_id, "order_external_id": "727", "order_number": "727",
        "order_source": {}, "reference": "shipment-12", "channel_ref": "",
        "lines": (ShipmentUpdateLine(external_line_id="315", sku="SKU-1", quantity=2,
                                     line_no=1),),
        "carrier": "easypost", "carrier_name": "USPS", "service": "GroundAdvantage",
        "tracking_number": "9400100208303109505657",
        "tracking_url": "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400100208303109505657",
        "status": "pre_transit", "occurred_at": shipped, "shipped_at": shipped,
        "idempotency_key": "channel_tracking_sync:1:channel:shop:1",
    }  # fmt: skip
    values.update(overrides)
    return ShipmentUpdate(**values)
