"""The order admin in a real browser: Debian's chromium driven by Playwright against live_server.

Run alone with ``pytest -m browser``. Without /usr/bin/chromium the tests are skipped, unless
REQUIRE_BROWSER=1 (CI), where a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orders import validation
from orders.models import Order, OrderEvent
from tests.factories import advance, make_order, make_user

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
PAYMENT_LABELS = {
    "Authorize payment",
    "Capture payment",
    "Grant net terms",
    "Settle invoice",
    "Refund",
    "Refund partially",
}

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _no_browser(reason: str) -> None:
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (REQUIRE_BROWSER=1: the browser tests must run)")
    pytest.skip(reason)


# Module scope, not session: while Playwright's sync API is alive, its event loop counts as
# running in the main thread, so any later test calling asyncio.run() or async_to_sync() would
# fail. All browser tests live in this module; the browser closes when the module is done.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        _no_browser(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("playwright is not installed (pip install -e '.[dev]')")
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def screenshot_dir() -> Path:
    """Where the run keeps its screenshots: ``$SCREENSHOT_DIR``, else ``var/screenshots`` of the
    checkout (``.ci/run`` lists them at the end)."""
    default = Path(__file__).parent.parent / "var" / "screenshots"
    path = Path(os.environ.get("SCREENSHOT_DIR") or default)
    path.mkdir(parents=True, exist_ok=True)
    return path


def screenshot(page: Any, name: str) -> Path:
    """A full-page screenshot ``<name>.png`` kept by the run, for people to look at (never
    asserted)."""
    path = screenshot_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def validated_order(**kwargs: Any) -> Order:
    """An order through the pipeline; in a transaction=True test the doorbell rings on commit."""
    order = make_order(**kwargs)
    if order.status == "received":
        validation.order_validate(order_id=order.pk)
        order.refresh_from_db()
    assert order.status == "validated"
    return order


def log_in(page: Any, live_server: Any, username: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("pw-" + username)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server.url}/admin/")


def open_order(page: Any, live_server: Any, order: Order) -> Any:
    """Open the order's change page; returns its Lifecycle section."""
    page.goto(f"{live_server.url}/admin/orders/order/{order.pk}/change/")
    return page.get_by_role("region", name="Lifecycle")


def button_labels(lifecycle: Any) -> set[str]:
    return {label.strip() for label in lifecycle.get_by_role("button").all_inner_texts()}


def test_customer_service_puts_an_order_on_hold_with_a_reason(page, live_server):
    from playwright.sync_api import expect

    carol = make_user("carol", "customer_service")
    order = validated_order()
    log_in(page, live_server, "carol")

    lifecycle = open_order(page, live_server, order)

    expect(lifecycle).to_contain_text("Status: Validated")
    expect(lifecycle).to_contain_text("Payment: Pending")
    assert button_labels(lifecycle) == {"Hold", "Cancel"}
    assert not button_labels(lifecycle) & PAYMENT_LABELS
    screenshot(page, "order_change")  # for people to look at; not asserted

    lifecycle.get_by_label("Reason for hold").fill("Customer asked to wait for a gift note")
    lifecycle.get_by_role("button", name="Hold", exact=True).click()

    expect(page.locator(".messagelist .success")).to_have_text(
        f"Order {order.external_id}: hold done (status On hold, payment Pending)."
    )
    lifecycle = page.get_by_role("region", name="Lifecycle")
    expect(lifecycle).to_contain_text("Status: On hold")
    expect(lifecycle).to_contain_text("Reason: Customer asked to wait for a gift note")
    order.refresh_from_db()
    assert order.status == "on_hold"
    assert order.status_reason == "Customer asked to wait for a gift note"
    event = OrderEvent.objects.get(order=order, action="hold")
    assert (event.actor_kind, event.actor_id) == ("user", carol.get_username())
    assert (event.from_state, event.to_state) == ("validated", "on_hold")
    assert event.data == {"reason": "Customer asked to wait for a gift note"}
    # On hold, customer service may release the hold or cancel, still nothing about payment.
    assert button_labels(lifecycle) == {"Release hold", "Cancel"}


def test_hold_without_a_reason_is_not_submitted(page, live_server):
    make_user("carol", "customer_service")
    order = validated_order()
    log_in(page, live_server, "carol")
    lifecycle = open_order(page, live_server, order)

    reason = lifecycle.get_by_label("Reason for hold")
    lifecycle.get_by_role("button", name="Hold", exact=True).click()

    assert reason.evaluate("input => input.validity.valueMissing") is True
    assert page.locator(".messagelist").count() == 0
    order.refresh_from_db()
    assert order.status == "validated"
    assert not OrderEvent.objects.filter(order=order, action="hold").exists()


