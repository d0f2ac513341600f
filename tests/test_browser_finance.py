"""The finance screens in a real browser (Debian's chromium through Playwright, against
live_server): a finance user opens last month's period close page, drills into its one
unexplained item, resolves it with a category and a note and sees the row turn green, downloads
the table as CSV, confirms a proposed bank match from the payouts list and closes the period.
Screenshots: var/screenshots/finance_*.png. Run alone with ``pytest -m browser``."""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from reconciliation.matching import match_all
from reconciliation.models import AuditEntry, BankLine, Link, LinkState, PeriodClose
from tests import test_browser
from tests.factories import make_user
from tests.reconciliation.test_variance import NOV, Month, at
from tests.test_browser import log_in, screenshot

# The browser (module scope: it closes when this module is done) and a page per test, as in
# tests/test_browser.py.
browser = test_browser.browser
page = test_browser.page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def november() -> Month:
    """One consistent order and payout; a payout that never reached the bank (the unexplained
    item); two payouts of 10.00 that two deposits fit (proposed: a person confirms)."""
    m = Month()
    p1 = m.payout("P1", "25.43", date(2026, 11, 5), deposit=date(2026, 11, 6))
    order = m.order("1")
    m.invoice("INV-1", order)
    m.tx("1", "26.50", fee="1.07", payout=p1)
    lost = m.payout("P9", "41.90", date(2026, 11, 3))
    m.tx("", "41.90", category="adjustment", payout=lost, when=at(2))
    for ref in ("PA", "PB"):
        p = m.payout(ref, "10.00", date(2026, 11, 10))
        m.tx("", "10.00", category="adjustment", payout=p, when=at(9))
    for n, day in ((1, 11), (2, 12)):
        BankLine.objects.create(account=m.account, source="bank_csv", dedup_key=f"d{n}",
                                booked_on=date(2026, 11, day), currency="USD",
                                amount=Decimal("10.00"), text="TRANSFER")  # fmt: skip
    match_all(since=NOV.start, until=NOV.end)
    return m


def test_finance_closes_november_after_resolving_its_one_unexplained_item(
    page, live_server, settings
):
    from playwright.sync_api import expect

    november()
    fred = make_user("fred", "finance")
    log_in(page, live_server, "fred")

    page.goto(f"{live_server.url}/admin/reconciliation/finance/period/?period=2026-11")
    row = page.locator("#period-rows tr[data-row='shop-USD']")
    expect(row).to_have_class("row-open")
    expect(row.locator("td.unexplained")).to_have_text("41.90")
    expect(page.locator(".chart svg")).to_be_visible()
    screenshot(page, "finance_period")

    # Drill into the unexplained item and resolve it.
    items = page.locator("#unexplained-items")
    expect(items).to_contain_text("payout P9")
    items.get_by_role("link").first.click()
    expect(page.locator("#item-description")).to_contain_text("no bank deposit")
    page.get_by_label("Category:").select_option("timing")
    page.get_by_label("Note:").fill("The bank confirms P9 arrived on 1 December")
    screenshot(page, "finance_item")
    page.get_by_role("button", name="Resolve").click()
    expect(page.locator(".messagelist .success")).to_contain_text("resolved")
    row = page.locator("#period-rows tr[data-row='shop-USD']")
    expect(row).to_have_class("row-ok")
    expect(row.locator("td.unexplained")).to_have_text("0.00")
    expect(page.locator("#unexplained-items")).to_contain_text(
        "Timing (next period, in transit) by fred"
    )
    screenshot(page, "finance_resolved")

    # The table as CSV.
    with page.expect_download() as download:
        page.locator(".object-tools").get_by_role("link", name="Download CSV").click()
    saved = Path(download.value.path())
    rows = list(csv.reader(saved.open(newline="", encoding="utf-8")))
    assert rows[0][:3] == ["Channel", "Currency", "Sales"]
    assert rows[1][0:3] == ["shop", "USD", "26.50"] and rows[1][-1] == "0.00"

    # The payouts list: PA's deposit is proposed; confirm it on its page.
    page.locator(".object-tools").get_by_role("link", name="Payouts").click()
    page.get_by_label("Status:").select_option("partial")
    page.get_by_role("button", name="Filter").click()
    listing = page.locator("#result_list")
    expect(listing).to_contain_text("PA")
    expect(listing).not_to_contain_text("P1")
    screenshot(page, "finance_payouts")
    listing.get_by_role("link", name="PA").click()
    candidates = page.locator("#candidates")
    expect(candidates).to_contain_text("(proposed)")
    candidates.get_by_role("button", name="Confirm").first.click()
    expect(page.locator(".messagelist .success")).to_contain_text("matched to PA")
    expect(page.locator("#payout-status")).to_contain_text("matched")
    link = Link.objects.get(payout__external_id="PA", kind="payout_bank")
    assert (link.state, link.manual, link.made_by_id) == (LinkState.MATCHED, True, fred.pk)
    screenshot(page, "finance_payout")

    # Close the period.
    page.goto(f"{live_server.url}/admin/reconciliation/finance/period/?period=2026-11")
    page.get_by_label("Note:").fill("November closed")
    page.get_by_role("button", name="Close period").click()
    expect(page.locator(".messagelist .success")).to_contain_text("2026-11 closed")
    expect(page.locator("#closed")).to_contain_text("Closed by fred")
    expect(page.get_by_role("button", name="Close period")).to_have_count(0)
    screenshot(page, "finance_closed")
    assert PeriodClose.objects.get().closed_by_id == fred.pk
    assert set(AuditEntry.objects.values_list("action", flat=True)) == {
        "variance_resolve", "bank_match", "period_close"}  # fmt: skip
