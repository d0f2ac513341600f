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
from urllib.parse import quote

import structlog
from django.conf import settings

from config.csvfiles import csv_row
from fulfillment.downstream.base import DownstreamError, safe_key
from fulfillment.downstream.erp_filedrop import drop_dir, write_atomically
from fulfillment.downstream.erp_netsuite import _error_code, _is_duplicate, dumps
from fulfillment.downstream.http import session_for
from orders import money

if TYPE_CHECKING:
    from config.integrations import IntegrationSession
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
        folder = drop_dir()
        path = folder / file_name(action.idempotency_key)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_atomically(path, data)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise DownstreamError(
                f"could not write the ERP credit note {path.name}: {reason}", retryable=True
            ) from exc
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


class NetSuiteCreditNoteAdapter:
    target = "netsuite"

    def __init__(self, *, api_base: str, token: str, customer_id: str) -> None:
        self.api_base = api_base.rstrip("/")
        self.token = token
        self.customer_id = customer_id

    @classmethod
    def from_settings(cls) -> NetSuiteCreditNoteAdapter:
        return cls(
            api_base=settings.NETSUITE_API_BASE,
            token=settings.NETSUITE_TOKEN,
            customer_id=settings.NETSUITE_CUSTOMER_ID,
        )

    def perform(self, action: OutboundAction) -> dict[str, Any]:
        if not (self.api_base and self.token):
            raise DownstreamError(
                "NetSuite is not configured (NETSUITE_API_BASE, NETSUITE_TOKEN)", retryable=False
            )
        refund = refund_of(action)
        external_id = external_id_for(refund)
        body = self._body(refund, external_id)
        with session_for(self.target) as session:
            session.headers["Authorization"] = f"Bearer {self.token}"
            if action.attempts > 1:  # the last attempt may have created it before failing
                found = self._find(session, external_id)
                if found is not None:
                    return found
            try:
                response = session.call(
                    "POST", self.api_base + CREDIT_MEMO_PATH, what="netsuite create creditMemo",
                    data=dumps(body).encode(), accept=(400, 409),
                    headers={"Content-Type": "application/json", "Accept": "application/json"},
                )  # fmt: skip
            except DownstreamError as exc:
                if not exc.ambiguous:
                    raise
                try:
                    found = self._find(session, external_id)
                except DownstreamError:
                    found = None
                if found is not None:
                    return found
                raise
            if response.status_code in (400, 409):
                code = _error_code(response)
                if response.status_code == 409 or _is_duplicate(response, code):
                    found = self._find(session, external_id)
                    if found is not None:
                        return found
                    raise DownstreamError(
                        "netsuite create creditMemo: refused as a duplicate, but "
                        f"eid:{external_id} is not found yet",
                        retryable=True, status=response.status_code,
                    )  # fmt: skip
                raise DownstreamError(
                    f"netsuite create creditMemo: HTTP {response.status_code} "
                    f"{code or 'error'} (see NetSuite's execution log for eid:{external_id})",
                    retryable=False, status=response.status_code,
                )  # fmt: skip
            record_id = response.headers.get("Location", "").rstrip("/").rsplit("/", 1)[-1]
            if not record_id:
                raise DownstreamError(
                    "netsuite create creditMemo: no Location in the answer", retryable=True,
                    status=response.status_code, ambiguous=True,
                )  # fmt: skip
        log.info("netsuite.credit_memo_created", action_id=action.pk, record_id=record_id)
        return {"record_id": record_id, "external_id": external_id, "created": True}

    def _find(self, session: IntegrationSession, external_id: str) -> dict[str, Any] | None:
        url = f"{self.api_base}{CREDIT_MEMO_PATH}/eid:{quote(external_id, safe='')}"
        response = session.call(
            "GET", url, what="netsuite get creditMemo by externalId", accept=(404,),
            headers={"Accept": "application/json"},
        )  # fmt: skip
        if response.status_code == 404:
            return None
        try:
            record_id = str(response.json().get("id") or "")
        except (ValueError, AttributeError):
            record_id = ""
        log.info("netsuite.credit_memo_found", external_id=external_id, record_id=record_id)
        return {"record_id": record_id, "external_id": external_id, "created": False}

    def _body(self, refund: Refund, external_id: str) -> dict[str, Any]:
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
