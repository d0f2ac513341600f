"""ERP credit notes for refunds whose money has moved (outbox kind ``erp_credit_note``,
payload ``{"refund_id"}``, written by ``fulfillment.refunds_out``).

- **File drop**: one CSV per refund in the ERP drop folder (``erp_filedrop.drop_dir``), named
  after the action's idempotency key and written atomically, so a retry rewrites the same file.
  One row per refunded line; the refund's totals and per-payment-method amounts repeat on every
  row (``payments`` is ``method=amount`` pairs joined by ``;``). No personal data.
- **NetSuite**: ``POST record/v1/creditMemo``, found again by ``eid:{externalId}``.
"""

from __future__ import annotations

import csv
import hashlib
import io
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import structlog

from config.csvfiles import csv_row
from fulfillment.downstream.base import DownstreamError, safe_key
from fulfillment.downstream.erp_filedrop import drop_file_write
from fulfillment.downstream.erp_netsuite import NetSuiteERPAdapter
from orders import money

if TYPE_CHECKING:
    from fulfillment.models import OutboundAction
    from orders.models import Refund, RefundLine

log = structlog.get_logger(__name__)

COLUMNS = [
    "idempotency_key", "refund_reference", "order_id", "channel", "external_id",
    "order_correlation_id", "currency", "line_no", "sku", "quantity", "amount", "tax",
    "shipping", "shipping_tax", "restocking_fee", "total", "payments", "processed_at",
]  # fmt: skip
CREDIT_MEMO_PATH = "/services/rest/record/v1/creditMemo"


def refund_of(action: OutboundAction) -> Refund:
    from orders.models import Refund

    refund_id = (action.payload or {}).get("refund_id")
    refund = (
        Refund.objects.select_related("order__channel").filter(pk=refund_id).first()
        if refund_id
        else None
    )
    if refund is None:
        raise DownstreamError(f"action {action.pk} has no refund to credit", retryable=False)
    return refund


def file_name(idempotency_key: str) -> str:
    return f"credit-{safe_key(idempotency_key)}.csv"


class FileDropCreditNoteAdapter:
    target = "filedrop"

    def perform(self, action: OutboundAction) -> dict[str, Any]:
        refund = refund_of(action)
        order, cur = refund.order, refund.currency

        def amount(value: Decimal) -> Decimal:
            return money.normalize(value, cur)

        payments = ";".join(
            f"{p.method}={amount(p.amount)}" for p in refund.payments.order_by("pk")
        )
        lines = list(refund.lines.select_related("order_line").order_by("order_line__line_no"))
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(csv_row(COLUMNS))
        # A refund of shipping or a goodwill amount has no lines: one row with the totals.
        rows: list[RefundLine | None] = list(lines) or [None]
        for line in rows:
            writer.writerow(csv_row([
                action.idempotency_key, refund.reference, order.pk, order.channel.slug,
                order.external_id, order.correlation_id, cur,
                line.order_line.line_no if line else "", line.order_line.sku if line else "",
                line.quantity if line else 0, amount(line.amount) if line else amount(Decimal(0)),
                amount(line.tax) if line else amount(Decimal(0)),
                amount(refund.shipping), amount(refund.shipping_tax),
                amount(refund.restocking_fee), amount(refund.amount), payments,
                refund.processed_at.isoformat(),
            ]))  # fmt: skip
        data = buffer.getvalue().encode("utf-8")
        path = drop_file_write(file_name(action.idempotency_key), data, what="ERP credit note")
        log.info("erp_credit_note.written", action_id=action.pk, refund_id=refund.pk,
                 file=path.name)  # fmt: skip
        return {"file": path.name, "rows": max(len(lines), 1),
                "sha256": hashlib.sha256(data).hexdigest()}  # fmt: skip


def external_id_for(refund: Refund) -> str:
    """The credit memo's externalId. NetSuite's externalId is its idempotency key (unique per
    record type: a second create with it is refused). The issue asks for "our refund's
    correlation id" as external id, but a refund carries its order's correlation id, shared by
    every refund of that order: alone it would make the second refund of an order look like a
    duplicate of the first. So: ``<correlation_id>-<RF-...>``, stable per refund."""
    return safe_key(f"{refund.correlation_id}-{refund.reference}")


def _sales_order_id(order_id: int) -> str:
    """The NetSuite sales order our ``erp_post`` action created (its result keeps the id)."""
    from fulfillment.models import ActionKind, ActionStatus, OutboundAction

    posted = (
        OutboundAction.objects.filter(order_id=order_id, kind=ActionKind.ERP_POST,
                                      target="netsuite", status=ActionStatus.SUCCEEDED)
        .order_by("-version", "-pk").values_list("result", flat=True).first()
    )  # fmt: skip
    return str((posted or {}).get("record_id") or "")


class NetSuiteCreditNoteAdapter(NetSuiteERPAdapter):
    """A creditMemo per refund, created once per external id the way the sales order is
    (``NetSuiteERPAdapter._create_once``)."""

    record = "creditMemo"

    def perform(self, action: OutboundAction) -> dict[str, Any]:
        self._check_configured()
        refund = refund_of(action)
        external_id = external_id_for(refund)
        return self._create_once(action, external_id, self._memo_body(refund, external_id))

    def _memo_body(self, refund: Refund, external_id: str) -> dict[str, Any]:
        order, cur = refund.order, refund.currency
        items = [
            {
                "item": {"externalId": line.order_line.sku},
                "quantity": line.quantity,
                "amount": money.normalize(line.amount, cur),
                "tax1Amt": money.normalize(line.tax, cur),
            }
            for line in refund.lines.select_related("order_line").order_by("order_line__line_no")
        ]
        body: dict[str, Any] = {
            "externalId": external_id,
            "tranDate": refund.processed_at.date().isoformat(),
            "otherRefNum": refund.reference,
            "memo": f"{order.channel.slug} order {order.external_id} refund {refund.reference}"[
                :999
            ],
            "currency": {"refName": cur},
            "shippingCost": money.normalize(refund.shipping, cur),
            "item": {"items": items},
        }
        if sales_order := _sales_order_id(order.pk):
            body["createdFrom"] = {"id": sales_order}
        if self.customer_id:
            body["entity"] = {"id": self.customer_id}
        return body
