"""A channel's refunds (``canonical_refund.v1.json``, read by its adapter) recorded as refunds.

Two ways in: inside an order (Shopify's ``orders/updated`` and ``orders/cancelled`` carry the
order's ``refunds``; a WooCommerce order lists its own), and alone (Shopify ``refunds/create``,
BigCommerce ``store/order/refund/created``, Amazon's refund events). Either way each refund is
recorded once per (order, channel, its id) by ``orders.refunds.refund_record``: the channel's
figures are kept as they are, compared with ours, and restocked by the higher app's hook.

A channel that only reports a refunded total (no refund objects) gets one refund per new
total it reports (``total:<amount>``), so a repeat of the same total records nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import structlog
from django.utils.dateparse import parse_datetime

from orders import money
from orders.actors import Actor
from orders.errors import DomainError, InvalidInput, NotFound
from orders.incidents import incident_raise
from orders.models import IncidentCategory, Order, RefundSource, RefundStatus, RestockType
from orders.refunds import PaymentInput, RefundInput, RefundLineInput, RefundResult, refund_record
from orders.transitions import order_event_record

log = structlog.get_logger(__name__)

REFUNDED_STATES = ("partially_refunded", "refunded")


def _amount(value: Any) -> Decimal:
    return money.to_decimal(value) if value not in (None, "") else Decimal(0)


def refund_input(order: Order, item: Mapping[str, Any]) -> RefundInput:
    """The refund input for one canonical refund of ``order`` (its lines found by the channel's
    line ids); ``InvalidInput`` for a line the order does not have."""
    order_lines = list(order.lines.all())
    by_ref = {ln.external_line_id: ln.pk for ln in order_lines if ln.external_line_id}
    by_sku: dict[str, list[int]] = {}
    for ln in order_lines:
        if ln.channel_sku:
            by_sku.setdefault(ln.channel_sku, []).append(ln.pk)
    lines = []
    for i, line in enumerate(item.get("lines") or []):
        ref = str(line.get("external_line_id", ""))
        line_id = by_ref.get(ref) if ref else None
        sku_lines = by_sku.get(str(line.get("channel_sku") or ""), [])
        if line_id is None and not ref and len(sku_lines) == 1:
            # No line id (Amazon's refund events may name only the SellerSKU): the one line
            # of that channel SKU; two lines of one SKU cannot be told apart, an error below.
            line_id = sku_lines[0]
        if line_id is None:
            raise InvalidInput(
                f"refund {item.get('external_id')}: line {ref!r} (lines/{i}) is not on order "
                f"{order.external_id}", code="unknown_line",
            )  # fmt: skip
        lines.append(RefundLineInput(
            order_line_id=line_id, quantity=int(line["quantity"]),
            amount=_amount(line["amount"]) if "amount" in line else None,
            tax=_amount(line["tax"]) if "tax" in line else None,
            restock_type=line.get("restock_type") or RestockType.NO_RESTOCK,
            channel_restock_type=str(line.get("channel_restock_type", "")),
        ))  # fmt: skip
    created = parse_datetime(str(item.get("created_at") or "")) if item.get("created_at") else None
    return RefundInput(
        source=RefundSource.CHANNEL, external_id=str(item["external_id"]), lines=lines,
        shipping=_amount(item.get("shipping")), shipping_tax=_amount(item.get("shipping_tax")),
        fees=_amount(item.get("fees")), adjustment=_amount(item.get("adjustment")),
        payments=[PaymentInput(method=str(p["method"]), amount=_amount(p["amount"]),
                               external_id=str(p.get("external_id", "")))
                  for p in item.get("payments") or []],
        total=_amount(item["total"]), reason=str(item.get("reason", ""))[:64],
        note=str(item.get("note", ""))[:500], channel_figures=dict(item.get("raw") or {}),
        processed_at=created, status=RefundStatus.SUCCEEDED,
    )  # fmt: skip


def refund_from_channel(
    *, channel_id: int, order_external_id: str, refund: Mapping[str, Any], actor: Actor
) -> RefundResult:
    """Record a refund-only delivery. ``NotFound`` while the order has not arrived (the caller
    retries later); ``DomainError`` for a refund that cannot be recorded (kept for a person)."""
    order = Order.objects.filter(channel_id=channel_id, external_id=order_external_id).first()
    if order is None:
        raise NotFound(f"Order {order_external_id} of this channel has not been received yet")
    return refund_record(order_id=order.pk, data=refund_input(order, refund), actor=actor)


def record_from_canonical(
    *, order_id: int, canonical: Mapping[str, Any], actor: Actor
) -> list[int]:
    """Record the refunds a canonical order carries (or the refunded total it reports); a refund
    that cannot be recorded is on the timeline and an incident, the order itself goes on."""
    recorded: list[int] = []
    if "refunds" in canonical:
        items = canonical.get("refunds") or []
        if not items:  # most orders carry none: the order is read only when there is one
            return recorded
        order = Order.objects.select_related("channel").get(pk=order_id)
        for item in items:
            refund_id = _record(order, item, actor)
            if refund_id is not None:
                recorded.append(refund_id)
        return recorded
    status = canonical.get("financial_status", "")
    if status not in REFUNDED_STATES:
        return recorded
    order = Order.objects.select_related("channel").get(pk=order_id)
    wanted = _amount(canonical.get("refunded_total"))
    if status == "refunded" and wanted == 0:
        wanted = order.captured_total
    order.refresh_from_db(fields=["refunded_total", "captured_total"])
    more = wanted - order.refunded_total
    if more <= 0:
        return recorded
    refund_id = _record(order, {
        "external_id": f"total:{money.normalize(wanted, order.currency)}", "total": str(more),
        "note": "The channel reported a refunded total without refund details",
        "raw": {"financial_status": status, "refunded_total": str(wanted)},
    }, actor)  # fmt: skip
    return [refund_id] if refund_id is not None else recorded


def _record(order: Order, item: Mapping[str, Any], actor: Actor) -> int | None:
    try:
        result = refund_record(order_id=order.pk, data=refund_input(order, item), actor=actor)
    except DomainError as exc:
        order_event_record(
            order_id=order.pk, action="channel_refund_not_recorded", actor=actor,
            data={"external_id": str(item.get("external_id", "")), "code": exc.code,
                  "detail": str(exc)},
        )  # fmt: skip
        incident_raise(
            category=IncidentCategory.REFUND_MISMATCH, order_id=order.pk, severity="high",
            summary=f"{order.channel.slug} refund {item.get('external_id')} could not be "
            f"recorded: {exc}"[:255],
            details={"external_id": str(item.get("external_id", "")), "code": exc.code},
            key=f"refund:{item.get('external_id')}",
        )  # fmt: skip
        log.warning("refund.channel_not_recorded", order_id=order.pk, code=exc.code)
        return None
    return result.refund.pk
