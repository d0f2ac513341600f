"""A generated month through the real importers, matching and variance: every planted
discrepancy found in its category, nothing unexplained; re-importing changes nothing; a deposit
of two payouts proposed as a set; a person's match kept by a re-run; a consistent month shows
nothing but timing."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from reconciliation.generator import Generated, generate_month, import_month
from reconciliation.matching import bank_match_confirm
from reconciliation.models import (
    BankLine,
    Category,
    ErpDocument,
    Link,
    LinkKind,
    LinkState,
    Payout,
    ProcessorTransaction,
    VarianceItem,
)
from reconciliation.services import reconcile
from reconciliation.variance import Period
from tests.factories import make_user

pytestmark = pytest.mark.django_db
PERIOD = Period.parse("2026-09")
# Every category but unexplained is planted (fees, timing and the rest at known places).
PLANTED = [c for c in Category.values if c != Category.UNEXPLAINED]


@pytest.fixture
def month(tmp_path: Path) -> Generated:
    generated = generate_month(period="2026-09", orders=60, out=tmp_path, seed=3)
    runs = import_month(generated)
    assert all(run.rows_rejected == 0 for run in runs), [r.errors for r in runs]
    return generated


def found_items(category: str) -> dict[str, Any]:
    """The category's items: amount per (comparison, currency), and the orders and payouts
    they name per comparison."""
    sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    orders: dict[str, set[str]] = defaultdict(set)
    payouts: dict[str, set[str]] = defaultdict(set)
    for item in VarianceItem.objects.filter(period=PERIOD.label, category=category).select_related(
            "order", "payout"):  # fmt: skip
        sums[(item.comparison, item.currency)] += item.amount
        if item.order is not None:
            orders[item.comparison].add(item.order.external_id)
        if item.payout is not None:
            payouts[item.comparison].add(item.payout.external_id)
    return {"sums": dict(sums), "orders": dict(orders), "payouts": dict(payouts)}


def planted_items(generated: Generated, category: str) -> dict[str, Any]:
    sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    orders: dict[str, set[str]] = defaultdict(set)
    payouts: dict[str, set[str]] = defaultdict(set)
    for entry in generated.manifest["planted"].get(category, []):
        sums[(entry["comparison"], entry["currency"])] += Decimal(entry["amount"])
        if entry["order"]:
            orders[entry["comparison"]].add(entry["order"])
        if entry["payout"]:
            payouts[entry["comparison"]].add(entry["payout"])
    return {"sums": dict(sums), "orders": dict(orders), "payouts": dict(payouts)}


@pytest.mark.parametrize("category", PLANTED)
def test_every_planted_discrepancy_is_found_in_its_category(month: Generated, category: str):
    report = reconcile(period=PERIOD, do_import=False)

    assert month.manifest["planted"].get(category), f"nothing of {category} was planted"
    assert found_items(category) == planted_items(month, category)
    assert report.unexplained == {"EUR": Decimal(0), "USD": Decimal(0)}
    assert not VarianceItem.objects.filter(category=Category.UNEXPLAINED).exists()


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count()
            for model in (Payout, ProcessorTransaction, ErpDocument, BankLine)}  # fmt: skip


def test_reimporting_every_file_changes_nothing(month: Generated):
    reconcile(period=PERIOD, do_import=False)
    before = counts()
    links = set(Link.objects.values_list("key", "state", "bank_line_id"))
    assert before["ProcessorTransaction"] == month.manifest["transactions"]
    assert before["BankLine"] == month.manifest["bank_lines"]

    runs = import_month(month)
    reconcile(period=PERIOD, do_import=False)

    assert [r.rows_new for r in runs] == [0] * len(runs)
    assert sum(r.rows_unchanged for r in runs) == sum(before.values())
    assert counts() == before
    assert set(Link.objects.values_list("key", "state", "bank_line_id")) == links


def test_a_deposit_of_two_payouts_is_proposed_as_a_set_and_a_persons_match_survives(
        month: Generated):  # fmt: skip
    [bank_set] = month.manifest["bank_sets"]
    reconcile(period=PERIOD, do_import=False)
    links = Link.objects.filter(kind=LinkKind.PAYOUT_BANK,
                                payout__external_id__in=bank_set["payouts"])  # fmt: skip
    assert {ln.state for ln in links} == {LinkState.PROPOSED}
    assert len({ln.group for ln in links}) == 1 and links[0].group
    line = links[0].bank_line
    assert line is not None and line.amount == Decimal(bank_set["amount"])
    assert {ln.bank_line_id for ln in links} == {line.pk}

    finance = make_user("fin", "finance")
    payouts = list(Payout.objects.filter(external_id__in=bank_set["payouts"]))
    bank_match_confirm(payouts=payouts, bank_line=line, user=finance, note="one transfer")
    reconcile(period=PERIOD, do_import=False)
    import_month(month)
    report = reconcile(period=PERIOD, do_import=False)

    kept = Link.objects.filter(kind=LinkKind.PAYOUT_BANK,
                               payout__external_id__in=bank_set["payouts"])  # fmt: skip
    assert {(ln.state, ln.manual, ln.made_by_id, ln.note) for ln in kept} == {
        (LinkState.MATCHED, True, finance.pk, "one transfer")}  # fmt: skip
    assert report.unexplained["USD"] == Decimal(0)


def test_a_consistent_month_shows_nothing_but_timing_at_its_edges(tmp_path: Path):
    generated = generate_month(period="2026-09", orders=40, out=tmp_path, seed=5, plant=False)
    import_month(generated)
    report = reconcile(period=PERIOD, do_import=False)

    assert report.unexplained == {"USD": Decimal(0)}
    assert set(VarianceItem.objects.values_list("category", flat=True)) == {Category.TIMING}
    assert found_items(Category.TIMING) == planted_items(generated, Category.TIMING)
    # Timing only at the edges: the last days' sales, the last payouts' deposits.
    for entry in generated.manifest["planted"]["timing"]:
        assert "2026-10-0" in entry["what"], entry


def test_a_planted_unexplained_payout_is_the_only_unexplained_item(tmp_path: Path):
    generated = generate_month(period="2026-09", orders=30, out=tmp_path, seed=7,
                               unexplained=True)  # fmt: skip
    import_month(generated)
    report = reconcile(period=PERIOD, do_import=False)

    [planted] = generated.manifest["planted"]["unexplained"]
    [item] = VarianceItem.objects.filter(category=Category.UNEXPLAINED)
    assert item.payout is not None and item.payout.external_id == planted["payout"]
    assert (item.comparison, item.amount) == (planted["comparison"], Decimal(planted["amount"]))
    assert report.unexplained == {"USD": Decimal(planted["amount"]).copy_abs(), "EUR": Decimal(0)}


def test_the_command_writes_the_files_and_the_manifest(tmp_path: Path):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("generate_finance_month", "--period", "2026-09", "--orders", "25", "--out",
                 str(tmp_path), "--import", stdout=out, stderr=StringIO())  # fmt: skip

    names = {p.name for p in tmp_path.iterdir()}
    assert {"manifest.json", "shopify_payouts.json", "erp_export.csv", "bank_statement.csv",
            "balance_transactions_pending.json"} <= names  # fmt: skip
    assert any(n.startswith("balance_transactions_payout_") for n in names)
    assert "25 orders" in out.getvalue() and "0 rejected" in out.getvalue()
    assert ErpDocument.objects.count() > 25  # invoices, credit notes, a duplicate


def test_a_generated_months_orders_are_history_the_stuck_order_sweeper_leaves_alone(
    month: Generated,
):
    from orders.models import Order
    from orders.selectors import PIPELINE_SKIPPED, order_ids_stuck_in_received

    generated = Order.objects.filter(channel=month.channel)
    assert generated.count() == 60 and set(generated.values_list("status", flat=True)) == {
        "received"}  # fmt: skip
    assert all(o.events.filter(action=PIPELINE_SKIPPED).exists() for o in generated)
    assert order_ids_stuck_in_received(older_than_seconds=-60) == []
