"""The incidents screen in a real browser (Debian's chromium through Playwright, against
live_server), with every pipeline check and the allocator as production runs them: a
customer-service user opens the incidents page, sees unmapped SKUs on top, opens the category,
maps the channel's variant to our product in one click, and the two orders held for it are
released and allocated. Screenshots: var/screenshots/incidents.png, incident_sku_list.png (the
form filled in), incident_fix_sku.png (after the click). Run alone with ``pytest -m browser``."""

from __future__ import annotations

import pytest

from orders.models import Incident, IncidentStatus, Order, Product
from tests import test_browser
from tests.factories import SalesChannelFactory, make_user
from tests.fulfillment.helpers import add_warehouse, stock
from tests.reviews.test_incident_screen import WENT_ON, held_order
from tests.test_browser import log_in, screenshot

# The browser (module scope: it closes when this module is done) and a page per test, as in
# tests/test_browser.py.
browser = test_browser.browser
page = test_browser.page

pytestmark = [pytest.mark.browser, pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]


def test_customer_service_maps_an_unmapped_sku_and_the_held_orders_flow_on(page, live_server):
    from playwright.sync_api import expect

    Product.objects.create(sku="MUG-RED", title="Red mug")
    add_warehouse("EAST")
    stock("MUG-RED", "EAST", 20)
    shop = SalesChannelFactory(slug="shop")
    held = [held_order(shop), held_order(shop)]
    assert [o.status for o in held] == ["on_hold", "on_hold"]
    make_user("carol", "customer_service")
    log_in(page, live_server, "carol")

    page.goto(f"{live_server.url}/admin/work/incidents/")
    top = page.locator("#top-categories")
    expect(top.locator("li").first).to_contain_text("SKU unmapped")
    row = page.locator("#incident-counts tr[data-category='sku_unmapped']")
    expect(row.locator("td[data-window='today-incidents']")).to_have_text("2")
    expect(page.locator(".chart svg")).to_be_visible()
    screenshot(page, "incidents")

    top.get_by_role("link", name="SKU unmapped").click()
    refs = page.locator("#unmapped-refs tr[data-ref='v-red']")
    expect(refs).to_contain_text("CH-RED (variant v-red)")
    expect(refs).to_contain_text("2:")
    expect(page.locator("#incident-list tbody tr")).to_have_count(2)
    refs.get_by_label("Our SKU for v-red:").fill("MUG-RED")
    screenshot(page, "incident_sku_list")
    refs.get_by_role("button", name="Map and release").click()

    message = page.locator(".messagelist .success")
    expect(message).to_contain_text("Mapped v-red on shop to MUG-RED; 2 held order(s) released")
    expect(page.locator("#unmapped-refs")).to_have_count(0)
    expect(page.get_by_text("Nothing open in this category.")).to_be_visible()
    screenshot(page, "incident_fix_sku")

    for order in held:
        order = Order.objects.get(pk=order.pk)
        assert order.status in WENT_ON, order.status_reason
        assert set(order.incidents.values_list("status", flat=True)) == {IncidentStatus.RESOLVED}
    page.goto(f"{live_server.url}/admin/orders/order/{held[0].pk}/change/")
    expect(page.locator("body")).to_contain_text("Allocated")
    assert not Incident.objects.exclude(status=IncidentStatus.RESOLVED).exists()
