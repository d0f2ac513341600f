"""Shipments: what leaves a warehouse in one parcel, its label, and what shipping it does to
stock and to the order.

- ``shipments_create_for_order`` splits an allocated order into one draft shipment per warehouse
  that holds its reservations (split shipments), or ``shipment_create`` takes chosen lines and
  quantities (partial fulfillment). The order moves ``allocated -> fulfilling``.
- ``shipment_buy_label`` rate-shops the carrier the routing decision names and buys the
  cheapest rate that meets its service level. The carrier is called outside any transaction
  with the shipment's own reference as idempotency key; the label is recorded with a
  compare-and-set, so a retry never records (or, for our carriers, buys) a second label.
- ``shipment_ship`` consumes the reserved units of its lines (on hand and reserved both go
  down) and moves the order to ``partially_shipped`` or ``shipped``.
- ``shipment_void`` cancels a shipment that has not left: nothing was consumed, so nothing is
  given back, and voiding twice is a no-op.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from config.metrics import timed
from fulfillment.carriers import cheapest_rate, get_carrier
from fulfillment.carriers.base import (
    CarrierError,
    CustomsLine,
    Label,
    ShipmentRequest,
    web_link,
)
from fulfillment.models import (
    Reservation,
    ReservationStatus,
    RoutingDecision,
    Shipment,
    ShipmentLine,
    ShipmentStatus,
    StockLevel,
    Warehouse,
)
from fulfillment.services import StockInconsistent
from fulfillment.tracking import shipment_handed_over
from orders import money
from orders.actors import Actor
from orders.errors import InvalidInput, NotFound, TransitionRefused
from orders.models import Order, OrderLine, OrderStatus, Product
from orders.services import order_event_record, order_transition
from orders.transitions import (
    Audit,
    atomic_audited,
    audit_record,
    transition_check,
    transition_run,
)

log = structlog.get_logger(__name__)

OPEN_SHIPMENT_STATES = (ShipmentStatus.DRAFT, ShipmentStatus.LABEL_PURCHASED)
GONE_STATES = (
    ShipmentStatus.SHIPPED, ShipmentStatus.IN_TRANSIT, ShipmentStatus.DELIVERED,
    ShipmentStatus.EXCEPTION, ShipmentStatus.RETURNED,
)  # fmt: skip
DEFAULT_WEIGHT_GRAMS = 500  # a line whose SKU has no catalogue weight


@dataclass(frozen=True)
class LineRequest:
    order_line_id: int
    quantity: int


def _start_fulfillment(order: Order, actor: Actor) -> None:
    """An allocated order starts fulfilment with its first shipment: the row the caller holds
    locked (``_locked_order``) is moved in place."""
    if order.status == OrderStatus.ALLOCATED:
        order_transition(order_id=order.pk, transition="start_fulfillment", actor=actor,
                         expected_status=OrderStatus.ALLOCATED, locked=order,
                         savepoint=False)  # fmt: skip


def _refuse_unshippable(order: Order) -> None:
    if order.status not in (OrderStatus.ALLOCATED, OrderStatus.FULFILLING,
                            OrderStatus.PARTIALLY_SHIPPED):  # fmt: skip
        raise TransitionRefused(
            f"Cannot ship order {order.pk}: it is '{order.status}' "
            "(allowed: allocated, fulfilling, partially_shipped)"
        )


def _locked_order(order_id: int, *, with_channel: bool = False) -> Order:
    read = Order.objects.select_for_update(of=("self",), no_key=True)
    order = (read.select_related("channel") if with_channel else read).filter(pk=order_id).first()
    if order is None:
        raise NotFound(f"Order {order_id} does not exist")
    _refuse_unshippable(order)
    order.row_remember()  # moved in place by the steps that follow (order_transition(locked=))
    return order


@transaction.atomic
def shipment_create(*, order_id: int, lines: list[LineRequest], actor: Actor,
                    warehouse_code: str = "") -> Shipment:  # fmt: skip
    """A draft shipment of chosen lines and quantities from one warehouse (partial shipment).

    Each quantity must be held by an active reservation of that line in that warehouse and not
    already be in another (not voided) shipment.
    """
    return _shipment_create(_locked_order(order_id), lines=lines, actor=actor,
                            warehouse_code=warehouse_code)  # fmt: skip


@dataclass
class _Held:
    """What an order holds, as one read of this transaction saw it: its active reservations
    (with their warehouses) by (order line, warehouse code), and the units of each reservation
    already in an open shipment. ``shipments_plan`` reads it once for all its shipments (each
    shipment takes other reservations: one warehouse each)."""

    reservations: dict[tuple[int, str], Reservation]
    in_open_shipments: dict[int, int]

    @classmethod
    def read(cls, order_id: int) -> _Held:
        reservations = {
            (r.order_line_id, r.warehouse.code): r
            for r in Reservation.objects.select_related("warehouse")
            .filter(order_id=order_id, status=ReservationStatus.ACTIVE)
            .order_by("warehouse__code", "order_line__line_no")
        }  # fmt: skip
        rows = (
            ShipmentLine.objects.filter(shipment__order_id=order_id,
                                        shipment__status__in=OPEN_SHIPMENT_STATES)
            .values("reservation_id").annotate(n=Sum("quantity"))
        )  # fmt: skip
        return cls(reservations, {r["reservation_id"]: r["n"] for r in rows})


def _shipment_create(order: Order, *, lines: list[LineRequest], actor: Actor,
                     warehouse_code: str, held: _Held | None = None) -> Shipment:  # fmt: skip
    """``shipment_create`` on the order row this transaction holds locked and remembered
    (``_locked_order``), which the first shipment moves to ``fulfilling`` in place. Inside the
    caller's transaction: a refusal rolls back the caller's whole plan. ``held``: what the
    caller read of the order's reservations in this transaction (else read here)."""
    order_id = order.pk
    if not lines:
        raise InvalidInput("A shipment needs at least one line", code="no_lines")
    held = held or _Held.read(order_id)
    reservations = held.reservations
    codes = {code for (_, code) in reservations}
    if not warehouse_code:
        if len(codes) != 1:
            raise InvalidInput(
                f"Order {order_id} holds stock in {len(codes)} warehouses: name one",
                code="warehouse_required",
            )
        warehouse_code = next(iter(codes))
    warehouse = next(
        (r.warehouse for (_, code), r in reservations.items() if code == warehouse_code), None
    ) or Warehouse.objects.get(code=warehouse_code)
    shipment = Shipment.objects.create(order=order, warehouse=warehouse)
    for request in lines:
        reservation = reservations.get((request.order_line_id, warehouse_code))
        if reservation is None:
            raise InvalidInput(
                f"Line {request.order_line_id} has no stock reserved at {warehouse_code}",
                code="not_reserved",
            )
        # Units of this reservation not yet in another open shipment.
        free = reservation.quantity - held.in_open_shipments.get(reservation.pk, 0)
        if request.quantity <= 0 or request.quantity > free:
            raise InvalidInput(
                f"Line {request.order_line_id}: {request.quantity} unit(s) asked, "
                f"{free} reserved at {warehouse_code} and not yet in a shipment",
                code="quantity_unavailable",
            )
        ShipmentLine.objects.create(
            shipment=shipment, order_line_id=request.order_line_id, reservation=reservation,
            sku=reservation.sku, quantity=request.quantity,
        )  # fmt: skip
        # A second line of the same reservation in this call sees these units taken.
        held.in_open_shipments[reservation.pk] = (
            held.in_open_shipments.get(reservation.pk, 0) + request.quantity
        )
    _start_fulfillment(order, actor)
    order_event_record(
        order_id=order_id, action="shipment_created", actor=actor,
        data={"shipment_id": shipment.pk, "warehouse": warehouse_code,
              "lines": [{"order_line_id": r.order_line_id, "quantity": r.quantity} for r in lines]},
    )  # fmt: skip
    log.info("shipment.created", shipment_id=shipment.pk, order_id=order_id)
    return shipment


