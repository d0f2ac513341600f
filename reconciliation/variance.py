"""Variance with root causes: for a period and a channel, the columns finance compares and every
difference between neighbouring columns broken into categorized items.

Columns (per channel and currency; orders by when they were placed, the rest by their own date):

- ``sales``: storefront gross sales, our orders' totals (cancelled ones left out);
- ``refunds``: our refund records of those orders (not failed);
- ``erp``: ERP revenue, invoices less credit notes dated in the period, of the channel's orders;
- ``processor``: processor gross, the charges less refunds of the channel's orders;
- ``fees``: the processors' fees (fee rows and the fees taken from transactions);
- ``payouts``: net paid out in the period;
- ``bank``: the deposits matched to those payouts.

Comparisons and what explains them (``Category``):

- **sales - refunds vs ERP**, per order: missing in ERP, duplicated in ERP, an invoice dated
  in another period (timing), an amount difference within half a minor unit per line
  (rounding) or beyond it (amount mismatch); an ERP document that names no order is
  unexplained.
- **sales - refunds vs processor**, per order: the part paid with gift cards or store credit,
  chargebacks and disputes, refunds the processor made after the period (refunds after payout),
  shipping insurance and duties the channel collected outside the processor (payment rows of
  ``OUTSIDE_EXTRAS_METHODS``), an order the processor settled only in another currency (FX:
  Shopify's balance is in the shop's currency, the order in the buyer's); the rest of an
  order's difference is an amount mismatch; an order no transaction names, paid by card, is
  unexplained.
- **processor net vs payouts**: fees, chargebacks, reserves held and released, transactions
  paid out in another period or not yet (timing), payouts whose own transactions do not add up
  (vendor-data defect), payouts in another currency (FX).
- **payouts vs bank**: deposits booked after the period (timing, in transit), a deposit that
  differs from its payouts (amount mismatch), a payout with no deposit after its window
  (unexplained).

What the items do not cover of a difference is one ``unexplained`` item for that comparison. A
person resolves an unexplained item with a category and a note; computing again keeps it.
"""

from __future__ import annotations

import calendar
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from orders import money
from orders.errors import InvalidInput
from orders.figures import VarianceFigure
from orders.models import Order, OrderPayment, OrderStatus, Refund, RefundStatus
from reconciliation.matching import BANK_WINDOW_AFTER
from reconciliation.models import (
    AuditEntry,
    Category,
    Comparison,
    ErpDocType,
    ErpDocument,
    Link,
    LinkKind,
    LinkState,
    Payout,
    ProcessorTransaction,
    TxCategory,
    VarianceItem,
)

COLUMNS = ("sales", "refunds", "erp", "processor", "fees", "payouts", "bank")
# Payment methods the processors never see (paid inside the storefront).
STORE_CREDIT_METHODS = frozenset({"gift_card", "store_credit", "shopify_store_credit"})
# Parts of an order's total the channel collected outside the processor (duties the carrier
# collects on delivery, a shipping-insurance app's charge): payment rows of these methods.
OUTSIDE_EXTRAS_METHODS = frozenset({"duties", "import_duties", "shipping_insurance"})
MONEY_MOVES = (TxCategory.CHARGE, TxCategory.REFUND)
# Processor movements other than charges, refunds and fees, and the category they explain.
OTHER_MOVES = {
    TxCategory.DISPUTE: Category.CHARGEBACKS,
    TxCategory.DISPUTE_REVERSAL: Category.CHARGEBACKS,
    TxCategory.RESERVE_HOLD: Category.RESERVES,
    TxCategory.RESERVE_RELEASE: Category.RESERVES,
    TxCategory.GIFT_CARD: Category.GIFT_CARDS,
    TxCategory.ADJUSTMENT: Category.AMOUNT_MISMATCH,
    TxCategory.OTHER: Category.UNEXPLAINED,
}


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive
    label: str

    @classmethod
    def parse(cls, text: str) -> Period:
        """``YYYY-MM`` or ``YYYY-MM-DD..YYYY-MM-DD``."""
        text = text.strip()
        if m := re.fullmatch(r"(\d{4})-(\d{2})", text):
            year, month = int(m[1]), int(m[2])
            if not 1 <= month <= 12:
                raise InvalidInput(f"{text!r}: no month {month}", code="invalid_period")
            last = calendar.monthrange(year, month)[1]
            return cls(date(year, month, 1), date(year, month, last), text)
        if m := re.fullmatch(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})", text):
            start, end = date.fromisoformat(m[1]), date.fromisoformat(m[2])
            if end < start:
                raise InvalidInput(f"{text!r} ends before it starts", code="invalid_period")
            return cls(start, end, text)
        raise InvalidInput(f"{text!r} is not a period (YYYY-MM or YYYY-MM-DD..YYYY-MM-DD)",
                           code="invalid_period")  # fmt: skip

    def __contains__(self, day: date) -> bool:
        return self.start <= day <= self.end


