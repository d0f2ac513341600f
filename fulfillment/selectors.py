"""Reads of stock and shipments for the API, the admin and reports."""

from __future__ import annotations

from datetime import datetime

from django.db.models import F, Max, Q, QuerySet

from fulfillment.models import (
    CarrierInboundEvent,
    Reservation,
    ReturnPolicy,
    Shipment,
    ShipmentStatus,
    StockLevel,
)
from orders.models import OrderEvent


def stock_level_list(*, sku: str | None = None, warehouse_code: str | None = None) -> QuerySet[
    StockLevel
]:  # fmt: skip
    qs = StockLevel.objects.select_related("warehouse")
    if sku:
        qs = qs.filter(sku=sku)
    if warehouse_code:
        qs = qs.filter(warehouse__code=warehouse_code)
    return qs.order_by("sku", "warehouse__code", "pk")


def reservation_list_for_order(*, order_id: int) -> QuerySet[Reservation]:
    return (
        Reservation.objects.filter(order_id=order_id)
        .select_related("warehouse", "order_line")
        .order_by("order_line__line_no", "warehouse__code", "pk")
    )


def shipment_list() -> QuerySet[Shipment]:
    return (
        Shipment.objects.select_related("warehouse")
        .prefetch_related("lines", "tracking_events")
        .order_by("-created_at", "-id")
    )


def carrier_event_list(*, with_body: bool = False) -> QuerySet[CarrierInboundEvent]:
    """The carriers' inbox, newest first; bodies are loaded only when asked for (one event)."""
    events = CarrierInboundEvent.objects.order_by("-received_at", "-id")
    return events if with_body else events.defer("body")


def return_policy_for(*, channel_id: int | None) -> ReturnPolicy | None:
    """The active return policy of a channel: its own if it has one, else the shop-wide one
    (the most recently edited first, when several are active). One query."""
    scope = Q(channel__isnull=True)
    if channel_id is not None:
        scope |= Q(channel_id=channel_id)
    return (
        ReturnPolicy.objects.filter(scope, is_active=True)
        .order_by(F("channel_id").asc(nulls_last=True), "-updated_at", "-pk")
        .first()
    )


def order_delivered_at(order_id: int) -> datetime | None:
    """When the order's last parcel was delivered (else its ``deliver`` audit event)."""
    last = (
        Shipment.objects.filter(order_id=order_id, status=ShipmentStatus.DELIVERED)
        .aggregate(last=Max("delivered_at"))
        .get("last")
    )
    if last is not None:
        return last
    return (
        OrderEvent.objects.filter(order_id=order_id, action="deliver")
        .order_by("-at")
        .values_list("at", flat=True)
        .first()
    )
