"""``channel_refund`` actions: have the order's sales channel refund one refund of ours (an
RMA's or a person's), through the channel kind's refund writer (``orders.feedback``;
``channels.writeback`` registers one per kind).

The payload names the refund (``{"refund_id"}``). At send time this adapter reads the refund,
its lines and payment splits, builds a ``RefundPush`` (its note carries our marker,
``orders.refunds.marker``, so the channel's own webhook about the refund finds our row) and
pushes it with the action's idempotency key. The channel's refund id is kept on our refund,
which becomes ``succeeded`` (a refund that already is, a re-run, calls nothing).

A channel that refuses for good (a non-retryable ``IntegrationError``) makes the action dead
(the outbox's own behaviour) and our refund ``failed`` with the channel's reason: no money
moved; a person refunds it by hand and confirms it (``confirm_manual``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from config.integrations import IntegrationError
from fulfillment.downstream.base import DownstreamError, order_of
from orders import feedback
from orders.actors import Actor

if TYPE_CHECKING:
    from fulfillment.models import OutboundAction
    from orders.models import Order, Refund

log = structlog.get_logger(__name__)

ACTOR = Actor.system("refunds")


def refund_push(action: OutboundAction, order: Order, refund: Refund) -> feedback.RefundPush:
    """What the channel is asked to refund for this action (read now, from the database)."""
    from orders.models import RestockType
    from orders.refunds import marker

    lines = [
        feedback.RefundPushLine(
            external_line_id=line.order_line.external_line_id, quantity=line.quantity,
            amount=line.amount, tax=line.tax, restock=line.restock_type == RestockType.RETURN,
        )
        for line in refund.lines.select_related("order_line").order_by("order_line__line_no", "pk")
    ]  # fmt: skip
    note = f"{refund.reason} {marker(refund.reference)}".strip()
    return feedback.RefundPush(
        channel_id=order.channel_id, order_external_id=order.external_id, refund_id=refund.pk,
        reference=refund.reference, note=note, currency=refund.currency, amount=refund.amount,
        shipping=refund.shipping, shipping_tax=refund.shipping_tax, lines=lines,
        payments=[(p.method, p.amount) for p in refund.payments.order_by("pk")],
        idempotency_key=action.idempotency_key, correlation_id=action.correlation_id,
    )  # fmt: skip


class ChannelRefundAdapter:
    target = "channel"

    def perform(self, action: OutboundAction) -> dict[str, Any]:
        from orders.models import Refund, RefundStatus
        from orders.refunds import refund_transition

        refund_id = (action.payload or {}).get("refund_id")
        refund = Refund.objects.filter(pk=refund_id, order_id=action.order_id).first()
        if refund is None:
            raise DownstreamError(
                f"action {action.pk}: refund {refund_id} of this order does not exist",
                retryable=False,
            )
        if refund.status == RefundStatus.SUCCEEDED:
            return {"refund_id": refund.pk, "channel_refund_id": refund.channel_refund_id,
                    "outcome": "already_succeeded"}  # fmt: skip
        if refund.status != RefundStatus.PENDING:
            raise DownstreamError(
                f"refund {refund.reference} is {refund.status}, not pending: not sent again",
                retryable=False,
            )
        order = order_of(action)
        kind = str(order.channel.kind)
        writer = feedback.refund_writer_for(kind)
        if writer is None:
            raise DownstreamError(f"no refund writer for {kind} channels", retryable=False)
        try:
            result = dict(writer.push_refund(refund_push(action, order, refund)) or {})
        except IntegrationError as exc:
            if not exc.retryable:
                # The channel refused for good: no money moved. The action dies (outbox).
                refund_transition(refund_id=refund.pk, transition="fail", actor=ACTOR,
                                  reason=f"{kind} refused the refund: {exc}")  # fmt: skip
            if isinstance(exc, DownstreamError):
                raise
            raise DownstreamError(
                f"{kind} refused the refund: {exc}" if not exc.retryable
                else f"{kind} refund failed: {exc}",
                retryable=exc.retryable, status=exc.status, retry_after=exc.retry_after,
            ) from exc  # fmt: skip
        channel_refund_id = str(result.get("channel_refund_id") or "")
        if not channel_refund_id:
            raise DownstreamError(f"{kind} answered the refund without its id", retryable=True)
        refund = refund_transition(refund_id=refund.pk, transition="succeed", actor=ACTOR,
                                   channel_refund_id=channel_refund_id)  # fmt: skip
        log.info("channel_refund.pushed", action_id=action.pk, refund_id=refund.pk,
                 channel_kind=kind)  # fmt: skip
        return {**result, "refund_id": refund.pk, "channel_refund_id": channel_refund_id}