@dataclass
class Row:
    """One channel and currency of a period: its columns, and per comparison the difference,
    what is explained by category and what is not."""

    channel_id: int | None
    channel: str
    currency: str
    columns: dict[str, Decimal] = field(default_factory=dict)
    differences: dict[str, Decimal] = field(default_factory=dict)
    explained: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    unexplained: dict[str, Decimal] = field(default_factory=dict)

    @property
    def unexplained_total(self) -> Decimal:
        return sum((abs(v) for v in self.unexplained.values()), Decimal(0))

    @property
    def variance_percent(self) -> Decimal | None:
        """sales - refunds vs ERP, as a share of the sales (the seed's headline figure)."""
        base = self.columns.get("sales", Decimal(0)) - self.columns.get("refunds", Decimal(0))
        if not base:
            return None
        diff = self.differences.get(Comparison.SALES_ERP, Decimal(0))
        return (diff / base * 100).quantize(Decimal("0.01"))


@dataclass
class _Items:
    """The items of one row being computed (key -> fields)."""

    period: Period
    channel_id: int | None
    currency: str
    found: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, comparison: str, category: str, amount: Decimal, description: str,
            subject: str, **refs: Any) -> None:  # fmt: skip
        if amount == 0:
            return
        key = (f"{self.period.label}:{self.channel_id or '-'}:{self.currency}:{comparison}:"
               f"{subject}:{category}")  # fmt: skip
        if key in self.found:
            self.found[key]["amount"] += amount
            return
        self.found[key] = dict(comparison=comparison, category=category, amount=amount,
                               description=description[:500], **refs)  # fmt: skip

    def total(self, comparison: str) -> Decimal:
        return sum((f["amount"] for f in self.found.values() if f["comparison"] == comparison),
                   Decimal(0))  # fmt: skip


def _s(value: Decimal, currency: str) -> str:
    return f"{money.normalize(value, currency)} {currency}"


def _half_unit(currency: str) -> Decimal:
    return Decimal(5).scaleb(-money.minor_units(currency) - 1)


# --- the computation -----------------------------------------------------------------------------
def _orders(period: Period, channel_id: int) -> list[Order]:
    return list(
        Order.objects.filter(channel_id=channel_id, placed_at__date__gte=period.start,
                             placed_at__date__lte=period.end)
        .exclude(status=OrderStatus.CANCELLED)
        .only("pk", "currency", "total", "refunded_total", "captured_total", "external_id",
              "order_number", "shipping_total", "channel_id")
    )  # fmt: skip


