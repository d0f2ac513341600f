"""Reads for the finance screens (``reconciliation.views``): payouts with their status, a payout's
bank candidates, the records behind a column of the period close page, the daily difference.

A payout's status, as the anchors' first screen shows it:

- ``inconsistent``: the vendor's data on it has a defect, or its transactions do not sum to it;
- ``unmatched``: no bank deposit is linked to it;
- ``partial``: a deposit is proposed for it (a person confirms) or covers it only in part;
- ``matched``: its deposit is matched and its transactions sum to it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Q, QuerySet, Sum
from django.urls import reverse

from orders import money
from orders.models import Order, OrderStatus, Refund, RefundStatus
from reconciliation.matching import BANK_WINDOW_AFTER, BANK_WINDOW_BEFORE, bank_score
from reconciliation.models import (
    BankLine,
    Defect,
    ErpDocument,
    Link,
    LinkKind,
    LinkState,
    Payout,
    ProcessorTransaction,
    TxCategory,
)
from reconciliation.variance import COLUMNS, Period

PAYOUT_STATUSES = ("matched", "partial", "inconsistent", "unmatched")


@dataclass
class PayoutRow:
    payout: Payout
    tx_sum: Decimal | None
    bank_line: BankLine | None
    link: Link | None
    status: str
    why: str


def payout_status(payout: Payout, tx_sum: Decimal | None, link: Link | None) -> tuple[str, str]:
    """The status of a payout and why, in words."""
    if payout.defects:
        return "inconsistent", "; ".join(defect_words(d) for d in payout.defects)
    if tx_sum is not None and tx_sum != payout.amount:
        return "inconsistent", f"its transactions sum to {tx_sum}, the payout is {payout.amount}"
    if link is None or link.bank_line_id is None or link.state == LinkState.MISSING:
        return "unmatched", link.reason if link is not None and link.reason else "no deposit"
    if link.state == LinkState.MATCHED:
        return "matched", link.reason
    return "partial", link.reason


def defect_words(defect: Any) -> str:
    """A defect as a person reads it: its label, and the vendor row's message when it has one."""
    code = defect.get("code", "") if isinstance(defect, dict) else str(defect)
    label = Defect(code).label if code in Defect.values else code
    message = defect.get("message", "") if isinstance(defect, dict) else ""
    return f"{label}: {message}" if message else label


def payout_list(*, status: str = "", source: str = "", payout_id: int | None = None
                ) -> list[PayoutRow]:  # fmt: skip
    """Every payout (newest first) with its transactions' sum, its deposit and its status."""
    qs: QuerySet[Payout] = Payout.objects.select_related("channel").annotate(
        tx_sum=Sum("transactions__net", filter=~Q(transactions__category=TxCategory.PAYOUT))
    )
    if source:
        qs = qs.filter(source=source)
    if payout_id is not None:
        qs = qs.filter(pk=payout_id)
    links = {
        ln.payout_id: ln
        for ln in Link.objects.filter(kind=LinkKind.PAYOUT_BANK, payout__in=qs)
        .select_related("bank_line")
        .order_by("matched_at")
    }
    rows = []
    for p in qs.order_by("-paid_on", "-id"):
        tx_sum = getattr(p, "tx_sum", None)
        if tx_sum is not None:
            tx_sum = money.normalize(tx_sum, p.currency)
        link = links.get(p.pk)
        state, why = payout_status(p, tx_sum, link)
        if status and state != status:
            continue
        line = link.bank_line if link is not None else None
        rows.append(PayoutRow(payout=p, tx_sum=tx_sum, bank_line=line, link=link, status=state,
                              why=why))  # fmt: skip
    return rows


@dataclass
class Candidate:
    line: BankLine
    score: int
    payouts: list[Payout] = field(default_factory=list)  # the set a proposal confirms
    state: str = ""  # the payout's link to it, when it has one


def payout_bank_candidates(payout: Payout) -> list[Candidate]:
    """Deposits that could be this payout's: a proposed one (with the other payouts of its set)
    first, then the bank lines of its currency in its window, best score first."""
    out: list[Candidate] = []
    seen: set[int] = set()
    links = Link.objects.filter(kind=LinkKind.PAYOUT_BANK, payout=payout, bank_line__isnull=False)
    for link in links.select_related("bank_line"):
        line = link.bank_line
        assert line is not None
        group = [payout]
        if link.group:
            group = [ln.payout for ln in Link.objects.filter(group=link.group)
                     .select_related("payout").order_by("payout__paid_on", "payout_id")
                     if ln.payout is not None]  # fmt: skip
        out.append(Candidate(line=line, score=link.score, payouts=group, state=link.state))
        seen.add(line.pk)
    window = (payout.paid_on - timedelta(days=BANK_WINDOW_BEFORE),
              payout.paid_on + timedelta(days=BANK_WINDOW_AFTER))  # fmt: skip
    lines = BankLine.objects.filter(currency=payout.currency, booked_on__range=window,
                                    amount__gt=0).exclude(pk__in=seen)  # fmt: skip
    ranked = sorted(((bank_score(payout, ln), ln) for ln in lines),
                    key=lambda pair: (-pair[0], pair[1].booked_on, pair[1].pk))  # fmt: skip
    out += [Candidate(line=ln, score=score, payouts=[payout]) for score, ln in ranked[:20]]
    return out


# --- drill-down: the records behind a column --------------------------------------------------
@dataclass
class Table:
    headers: list[str]
    rows: list[list[Any]]  # cells: text, Decimal, or (text, url)


