"""The canonical order: the one shape every channel is normalized into, and its idempotent
upsert by (channel, external id).

A channel says what an order *is* now; ``order_upsert`` works out what changed, never lets an
older update overwrite a newer one, and moves states only through ``order_transition``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from django.db import IntegrityError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from orders import channel_refunds, jsonschemas, money
from orders.actors import Actor
from orders.errors import DomainError
from orders.models import PRE_SHIP_STATES, Customer, IncidentCategory, Order, OrderLine, OrderStatus
from orders.services import (
    LineInput,
    OrderInput,
    incident_raise,
    order_create,
    order_event_record,
    order_transition,
)
from orders.transitions import atomic_audited

log = structlog.get_logger(__name__)

SCHEMA = "canonical_order.v1.json"
# Before these states nothing downstream has acted on the order's contents: a channel's update
# may still rewrite its lines and amounts (and the checks run again).
REWRITABLE = {OrderStatus.RECEIVED, OrderStatus.ON_HOLD}
AMOUNT_FIELDS = (
    "subtotal",
    "discount_total",
    "shipping_total",
    "tax_total",
    "shipping_tax",
    "total",
)


def canonical_errors(canonical: dict[str, Any]) -> list[dict[str, Any]]:
    return jsonschemas.errors("orders", SCHEMA, canonical)


@dataclass(frozen=True)
class UpsertResult:
    order_id: int
    outcome: str  # created, updated, cancelled, stale, unchanged


def _when(value: str | None) -> datetime | None:
    return parse_datetime(value) if value else None


def _customer_id(data: dict[str, Any] | None) -> int | None:
    """The customer with this email, created if new. The channel's word on marketing consent
    (``accepts_marketing``), when it gives one, is the customer's from now on: a later update
    of the order that withdraws it withdraws it here too."""
    data = data or {}
    email = (data.get("email") or "").strip().lower()
    if not email:
        return None
    says = data.get("accepts_marketing")
    existing = Customer.objects.filter(email=email).order_by("pk").values_list("pk", flat=True)
    if existing:
        if isinstance(says, bool):
            Customer.objects.filter(pk=existing[0]).exclude(accepts_marketing=says).update(
                accepts_marketing=says, updated_at=timezone.now()
            )
        return existing[0]
    return Customer.objects.create(
        email=email, name=data.get("name", "")[:200], phone=data.get("phone", ""),
        accepts_marketing=says is True,
    ).pk  # fmt: skip


def _lines(canonical: dict[str, Any]) -> list[LineInput]:
    return [
        LineInput(
            sku=line.get("sku", ""),
            quantity=line["quantity"],
            unit_price=money.to_decimal(line["unit_price"]),
            title=line.get("title", ""),
            external_line_id=line["external_line_id"],
            discount=money.to_decimal(line["discount"]),
            tax=money.to_decimal(line["tax"]),
            channel_sku=line.get("channel_sku", ""),
            variant_ref=line.get("variant_ref", ""),
            tax_lines=line.get("tax_lines", []),
        )
        for line in canonical["lines"]
    ]


def _order_input(channel_id: int, canonical: dict[str, Any], rounding: str) -> OrderInput:
    amount = money.to_decimal
    return OrderInput(
        channel_id=channel_id,
        external_id=canonical["external_id"],
        currency=canonical["currency"],
        lines=_lines(canonical),
        placed_at=_when(canonical["placed_at"]),  # type: ignore[arg-type]
        customer_id=_customer_id(canonical.get("customer")),
        subtotal=amount(canonical["subtotal"]),
        discount_total=amount(canonical["discount_total"]),
        shipping_total=amount(canonical["shipping_total"]),
        tax_total=amount(canonical["tax_total"]),
        shipping_tax=amount(canonical.get("shipping_tax") or "0"),
        total=amount(canonical["total"]),
        shipping_address=canonical.get("shipping_address") or {},
        billing_address=canonical.get("billing_address") or {},
        payment_method=canonical.get("payment_method", "")[:40],
        rounding=rounding,
        taxes_included=bool(canonical.get("taxes_included")),
        order_number=canonical.get("order_number", "")[:64],
        tax_lines=canonical.get("tax_lines", []),
        source=canonical.get("source", {}),
        source_updated_at=_when(canonical.get("updated_at")),
    )


def order_upsert(
    *, channel_id: int, canonical: dict[str, Any], actor: Actor, rounding: str
) -> UpsertResult:
    """Create the order, or apply a newer version of it; idempotent for the same version.

    Two workers creating the same order at once: the unique (channel, external id) index lets
    one insert win; the other retries and finds it.
    """
    for attempt in range(2):
        try:
            with atomic_audited():
                existing = (
                    Order.objects.select_for_update(of=("self",))
                    .filter(channel_id=channel_id, external_id=canonical["external_id"])
                    .first()
                )
                if existing is None:
                    data = _order_input(channel_id, canonical, rounding)
                    order = order_create(data=data, actor=actor)
                    outcome = _apply_states(order, canonical, actor, fresh=True) or "created"
                    return UpsertResult(order.pk, "created" if outcome != "cancelled" else outcome)
                return _update(existing, canonical, actor, rounding)
        except IntegrityError:
            if attempt:
                raise
            log.info("order.upsert_retry", channel_id=channel_id)
    raise AssertionError("unreachable")


def order_cancel_from_channel(*, channel_id: int, external_id: str, actor: Actor) -> UpsertResult:
    """A thin cancel/delete delivery: cancel the order if it can still be cancelled."""
    order = Order.objects.filter(channel_id=channel_id, external_id=external_id).first()
    if order is None:
        raise DomainError(
            f"The channel cancelled order {external_id}, which we never received",
            code="unknown_order",
        )
    outcome = _apply_states(order, {"cancelled": True}, actor) or "unchanged"
    return UpsertResult(order.pk, outcome)


def _update(order: Order, canonical: dict[str, Any], actor: Actor, rounding: str) -> UpsertResult:
    incoming = _when(canonical.get("updated_at"))
    held = order.source_updated_at
    if incoming is not None and held is not None and incoming < held:
        order_event_record(
            order_id=order.pk, action="stale_update_ignored", actor=actor,
            data={"incoming_updated_at": incoming.isoformat(), "held": held.isoformat()},
        )  # fmt: skip
        return UpsertResult(order.pk, "stale")
    if incoming is not None and incoming == held:
        # The same version again: nothing to rewrite, but a cancel topic may still carry news.
        return UpsertResult(order.pk, _apply_states(order, canonical, actor) or "unchanged")

    data = _order_input(order.channel_id, canonical, rounding)
    changed = _changed_fields(order, data)
    if changed and order.status in REWRITABLE:
        _rewrite(order, data)
    elif changed:
        incident_raise(
            category=IncidentCategory.OTHER,
            summary=f"The channel changed {', '.join(changed)} after the order was "
            f"{order.get_status_display().lower()}",
            order_id=order.pk,
            details={"changed": changed, "status": order.status},
            key="changed_after_validation",
        )
    Order.objects.filter(pk=order.pk).update(source_updated_at=incoming)
    order_event_record(
        order_id=order.pk, action="channel_update", actor=actor,
        data={"changed": changed, "applied": bool(changed) and order.status in REWRITABLE},
    )  # fmt: skip
    outcome = _apply_states(order, canonical, actor)
    return UpsertResult(order.pk, outcome or ("updated" if changed else "unchanged"))


def _changed_fields(order: Order, data: OrderInput) -> list[str]:
    changed = [
        name
        for name in AMOUNT_FIELDS
        if getattr(data, name) is not None
        and money.quantize(getattr(data, name), order.currency, rounding=data.rounding)
        != getattr(order, name)
    ]
    if data.shipping_address != order.shipping_address:
        changed.append("shipping_address")
    if data.billing_address != order.billing_address:
        changed.append("billing_address")
    current = [
        (ln.external_line_id, ln.quantity, ln.unit_price, ln.variant_ref)
        for ln in order.lines.order_by("line_no")
    ]
    incoming = [
        (ln.external_line_id, ln.quantity,
         money.quantize(ln.unit_price, order.currency, rounding=data.rounding), ln.variant_ref)
        for ln in data.lines
    ]  # fmt: skip
    if current != incoming:
        changed.append("lines")
    return changed


def _rewrite(order: Order, data: OrderInput) -> None:
    """Replace the contents of an order nobody has acted on yet (received or on hold)."""
    OrderLine.objects.filter(order=order).delete()
    q = lambda v: money.quantize(v, order.currency, rounding=data.rounding)  # noqa: E731
    OrderLine.objects.bulk_create(
        OrderLine(
            order=order, currency=order.currency, line_no=i, external_line_id=ln.external_line_id,
            sku=ln.sku, channel_sku=ln.channel_sku, variant_ref=ln.variant_ref, title=ln.title,
            quantity=ln.quantity, unit_price=q(ln.unit_price), discount_allocation=q(ln.discount),
            tax_allocation=q(ln.tax), tax_lines=ln.tax_lines,
        )
        for i, ln in enumerate(data.lines, start=1)
    )  # fmt: skip
    Order.objects.filter(pk=order.pk).update(
        subtotal=q(data.subtotal), discount_total=q(data.discount_total),
        shipping_total=q(data.shipping_total), tax_total=q(data.tax_total),
        shipping_tax=q(data.shipping_tax), total=q(data.total),
        shipping_address=data.shipping_address, billing_address=data.billing_address,
        ship_to_country=str(data.shipping_address.get("country_code", "")).upper()[:2],
        tax_lines=data.tax_lines, taxes_included=data.taxes_included, source=data.source,
    )  # fmt: skip
    if order.status == OrderStatus.ON_HOLD:
        # The channel fixed the order: its checks run again.
        order_transition(order_id=order.pk, transition="release_hold", actor=Actor.system("ingest"))


PAYMENT_STEPS = {
    "authorized": ["authorize_payment"],
    "paid": ["capture_payment"],
    "partially_refunded": ["capture_payment"],
    "refunded": ["capture_payment"],
}


def _apply_states(
    order: Order, canonical: dict[str, Any], actor: Actor, *, fresh: bool = False
) -> str | None:
    """Follow the channel's payment and cancellation facts with our own transitions; its refunds
    become refund records (``orders.refunds``), once each. ``fresh``: ``order`` is the row as
    it stands (created in this transaction), so the first step need not read it again."""
    outcome = None
    for step in PAYMENT_STEPS.get(canonical.get("financial_status", ""), []):
        current = order if fresh else Order.objects.get(pk=order.pk)
        if fresh:
            # Created in this transaction, so no one else can have moved it: the first step
            # moves this row in place instead of locking and reading it again.
            order.row_remember()
        locked = order if fresh else None
        fresh = False  # a step moved it: read it again before the next one
        if step == "capture_payment" and current.payment_status not in ("pending", "authorized"):
            continue
        if step == "authorize_payment" and current.payment_status != "pending":
            continue
        _try(order, step, actor, locked=locked)
    channel_refunds.record_from_canonical(order_id=order.pk, canonical=canonical, actor=actor)
    if canonical.get("cancelled"):
        current = Order.objects.get(pk=order.pk)
        if current.status == OrderStatus.CANCELLED:
            return None
        if current.status in PRE_SHIP_STATES:
            if _try(order, "cancel", actor, reason="Cancelled in the sales channel"):
                outcome = "cancelled"
        else:
            incident_raise(
                category=IncidentCategory.OTHER,
                summary=f"The channel cancelled an order that is already {current.status}",
                order_id=order.pk,
                severity="high",
                key="cancel_after_ship",
            )
    return outcome


def _try(
    order: Order, transition: str, actor: Actor, *, locked: Order | None = None, **kwargs: Any
) -> bool:
    try:
        order_transition(
            order_id=order.pk, transition=transition, actor=actor, locked=locked, **kwargs
        )
    except DomainError as exc:
        order_event_record(
            order_id=order.pk, action="channel_state_not_applied", actor=actor,
            data={"transition": transition, "code": exc.code, "detail": str(exc)},
        )  # fmt: skip
        return False
    return True
