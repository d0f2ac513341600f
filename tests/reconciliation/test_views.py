"""The finance screens through the test client: finance (and ops_admin) only, a 403 for the other
roles on every screen and action; the period page's rows and drill-down; resolving an item,
matching a deposit and closing a period, each audited; the CSVs never carry a live formula."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse

from reconciliation.matching import match_all
from reconciliation.models import (
    AuditEntry,
    BankLine,
    Link,
    LinkState,
    PeriodClose,
    VarianceItem,
)
from reconciliation.variance import compute_period
from tests.reconciliation.test_variance import NOV, Month, at

pytestmark = pytest.mark.django_db


def lost_payout_month() -> tuple[Month, VarianceItem]:
    """A month whose one order is consistent, and a payout that never reached the bank."""
    m = Month()
    p1 = m.payout("P1", "25.43", date(2026, 11, 5), deposit=date(2026, 11, 6))
    order = m.order("1")
    m.invoice("INV-1", order)
    m.tx("1", "26.50", fee="1.07", payout=p1)
    lost = m.payout("P9", "41.90", date(2026, 11, 3))
    m.tx("", "41.90", category="adjustment", payout=lost, when=at(2))
    match_all(since=NOV.start, until=NOV.end)
    compute_period(NOV)
    return m, VarianceItem.objects.get(category="unexplained")


def screens(item: VarianceItem, m: Month) -> list[str]:
    payout = m.shop.payouts.get(external_id="P1")
    q = f"period=2026-11&channel={m.shop.slug}&currency=USD"
    return [
        f"{reverse('finance:period')}?period=2026-11",
        f"{reverse('finance:column')}?{q}&column=sales",
        f"{reverse('finance:items')}?{q}",
        reverse("finance:item", args=[item.pk]),
        reverse("finance:payouts"),
        reverse("finance:payout", args=[payout.pk]),
    ]


@pytest.mark.parametrize("who", ["cs_user", "reviewer_user"])
def test_other_roles_get_a_403_on_every_screen_and_action(client, who, request):
    m, item = lost_payout_month()
    client.force_login(request.getfixturevalue(who))
    for url in screens(item, m):
        assert client.get(url).status_code == 403, url
    payout = m.shop.payouts.get(external_id="P9")
    line = BankLine.objects.get()
    posts = [
        (reverse("finance:item", args=[item.pk]), {"category": "timing", "note": "x"}),
        (reverse("finance:period"), {"period": "2026-11", "action": "close"}),
        (reverse("finance:period"), {"period": "2026-11", "action": "recompute"}),
        (reverse("finance:payout", args=[payout.pk]), {"bank_line": line.pk}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    item.refresh_from_db()
    assert item.resolved_by is None and not PeriodClose.objects.exists()
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize("who", ["finance_user", "ops_user"])
def test_finance_and_ops_open_every_screen(client, who, request):
    m, item = lost_payout_month()
    client.force_login(request.getfixturevalue(who))
    for url in screens(item, m):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["Content-Type"].startswith("text/html")


def test_the_period_page_shows_the_row_its_unexplained_item_and_the_chart(client, finance_user):
    m, item = lost_payout_month()
    client.force_login(finance_user)
    page = client.get(reverse("finance:period"), {"period": "2026-11"}).content.decode()
    assert 'class="row-open" data-row="shop-USD"' in page
    assert "P9" in page and "no bank deposit" in page
    assert "<svg" in page and "Daily difference" in page
    assert "Close period" in page and "Recompute" in page
    q = {"period": "2026-11", "channel": "shop", "currency": "USD", "column": "sales"}
    sales = client.get(reverse("finance:column"), q)
    order = m.shop.orders.get()
    assert reverse("admin:orders_order_change", args=[order.pk]) in sales.content.decode()
    detail = client.get(reverse("finance:item", args=[item.pk])).content.decode()
    assert reverse("finance:payout", args=[item.payout_id]) in detail


def test_resolving_an_item_needs_a_note_and_turns_the_row_green_audited(client, finance_user):
    _, item = lost_payout_month()
    client.force_login(finance_user)
    url = reverse("finance:item", args=[item.pk])
    client.post(url, {"category": "timing", "note": "  "})
    item.refresh_from_db()
    assert item.resolved_by is None
    response = client.post(url, {"category": "timing", "note": "Bank confirms 1 Dec"})
    assert response.status_code == 302
    item.refresh_from_db()
    assert (item.resolved_category, item.resolved_by) == ("timing", finance_user)
    assert AuditEntry.objects.filter(action="variance_resolve", user=finance_user).exists()
    page = client.get(reverse("finance:period"), {"period": "2026-11"}).content.decode()
    assert 'class="row-ok" data-row="shop-USD"' in page
    assert f"Timing (next period, in transit) by {finance_user}" in page


def test_csv_exports_quote_a_formula_and_keep_amounts_as_numbers(client, finance_user):
    _, item = lost_payout_month()
    VarianceItem.objects.filter(pk=item.pk).update(description='=HYPERLINK("http://x","y")')
    client.force_login(finance_user)
    response = client.get(reverse("finance:items"), {"period": "2026-11", "format": "csv"})
    assert response["Content-Disposition"] == 'attachment; filename="items-2026-11.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:3] == ["Item", "Channel", "Currency"]
    [mine] = [r for r in rows if r[0] == str(item.pk)]
    assert mine[5] == '\'=HYPERLINK("http://x","y")' and mine[6] == "41.90"
    period = client.get(reverse("finance:period"), {"period": "2026-11", "format": "csv"})
    [head, row] = list(csv.reader(io.StringIO(period.content.decode())))
    assert head[0] == "Channel" and row[:3] == ["shop", "USD", "26.50"]


def test_a_proposed_deposit_is_confirmed_from_the_payout_page(client, finance_user):
    m = Month()
    # Two payouts of the same amount and one deposit that fits both: proposed, a person picks.
    a = m.payout("PA", "10.00", date(2026, 11, 10))
    m.payout("PB", "10.00", date(2026, 11, 10))
    BankLine.objects.create(account=m.account, source="bank_csv", dedup_key="d1",
                            booked_on=date(2026, 11, 11), currency="USD",
                            amount=Decimal("10.00"), text="TRANSFER")  # fmt: skip
    BankLine.objects.create(account=m.account, source="bank_csv", dedup_key="d2",
                            booked_on=date(2026, 11, 12), currency="USD",
                            amount=Decimal("10.00"), text="TRANSFER")  # fmt: skip
    match_all(since=NOV.start, until=NOV.end)
    link = Link.objects.get(payout=a, kind="payout_bank")
    assert link.state == LinkState.PROPOSED
    client.force_login(finance_user)
    listing = client.get(reverse("finance:payouts"), {"status": "partial"}).content.decode()
    assert "PA" in listing and "status-partial" in listing
    page = client.get(reverse("finance:payout", args=[a.pk])).content.decode()
    assert "Confirm" in page
    client.post(reverse("finance:payout", args=[a.pk]), {"bank_line": link.bank_line_id,
                                                          "payouts": [a.pk]})  # fmt: skip
    link.refresh_from_db()
    assert (link.state, link.manual, link.made_by) == (LinkState.MATCHED, True, finance_user)
    assert AuditEntry.objects.filter(action="bank_match").count() == 1
    matched = client.get(reverse("finance:payouts"), {"status": "matched"}).content.decode()
    assert "PA" in matched


def test_closing_a_period_shows_who_closed_it_and_the_changes_since(client, finance_user):
    m, _ = lost_payout_month()
    client.force_login(finance_user)
    client.post(reverse("finance:period"), {"period": "2026-11", "action": "close", "note": "ok"})
    closed = PeriodClose.objects.get()
    assert closed.closed_by == finance_user
    assert AuditEntry.objects.filter(action="period_close").exists()
    m.order("2")  # a late order of November changes the sales
    page = client.get(reverse("finance:period"), {"period": "2026-11"}).content.decode()
    assert f"Closed by {finance_user}" in page and "Close period" not in page
    assert '<td>sales</td><td class="num">26.50</td><td class="num">53.00</td>' in page


def test_recompute_matches_again_and_is_audited(client, finance_user):
    m, _ = lost_payout_month()
    # A deposit for P9 booked after the first matching: recompute matches it.
    BankLine.objects.create(account=m.account, source="bank_csv", dedup_key="late",
                            booked_on=date(2026, 11, 4), currency="USD",
                            amount=Decimal("41.90"), text="SHOPIFY P9")  # fmt: skip
    client.force_login(finance_user)
    response = client.post(reverse("finance:period"), {"period": "2026-11",
                                                       "action": "recompute"})  # fmt: skip
    assert response.status_code == 302
    entry = AuditEntry.objects.get(action="period_recompute")
    assert entry.user == finance_user and entry.data["unexplained"] == {"USD": "0.00"}
    assert not VarianceItem.objects.filter(category="unexplained").exists()


def test_the_payouts_list_reads_in_a_fixed_number_of_queries(
    client, finance_user, django_assert_max_num_queries
):
    m, _ = lost_payout_month()
    client.force_login(finance_user)
    with django_assert_max_num_queries(12) as few:
        client.get(reverse("finance:payouts"))
    for n in range(20):
        m.payout(f"X{n}", "1.00", date(2026, 11, 20))
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = client.get(reverse("finance:payouts")).content.decode()
    assert page.count("status-unmatched") >= 21  # P9 and the 20 new ones
