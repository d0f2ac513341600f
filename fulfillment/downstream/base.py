"""The interface every downstream adapter implements, and what the adapters share.

An adapter performs one outbox action on one downstream system (an ERP, a WMS, a notification
service). It is called by ``fulfillment.outbox.action_dispatch`` outside any transaction, with
the action's correlation id bound, and either returns a small result (ids the system gave us,
never personal data: the result is stored on the action and shown in the admin) or raises
``DownstreamError`` saying whether a later attempt may succeed.

Adapters read what they send (lines, totals, the ship-to address, the recipient) from the
database at send time: the action's payload holds ids only, so no personal data is stored twice.
Every adapter sends the action's idempotency key (or a form of it the vendor accepts), so a
retry after an ambiguous failure finds the first result instead of making a second.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from config.integrations import IntegrationError

if TYPE_CHECKING:
    from fulfillment.models import OutboundAction, Warehouse
    from orders.models import Order


class DownstreamError(IntegrationError):
    """A downstream call failed (see ``IntegrationError`` for the four facts it carries).

    ``ambiguous`` matters most here: adapters whose vendor has no idempotency key must not
    retry blindly. ``retry_after`` (429/503) lets the outbox wait as long as the vendor asked.
    """


class UnknownTarget(DownstreamError):
    """No adapter is registered for this (kind, target): a configuration problem for a person."""

    def __init__(self, kind: str, target: str) -> None:
        super().__init__(f"no downstream adapter for {kind} -> {target!r}", retryable=False)
        self.kind = kind
        self.target = target


class Downstream(Protocol):
    target: str

    def perform(self, action: OutboundAction) -> dict[str, Any]:
        """Do the action's effect once (idempotently); return a PII-free summary."""
        ...


def safe_key(key: str) -> str:
    """The idempotency key in the characters every vendor and file system accepts
    (letters, digits, ``_`` and ``-``): NetSuite external ids, file names."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", key)


# --- what adapters read at send time ---------------------------------------------------------
def order_of(action: OutboundAction) -> Order:
    """The action's order with its customer and channel; missing is a non-retryable error."""
    from orders.models import Order

    order = (
        Order.objects.select_related("customer", "channel").filter(pk=action.order_id).first()
        if action.order_id
        else None
    )
    if order is None:
        raise DownstreamError(f"action {action.pk} has no order to send", retryable=False)
    return order


def pick_lines(action: OutboundAction) -> list[dict[str, Any]]:
    """``[{"sku", "quantity"}]`` to pick: the payload's ``lines``, else the lines of the
    payload's shipment, else the order's lines."""
    from fulfillment.models import ShipmentLine
    from orders.models import OrderLine

    payload = action.payload or {}
    if isinstance(payload.get("lines"), list):
        return [{"sku": str(ln["sku"]), "quantity": int(ln["quantity"])} for ln in payload["lines"]]
    rows: Iterable[ShipmentLine | OrderLine] = ()
    if payload.get("shipment_id"):
        rows = ShipmentLine.objects.filter(shipment_id=payload["shipment_id"]).order_by("pk")
    elif action.order_id is not None:
        rows = OrderLine.objects.filter(order_id=action.order_id).order_by("line_no")
    lines = [{"sku": r.sku, "quantity": int(r.quantity)} for r in rows if r.sku]
    if not lines:
        raise DownstreamError(f"action {action.pk} has no lines to pick", retryable=False)
    return lines


def warehouse_of(action: OutboundAction) -> Warehouse:
    """The warehouse to task: the payload's ``warehouse`` code, else the payload's shipment's."""
    from fulfillment.models import Shipment, Warehouse

    payload = action.payload or {}
    warehouse = None
    if payload.get("warehouse"):
        warehouse = Warehouse.objects.filter(code=payload["warehouse"]).first()
    elif payload.get("shipment_id"):
        shipment = (
            Shipment.objects.select_related("warehouse").filter(pk=payload["shipment_id"]).first()
        )
        warehouse = shipment.warehouse if shipment is not None else None
    if warehouse is None:
        raise DownstreamError(
            f"action {action.pk}: no warehouse (payload needs 'warehouse' or 'shipment_id')",
            retryable=False,
        )
    return warehouse
