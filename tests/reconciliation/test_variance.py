"""Variance with root causes on a small month with one discrepancy of each kind planted: every
one found in its category, nothing left unexplained; an unexplained item resolved by a person
stays resolved when the month is computed again."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from orders.actors import Actor
from orders.models import OrderPayment
from orders.refunds import refund_issue
from reconciliation.matching import match_all
from reconciliation.models import (
    BankAccount,
    BankLine,
    ErpDocument,
    Payout,
    ProcessorTransaction,
    VarianceItem,
)
from reconciliation.variance import Period, compute_period, item_resolve
from tests.factories import SalesChannelFactory, make_order, make_user

pytestmark = pytest.mark.django_db
NOV = Period.parse("2026-11")


def at(day: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, 10, 0, tzinfo=UTC)


class Month:
    """A Shopify channel's November: orders, their processor transactions, payouts, the bank
    and the ERP, consistent unless a test plants a discrepancy."""

    def __init__(self) -> None:
        self.shop = SalesChannelFactory(kind="shopify", slug="shop")
        self.account = BankAccount.objects.create(name="Operating", currency="USD")
        self.n = 0

    def payout(self, external_id: str, amount: str, paid_on: date, *, deposit: date | None = None
               ) -> Payout:  # fmt: skip
        p = Payout.objects.create(source="shopify_payments", channel=self.shop,
                                  external_id=external_id, currency="USD",
                                  amount=Decimal(amount), paid_on=paid_on)  # fmt: skip
        if deposit is not None:
            BankLine.objects.create(account=self.account, source="bank_csv",
                                    dedup_key=f"dep-{external_id}", booked_on=deposit,
                                    currency="USD", amount=Decimal(amount),
                                    text=f"SHOPIFY {external_id}")  # fmt: skip
        return p

    def tx(self, order_ref: str, amount: str, *, fee: str = "0", category: str = "charge",
           payout: Payout | None, when: datetime | None = None) -> None:  # fmt: skip
        self.n += 1
        a, f = Decimal(amount), Decimal(fee)
        ProcessorTransaction.objects.create(
            source="shopify_payments", channel=self.shop, external_id=f"tx{self.n}",
            category=category, currency="USD", amount=a, fee=f, net=a - f,
            occurred_at=when or at(2), source_order_id=order_ref, payout=payout,
            payout_external_id=payout.external_id if payout else "",
        )  # fmt: skip

    def order(self, ref: str, **kw):
        return make_order(channel=self.shop, external_id=ref, paid=True, **kw)  # 26.50

    def invoice(self, number: str, order, amount: str | None = None, day: date | None = None,
                kind: str = "invoice") -> None:  # fmt: skip
        ErpDocument.objects.create(
            source="erp_csv", document_number=number, doc_type=kind,
            document_date=day or date(2026, 11, 2), reference=order.correlation_id,
            currency="USD", amount=Decimal(amount) if amount else order.total,
        )  # fmt: skip


def items(comparison: str) -> dict[str, Decimal]:
    found: dict[str, Decimal] = {}
    for item in VarianceItem.objects.filter(period="2026-11", comparison=comparison):
        found[item.category] = found.get(item.category, Decimal(0)) + item.amount
    return found


def test_each_planted_discrepancy_is_found_in_its_category_and_nothing_is_unexplained():
    m = Month()
    p1 = m.payout("P1", "0", date(2026, 11, 5), deposit=date(2026, 11, 6))
    clean = m.order("1")
    m.invoice("INV-1", clean)
    m.tx("1", "26.50", fee="1.07", payout=p1)
    # ERP: missing, duplicated, dated next month, a cent of rounding over two lines, 6.50 off.
    m.order("2")
    m.tx("2", "26.50", fee="1.07", payout=p1)
    twice = m.order("3")
    m.invoice("INV-3a", twice)
    m.invoice("INV-3b", twice)
    m.tx("3", "26.50", fee="1.07", payout=p1)
    late = m.order("4")
    m.invoice("INV-4", late, day=date(2026, 12, 1))
    m.tx("4", "26.50", fee="1.07", payout=p1)
    rounded = m.order("5", lines=[("A", 1, "10.00"), ("B", 1, "10.00")])
    m.invoice("INV-5", rounded, amount="26.49")
    m.tx("5", "26.50", fee="1.07", payout=p1)
    short = m.order("6")
    m.invoice("INV-6", short, amount="20.00")
    m.tx("6", "26.50", fee="1.07", payout=p1)
    # Processor: 10.00 of it on a gift card; a refund the processor made in December.
    gift = m.order("7")
    m.invoice("INV-7", gift)
    OrderPayment.objects.create(order=gift, method="gift_card", captured=Decimal("10.00"))
    m.tx("7", "16.50", fee="0.70", payout=p1)
    refunded = m.order("8")
    refund_issue(order_id=refunded.pk, actor=Actor.system("test"), key="r8",
                 amount=Decimal("26.50"))  # fmt: skip
    m.invoice("INV-8", refunded)
    m.invoice("CN-8", refunded, kind="credit_note")
    m.tx("8", "26.50", fee="1.07", payout=p1)
    m.tx("8", "-26.50", category="refund", payout=None, when=at(3, 12))
    # A chargeback and a reserve in the second payout, whose own transactions are 0.50 short
    # of it; a sale of the 29th paid out on 2 December; a payout still in transit.
    disputed = m.order("9")
    m.invoice("INV-9", disputed)
    p2 = m.payout("P2", "0", date(2026, 11, 20), deposit=date(2026, 11, 21))
    m.tx("9", "26.50", fee="1.07", payout=p2)
    m.tx("9", "-26.50", category="dispute", fee="15.00", payout=p2, when=at(15))
    m.tx("", "-5.00", category="reserve_hold", payout=p2, when=at(15))
    m.tx("", "0", category="fee", fee="0", payout=p2)  # a 0 row changes nothing
    end = m.order("10")
    m.invoice("INV-10", end)
    p3 = m.payout("P3", "25.43", date(2026, 12, 2))
    m.tx("10", "26.50", fee="1.07", payout=p3, when=at(29))
    p4 = m.payout("P4", "7.00", date(2026, 11, 28))  # no deposit yet: in transit
    m.tx("", "7.00", category="adjustment", payout=p4, when=at(27))
    # The payouts' amounts as their transactions say (P2 0.50 more: the vendor's defect).
    for p in (p1, p2):
        net = sum(t.net for t in ProcessorTransaction.objects.filter(payout=p))
        Payout.objects.filter(pk=p.pk).update(amount=net + (Decimal("0.50") if p == p2 else 0))
        BankLine.objects.filter(dedup_key=f"dep-{p.external_id}").update(
            amount=net + (Decimal("0.50") if p == p2 else 0))  # fmt: skip
    match_all(since=NOV.start, until=NOV.end)

    [row] = compute_period(NOV)

    assert row.unexplained == {k: Decimal(0) for k in row.unexplained}, row.unexplained
    assert not VarianceItem.objects.filter(category="unexplained").exists()
    assert items("sales_erp") == {
        "missing_in_erp": Decimal("26.50"), "duplicated_in_erp": Decimal("-26.50"),
        "timing": Decimal("26.50"), "rounding": Decimal("0.01"),
        "amount_mismatch": Decimal("6.50"),
    }  # fmt: skip
    assert items("sales_processor") == {
        "gift_cards": Decimal("10.00"), "refunds_after_payout": Decimal("-26.50"),
    }  # fmt: skip
    assert items("processor_payouts") == {
        "fees": Decimal("25.33"),  # 9 x 1.07 + 0.70 + 15.00 on the dispute
        "chargebacks": Decimal("26.50"), "reserves": Decimal("5.00"),
        "amount_mismatch": Decimal("-7.00"), "timing": Decimal("25.43"),  # order 10's sale
        "vendor_defect": Decimal("-0.50"),
    }  # fmt: skip
    assert items("payouts_bank") == {"timing": Decimal("7.00")}
    assert row.differences["sales_erp"] == Decimal("33.01")
    assert row.variance_percent == (Decimal("33.01") / Decimal("238.50") * 100).quantize(
        Decimal("0.01"))  # fmt: skip


def test_an_unexplained_item_resolved_by_a_person_stays_resolved():
    m = Month()
    lost = m.payout("P9", "41.90", date(2026, 11, 3))  # never deposited, window long gone
    m.tx("", "41.90", category="adjustment", payout=lost, when=at(2))
    match_all(since=NOV.start, until=NOV.end)
    [row] = compute_period(NOV)
    assert row.unexplained["payouts_bank"] == Decimal("41.90")
    item = VarianceItem.objects.get(category="unexplained", comparison="payouts_bank")
    assert "P9" in item.description and "no bank deposit" in item.description

    finance = make_user("fin", "finance")
    with pytest.raises(Exception, match="note"):
        item_resolve(item_id=item.pk, category="timing", note=" ", user=finance)
    item_resolve(item_id=item.pk, category="timing", note="Bank confirms arrival 1 Dec",
                 user=finance)  # fmt: skip
    [row] = compute_period(NOV)

    assert row.unexplained["payouts_bank"] == Decimal(0)
    assert row.explained["payouts_bank"]["timing"] == Decimal("41.90")
    item.refresh_from_db()
    assert (item.resolved_category, item.resolved_by) == ("timing", finance)


def test_a_period_is_a_month_or_a_range():
    assert (NOV.start, NOV.end) == (date(2026, 11, 1), date(2026, 11, 30))
    feb = Period.parse("2028-02")
    assert feb.end == date(2028, 2, 29)
    span = Period.parse("2026-11-15..2026-12-14")
    assert (span.start, span.end) == (date(2026, 11, 15), date(2026, 12, 14))
    for bad in ("2026-13", "November", "2026-12-01..2026-11-01"):
        with pytest.raises(Exception, match="period|month|ends before"):
            Period.parse(bad)
