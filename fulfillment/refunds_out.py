"""What a recorded refund sets off here: stock back, the refund to the channel, an ERP credit
note and the customer's email, each through the outbox with a key that makes it once.

- **Restock** (a channel's refund): lines whose restock type is ``return`` put the units back on
  hand in the warehouse that shipped them (a return of ours restocks at receipt, by condition,
  in ``fulfillment.returns``; its refund lines restock nothing a second time).
- **To the channel** (our refunds only: an RMA's or a person's; a refund that came from the
  channel is not sent back to it): one ``channel_refund`` action per refund, target
  ``channel:<slug>``; its adapter has the channel refund the payment and marks the refund
  succeeded with the channel's refund id. A channel that cannot be asked (no refund write-back
  for its kind, or no credentials) gets none: the refund is handed to a person (``manual``), who
  refunds it in the channel's admin and confirms it here.
- **Once the money has gone back** (at once for a channel's refund; when the channel confirms
  ours): an ``erp_credit_note`` action per ERP target, and for our refunds the customer's
  ``refund_issued`` email.
"""

from __future__ import annotations

import structlog
from django.db.models import Sum

from fulfillment.models import ActionKind, ShipmentLine, Warehouse
from fulfillment.returns import LEFT_US, stock_return
from fulfillment.tracking import channel_target
from orders import feedback
from orders.actors import Actor
from orders.models import Refund, RefundLine, RefundSource, RefundStatus, RestockType
from orders.refunds import refund_transition
from orders.transitions import order_event_record

log = structlog.get_logger(__name__)

REFUND_NOTICE_VERSION_BASE = 1_500_000_000
ACTOR = Actor.system("refunds")


def on_refund_recorded(refund_id: int) -> None:
    refund = Refund.objects.select_related("order__channel").get(pk=refund_id)
    if refund.source == RefundSource.CHANNEL:
        _restock_channel_refund(refund)
    elif refund.status == RefundStatus.PENDING:
        _send_to_channel(refund)
    if refund.status == RefundStatus.SUCCEEDED:
        _after_money_moved(refund)


def on_refund_status(refund_id: int) -> None:
    refund = Refund.objects.select_related("order__channel").get(pk=refund_id)
    if refund.status == RefundStatus.SUCCEEDED:
        _after_money_moved(refund)


def _send_to_channel(refund: Refund) -> None:
    from fulfillment.outbox import services as outbox

    channel = refund.order.channel
    writer = feedback.refund_writer_for(channel.kind)
    if writer is None or not writer.configured(channel.pk):
        refund_transition(refund_id=refund.pk, transition="hand_over", actor=ACTOR)
        order_event_record(
            order_id=refund.order_id, action="refund_needs_person", actor=ACTOR,
            correlation_id=refund.correlation_id,
            data={"refund_id": refund.pk, "reference": refund.reference,
                  "detail": f"{channel.slug} cannot be asked to refund: refund "
                  f"{refund.amount} {refund.currency} in its own admin, then confirm it here"},
        )  # fmt: skip
        return
    outbox.action_write(
        order_id=refund.order_id, kind=ActionKind.CHANNEL_REFUND,
        target=channel_target(channel.slug), payload={"refund_id": refund.pk}, lane="sync",
        version=refund.pk, correlation_id=refund.correlation_id,
    )  # fmt: skip


def _after_money_moved(refund: Refund) -> None:
    from fulfillment.outbox import services as outbox

    if refund.amount > 0:
        for target in _erp_targets_with_the_sale(refund):
            outbox.action_write(
                order_id=refund.order_id, kind=ActionKind.ERP_CREDIT_NOTE, target=target,
                payload={"refund_id": refund.pk}, lane="sync", version=refund.pk,
                correlation_id=refund.correlation_id,
            )  # fmt: skip
    if refund.source != RefundSource.CHANNEL and refund.amount > 0:
        outbox.customer_notice_write(
            order_id=refund.order_id, template="refund_issued", refund_id=refund.pk,
            version=REFUND_NOTICE_VERSION_BASE + refund.pk, correlation_id=refund.correlation_id,
        )  # fmt: skip


def _erp_targets_with_the_sale(refund: Refund) -> list[str]:
    """The ERP targets that were sent this order's sale: a credit note credits an invoice or
    sales order there; an order never posted (cancelled before it was) gets none."""
    from fulfillment.downstream import targets_for
    from fulfillment.models import OutboundAction

    posted = set(
        OutboundAction.objects.filter(
            order_id=refund.order_id, kind=ActionKind.ERP_POST
        ).values_list("target", flat=True)
    )
    return [t for t in targets_for(ActionKind.ERP_CREDIT_NOTE) if t in posted]


def _restock_channel_refund(refund: Refund) -> None:
    """Units the channel says came back go on hand where they left from (never more than
    shipped from there, minus what earlier refunds restocked)."""
    for line in refund.lines.select_related("order_line").filter(restock_type=RestockType.RETURN):
        placed = _restock_line(line)
        if placed:
            order_event_record(
                order_id=refund.order_id, action="restocked", actor=ACTOR,
                correlation_id=refund.correlation_id,
                data={"refund_id": refund.pk, "sku": line.order_line.sku,
                      "placed": [{"warehouse": code, "quantity": qty} for code, qty in placed]},
            )  # fmt: skip


def _restock_line(line: RefundLine) -> list[tuple[str, int]]:
    sku = line.order_line.sku
    if not sku:
        return []
    shipped = (
        ShipmentLine.objects.filter(order_line_id=line.order_line_id, shipment__status__in=LEFT_US)
        .values("shipment__warehouse_id")
        .annotate(units=Sum("quantity"))
        .order_by("shipment__warehouse_id")
    )
    already = (
        RefundLine.objects.filter(order_line_id=line.order_line_id)
        .exclude(pk=line.pk)
        .aggregate(units=Sum("restocked_quantity"))["units"]
        or 0
    )
    wanted = line.quantity
    placed: list[tuple[str, int]] = []
    for row in shipped:
        units = int(row["units"] or 0)
        take = min(units - min(already, units), wanted)
        already = max(already - units, 0)
        if take <= 0:
            continue
        warehouse = Warehouse.objects.get(pk=row["shipment__warehouse_id"])
        stock_return(sku=sku, warehouse=warehouse, quantity=take)
        placed.append((warehouse.code, take))
        wanted -= take
        if wanted <= 0:
            break
    restocked = sum(qty for _code, qty in placed)
    if restocked:
        RefundLine.objects.filter(pk=line.pk).update(
            restocked_quantity=restocked, restock_warehouse=placed[0][0]
        )
    return placed