def _order_url(order_id: int | None) -> str:
    return reverse("admin:orders_order_change", args=[order_id]) if order_id else ""


def _payout_url(payout_id: int | None) -> str:
    return reverse("finance:payout", args=[payout_id]) if payout_id else ""


def _period_orders(period: Period, channel_id: int, currency: str) -> QuerySet[Order]:
    return Order.objects.filter(
        channel_id=channel_id, currency=currency, placed_at__date__gte=period.start,
        placed_at__date__lte=period.end,
    ).exclude(status=OrderStatus.CANCELLED)  # fmt: skip


def column_records(period: Period, *, channel_id: int, currency: str, column: str) -> Table:
    """The orders, refunds, ERP documents, transactions, payouts or deposits a column sums, as
    ``variance.compute_row`` selects them."""
    if column not in COLUMNS:
        raise ValueError(column)
    orders = _period_orders(period, channel_id, currency)
    if column == "sales":
        return Table(["Order", "Placed", "Status", "Total"], [
            [(o.order_number or o.external_id, _order_url(o.pk)), o.placed_at.date().isoformat(),
             o.get_status_display(), o.total] for o in orders.order_by("placed_at", "pk")
        ])  # fmt: skip
    if column == "refunds":
        refunds = (Refund.objects.filter(order__in=orders).exclude(status=RefundStatus.FAILED)
                   .select_related("order").order_by("pk"))  # fmt: skip
        return Table(["Refund", "Order", "Status", "Amount"], [
            [r.reference, (r.order.order_number or r.order.external_id, _order_url(r.order_id)),
             r.get_status_display(), r.amount] for r in refunds
        ])  # fmt: skip
    if column == "erp":
        docs = ErpDocument.objects.filter(
            Q(order__in=orders) | Q(order__isnull=True), currency=currency,
            document_date__range=(period.start, period.end),
        ).order_by("document_date", "pk")  # fmt: skip
        return Table(["Document", "Type", "Date", "Reference", "Order", "Revenue"], [
            [d.document_number, d.get_doc_type_display(), d.document_date.isoformat(),
             d.reference, ("order", _order_url(d.order_id)) if d.order_id else "none",
             d.signed_amount] for d in docs
        ])  # fmt: skip
    tx_headers = ["Transaction", "Type", "Date", "Order", "Payout", "Amount", "Fee", "Net"]

    def tx_table(txs: QuerySet[ProcessorTransaction]) -> Table:
        return Table(tx_headers, [
            [t.external_id, t.vendor_type or t.get_category_display(),
             t.occurred_at.date().isoformat(),
             (t.source_order_id or "order", _order_url(t.order_id)) if t.order_id
             else t.source_order_id, (t.payout_external_id, _payout_url(t.payout_id))
             if t.payout_id else t.payout_external_id, t.amount, t.fee, t.net]
            for t in txs.order_by("occurred_at", "pk")
        ])  # fmt: skip

    if column == "processor":
        return tx_table(ProcessorTransaction.objects.filter(
            order__in=orders, currency=currency, occurred_at__date__lte=period.end,
            category__in=(TxCategory.CHARGE, TxCategory.REFUND)))  # fmt: skip
    if column == "fees":
        return tx_table(ProcessorTransaction.objects.filter(
            Q(order__channel_id=channel_id) | Q(order__isnull=True, channel_id=channel_id),
            Q(category=TxCategory.FEE) | ~Q(fee=0), currency=currency,
            occurred_at__date__range=(period.start, period.end)))  # fmt: skip
    payouts = Payout.objects.filter(channel_id=channel_id, currency=currency,
                                    paid_on__range=(period.start, period.end))  # fmt: skip
    if column == "payouts":
        return Table(["Payout", "Source", "Paid on", "Amount"], [
            [(p.external_id, _payout_url(p.pk)), p.get_source_display(), p.paid_on.isoformat(),
             p.amount] for p in payouts.order_by("paid_on", "pk")
        ])  # fmt: skip
    links = (Link.objects.filter(kind=LinkKind.PAYOUT_BANK, payout__in=payouts,
                                 bank_line__booked_on__lte=period.end)
             .exclude(state=LinkState.MISSING).select_related("bank_line", "payout")
             .order_by("bank_line__booked_on", "pk"))  # fmt: skip
    return Table(["Booked", "Account", "Text", "Deposit", "Payout", "State", "Payout amount"], [
        [ln.bank_line.booked_on.isoformat(), str(ln.bank_line.account), ln.bank_line.text,
         ln.bank_line.amount, (ln.payout.external_id, _payout_url(ln.payout_id)),
         ln.get_state_display(), ln.payout.amount]
        for ln in links if ln.bank_line is not None and ln.payout is not None
    ])  # fmt: skip


def daily_difference(period: Period, *, channel_id: int, currency: str
                     ) -> list[tuple[date, Decimal]]:  # fmt: skip
    """Per day of the period: storefront sales (placed that day) - ERP revenue (dated that day)."""
    per_day: dict[date, Decimal] = defaultdict(Decimal)
    orders = _period_orders(period, channel_id, currency)
    for placed, total in orders.values_list("placed_at", "total"):
        per_day[placed.date()] += total
    docs = ErpDocument.objects.filter(order__channel_id=channel_id, currency=currency,
                                      document_date__range=(period.start, period.end))  # fmt: skip
    for doc in docs:
        per_day[doc.document_date] -= doc.signed_amount
    days = (period.end - period.start).days + 1
    return [(period.start + timedelta(days=i), per_day[period.start + timedelta(days=i)])
            for i in range(days)]  # fmt: skip