def compute_row(period: Period, channel: Any, currency: str) -> tuple[Row, _Items]:
    cur = currency
    row = Row(channel_id=channel.pk, channel=channel.slug, currency=cur)
    items = _Items(period=period, channel_id=channel.pk, currency=cur)
    orders = [o for o in _orders(period, channel.pk) if o.currency == cur]
    ids = [o.pk for o in orders]
    by_id = {o.pk: o for o in orders}
    refunds = (Refund.objects.filter(order_id__in=ids).exclude(status=RefundStatus.FAILED)
               .aggregate(total=Sum("amount"))["total"] or Decimal(0))  # fmt: skip
    row.columns["sales"] = sum((o.total for o in orders), Decimal(0))
    row.columns["refunds"] = refunds

    # --- ERP ---
    docs = list(ErpDocument.objects.filter(
        Q(order_id__in=ids) | Q(order__isnull=True, document_date__range=(period.start,
                                                                          period.end)),
        currency=cur,
    ))  # fmt: skip
    in_period = [d for d in docs if d.document_date in period]
    row.columns["erp"] = sum((d.signed_amount for d in in_period if d.order_id in by_id
                              or d.order_id is None), Decimal(0))  # fmt: skip
    per_order_docs: dict[int, list[ErpDocument]] = defaultdict(list)
    for d in docs:
        if d.order_id is None:
            items.add(Comparison.SALES_ERP, Category.UNEXPLAINED, -d.signed_amount,
                      f"{d} ({_s(d.amount, cur)}) names no order we know ({d.reference})",
                      f"erp:{d.pk}", erp_document=d)  # fmt: skip
        else:
            per_order_docs[d.order_id].append(d)
    lines = dict(Order.objects.filter(pk__in=ids).annotate(n=Count("lines")).values_list("pk", "n"))
    for order in orders:
        label = order.order_number or order.external_id
        expected = order.total - order.refunded_total
        mine = per_order_docs.get(order.pk, [])
        invoices = sorted((d for d in mine if d.doc_type == ErpDocType.INVOICE),
                          key=lambda d: (d.document_date, d.document_number))  # fmt: skip
        if not invoices:
            items.add(Comparison.SALES_ERP, Category.MISSING_IN_ERP, expected,
                      f"order {label}: no ERP invoice ({_s(expected, cur)})", f"order:{order.pk}",
                      order=order)  # fmt: skip
            continue
        for extra in (d for d in invoices[1:] if d.document_date in period):
            items.add(Comparison.SALES_ERP, Category.DUPLICATED_IN_ERP, -extra.amount,
                      f"order {label}: {extra} duplicates {invoices[0]}", f"erp:{extra.pk}",
                      order=order, erp_document=extra)  # fmt: skip
        counted = [d for d in mine if d not in invoices[1:]]
        outside = [d for d in counted if d.document_date not in period]
        for d in outside:
            items.add(Comparison.SALES_ERP, Category.TIMING, d.signed_amount,
                      f"order {label}: {d} is dated {d.document_date.isoformat()}, outside "
                      f"the period", f"erp:{d.pk}", order=order, erp_document=d)  # fmt: skip
        booked = sum((d.signed_amount for d in counted), Decimal(0))
        rest = expected - booked
        if rest:
            bound = _half_unit(cur) * max(int(lines.get(order.pk) or 1), 1)
            category = Category.ROUNDING if abs(rest) <= bound else Category.AMOUNT_MISMATCH
            items.add(Comparison.SALES_ERP, category, rest,
                      f"order {label}: the ERP has {_s(booked, cur)}, the order "
                      f"{_s(expected, cur)}", f"order:{order.pk}", order=order)  # fmt: skip

    # --- processor ---
    txs = list(ProcessorTransaction.objects.filter(order_id__in=ids, currency=cur))
    per_order_tx: dict[int, list[ProcessorTransaction]] = defaultdict(list)
    for t in txs:
        per_order_tx[t.order_id].append(t)  # type: ignore[index]
    charges = sum((t.amount for t in txs if t.category in (TxCategory.CHARGE, TxCategory.REFUND)
                   and t.occurred_at.date() <= period.end), Decimal(0))  # fmt: skip
    row.columns["processor"] = charges
    credit: dict[int, Decimal] = defaultdict(Decimal)
    extras: dict[int, Decimal] = defaultdict(Decimal)
    for method_row in OrderPayment.objects.filter(
        order_id__in=ids, method__in=STORE_CREDIT_METHODS | OUTSIDE_EXTRAS_METHODS
    ):
        into = credit if method_row.method in STORE_CREDIT_METHODS else extras
        into[method_row.order_id] += (method_row.captured or Decimal(0)) - method_row.refunded
    # Orders the processor settled in another currency (a presentment currency converted).
    converted = set(ProcessorTransaction.objects.filter(order_id__in=ids).exclude(currency=cur)
                    .values_list("order_id", flat=True))  # fmt: skip
    for order in orders:
        label = order.order_number or order.external_id
        expected = order.total - order.refunded_total
        mine_tx = per_order_tx.get(order.pk, [])
        gift = credit.get(order.pk, Decimal(0))
        if gift:
            items.add(Comparison.SALES_PROCESSOR, Category.GIFT_CARDS, gift,
                      f"order {label}: {_s(gift, cur)} paid with gift cards or store credit",
                      f"order:{order.pk}", order=order)  # fmt: skip
        collected = extras.get(order.pk, Decimal(0))
        if collected:
            items.add(Comparison.SALES_PROCESSOR, Category.SHIPPING_EXTRAS, collected,
                      f"order {label}: {_s(collected, cur)} of duties or shipping insurance "
                      f"collected outside the processor", f"order:{order.pk}",
                      order=order)  # fmt: skip
            gift += collected
        if not mine_tx:
            rest = expected - gift
            if rest and order.pk in converted:
                items.add(Comparison.SALES_PROCESSOR, Category.FX, rest,
                          f"order {label}: {_s(rest, cur)} settled by the processor in another "
                          f"currency", f"order:{order.pk}", order=order)  # fmt: skip
            elif rest:
                items.add(Comparison.SALES_PROCESSOR, Category.UNEXPLAINED, rest,
                          f"order {label}: no processor transaction names it "
                          f"({_s(rest, cur)})", f"order:{order.pk}", order=order)  # fmt: skip
            continue
        seen = Decimal(0)
        for t in mine_tx:
            if t.category in MONEY_MOVES:
                if t.occurred_at.date() > period.end:
                    items.add(Comparison.SALES_PROCESSOR, Category.REFUNDS_AFTER_PAYOUT
                              if t.category == TxCategory.REFUND else Category.TIMING, t.amount,
                              f"order {label}: the processor's {t.vendor_type or t.category} "
                              f"of {_s(t.amount, cur)} is dated "
                              f"{t.occurred_at.date().isoformat()}", f"tx:{t.pk}",
                              order=order)  # fmt: skip
                seen += t.amount
        rest = expected - gift - seen
        if rest:
            items.add(Comparison.SALES_PROCESSOR, Category.AMOUNT_MISMATCH, rest,
                      f"order {label}: the processor charged {_s(seen, cur)} net of refunds, "
                      f"the order is {_s(expected, cur)}", f"order:{order.pk}",
                      order=order)  # fmt: skip

    # --- processor vs payouts ---
    payouts = list(Payout.objects.filter(channel_id=channel.pk, currency=cur,
                                         paid_on__range=(period.start, period.end)))  # fmt: skip
    row.columns["payouts"] = sum((p.amount for p in payouts), Decimal(0))
    period_tx = list(ProcessorTransaction.objects.filter(
        Q(order__channel_id=channel.pk) | Q(order__isnull=True, channel_id=channel.pk),
        currency=cur, occurred_at__date__range=(period.start, period.end),
    ).exclude(category=TxCategory.PAYOUT).select_related("payout"))  # fmt: skip
    # gross (charges less refunds) - payouts = fees + disputes + reserves + other movements
    # + timing (paid out in another period) + payouts whose transactions do not add up.
    gross = sum((t.amount for t in period_tx if t.category in MONEY_MOVES), Decimal(0))
    fees = sum((t.fee for t in period_tx), Decimal(0)) - sum(
        (t.amount for t in period_tx if t.category == TxCategory.FEE), Decimal(0)
    )
    row.columns["fees"] = fees
    items.add(Comparison.PROCESSOR_PAYOUTS, Category.FEES, fees,
              f"processor fees of the period: {_s(fees, cur)}", "fees")  # fmt: skip
    for kind, why in OTHER_MOVES.items():
        part = sum((t.amount for t in period_tx if t.category == kind), Decimal(0))
        items.add(Comparison.PROCESSOR_PAYOUTS, why, -part,
                  f"{TxCategory(kind).label.lower()}: {_s(part, cur)}", str(kind))  # fmt: skip
    for t in period_tx:
        if t.payout is None or t.payout.paid_on > period.end:
            when = (f"paid out {t.payout.paid_on.isoformat()}" if t.payout is not None
                    else "not paid out yet")  # fmt: skip
            items.add(Comparison.PROCESSOR_PAYOUTS, Category.TIMING, t.net,
                      f"transactions of the period {when}", f"timing:{when}")  # fmt: skip
    earlier = ProcessorTransaction.objects.filter(
        payout__in=payouts, occurred_at__date__lt=period.start).exclude(
        category=TxCategory.PAYOUT).aggregate(total=Sum("net"))["total"] or Decimal(0)  # fmt: skip
    items.add(Comparison.PROCESSOR_PAYOUTS, Category.TIMING, -earlier,
              f"earlier transactions paid out in the period ({_s(earlier, cur)})",
              "timing:earlier")  # fmt: skip
    sums = dict(
        ProcessorTransaction.objects.filter(payout__in=payouts).exclude(category=TxCategory.PAYOUT)
        .values_list("payout_id").annotate(total=Sum("net")).values_list("payout_id", "total")
    )  # fmt: skip
    for p in payouts:
        listed = sums.get(p.pk)
        if listed is not None and listed != p.amount:
            items.add(Comparison.PROCESSOR_PAYOUTS, Category.VENDOR_DEFECT, listed - p.amount,
                      f"payout {p.external_id}: its transactions sum to {_s(listed, cur)}, "
                      f"the payout is {_s(p.amount, cur)}", f"payout:{p.pk}",
                      payout=p)  # fmt: skip

    # --- payouts vs bank ---
    links = {ln.payout_id: ln for ln in Link.objects.filter(
        kind=LinkKind.PAYOUT_BANK, payout__in=payouts).select_related("bank_line")}  # fmt: skip
    bank_total = Decimal(0)
    for p in payouts:
        link = links.get(p.pk)
        line = link.bank_line if link is not None else None
        good = link is not None and line is not None and link.state in (
            LinkState.MATCHED, LinkState.PROPOSED, LinkState.PARTIAL)  # fmt: skip
        if not good or line is None:
            window_ends = p.paid_on + timedelta(days=BANK_WINDOW_AFTER)
            if window_ends > period.end or window_ends >= timezone.now().date():
                items.add(Comparison.PAYOUTS_BANK, Category.TIMING, p.amount,
                          f"payout {p.external_id} of {p.paid_on.isoformat()}: in transit",
                          f"payout:{p.pk}", payout=p)  # fmt: skip
            else:
                items.add(Comparison.PAYOUTS_BANK, Category.UNEXPLAINED, p.amount,
                          f"payout {p.external_id} ({_s(p.amount, cur)}, "
                          f"{p.paid_on.isoformat()}): no bank deposit", f"payout:{p.pk}",
                          payout=p)  # fmt: skip
            continue
        if line.booked_on > period.end:
            items.add(Comparison.PAYOUTS_BANK, Category.TIMING, p.amount,
                      f"payout {p.external_id}: deposited {line.booked_on.isoformat()}",
                      f"payout:{p.pk}", payout=p, bank_line=line)  # fmt: skip
            continue
        bank_total += p.amount
        if link is not None and link.difference and not link.group:
            items.add(Comparison.PAYOUTS_BANK, Category.AMOUNT_MISMATCH, -link.difference,
                      f"payout {p.external_id}: deposit {_s(line.amount, cur)}",
                      f"payout:{p.pk}", payout=p, bank_line=line)  # fmt: skip
            bank_total += link.difference
    row.columns["bank"] = bank_total

    # --- differences and what nothing explains ---
    diffs = {
        Comparison.SALES_ERP: row.columns["sales"] - row.columns["refunds"] - row.columns["erp"],
        Comparison.SALES_PROCESSOR:
            row.columns["sales"] - row.columns["refunds"] - row.columns["processor"],
        Comparison.PROCESSOR_PAYOUTS: gross - row.columns["payouts"],
        Comparison.PAYOUTS_BANK: row.columns["payouts"] - row.columns["bank"],
    }  # fmt: skip
    for comparison, diff in diffs.items():
        row.differences[comparison] = diff
        rest = diff - items.total(comparison)
        if rest:
            items.add(comparison, Category.UNEXPLAINED, rest,
                      f"{Comparison(comparison).label}: {_s(rest, cur)} no item explains",
                      "residual")  # fmt: skip
    for f in items.found.values():
        bucket = row.explained.setdefault(f["comparison"], {})
        bucket[f["category"]] = bucket.get(f["category"], Decimal(0)) + f["amount"]
    for comparison in diffs:
        row.unexplained[comparison] = row.explained.get(comparison, {}).pop(
            Category.UNEXPLAINED, Decimal(0))  # fmt: skip
    return row, items