@transaction.atomic
def shipments_create_for_order(*, order_id: int, actor: Actor) -> list[Shipment]:
    """One draft shipment per warehouse for every reserved unit not yet in a shipment.
    Safe to repeat: a second call finds nothing left to plan and returns []."""
    return shipments_plan(_locked_order(order_id), actor=actor)


def shipments_plan(order: Order, *, actor: Actor) -> list[Shipment]:
    """``shipments_create_for_order`` for a caller whose transaction holds the order locked
    and remembered (``FSMRowMixin.row_remember``; orchestration): one lock for the whole plan,
    not one per shipment."""
    _refuse_unshippable(order)
    held = _Held.read(order.pk)
    by_warehouse: dict[str, list[LineRequest]] = defaultdict(list)
    for (_, code), r in held.reservations.items():  # by warehouse code, then line number
        free = r.quantity - held.in_open_shipments.get(r.pk, 0)
        if free > 0:
            by_warehouse[code].append(LineRequest(r.order_line_id, free))
    return [
        _shipment_create(order, lines=requested, actor=actor, warehouse_code=code, held=held)
        for code, requested in sorted(by_warehouse.items())
    ]


# --- labels ------------------------------------------------------------------------------------
def _routing(order_id: int) -> dict[str, Any]:
    decision = (
        RoutingDecision.objects.filter(order_id=order_id).order_by("-decided_at", "-id").first()
    )
    return dict(decision.actions) if decision is not None else {}


