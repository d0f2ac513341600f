"""The KPI page in a real browser (Debian's chromium through Playwright, against live_server):
an operations admin opens this week's KPIs, sees the figures against last week with their
arrows, the channel's row and the chart, steps to the week before and picks a week with the
week picker. Screenshot: var/screenshots/kpis.png. Run alone with ``pytest -m browser``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from fulfillment.shipments import shipment_buy_label, shipment_ship, shipments_create_for_order
from orders.actors import Actor
from reviews import kpis
from reviews.kpi_views import week_label
from tests import test_browser
from tests.factories import SalesChannelFactory, make_user
from tests.fulfillment.helpers import add_warehouse, stock
from tests.reviews.helpers import order_with
from tests.test_browser import log_in, screenshot

browser = test_browser.browser
page = test_browser.page

pytestmark = [pytest.mark.browser, pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]

OPS = Actor.system("test")


def shipped(channel):
    order = order_with(channel=channel, source={"acquisition_source": "google"})
    for draft in shipments_create_for_order(order_id=order.pk, actor=OPS):
        shipment_ship(shipment_id=shipment_buy_label(shipment_id=draft.pk, actor=OPS).pk,
                      actor=OPS)  # fmt: skip
    order.refresh_from_db()
    assert order.status == "shipped"
    return order


def test_ops_admin_reads_this_weeks_kpis_against_last_week(page, live_server):
    from playwright.sync_api import expect

    shop = SalesChannelFactory(slug="shop")
    add_warehouse("A")
    stock("SKU-1", "A", 50)
    shipped(shop)
    shipped(shop)
    order_with(channel=shop)  # allocated, not shipped yet
    make_user("otto", "ops_admin")
    log_in(page, live_server, "otto")

    page.goto(f"{live_server.url}/admin/work/kpis/")
    this_week = week_label(kpis.week_of(timezone.now().date()))
    expect(page.locator("h1")).to_contain_text(f"KPIs, week {this_week}")
    received = page.locator("#kpi-overall tr[data-kpi='1']")
    expect(received.locator("td").nth(0)).to_have_text("3")
    expect(received.locator("td").nth(1)).to_have_text("0")
    expect(received.locator("td").nth(2)).to_have_text("▲ 3")
    no_touch = page.locator("#kpi-overall tr[data-kpi='2']")
    expect(no_touch.locator("td").nth(0)).to_have_text("100.00")
    row = page.locator("#kpi-channels tr[data-channel='shop']")
    expect(row).to_contain_text("3")
    expect(page.locator("#kpi-sources")).to_contain_text("google")
    expect(page.locator(".chart svg")).to_be_visible()
    screenshot(page, "kpis")

    page.locator("#previous-week").click()
    last_week = week_label(kpis.week_of(timezone.now().date()) - timedelta(weeks=1))
    expect(page.locator("h1")).to_contain_text(f"KPIs, week {last_week}")
    expect(page.locator("#kpi-overall tr[data-kpi='1'] td").nth(0)).to_have_text("0")
    expect(page.locator("#kpi-overall tr[data-kpi='1'] td").nth(2)).to_have_text(
        "= 0"
    )  # the week before it had none either

    page.locator("#id_week").fill(this_week)
    page.get_by_role("button", name="Show").click()
    expect(page.locator("h1")).to_contain_text(f"KPIs, week {this_week}")