def test_finance_captures_the_payment(page, live_server):
    from playwright.sync_api import expect

    fred = make_user("fred", "finance")
    order = validated_order()
    log_in(page, live_server, "fred")

    lifecycle = open_order(page, live_server, order)
    assert button_labels(lifecycle) == {"Authorize payment", "Capture payment"}
    lifecycle.get_by_role("button", name="Capture payment", exact=True).click()

    expect(page.locator(".messagelist .success")).to_contain_text(
        "capture payment done (status Validated, payment Paid)"
    )
    expect(page.get_by_role("region", name="Lifecycle")).to_contain_text("Payment: Paid")
    order.refresh_from_db()
    assert order.payment_status == "paid"
    assert order.status == "validated"
    event = OrderEvent.objects.get(order=order, action="capture_payment")
    assert (event.actor_kind, event.actor_id) == ("user", fred.get_username())
    assert (event.field, event.from_state, event.to_state) == ("payment_status", "pending", "paid")


def test_a_click_on_a_stale_page_is_refused_and_changes_nothing(page, live_server):
    from playwright.sync_api import expect

    make_user("carol", "customer_service")
    order = validated_order()
    log_in(page, live_server, "carol")
    lifecycle = open_order(page, live_server, order)
    expect(lifecycle).to_contain_text("Status: Validated")

    # Someone else (here: the system) moves the order while the page is open.
    order = advance(order, "hold", reason="address check")
    events_before = OrderEvent.objects.filter(order=order).count()
    # Cancel is allowed from on_hold too: only the stale-page guard can stop this click.
    lifecycle.get_by_label("Reason for cancel").fill("duplicate order")
    lifecycle.get_by_role("button", name="Cancel", exact=True).click()

    error = page.locator(".messagelist .error")
    expect(error).to_have_count(1)
    assert error.inner_text().startswith("Refused:")
    expect(error).to_contain_text("is now 'on_hold', not 'validated'")
    expect(page.get_by_role("region", name="Lifecycle")).to_contain_text("Status: On hold")
    order.refresh_from_db()
    assert order.status == "on_hold"
    assert order.status_reason == "address check"
    assert OrderEvent.objects.filter(order=order).count() == events_before
    assert not OrderEvent.objects.filter(order=order, action="cancel").exists()


def test_order_list_filters_by_status_and_searches_by_exact_external_id(page, live_server):
    from playwright.sync_api import expect

    make_user("carol", "customer_service")
    validated_order(external_id="BRW-100")
    validated_order(external_id="BRW-1001")
    advance(validated_order(external_id="BRW-200"), "hold")
    advance(validated_order(external_id="BRW-300"), "cancel")
    log_in(page, live_server, "carol")
    rows = page.locator("#result_list tbody tr")
    ids = page.locator("#result_list tbody th.field-external_id")

    page.goto(f"{live_server.url}/admin/orders/order/")
    expect(rows).to_have_count(4)

    filters = page.locator("#changelist-filter")
    filters.get_by_role("link", name="On hold", exact=True).click()
    expect(page).to_have_url(f"{live_server.url}/admin/orders/order/?status__exact=on_hold")
    expect(ids).to_have_text(["BRW-200"])

    filters.get_by_role("link", name="Cancelled", exact=True).click()
    expect(ids).to_have_text(["BRW-300"])

    page.goto(f"{live_server.url}/admin/orders/order/")
    search = page.locator("#searchbar")
    search.fill("BRW-100")
    search.press("Enter")
    expect(page).to_have_url(f"{live_server.url}/admin/orders/order/?q=BRW-100")
    # The external id is matched exactly: BRW-1001 does not show up for BRW-100.
    expect(ids).to_have_text(["BRW-100"])

    search = page.locator("#searchbar")
    search.fill("BRW-1001")
    search.press("Enter")
    expect(ids).to_have_text(["BRW-1001"])
    ids.first.get_by_role("link").click()
    expect(page.get_by_role("region", name="Lifecycle")).to_contain_text("Status: Validated")
    pk = Order.objects.get(external_id="BRW-1001").pk
    expect(page).to_have_url(re.compile(rf"/admin/orders/order/{pk}/change/(\?|$)"))


def test_customer_service_sees_whether_a_channels_secrets_are_set_never_the_secrets(
    page, live_server
):
    from playwright.sync_api import expect

    from tests.factories import SalesChannelFactory

    make_user("carol", "customer_service")
    channel = SalesChannelFactory(
        slug="shop-secrets", webhook_secret="whsec-browser-never-shown",
        auth_header_name="X-Hook-Token", auth_header_value="hdr-browser-never-shown",
    )  # fmt: skip
    log_in(page, live_server, "carol")

    page.goto(f"{live_server.url}/admin/channels/saleschannel/{channel.pk}/change/")

    expect(page.locator("body")).to_contain_text(
        "Webhook secret: set · Auth header value: set · API credentials: not set"
    )
    html = page.content()
    assert "whsec-browser-never-shown" not in html and "hdr-browser-never-shown" not in html
    assert page.locator('input[name="webhook_secret"]').count() == 0
    screenshot(page, "channel_view_only")  # for people to look at