def _weight_and_customs(shipment: Shipment, *, customs: bool) -> tuple[int, list[CustomsLine]]:
    lines = list(shipment.lines.select_related("order_line"))
    products = {p.sku: p for p in Product.objects.filter(sku__in={ln.sku for ln in lines})}
    order = shipment.order
    weight = 0
    customs_lines = []
    for ln in lines:
        product = products.get(ln.sku)
        unit_weight = (
            int(product.weight_grams)
            if product is not None and product.weight_grams
            else DEFAULT_WEIGHT_GRAMS
        )
        weight += unit_weight * ln.quantity
        if customs:
            line = ln.order_line
            share = Decimal(ln.quantity) / Decimal(line.quantity)
            # Declared value: the price paid for these units, after discount, before tax.
            value = (line.gross - line.discount_allocation) * share
            customs_lines.append(
                CustomsLine(
                    sku=ln.sku, description=line.title or ln.sku, quantity=ln.quantity,
                    value=money.quantize(value, order.currency, rounding=money.ROUND_HALF_UP),
                    currency=order.currency,
                    hs_code=getattr(product, "hs_code", "") or "",
                    origin_country=getattr(product, "origin_country", "") or "",
                    weight_grams=unit_weight * ln.quantity,
                )
            )  # fmt: skip
    return weight, customs_lines


def _request(shipment: Shipment, routing: dict[str, Any]) -> ShipmentRequest:
    order = shipment.order
    warehouse = shipment.warehouse
    flags = routing.get("flags") or {}
    ship_to = dict(order.shipping_address or {})
    international = (ship_to.get("country_code") or order.ship_to_country) != warehouse.country
    weight, customs = _weight_and_customs(
        shipment, customs=bool(flags.get("customs_declaration")) or international
    )
    return ShipmentRequest(
        reference=f"shipment-{shipment.pk}",
        ship_from={
            "name": warehouse.name or warehouse.code,
            "country_code": warehouse.country,
            "region_code": warehouse.region,
        },  # fmt: skip
        ship_to=ship_to,
        weight_grams=max(weight, 1),
        service_level=routing.get("service_level") or "ground",
        signature_required=bool(flags.get("signature_required")),
        customs=customs,
        correlation_id=order.correlation_id,
    )