@transaction.atomic
def compute_period(period: Period, *, channel_id: int | None = None) -> list[Row]:
    """Every channel's rows (one per currency it sold in) for the period; the items saved (a
    person's resolution of an item kept), items no longer found removed."""
    from channels.models import SalesChannel

    channels = SalesChannel.objects.order_by("slug")
    if channel_id is not None:
        channels = channels.filter(pk=channel_id)
    rows: list[Row] = []
    keep: set[str] = set()
    for channel in channels:
        currencies = set(Order.objects.filter(
            channel=channel, placed_at__date__range=(period.start, period.end)
        ).values_list("currency", flat=True)) | set(Payout.objects.filter(
            channel=channel, paid_on__range=(period.start, period.end)
        ).values_list("currency", flat=True))  # fmt: skip
        for cur in sorted(currencies):
            row, items = compute_row(period, channel, cur)
            rows.append(row)
            for key, fields in items.found.items():
                keep.add(key)
                VarianceItem.objects.update_or_create(
                    key=key, defaults={**fields, "period": period.label, "channel": channel,
                                       "currency": cur, "computed_at": timezone.now()},
                )  # fmt: skip
    stale = VarianceItem.objects.filter(period=period.label).exclude(key__in=keep)
    if channel_id is not None:
        stale = stale.filter(channel_id=channel_id)
    stale.filter(resolved_by__isnull=True).delete()
    _apply_resolutions(rows, period)
    return rows


