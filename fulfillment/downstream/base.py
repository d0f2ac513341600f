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

import contextlib
import re
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from config.integrations import IntegrationError

if TYPE_CHECKING:
    from fulfillment.models import OutboundAction, Warehouse
    from orders.models import Order, OrderLine


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
class _BatchOrders:
    """The orders of one dispatch batch's actions, read at the first ``order_of`` of the batch
    in one query (with customer and channel), and their lines at the first ``order_lines``,
    instead of one read of each per action."""

    def __init__(self, order_ids: set[int]) -> None:
        self.wanted = order_ids
        self.orders: dict[int, Order | None] = {}
        self.lines: dict[int, list[OrderLine]] = {}

    def order(self, order_id: int) -> Order | None:
        from orders.models import Order

        if order_id not in self.orders:  # the batch's first ask, or an order not of the batch
            ids = (self.wanted | {order_id}) - set(self.orders)
            self.orders.update(dict.fromkeys(ids))  # one read each: a missing one stays None
            read = Order.objects.select_related("customer", "channel").filter(pk__in=ids)
            self.orders.update({o.pk: o for o in read})
        return self.orders[order_id]

    def lines_of(self, order_id: int) -> list[OrderLine]:
        from orders.models import OrderLine

        if order_id not in self.lines:  # the batch's first ask: the lines of all it has read
            ids = (set(self.orders) | {order_id}) - set(self.lines)
            self.lines.update({pk: [] for pk in ids})
            for line in OrderLine.objects.filter(order_id__in=ids).order_by("order_id", "line_no"):
                self.lines[line.order_id].append(line)
        return self.lines[order_id]


_batch: ContextVar[_BatchOrders | None] = ContextVar("downstream_batch_orders", default=None)


@contextlib.contextmanager
def batch_orders(actions: Iterable[OutboundAction]) -> Iterator[None]:
    """Around one dispatch batch (``outbox.actions_dispatch``): ``order_of`` answers from one
    read of all the batch's orders, made when an adapter first asks (a batch of label
    purchases, which read no order, reads none). The rows are as they were at that read, a
    second or so before the last call of a batch, as a read per action would be a moment
    before its own call; adapters only read them."""
    token = _batch.set(_BatchOrders({a.order_id for a in actions if a.order_id}))
    try:
        yield
    finally:
        _batch.reset(token)


def order_of(action: OutboundAction) -> Order:
    """The action's order with its customer, channel and lines (``order_lines``); missing is
    a non-retryable error. Within a dispatch batch, from the batch's one read."""
    from orders.models import Order

    batch = _batch.get()
    order: Order | None = None
    if action.order_id and batch is not None:
        order = batch.order(action.order_id)
    elif action.order_id:
        read = Order.objects.select_related("customer", "channel")
        order = read.filter(pk=action.order_id).first()
    if order is None:
        raise DownstreamError(f"action {action.pk} has no order to send", retryable=False)
    return order


def order_lines(order: Order) -> list[OrderLine]:
    """The order's lines in line order; within a dispatch batch, from one read of the lines of
    all the batch's orders."""
    batch = _batch.get()
    if batch is not None:
        return batch.lines_of(order.pk)
    return list(order.lines.order_by("line_no"))


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