def shipment_buy_label(*, shipment_id: int, actor: Actor) -> Shipment:
    """Buy the label of a draft shipment (rate shopping within the routed carrier). Calls the
    carrier outside any transaction; safe to repeat: a shipment with a label is returned as is."""
    shipment = Shipment.objects.select_related("order", "warehouse").get(pk=shipment_id)
    if shipment.status != ShipmentStatus.DRAFT:
        return shipment
    if shipment.order.status == OrderStatus.CANCELLED:
        # Cancelled while its label waited: no label is bought for a parcel that never leaves.
        return shipment_void(shipment_id=shipment.pk, actor=actor)
    # Timed from here: a repeat call that returned above bought nothing.
    with timed("label"):
        routing = _routing(shipment.order_id)
        carrier = get_carrier(routing.get("carrier") or "local")
        request = _request(shipment, routing)
        rates = carrier.rates(request)
        rate = cheapest_rate(rates, request.service_level)
        label: Label = carrier.buy(request, rate)
        with transaction.atomic():
            current = Shipment.objects.select_for_update().get(pk=shipment_id)
            if current.status != ShipmentStatus.DRAFT:
                # Another worker recorded a label first; ours has the same reference (idempotent).
                return current
            current.carrier = label.carrier
            current.service_level = request.service_level
            current.carrier_shipment_id = label.carrier_shipment_id
            current.tracking_number = label.tracking_number
            current.tracking_url = web_link(label.tracking_url)  # whatever the carrier sent
            current.rate_amount = label.rate.amount
            current.rate_currency = label.rate.currency
            current.label_pdf = label.label_pdf
            current.label_zpl = label.label_zpl
            current.flags = {**(routing.get("flags") or {}), "service": label.service,
                             "customs_lines": len(request.customs)}  # fmt: skip
            if label.label_url:
                # Carriers that host the label file (EasyPost) give a link instead of the bytes.
                current.flags["label_url"] = label.label_url
            transition_run(
                current, "purchase_label", actor=actor,
                audit=lambda s, _was: Audit(
                    order_id=s.order_id, action="label_purchased",
                    data={"shipment_id": s.pk, "carrier": label.carrier, "service": label.service,
                          "tracking_number": label.tracking_number, "rate": str(label.rate.amount),
                          "currency": label.rate.currency},
                ),
            )  # fmt: skip
    log.info("shipment.label_purchased", shipment_id=shipment_id, carrier=label.carrier,
             tracking_number=label.tracking_number)  # fmt: skip
    return current


# --- shipping ----------------------------------------------------------------------------------
def _consume(line: ShipmentLine, actor: Actor) -> None:
    """Take the line's units out of stock: on hand and reserved both go down; the reservation
    holds that many fewer (it is consumed when none are left)."""
    reservation = Reservation.objects.select_for_update().get(pk=line.reservation_id)
    q = line.quantity
    if reservation.status != ReservationStatus.ACTIVE or reservation.quantity < q:
        raise StockInconsistent(
            f"Reservation {reservation.pk} holds {reservation.quantity} ({reservation.status}); "
            f"shipment line {line.pk} needs {q}"
        )
    done = StockLevel.objects.filter(
        sku=reservation.sku, warehouse_id=reservation.warehouse_id, reserved__gte=q, on_hand__gte=q
    ).update(on_hand=F("on_hand") - q, reserved=F("reserved") - q, updated_at=timezone.now())
    if done != 1:
        raise StockInconsistent(f"Stock of {reservation.sku} holds fewer units than shipped ({q})")
    event = Audit(
        order_id=reservation.order_id, action="reservation_consumed",
        data={"reservation_id": reservation.pk, "sku": reservation.sku, "quantity": q,
              "warehouse_id": reservation.warehouse_id, "shipment_id": line.shipment_id},
    )  # fmt: skip
    if reservation.quantity == q:
        transition_run(reservation, "consume", actor=actor, audit=lambda _r, _was: event)
    else:
        # Partly shipped: the reservation holds fewer units, its state does not change.
        Reservation.objects.filter(pk=reservation.pk).update(quantity=F("quantity") - q)
        audit_record(event, actor=actor)


