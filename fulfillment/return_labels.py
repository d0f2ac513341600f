"""The return label: bought once per return, from the customer's address to the warehouse.

``return_label_purchase`` is what the ``return_label`` outbox action does (adapter:
``fulfillment.downstream.return_label``). It reads the return at send time, builds a
``ShipmentRequest`` with ``is_return=True`` (ship-from: the order's shipping address; ship-to:
the return's warehouse; weight: the catalogue weight of the returned units), rate-shops the
carrier for the cheapest ground-or-faster quote and buys it. The carrier is called with no
transaction open and the RMA number as the reference, so a retry after a lost answer finds the
first label instead of buying a second; the label is recorded with a compare-and-set (a return
that already has a tracking number is returned as it is).
"""

from __future__ import annotations

from typing import Any

import structlog
from django.db import transaction
from django.http import HttpResponse

from fulfillment.carriers import cheapest_rate, get_carrier
from fulfillment.carriers.base import Label, ShipmentRequest, web_link
from fulfillment.models import Return, ReturnStatus
from fulfillment.shipments import DEFAULT_WEIGHT_GRAMS
from orders.actors import Actor
from orders.errors import InvalidInput
from orders.models import Product
from orders.transitions import order_event_record

log = structlog.get_logger(__name__)

RETURN_SERVICE_LEVEL = "ground"
LABEL_STATES = (ReturnStatus.AUTHORIZED,)


def return_weight_grams(ret: Return) -> int:
    """The returned units' catalogue weight (a SKU without one counts as the default)."""
    lines = list(ret.lines.select_related("order_line"))
    skus = {ln.sku or ln.order_line.sku for ln in lines}
    weights = {p.sku: p.weight_grams for p in Product.objects.filter(sku__in=skus)}
    total = 0
    for ln in lines:
        unit = weights.get(ln.sku or ln.order_line.sku) or DEFAULT_WEIGHT_GRAMS
        total += int(unit) * ln.quantity
    return max(total, 1)


def return_label_request(ret: Return) -> ShipmentRequest:
    """The carrier request of a return's label (the customer's address to the warehouse)."""
    order = ret.order
    warehouse = ret.warehouse
    if warehouse is None:
        raise InvalidInput(f"{ret.rma_number} has no warehouse to come back to",
                           code="no_warehouse")  # fmt: skip
    return ShipmentRequest(
        reference=ret.rma_number,
        ship_from=dict(order.shipping_address or {}),
        ship_to={
            "name": warehouse.name or warehouse.code,
            "country_code": warehouse.country,
            "region_code": warehouse.region,
        },  # fmt: skip
        weight_grams=return_weight_grams(ret),
        service_level=RETURN_SERVICE_LEVEL,
        correlation_id=ret.correlation_id or order.correlation_id,
        is_return=True,
    )


def return_label_purchase(*, return_id: int, carrier_code: str, actor: Actor) -> Return:
    """Buy the return's label with ``carrier_code`` (once) and keep it on the return."""
    ret = Return.objects.select_related("order", "warehouse").get(pk=return_id)
    if ret.tracking_number or ret.status not in LABEL_STATES:
        return ret  # bought already, or no longer waiting for a parcel (rejected, received)
    carrier = get_carrier(carrier_code)
    request = return_label_request(ret)
    rate = cheapest_rate(carrier.rates(request), request.service_level)
    label: Label = carrier.buy(request, rate)
    with transaction.atomic():
        current = Return.objects.select_for_update().get(pk=return_id)
        if current.tracking_number:
            return current  # another worker recorded it first (same reference: same label)
        current.label_carrier = label.carrier
        current.label_service = label.service[:40]
        current.carrier_shipment_id = label.carrier_shipment_id
        current.tracking_number = label.tracking_number
        current.tracking_url = web_link(label.tracking_url)
        current.label_pdf = label.label_pdf
        current.label_url = label.label_url
        current.tracking_status = "pre_transit"
        current.save(update_fields=[
            "label_carrier", "label_service", "carrier_shipment_id", "tracking_number",
            "tracking_url", "label_pdf", "label_url", "tracking_status", "updated_at",
        ])  # fmt: skip
        order_event_record(
            order_id=current.order_id, action="return_label_purchased", actor=actor,
            field="return", correlation_id=current.correlation_id,
            data={"return_id": current.pk, "rma_number": current.rma_number,
                  "carrier": label.carrier, "service": label.service,
                  "tracking_number": label.tracking_number, "rate": str(label.rate.amount),
                  "currency": label.rate.currency},
        )  # fmt: skip
    log.info("return.label_purchased", return_id=return_id, carrier=label.carrier,
             tracking_number=label.tracking_number)  # fmt: skip
    return current


def return_label_response(ret: Return) -> HttpResponse | None:
    """The return label as a PDF download (None when it has none stored: a carrier that hosts
    it gives ``label_url`` instead)."""
    if not ret.label_pdf:
        return None
    response = HttpResponse(bytes(ret.label_pdf), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="return-label-{ret.rma_number}.pdf"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def return_label_summary(ret: Return) -> dict[str, Any]:
    """What the outbox action keeps as its result (no personal data)."""
    return {"return_id": ret.pk, "rma_number": ret.rma_number, "carrier": ret.label_carrier,
            "tracking_number": ret.tracking_number, "status": str(ret.status)}  # fmt: skip
