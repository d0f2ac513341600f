"""What a ``crm_update`` action tells a CRM, read from the order at send time (the action's
payload holds ids only: ``order_id``, ``milestone``, and a return's ``shipment_id``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fulfillment.downstream.base import DownstreamError, order_of
from orders import money

if TYPE_CHECKING:
    from fulfillment.models import OutboundAction
    from orders.models import Order

MILESTONES = ("received", "shipped", "delivered", "returned", "cancelled")
AMOUNTS = ("subtotal", "discount_total", "shipping_total", "tax_total", "total", "refunded_total")


def milestone_of(action: OutboundAction) -> str:
    milestone = str((action.payload or {}).get("milestone") or "")
    if milestone not in MILESTONES:
        raise DownstreamError(
            f"action {action.pk}: unknown CRM milestone {milestone!r}", retryable=False
        )
    return milestone


def order_facts(order: Order) -> dict[str, Any]:
    """The order as a CRM sees it: ids, number, channel, state and amounts (strings, exact)."""
    return {
        "order_id": order.pk,
        "external_id": order.external_id,
        "order_number": order.order_number or order.external_id,
        "channel": order.channel.slug,
        "channel_kind": str(order.channel.kind),
        "status": str(order.status),
        "payment_status": str(order.payment_status),
        "currency": order.currency,
        **{name: str(money.normalize(getattr(order, name), order.currency)) for name in AMOUNTS},
        "placed_at": order.placed_at.isoformat() if order.placed_at else None,
        "customer_id": order.customer_id,
    }


def event_of(action: OutboundAction) -> tuple[Order, str, dict[str, Any]]:
    """(the order, the milestone, the order's facts plus the milestone's own ids)."""
    milestone = milestone_of(action)
    order = order_of(action)
    facts = {"milestone": milestone, **order_facts(order)}
    if shipment_id := (action.payload or {}).get("shipment_id"):
        facts["shipment_id"] = shipment_id
    return order, milestone, facts