@atomic_audited()
def shipment_ship(*, shipment_id: int, actor: Actor) -> Shipment:
    """Hand the parcel to the carrier: consume its units and move the order on."""
    shipment = Shipment.objects.select_for_update().get(pk=shipment_id)
    # With its channel: the hand-over below records the parcel's first event on these rows.
    order = _locked_order(shipment.order_id, with_channel=True)
    # No event of its own: the order's ship / ship_partially event below names the shipment.
    transition_run(shipment, "ship", actor=actor, audit=None, say_field=False)
    # Stock rows in (sku, warehouse) order, as the allocator locks them: in line order a ship
    # and an allocation of the same SKUs each held a row the other waited for (a deadlock).
    for line in shipment.lines.order_by("sku", "reservation__warehouse_id", "pk"):
        _consume(line, actor)
    shipped = {
        r["order_line_id"]: r["n"]
        for r in ShipmentLine.objects.filter(shipment__order_id=order.pk,
                                             shipment__status__in=GONE_STATES)
        .values("order_line_id").annotate(n=Sum("quantity"))
    }  # fmt: skip
    complete = all(
        shipped.get(line.pk, 0) >= line.quantity
        for line in OrderLine.objects.filter(order_id=order.pk)
    )
    _start_fulfillment(order, actor)
    order_transition(
        order_id=order.pk, transition="ship" if complete else "ship_partially", actor=actor,
        expected_status=order.status, locked=order, savepoint=False,
        data={"shipment_id": shipment.pk, "tracking_number": shipment.tracking_number},
    )  # fmt: skip
    # The parcel's first tracking event: the channel hears of it (its first write-back).
    shipment.order = order
    shipment_handed_over(shipment=shipment, actor=actor)
    log.info("shipment.shipped", shipment_id=shipment_id, order_id=order.pk, complete=complete)
    return shipment


def shipment_void(*, shipment_id: int, actor: Actor) -> Shipment:
    """Cancel a shipment that has not left. Its label is refunded by the carrier (outside any
    transaction); nothing was consumed, so nothing is given back. Voiding twice is a no-op."""
    shipment = Shipment.objects.get(pk=shipment_id)
    if shipment.status == ShipmentStatus.VOIDED:
        return shipment
    transition_check(shipment, "void", say_field=False)  # before the carrier is called
    refunded = None
    if shipment.status == ShipmentStatus.LABEL_PURCHASED and shipment.carrier:
        try:
            refunded = get_carrier(shipment.carrier).void(_label_of(shipment))
        except CarrierError as exc:
            log.warning("shipment.void_refund_failed", shipment_id=shipment_id, error=str(exc))
            refunded = False
    with transaction.atomic():
        current = Shipment.objects.select_for_update().get(pk=shipment_id)
        if current.status == ShipmentStatus.VOIDED:
            return current
        transition_run(
            current, "void", actor=actor, say_field=False,
            audit=lambda s, _was: Audit(
                order_id=s.order_id, action="shipment_voided",
                data={"shipment_id": s.pk, "tracking_number": s.tracking_number,
                      "label_refunded": refunded},
            ),
        )  # fmt: skip
    return current


def _label_of(shipment: Shipment) -> Label:
    from fulfillment.carriers.base import Rate

    rate = Rate(carrier=shipment.carrier, service=str(shipment.flags.get("service", "")),
                service_level=shipment.service_level, amount=shipment.rate_amount or Decimal(0),
                currency=shipment.rate_currency or "USD")  # fmt: skip
    return Label(carrier=shipment.carrier, service=rate.service,
                 tracking_number=shipment.tracking_number,
                 carrier_shipment_id=shipment.carrier_shipment_id, rate=rate)  # fmt: skip


def shipment_sequence(shipment: Shipment) -> int:
    """1 for an order's first shipment, 2 for its second... (voided ones count: stable)."""
    return Shipment.objects.filter(order_id=shipment.order_id, pk__lte=shipment.pk).count()