def test_customer_service_sees_an_inbound_event_without_its_body_and_headers_a_steward_does(
    page, live_server
):
    from playwright.sync_api import expect

    from channels.models import ChannelKind, InboundEvent
    from channels.services import inbound_event_ingest_file
    from tests.factories import SalesChannelFactory

    make_user("carol", "customer_service")
    make_user("stella", "data_steward")
    channel = SalesChannelFactory(kind=ChannelKind.CUSTOM, slug="web-raw", webhook_secret="k")
    body = json.dumps({"id": "evt-browser", "topic": "order.created", "order": {
        "external_id": "W-RAW-1", "customer": {"name": "Rita Raw", "email": "rita@example.com"},
    }}).encode()  # fmt: skip
    event, _ = inbound_event_ingest_file(channel=channel, body=body, topic="order.created")
    assert event is not None
    url = f"{live_server.url}/admin/channels/inboundevent/{event.pk}/change/"

    log_in(page, live_server, "carol")
    page.goto(url)
    expect(page.locator("#content")).to_contain_text("order.created")
    content = page.locator("#content").inner_text()
    assert "Rita Raw" not in content and "rita@example.com" not in content
    assert "x-imported-by" not in content
    assert page.get_by_text("Body (first 4 KB)").count() == 0
    assert page.get_by_text("Headers", exact=True).count() == 0
    screenshot(page, "inbound_event_customer_service")

    page.context.clear_cookies()
    log_in(page, live_server, "stella")
    page.goto(url)
    expect(page.get_by_text("Body (first 4 KB)")).to_have_count(1)
    expect(page.locator("#content")).to_contain_text("Rita Raw")
    expect(page.locator("#content")).to_contain_text('"x-imported-by": "ingest_file"')
    assert InboundEvent.objects.get(pk=event.pk).headers == {"x-imported-by": "ingest_file"}
    screenshot(page, "inbound_event_data_steward")


def test_finance_sees_an_orders_name_and_locality_but_no_street_or_phone(page, live_server):
    from playwright.sync_api import expect

    make_user("fred", "finance")
    order = validated_order()
    address = {
        "name": "Ada Lovelace", "line1": "12 Babbage Lane", "line2": "Flat 3",
        "city": "Springfield", "region_code": "IL", "postal_code": "62701",
        "country_code": "US", "phone": "+1 217 555 0199",
    }  # fmt: skip
    Order.objects.filter(pk=order.pk).update(shipping_address=address, billing_address=address)
    log_in(page, live_server, "fred")

    open_order(page, live_server, order)

    addresses = page.locator("fieldset").filter(
        has=page.get_by_role("heading", name="Addresses", exact=True)
    )
    expect(addresses).to_contain_text("Ada Lovelace")
    expect(addresses).to_contain_text("62701 Springfield")
    expect(addresses).not_to_contain_text("12 Babbage Lane")
    html = page.content()
    assert "12 Babbage Lane" not in html and "Flat 3" not in html and "555 0199" not in html
    screenshot(page, "order_finance")  # for people to look at


@pytest.mark.pipeline  # stock is reserved and shipped through the real services
def test_the_customer_sees_each_parcels_state_and_the_return_policy(page, live_server, settings):
    from playwright.sync_api import expect

    from fulfillment.status_page import status_path
    from tests.fulfillment.status_world import LAST_NAME, STREET, status_order

    order, (first, second) = status_order(settings=settings, events=6)

    response = page.goto(f"{live_server.url}{status_path(order.pk)}")

    assert response is not None and response.status == 200
    assert response.headers["x-robots-tag"] == "noindex, nofollow"
    expect(page).to_have_title("Order #1042: On its way")
    one = page.get_by_role("region", name="Parcel 1")
    two = page.get_by_role("region", name="Parcel 2")
    expect(one.locator(".parcel-state")).to_have_text("Delivered")
    expect(one).to_contain_text(first.tracking_number)
    expect(two.locator(".parcel-state")).to_have_text("Out for delivery")
    expect(two).to_contain_text("Speedy Parcel")
    expect(two.locator(".eta")).to_be_visible()
    expect(two.locator("ol.history li").first).to_contain_text("Out for delivery")
    expect(page.get_by_role("region", name="Not shipped yet")).to_contain_text("Cap navy")
    returns = page.get_by_role("region", name="Returns")
    expect(returns).to_be_visible()
    expect(returns).to_contain_text("30 days")
    expect(returns).to_contain_text("Unworn and unwashed, with the tags on.")
    expect(returns).to_contain_text("Reply to your shipping email with the order number.")
    text = page.locator("body").inner_text()
    assert STREET not in text and LAST_NAME not in text
    # The JSON-LD as a browser reads it: the script's text parses and names both parcels.
    data = json.loads(page.locator('script[type="application/ld+json"]').text_content() or "")
    numbers = {n["trackingNumber"] for n in data["@graph"] if n["@type"] == "ParcelDelivery"}
    assert numbers == {first.tracking_number, second.tracking_number}
    screenshot(page, "order_status_page")  # for people to look at
