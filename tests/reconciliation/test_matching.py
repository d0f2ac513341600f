"""The matching graph: each edge once with its state and reason, re-running changes nothing,
a deposit of several payouts is proposed as a set, and a person's match survives a re-run."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from reconciliation.matching import bank_match_confirm, match_all
from reconciliation.models import (
    AuditEntry,
    BankAccount,
    BankLine,
    ErpDocument,
    Link,
    Payout,
    ProcessorTransaction,
)
from tests.factories import SalesChannelFactory, make_order, make_user

pytestmark = pytest.mark.django_db

NOV = (date(2026, 11, 1), date(2026, 11, 30))
AT = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def tx(external_id: str, order_ref: str, amount: str, *, category: str = "charge", fee: str = "0",
       payout: Payout | None = None, channel=None) -> ProcessorTransaction:  # fmt: skip
    a, f = Decimal(amount), Decimal(fee)
    return ProcessorTransaction.objects.create(
        source="shopify_payments", external_id=external_id, category=category, currency="USD",
        amount=a, fee=f, net=a - f, occurred_at=AT, source_order_id=order_ref, channel=channel,
        payout=payout, payout_external_id=payout.external_id if payout else "",
    )  # fmt: skip


def payout(external_id: str, amount: str, paid_on: date, trace: str = "") -> Payout:
    return Payout.objects.create(source="shopify_payments", external_id=external_id,
                                 currency="USD", amount=Decimal(amount), paid_on=paid_on,
                                 trace_id=trace)  # fmt: skip


def bank(amount: str, booked_on: date, text: str = "", key: str = "") -> BankLine:
    account, _ = BankAccount.objects.get_or_create(name="Operating", defaults={"currency": "USD"})
    return BankLine.objects.create(account=account, source="bank_csv",
                                   dedup_key=key or f"{booked_on}-{amount}-{text}",
                                   booked_on=booked_on, currency="USD", amount=Decimal(amount),
                                   text=text)  # fmt: skip


def link(kind: str, **where) -> Link:
    return Link.objects.get(kind=kind, **where)


def test_orders_are_tied_to_their_processor_transactions_and_compared_with_what_we_captured():
    shop = SalesChannelFactory(kind="shopify")
    paid = make_order(channel=shop, external_id="1001", paid=True)  # 26.50 captured
    short = make_order(channel=shop, external_id="1002", paid=True)
    quiet = make_order(channel=shop, external_id="1003", paid=True)
    p = payout("P1", "49.45", date(2026, 11, 4))
    tx("t1", "1001", "26.50", fee="1.07", payout=p)
    tx("t2", "1002", "25.00", fee="0.98", payout=p)

    summary = match_all(since=NOV[0], until=NOV[1])

    assert summary.tied == 2
    assert link("order_transaction", order=paid).state == "matched"
    edge = link("order_transaction", order=short)
    assert (edge.state, edge.difference) == ("amount_mismatch", Decimal("-1.50"))
    assert edge.reason.startswith("charged 25.00 USD (captured 26.50 USD)")
    missing = link("order_transaction", order=quiet)
    assert missing.state == "missing"
    assert missing.reason == "no processor transaction names this order (captured 26.50 USD)"
    # The payout's transactions: 25.43 + 24.02 = 49.45.
    assert link("payout_transactions", payout=p).state == "matched"


def test_a_payout_whose_transactions_do_not_sum_says_by_how_much():
    p = payout("P2", "41.90", date(2026, 11, 4))
    tx("t3", "", "10.00", payout=p)

    match_all()

    edge = link("payout_transactions", payout=p)
    assert edge.state == "amount_mismatch" and edge.difference == Decimal("-31.90")
    assert "the vendor's data does not balance" in edge.reason


def test_bank_deposits_are_ranked_by_reference_amount_and_date():
    named = payout("P10", "100.00", date(2026, 11, 5), trace="TRACE-ABC-123")
    alone = payout("P11", "55.55", date(2026, 11, 6))
    twins = payout("P12", "70.00", date(2026, 11, 7))
    nowhere = payout("P13", "12.34", date(2026, 11, 8))
    bank("100.00", date(2026, 11, 6), "SHOPIFY PAYOUT TRACE-ABC-123", key="b1")
    bank("100.00", date(2026, 11, 5), "SHOPIFY PAYOUT", key="b2")  # same day, but not named
    bank("55.55", date(2026, 11, 8), "SHOPIFY", key="b3")
    bank("70.00", date(2026, 11, 8), "SHOPIFY", key="b4")
    bank("70.00", date(2026, 11, 9), "SHOPIFY", key="b5")

    match_all()

    edge = link("payout_bank", payout=named)
    assert (edge.state, edge.bank_line.dedup_key, edge.score) == ("matched", "b1", 4)
    assert link("payout_bank", payout=alone).state == "matched"
    twin = link("payout_bank", payout=twins)
    assert twin.state == "proposed" and "2 deposits of 70.00 USD fit" in twin.reason
    gone = link("payout_bank", payout=nowhere)
    assert gone.state == "missing"
    assert gone.reason == "no deposit of 12.34 USD from 2026-11-06 to 2026-11-15"


def test_one_deposit_covering_two_payouts_is_proposed_as_a_set_and_a_person_confirms_it():
    first = payout("P20", "30.00", date(2026, 11, 10))
    second = payout("P21", "12.50", date(2026, 11, 11))
    deposit = bank("42.50", date(2026, 11, 12), "SHOPIFY PAYOUTS", key="b20")

    match_all()
    edges = [link("payout_bank", payout=p) for p in (first, second)]
    assert {e.state for e in edges} == {"proposed"}
    assert {e.group for e in edges} == {f"bank:{deposit.pk}"}
    assert "one deposit of 42.50 USD on 2026-11-12 = payouts P20, P21" in edges[0].reason

    finance = make_user("fin", "finance")
    bank_match_confirm(payouts=[first, second], bank_line=deposit, user=finance, note="ok")
    bank_edges = Link.objects.filter(kind="payout_bank").order_by("pk")
    before = list(bank_edges.values_list("pk", "state", "manual", "reason"))

    match_all()  # again: the person's match is kept as made, nothing added

    assert list(bank_edges.values_list("pk", "state", "manual", "reason")) == before
    assert Link.objects.count() == 4  # two bank edges, two payout <-> transactions edges
    assert all(state == "matched" and manual for _pk, state, manual, _r in before)
    entry = AuditEntry.objects.get(action="bank_match")
    assert (entry.user, entry.data["payouts"]) == (finance, ["P20", "P21"])


def test_matching_twice_changes_no_edge():
    shop = SalesChannelFactory(kind="shopify")
    make_order(channel=shop, external_id="2001", paid=True)
    p = payout("P30", "26.50", date(2026, 11, 4))
    tx("t30", "2001", "26.50", payout=p)
    bank("26.50", date(2026, 11, 5), key="b30")
    match_all(since=NOV[0], until=NOV[1])
    first = list(Link.objects.order_by("pk").values("pk", "key", "state", "reason", "difference"))

    match_all(since=NOV[0], until=NOV[1])

    again = list(Link.objects.order_by("pk").values("pk", "key", "state", "reason", "difference"))
    assert again == first and len(first) == 3


def test_orders_meet_their_erp_documents_by_correlation_id_and_duplicates_are_named():
    shop = SalesChannelFactory(kind="shopify")
    once = make_order(channel=shop, external_id="3001", paid=True)
    twice = make_order(channel=shop, external_id="3002", paid=True)
    never = make_order(channel=shop, external_id="3003", paid=True)
    type(never).objects.filter(pk=never.pk).update(status="shipped")
    for number, order, ref in (("INV-1", once, once.correlation_id),
                               ("INV-2", twice, "3002"), ("INV-3", twice, "3002")):  # fmt: skip
        ErpDocument.objects.create(source="erp_csv", document_number=number, doc_type="invoice",
                                   document_date=date(2026, 11, 2), reference=ref,
                                   currency="USD", amount=order.total)  # fmt: skip

    match_all(since=NOV[0], until=NOV[1])

    assert link("order_erp", order=once).state == "matched"
    dup = link("order_erp", order=twice)
    assert dup.state == "amount_mismatch"
    assert dup.reason.startswith("2 invoices (INV-2, INV-3): duplicated")
    miss = link("order_erp", order=never)
    assert (miss.state, miss.reason) == (
        "missing",
        "shipped, but no ERP invoice names it (total 26.50 USD)",
    )