def _apply_resolutions(rows: Iterable[Row], period: Period) -> None:
    """A person's resolution moves an unexplained item into the category they chose."""
    resolved = VarianceItem.objects.filter(period=period.label, category=Category.UNEXPLAINED,
                                           resolved_by__isnull=False)  # fmt: skip
    by_row = {(r.channel_id, r.currency): r for r in rows}
    for item in resolved:
        row = by_row.get((item.channel_id, item.currency))
        if row is None:
            continue
        row.unexplained[item.comparison] = row.unexplained.get(item.comparison, Decimal(0)) \
            - item.amount  # fmt: skip
        bucket = row.explained.setdefault(item.comparison, {})
        bucket[item.resolved_category] = bucket.get(item.resolved_category, Decimal(0)) \
            + item.amount  # fmt: skip


@transaction.atomic
def item_resolve(*, item_id: int, category: str, note: str, user: Any) -> VarianceItem:
    """A person explains an unexplained item: a category and a note (both required)."""
    if category not in Category.values or category == Category.UNEXPLAINED:
        raise InvalidInput(f"Choose the category that explains it, not {category!r}",
                           code="invalid_category")  # fmt: skip
    if not note.strip():
        raise InvalidInput("Say in a note why it is explained", code="note_required")
    item = VarianceItem.objects.select_for_update().get(pk=item_id)
    item.resolved_category, item.note = category, note.strip()
    item.resolved_by, item.resolved_at = user, timezone.now()
    item.save(update_fields=["resolved_category", "note", "resolved_by", "resolved_at"])
    AuditEntry.objects.create(
        user=user, action="variance_resolve", subject=f"variance:{item.pk}",
        data={"category": category, "note": note.strip(), "amount": str(item.amount),
              "currency": item.currency},
    )  # fmt: skip
    return item


def kpi_variance(first: date, last: date, channel_id: int | None = None) -> list[VarianceFigure]:
    """The variance of the days ``first`` to ``last`` per channel and currency, for the KPIs
    and the weekly summary (registered in ``orders.figures``). Read only: unlike
    ``compute_period`` it saves no items."""
    from channels.models import SalesChannel

    period = Period(first, last, f"{first.isoformat()}..{last.isoformat()}")
    channels = SalesChannel.objects.order_by("slug")
    if channel_id is not None:
        channels = channels.filter(pk=channel_id)
    out = []
    for channel in channels:
        currencies = sorted(set(Order.objects.filter(
            channel=channel, placed_at__date__range=(first, last)
        ).values_list("currency", flat=True)))  # fmt: skip
        for cur in currencies:
            row, _items = compute_row(period, channel, cur)
            out.append(VarianceFigure(
                channel=channel.slug, currency=cur,
                sales=money.normalize(row.columns.get("sales", Decimal(0)), cur),
                unexplained=money.normalize(row.unexplained_total, cur),
                variance_percent=row.variance_percent,
            ))  # fmt: skip
    return out
