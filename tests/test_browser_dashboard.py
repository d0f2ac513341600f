"""The operations dashboard in a real browser (Debian's chromium through Playwright, against
live_server): an operations admin opens it after orders went through validation, allocation,
routing, labels and the outbox, and sees non-zero per-step latencies; a new order shows after
htmx refreshes the figures part, without a page load. Screenshot: var/screenshots/dashboard.png.
Run alone with ``pytest -m browser``."""

from __future__ import annotations

import pytest

from tests import test_browser
from tests.factories import make_order, make_user
from tests.fulfillment.helpers import add_warehouse, stock
from tests.test_browser import log_in, screenshot

browser = test_browser.browser
page = test_browser.page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.pipeline,
    pytest.mark.orchestration,
    pytest.mark.django_db(transaction=True),
]


def test_an_ops_admin_sees_non_zero_step_latencies_after_orders_were_processed(
    page, live_server, settings, tmp_path
):
    from playwright.sync_api import expect

    settings.ERP_TARGET = "filedrop"
    settings.ERP_DROP_DIR = str(tmp_path / "erp")
    settings.WMS_TARGET = "local"
    settings.NOTIFY_TARGETS = ["email"]
    add_warehouse("A")
    stock("MUG", "A", 20)
    for _ in range(3):
        assert make_order(paid=True, lines=[("MUG", 1, "10.00")]).status == "fulfilling"
    make_user("olga", "ops_admin")
    log_in(page, live_server, "olga")

    page.goto(f"{live_server.url}/admin/work/dashboard/")
    expect(page.locator("h1")).to_have_text("Operations dashboard")
    for step in ("check:address", "allocation", "routing", "label", "downstream:filedrop"):
        row = page.locator(f"#latencies tr[data-step='{step}']")
        expect(row.locator("td.p50")).not_to_have_text("-")
        assert float(row.locator("td.p95").inner_text()) > 0, step
    expect(page.locator("#tile-in-hour .figure")).to_have_text("3")
    expect(page.locator("#chart-hour svg")).to_be_visible()
    expect(page.locator("#targets tr[data-target='filedrop'] td.dead")).to_have_text("0")
    screenshot(page, "dashboard")

    # A fourth order, then the figures part alone is fetched again (what the 15 s poll does).
    make_order(paid=True, lines=[("MUG", 1, "10.00")])
    page.evaluate("window.__same_page = true")
    page.evaluate(
        "htmx.ajax('GET', '/admin/work/dashboard/', "
        "{target: '#dashboard-figures', swap: 'outerHTML'})"
    )
    expect(page.locator("#tile-in-hour .figure")).to_have_text("4")
    assert page.evaluate("window.__same_page") is True  # no page load happened
