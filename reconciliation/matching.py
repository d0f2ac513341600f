"""The matching graph: order <-> processor transactions <-> payout <-> bank line, and order <->
ERP documents. Each edge is a ``Link`` with a state and the reason in words.

- **Order <-> transactions**: a processor transaction names the channel's order id
  (``source_order_id``); it is tied to our order with that external id in its channel (or, for
  a processor without a channel, in the one channel that has it). Per order, the charges are
  compared with what we captured and the refunds with what we refunded.
- **Payout <-> transactions**: the transactions a payout names sum to its net (or not: the
  vendor's data is inconsistent, and the edge says by how much).
- **Payout <-> bank line**: candidates are bank lines of the payout's currency and exact amount
  booked from ``BANK_WINDOW_BEFORE`` days before to ``BANK_WINDOW_AFTER`` days after its date,
  not taken by another payout. Ranked as ERPNext's bank reconciliation tool does: 1, +2 when the
  payout's trace id or reference is in the bank text, +1 for the exact amount, +1 for the same
  day. One candidate, or a best one that names the payout, is a match; several equally good are
  proposed for a person. A bank line no single payout explains is tried against sets of two to
  ``SET_MAX`` unmatched payouts in its window: a set whose sum is the deposit is proposed (a
  person confirms), or matched when the bank text names every payout of it.
- **Order <-> ERP**: ERP documents carry our correlation id (NetSuite's externalId) or the
  channel's order id. Per order, its invoices are compared with the order total and its credit
  notes with what was refunded; two invoices for one order is a duplicate; a shipped order of
  the period without an invoice is missing in the ERP.

Matching again updates each edge in place (``Link.key``); an edge a person made or confirmed
(``manual``) is never touched, and the subjects it joins are left out of automatic matching.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q, Sum

from orders import money
from orders.models import Order, OrderStatus
from reconciliation.models import (
    AuditEntry,
    BankLine,
    ErpDocType,
    ErpDocument,
    Link,
    LinkKind,
    LinkState,
    Payout,
    ProcessorTransaction,
    Source,
    TxCategory,
)

BANK_WINDOW_BEFORE = 2
BANK_WINDOW_AFTER = 7
SET_MAX = 4  # payouts in one deposit
SET_CANDIDATES_MAX = 16  # payouts in a deposit's window tried for sets
CHUNK = 2000
# Which channel kind a processor's orders come from (Stripe serves any storefront).
SOURCE_CHANNEL_KIND: dict[str, str] = {Source.SHOPIFY_PAYMENTS: "shopify", Source.AMAZON: "amazon"}
MONEY_IN = (TxCategory.CHARGE,)
MONEY_BACK = (TxCategory.REFUND,)
SHIPPED = (OrderStatus.SHIPPED, OrderStatus.PARTIALLY_SHIPPED, OrderStatus.DELIVERED,
           OrderStatus.CLOSED)  # fmt: skip


@dataclass
class MatchSummary:
    edges: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> state -> count
    tied: int = 0  # transactions newly tied to their order

    def count(self, kind: str, state: str) -> None:
        self.edges.setdefault(kind, {}).setdefault(state, 0)
        self.edges[kind][state] += 1


def _s(value: Decimal, currency: str) -> str:
    return f"{money.normalize(value, currency)} {currency}"


def _manual_keys(kind: str) -> set[str]:
    return set(Link.objects.filter(kind=kind, manual=True).values_list("key", flat=True))


def _save(key: str, summary: MatchSummary, manual: set[str], **fields: Any) -> None:
    if key in manual:
        return
    expected, found = fields.get("expected", Decimal(0)), fields.get("found", Decimal(0))
    fields.setdefault("difference", found - expected)
    Link.objects.update_or_create(key=key, defaults=fields)
    summary.count(fields["kind"], fields["state"])


class _Edges:
    """Per-order edges saved a chunk at a time: one ``INSERT ... ON CONFLICT (key) DO UPDATE``
    per batch instead of a select and a write per order (``matched_at`` of an existing edge is
    kept, as ``update_or_create`` keeps it; a person's edge is left out, as ``_save`` does)."""

    def __init__(self, summary: MatchSummary, manual: set[str]) -> None:
        self.summary, self.manual = summary, manual
        self.pending: dict[str, dict[str, Any]] = {}

    def add(self, key: str, **fields: Any) -> None:
        if key in self.manual:
            return
        expected, found = fields.get("expected", Decimal(0)), fields.get("found", Decimal(0))
        fields.setdefault("difference", found - expected)
        self.pending[key] = fields
        self.summary.count(fields["kind"], fields["state"])
        if len(self.pending) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        by_shape: dict[tuple[str, ...], list[Link]] = defaultdict(list)
        for key, fields in self.pending.items():
            by_shape[tuple(sorted(fields))].append(Link(key=key, **fields))
        for shape, links in by_shape.items():
            Link.objects.bulk_create(links, update_conflicts=True, unique_fields=["key"],
                                     update_fields=list(shape), batch_size=500)  # fmt: skip
        self.pending.clear()


# --- order <-> transactions ----------------------------------------------------------------------
def tie_transactions(*, summary: MatchSummary) -> None:
    """Point each transaction that names an order id at our order (by channel and external
    id), in chunks: no query per transaction (one bulk update per chunk)."""
    loose = ProcessorTransaction.objects.filter(order__isnull=True).exclude(source_order_id="")
    pending = list(loose.values_list("pk", "source", "channel_id", "source_order_id"))
    for start in range(0, len(pending), CHUNK):
        chunk = pending[start : start + CHUNK]
        ids = {row[3] for row in chunk}
        orders = Order.objects.filter(Q(external_id__in=ids) | Q(order_number__in=ids)).values_list(
            "pk", "channel_id", "channel__kind", "external_id", "order_number")  # fmt: skip
        by_channel: dict[tuple[int, str], int] = {}
        by_kind: dict[tuple[str, str], set[int]] = defaultdict(set)
        anywhere: dict[str, set[int]] = defaultdict(set)
        for pk, channel_id, kind, external_id, number in orders:
            for name in {external_id, number} - {""}:
                by_channel.setdefault((channel_id, name), pk)
                by_kind[(kind, name)].add(pk)
                anywhere[name].add(pk)
        updates: dict[int, list[int]] = defaultdict(list)
        for tx_id, source, channel_id, order_ref in chunk:
            order_id = by_channel.get((channel_id, order_ref)) if channel_id else None
            if order_id is None:
                kind = SOURCE_CHANNEL_KIND.get(source)
                found = by_kind.get((kind, order_ref), set()) if kind else anywhere[order_ref]
                order_id = next(iter(found)) if len(found) == 1 else None
            if order_id is not None:
                updates[order_id].append(tx_id)
        ties = [ProcessorTransaction(pk=tx_id, order_id=order_id)
                for order_id, tx_ids in updates.items() for tx_id in tx_ids]  # fmt: skip
        summary.tied += ProcessorTransaction.objects.bulk_update(ties, ["order"], batch_size=500)


def match_orders_to_transactions(
    *, summary: MatchSummary, since: date | None = None, until: date | None = None,
    channel_id: int | None = None,
) -> None:  # fmt: skip
    """One edge per order that has processor transactions (charges vs captured, refunds vs
    refunded), and a ``missing`` edge for each order of the period, captured in a channel the
    processors report on, that no transaction names."""
    manual = _manual_keys(LinkKind.ORDER_TRANSACTION)
    edges = _Edges(summary, manual)
    sums = (
        ProcessorTransaction.objects.filter(order__isnull=False)
        .values("order_id", "category")
        .annotate(total=Sum("amount"))
    )
    if channel_id is not None:
        sums = sums.filter(order__channel_id=channel_id)
    per_order: dict[int, dict[str, Decimal]] = defaultdict(dict)
    for row in sums:
        per_order[row["order_id"]][row["category"]] = row["total"] or Decimal(0)
    for start in range(0, len(per_order), CHUNK):
        ids = list(per_order)[start : start + CHUNK]
        for order in Order.objects.filter(pk__in=ids).only(
                "pk", "currency", "captured_total", "refunded_total", "total"):  # fmt: skip
            totals = per_order[order.pk]
            charged = sum((totals.get(c, Decimal(0)) for c in MONEY_IN), Decimal(0))
            refunded = -sum((totals.get(c, Decimal(0)) for c in MONEY_BACK), Decimal(0))
            others = {c: v for c, v in totals.items() if c not in (*MONEY_IN, *MONEY_BACK)}
            expected = order.captured_total - order.refunded_total
            found = charged - refunded
            cur = order.currency
            words = [
                f"charged {_s(charged, cur)} (captured {_s(order.captured_total, cur)})",
                f"refunded {_s(refunded, cur)} (recorded {_s(order.refunded_total, cur)})",
            ]
            words += [
                f"{TxCategory(c).label.lower()} {_s(v, cur)}" for c, v in sorted(others.items())
            ]
            same = charged == order.captured_total and refunded == order.refunded_total
            edges.add(f"{LinkKind.ORDER_TRANSACTION}:{order.pk}",
                      kind=LinkKind.ORDER_TRANSACTION, order=order, currency=cur,
                      state=LinkState.MATCHED if same else LinkState.AMOUNT_MISMATCH,
                      reason="; ".join(words), expected=expected, found=found)  # fmt: skip
    edges.flush()
    if since is None or until is None:
        return
    reported = set(ProcessorTransaction.objects.filter(order__isnull=False)
                   .values_list("order__channel_id", flat=True).distinct())  # fmt: skip
    quiet = Order.objects.filter(
        channel_id__in=[channel_id] if channel_id is not None else reported,
        placed_at__date__gte=since,
        placed_at__date__lte=until,
        captured_total__gt=0,
    ).exclude(processor_transactions__isnull=False)
    for order in quiet.only("pk", "currency", "captured_total", "refunded_total"):
        if order.channel_id not in reported:
            continue
        expected = order.captured_total - order.refunded_total
        edges.add(f"{LinkKind.ORDER_TRANSACTION}:{order.pk}",
                  kind=LinkKind.ORDER_TRANSACTION, order=order, currency=order.currency,
                  state=LinkState.MISSING, expected=expected, found=Decimal(0),
                  reason=f"no processor transaction names this order (captured "
                         f"{_s(order.captured_total, order.currency)})")  # fmt: skip
    edges.flush()


# --- payout <-> transactions ---------------------------------------------------------------------
def match_payouts_to_transactions(*, summary: MatchSummary, payouts: Iterable[Payout]) -> None:
    manual = _manual_keys(LinkKind.PAYOUT_TRANSACTIONS)
    for payout in payouts:
        txs = ProcessorTransaction.objects.filter(payout=payout).exclude(
            category=TxCategory.PAYOUT)  # fmt: skip
        found = txs.aggregate(total=Sum("net"))["total"] or Decimal(0)
        count = txs.count()
        cur = payout.currency
        if count == 0:
            state, reason = LinkState.MISSING, "no transactions of this payout were imported"
        elif found == payout.amount:
            state, reason = LinkState.MATCHED, f"{count} transaction(s) sum to {_s(found, cur)}"
        else:
            state = LinkState.AMOUNT_MISMATCH
            reason = (f"{count} transaction(s) sum to {_s(found, cur)}, the payout is "
                      f"{_s(payout.amount, cur)}: the vendor's data does not balance")  # fmt: skip
        _save(f"{LinkKind.PAYOUT_TRANSACTIONS}:{payout.pk}", summary, manual,
              kind=LinkKind.PAYOUT_TRANSACTIONS, payout=payout, currency=cur, state=state,
              reason=reason, expected=payout.amount, found=found)  # fmt: skip


# --- payout <-> bank -----------------------------------------------------------------------------
def _names(text: str, payout: Payout) -> bool:
    marks = [m for m in (payout.trace_id, payout.external_id) if m and len(m) >= 4]
    low = text.lower()
    return any(m.lower() in low for m in marks)


def bank_score(payout: Payout, line: BankLine) -> int:
    """1, +2 when the bank text names the payout, +1 for the exact amount, +1 same day."""
    score = 1
    if _names(f"{line.text} {line.reference}", payout):
        score += 2
    if line.amount == payout.amount:
        score += 1
    if line.booked_on == payout.paid_on:
        score += 1
    return score


def match_payouts_to_bank(*, summary: MatchSummary, payouts: Sequence[Payout]) -> None:
    manual = _manual_keys(LinkKind.PAYOUT_BANK)
    # Deposits another payout holds (a person's match, or a sure one): bank line -> payouts.
    held: dict[int, set[int]] = defaultdict(set)
    for line_id, payout_id in (
        Link.objects.filter(kind=LinkKind.PAYOUT_BANK, bank_line__isnull=False)
        .filter(Q(manual=True) | Q(state=LinkState.MATCHED))
        .values_list("bank_line_id", "payout_id")
    ):
        held[line_id].add(payout_id)
    taken = {line_id for line_id, owners in held.items() if owners}
    open_payouts = []
    for payout in sorted(payouts, key=lambda p: (p.paid_on, p.pk)):
        key = f"{LinkKind.PAYOUT_BANK}:{payout.pk}"
        if key in manual:
            continue
        window = (payout.paid_on - timedelta(days=BANK_WINDOW_BEFORE),
                  payout.paid_on + timedelta(days=BANK_WINDOW_AFTER))  # fmt: skip
        candidates = [
            line for line in BankLine.objects.filter(
                currency=payout.currency, amount=payout.amount, booked_on__range=window
            ).select_related("account")
            if line.pk not in taken or held[line.pk] == {payout.pk}
        ]  # fmt: skip
        ranked = sorted(((bank_score(payout, ln), ln) for ln in candidates),
                        key=lambda pair: (-pair[0], abs((pair[1].booked_on - payout.paid_on).days),
                                          pair[1].pk))  # fmt: skip
        cur = payout.currency
        if not ranked:
            open_payouts.append(payout)
            continue
        best_score, best = ranked[0]
        tied = [ln for s, ln in ranked if s == best_score]
        sure = len(ranked) == 1 or (_names(f"{best.text} {best.reference}", payout)
                                    and len(tied) == 1)  # fmt: skip
        where = f"booked {best.booked_on.isoformat()} ({best.account.name})"
        if sure:
            taken.add(best.pk)
            named = " naming the payout" if best_score >= 3 else ""
            _save(key, summary, manual, kind=LinkKind.PAYOUT_BANK, payout=payout,
                  bank_line=best, currency=cur, state=LinkState.MATCHED, score=best_score,
                  reason=f"deposit of {_s(best.amount, cur)}{named}, {where}",
                  expected=payout.amount, found=best.amount, group="")  # fmt: skip
        else:
            _save(key, summary, manual, kind=LinkKind.PAYOUT_BANK, payout=payout,
                  bank_line=best, currency=cur, state=LinkState.PROPOSED, score=best_score,
                  reason=f"{len(ranked)} deposits of {_s(payout.amount, cur)} fit; the best "
                         f"{where}, score {best_score}: a person confirms",
                  expected=payout.amount, found=best.amount, group="")  # fmt: skip
    _match_sets(open_payouts, taken=taken, held=held, manual=manual, summary=summary)


def _match_sets(payouts: list[Payout], *, taken: set[int], held: dict[int, set[int]],
                manual: set[str], summary: MatchSummary) -> None:  # fmt: skip
    """Deposits that are the sum of several payouts (proposed; matched when the text names
    every one); payouts left over are missing in the bank."""
    left = {p.pk: p for p in payouts}
    if payouts:
        lo = min(p.paid_on for p in payouts) - timedelta(days=BANK_WINDOW_BEFORE)
        hi = max(p.paid_on for p in payouts) + timedelta(days=BANK_WINDOW_AFTER)
        mine = set(left)
        free = [ln for ln in taken if not held.get(ln) or not held[ln] <= mine]
        lines = BankLine.objects.filter(booked_on__range=(lo, hi), amount__gt=0).exclude(
            pk__in=free).select_related("account").order_by("booked_on", "pk")  # fmt: skip
        for line in lines:
            near = [p for p in left.values() if p.currency == line.currency
                    and line.booked_on - timedelta(days=BANK_WINDOW_AFTER) <= p.paid_on
                    <= line.booked_on + timedelta(days=BANK_WINDOW_BEFORE)]  # fmt: skip
            near = sorted(near, key=lambda p: (p.paid_on, p.pk))[:SET_CANDIDATES_MAX]
            found = [combo for size in range(2, min(SET_MAX, len(near)) + 1)
                     for combo in itertools.combinations(near, size)
                     if sum((p.amount for p in combo), Decimal(0)) == line.amount]  # fmt: skip
            if len(found) != 1:
                continue  # none, or ambiguous: no set is proposed
            combo = found[0]
            text = f"{line.text} {line.reference}"
            named = all(_names(text, p) for p in combo)
            state = LinkState.MATCHED if named else LinkState.PROPOSED
            cur = line.currency
            ids = ", ".join(p.external_id for p in combo)
            for payout in combo:
                _save(f"{LinkKind.PAYOUT_BANK}:{payout.pk}", summary, manual,
                      kind=LinkKind.PAYOUT_BANK, payout=payout, bank_line=line, currency=cur,
                      state=state, group=f"bank:{line.pk}", score=3 if named else 1,
                      reason=f"one deposit of {_s(line.amount, cur)} on "
                             f"{line.booked_on.isoformat()} = payouts {ids}"
                             + ("" if named else ": a person confirms"),
                      expected=payout.amount, found=payout.amount)  # fmt: skip
                left.pop(payout.pk, None)
            taken.add(line.pk)
    for payout in left.values():
        cur = payout.currency
        lo_day = (payout.paid_on - timedelta(days=BANK_WINDOW_BEFORE)).isoformat()
        hi_day = (payout.paid_on + timedelta(days=BANK_WINDOW_AFTER)).isoformat()
        _save(f"{LinkKind.PAYOUT_BANK}:{payout.pk}", summary, manual, kind=LinkKind.PAYOUT_BANK,
              payout=payout, bank_line=None, currency=cur, state=LinkState.MISSING, score=0,
              group="", expected=payout.amount, found=Decimal(0),
              reason=f"no deposit of {_s(payout.amount, cur)} from {lo_day} to {hi_day}",
              )  # fmt: skip


# --- order <-> ERP -------------------------------------------------------------------------------
def tie_erp_documents() -> int:
    """Point ERP documents at their order: our correlation id first, else the channel's order id
    when it names exactly one order."""
    tied = 0
    loose = list(ErpDocument.objects.filter(order__isnull=True).values_list("pk", "reference"))
    for start in range(0, len(loose), CHUNK):
        chunk = loose[start : start + CHUNK]
        refs = {ref for _pk, ref in chunk}
        by_corr = dict(Order.objects.filter(correlation_id__in=refs)
                       .values_list("correlation_id", "pk"))  # fmt: skip
        by_ext: dict[str, set[int]] = defaultdict(set)
        for ext, pk in Order.objects.filter(external_id__in=refs).values_list("external_id", "pk"):
            by_ext[ext].add(pk)
        updates: dict[int, list[int]] = defaultdict(list)
        for pk, ref in chunk:
            order_id = by_corr.get(ref)
            if order_id is None and len(by_ext.get(ref, ())) == 1:
                order_id = next(iter(by_ext[ref]))
            if order_id is not None:
                updates[order_id].append(pk)
        ties = [ErpDocument(pk=pk, order_id=order_id)
                for order_id, ids in updates.items() for pk in ids]  # fmt: skip
        tied += ErpDocument.objects.bulk_update(ties, ["order"], batch_size=500)
    return tied


def match_orders_to_erp(
    *, summary: MatchSummary, since: date | None = None, until: date | None = None,
    channel_id: int | None = None,
) -> None:  # fmt: skip
    manual = _manual_keys(LinkKind.ORDER_ERP)
    edges = _Edges(summary, manual)
    docs = ErpDocument.objects.filter(order__isnull=False)
    if channel_id is not None:
        docs = docs.filter(order__channel_id=channel_id)
    per_order: dict[int, list[ErpDocument]] = defaultdict(list)
    for doc in docs.only("pk", "order_id", "doc_type", "amount", "currency", "document_number"):
        per_order[doc.order_id].append(doc)  # type: ignore[index]
    for start in range(0, len(per_order), CHUNK):
        ids = list(per_order)[start : start + CHUNK]
        for order in Order.objects.filter(pk__in=ids).only(
                "pk", "currency", "total", "refunded_total"):  # fmt: skip
            found_docs = per_order[order.pk]
            invoices = sorted((d for d in found_docs if d.doc_type == ErpDocType.INVOICE),
                              key=lambda d: d.document_number)  # fmt: skip
            credits = [d for d in found_docs if d.doc_type == ErpDocType.CREDIT_NOTE]
            invoiced = sum((d.amount for d in invoices), Decimal(0))
            credited = sum((d.amount for d in credits), Decimal(0))
            cur = order.currency
            words = [
                f"invoiced {_s(invoiced, cur)} (order total {_s(order.total, cur)})",
                f"credited {_s(credited, cur)} (refunded {_s(order.refunded_total, cur)})",
            ]
            if len(invoices) > 1:
                words.insert(
                    0,
                    f"{len(invoices)} invoices ("
                    f"{', '.join(d.document_number for d in invoices)}): duplicated",
                )
            same = (len(invoices) == 1 and invoiced == order.total
                    and credited == order.refunded_total)  # fmt: skip
            edges.add(f"{LinkKind.ORDER_ERP}:{order.pk}", kind=LinkKind.ORDER_ERP,
                      order=order, erp_document=invoices[0] if invoices else None, currency=cur,
                      state=LinkState.MATCHED if same else LinkState.AMOUNT_MISMATCH,
                      reason="; ".join(words), expected=order.total - order.refunded_total,
                      found=invoiced - credited)  # fmt: skip
    edges.flush()
    if since is None or until is None:
        return
    shipped = Order.objects.filter(status__in=SHIPPED, placed_at__date__gte=since,
                                   placed_at__date__lte=until).exclude(
        erp_documents__isnull=False)  # fmt: skip
    if channel_id is not None:
        shipped = shipped.filter(channel_id=channel_id)
    for order in shipped.only("pk", "currency", "total", "refunded_total"):
        edges.add(f"{LinkKind.ORDER_ERP}:{order.pk}", kind=LinkKind.ORDER_ERP,
                  order=order, erp_document=None, currency=order.currency,
                  state=LinkState.MISSING, reason=f"shipped, but no ERP invoice names it (total "
                                                  f"{_s(order.total, order.currency)})",
                  expected=order.total - order.refunded_total, found=Decimal(0))  # fmt: skip
    edges.flush()


# --- everything, and a person's match ------------------------------------------------------------
def match_all(*, since: date | None = None, until: date | None = None,
              channel_id: int | None = None) -> MatchSummary:  # fmt: skip
    """Every edge, for the period when given (payouts paid in it, orders placed in it)."""
    summary = MatchSummary()
    tie_transactions(summary=summary)
    tie_erp_documents()
    match_orders_to_transactions(summary=summary, since=since, until=until,
                                 channel_id=channel_id)  # fmt: skip
    payouts = Payout.objects.select_related("channel")
    if since is not None and until is not None:
        payouts = payouts.filter(paid_on__range=(since, until))
    if channel_id is not None:
        payouts = payouts.filter(channel_id=channel_id)
    listed = list(payouts)
    match_payouts_to_transactions(summary=summary, payouts=listed)
    match_payouts_to_bank(summary=summary, payouts=listed)
    match_orders_to_erp(summary=summary, since=since, until=until, channel_id=channel_id)
    return summary


@transaction.atomic
def bank_match_confirm(*, payouts: Sequence[Payout], bank_line: BankLine, user: Any,
                       note: str = "") -> list[Link]:  # fmt: skip
    """A person's match of one deposit to one or more payouts (or their confirmation of a
    proposal): kept as made, audited, never changed by matching again."""
    from orders.errors import InvalidInput

    if not payouts:
        raise InvalidInput("Choose at least one payout", code="no_payouts")
    total = sum((p.amount for p in payouts), Decimal(0))
    currencies = {p.currency for p in payouts} | {bank_line.currency}
    if len(currencies) != 1:
        raise InvalidInput(f"The payouts and the deposit are in {', '.join(sorted(currencies))}",
                           code="currency_mixed")  # fmt: skip
    cur = bank_line.currency
    group = f"bank:{bank_line.pk}" if len(payouts) > 1 else ""
    links = []
    for payout in payouts:
        link, _ = Link.objects.update_or_create(
            key=f"{LinkKind.PAYOUT_BANK}:{payout.pk}",
            defaults=dict(
                kind=LinkKind.PAYOUT_BANK, payout=payout, bank_line=bank_line, currency=cur,
                state=LinkState.MATCHED if total == bank_line.amount else LinkState.PARTIAL,
                manual=True, made_by=user, note=note.strip(), group=group, score=0,
                reason=f"matched by {user.get_username()}: deposit {_s(bank_line.amount, cur)}"
                       f" for {len(payouts)} payout(s) of {_s(total, cur)}",
                expected=payout.amount, found=payout.amount,
                difference=Decimal(0) if total == bank_line.amount else bank_line.amount - total,
            ),
        )  # fmt: skip
        links.append(link)
    AuditEntry.objects.create(
        user=user, action="bank_match", subject=f"bank_line:{bank_line.pk}",
        data={"payouts": [p.external_id for p in payouts], "amount": str(bank_line.amount),
              "currency": cur, "note": note.strip()},
    )  # fmt: skip
    return links
