"""What happens once an order holds its stock: route it, plan its shipments, and write the
downstream work into the outbox, all in the transaction of the state change that causes it.

``order_orchestrate`` is idempotent: routing is decided once, shipments are planned only for
units not yet in one, and each outbox action is unique per (order, kind, target, version), so a
repeat (another hook, a re-run) writes nothing new. It runs from transition hooks:

- ``allocate``: the order holds its stock;
- ``authorize_payment`` / ``capture_payment`` / ``grant_net_terms``: an allocated order whose
  payment was not secured yet can start now (``start_fulfillment`` needs a secured payment).

Actions written: ``erp_post`` and ``notify_customer`` (order confirmation, version 1) once per
order; ``wms_task`` and ``label_purchase`` once per shipment (version = the shipment id). When
a shipment leaves (``ship`` / ``ship_partially``), ``notify_customer`` with the shipping
confirmation (version = 1 + the shipment's number within the order). Each action is dispatched
after commit on its lane, independently of the others.
"""

from __future__ import annotations

import structlog
from django.db import transaction
from django.db.models import prefetch_related_objects

from config.metrics import timed
from fulfillment.downstream import targets_for
from fulfillment.models import (
    ActionKind,
    RoutingDecision,
    Shipment,
    ShipmentStatus,
)
from fulfillment.outbox import services as outbox
from fulfillment.routing.services import route_locked
from fulfillment.shipments import shipments_plan
from orders.actors import Actor
from orders.models import Order, OrderStatus, PaymentStatus

log = structlog.get_logger(__name__)

ACTOR = Actor.system("orchestration")
SECURED = (PaymentStatus.AUTHORIZED, PaymentStatus.PAID, PaymentStatus.NET_TERMS)
ORCHESTRABLE = (OrderStatus.ALLOCATED, OrderStatus.FULFILLING)
TRIGGERS = ("allocate", "authorize_payment", "capture_payment", "grant_net_terms")


def _lane(decision: RoutingDecision | None, default: str) -> str:
    return str((decision.actions if decision else {}).get("lane") or default)


def orchestrable(order: Order) -> bool:
    """Stock held and payment secured: what ``order_orchestrate`` acts on. Also the hook's
    ``when`` (``orders.hooks``): a payment captured while the order is still ``received`` (or
    an allocation before the payment) costs no savepoint and no second read of the row."""
    return order.payment_status in SECURED and order.status in ORCHESTRABLE


def order_orchestrate(*, order_id: int) -> list[int]:
    """Route, plan shipments and write outbox actions for an allocated order whose payment is
    secured; returns the ids of the actions written now (none on a repeat)."""
    # One locked read of the order for the whole of it (routing's rules read its channel,
    # customer and lines; the shipment plan its status), not one per step.
    order = (
        Order.objects.select_for_update(of=("self",), no_key=True)
        .select_related("channel", "customer").filter(pk=order_id).first()
    )  # fmt: skip
    if order is None or not orchestrable(order):
        return []
    order.row_remember()  # the plan's first shipment moves this row in place (start_fulfillment)
    decision = RoutingDecision.objects.filter(order_id=order_id).order_by("-decided_at").first()
    if decision is None:
        prefetch_related_objects([order], "lines")
        with timed("routing"):
            decision = route_locked(order, actor=ACTOR)
    shipments_plan(order, actor=ACTOR)
    specs: list[outbox.ActionSpec] = []
    for target in targets_for(ActionKind.ERP_POST):
        specs.append(outbox.ActionSpec(ActionKind.ERP_POST, target, {"order_id": order_id}, "sync"))
    for target in targets_for(ActionKind.NOTIFY_CUSTOMER):
        specs.append(outbox.ActionSpec(
            ActionKind.NOTIFY_CUSTOMER, target,
            {"order_id": order_id, "template": "order_confirmation"}, "notify",
        ))  # fmt: skip
    lane = _lane(decision, "fulfillment")
    carrier = str((decision.actions if decision else {}).get("carrier") or "local")
    drafts = Shipment.objects.filter(order_id=order_id, status=ShipmentStatus.DRAFT)
    for shipment in drafts.select_related("warehouse"):
        # Shipment-scoped actions: the shipment id is their version, so each shipment of the
        # order (split or partial) gets its own label and warehouse task, exactly once.
        specs.append(outbox.ActionSpec(
            ActionKind.LABEL_PURCHASE, carrier, {"shipment_id": shipment.pk}, lane,
            version=shipment.pk,
        ))  # fmt: skip
        for target in targets_for(ActionKind.WMS_TASK):
            specs.append(outbox.ActionSpec(
                ActionKind.WMS_TASK, target,
                {"shipment_id": shipment.pk, "warehouse": shipment.warehouse.code}, lane,
                version=shipment.pk,
            ))  # fmt: skip
    # All of them in one write (one read, one insert, one insert of their events) and one
    # doorbell per lane; see ``actions_write``.
    _rows, written = outbox.actions_write(
        order_id=order_id, specs=specs, correlation_id=order.correlation_id
    )
    if written:
        log.info("order.orchestrated", order_id=order_id, actions=len(written))
    return written


def on_order_transition(order_id: int) -> None:
    """The transition hook: orchestrate inside the transition's transaction. A failure here
    must not undo the transition (the stock is held either way): it is logged and a savepoint
    rolls back only the orchestration; the sweeper tries again."""
    try:
        with transaction.atomic():
            order_orchestrate(order_id=order_id)
    except Exception:
        log.exception("order.orchestration_failed", order_id=order_id)


def on_shipped(order_id: int) -> None:
    """``ship`` / ``ship_partially`` hook: a shipping confirmation per shipment that left.

    One batch write (``actions_write``): one read of the order's actions, one insert, one
    insert of the events. The sequence of each shipment within the order (its notice's
    version) comes from one read of the order's shipment ids, not a count per shipment."""
    from config import correlation
    from fulfillment.shipments import GONE_STATES

    shipments = list(Shipment.objects.filter(order_id=order_id).order_by("pk").values_list(
        "pk", "status"))  # fmt: skip
    # 1 for an order's first shipment, 2 for its second... (voided ones count: stable), as
    # ``shipment_sequence`` numbers them.
    specs = [
        outbox.ActionSpec(
            ActionKind.NOTIFY_CUSTOMER,
            target,
            {"order_id": order_id, "template": "shipping_confirmation", "shipment_id": pk},
            "notify",
            version=1 + number,
        )  # fmt: skip
        for number, (pk, status) in enumerate(shipments, start=1)
        if status in GONE_STATES
        for target in targets_for(ActionKind.NOTIFY_CUSTOMER)
    ]
    outbox.actions_write(order_id=order_id, specs=specs, correlation_id=correlation.get())


def orchestrate_sweep(*, limit: int = 200) -> int:
    """Beat: orchestrate allocated orders with a secured payment that hold stock not yet in a
    shipment (a hook that failed, or a payment secured by a path without a hook)."""
    from fulfillment.models import Reservation, ReservationStatus, ShipmentLine

    planned = ShipmentLine.objects.exclude(shipment__status=ShipmentStatus.VOIDED).values(
        "reservation_id"
    )
    order_ids = list(
        Reservation.objects.filter(
            status=ReservationStatus.ACTIVE, order__status=OrderStatus.ALLOCATED,
            order__payment_status__in=SECURED,
        )
        .exclude(pk__in=planned)
        .values_list("order_id", flat=True)
        .distinct()[:limit]
    )  # fmt: skip
    for order_id in order_ids:
        on_order_transition(order_id)
    return len(order_ids)
