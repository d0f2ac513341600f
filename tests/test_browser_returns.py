"""Returns and refunds in the admin, in a real browser (Debian's chromium through Playwright,
against live_server): customer service starts, authorizes and receives a return from the order's
page and sees its refund there; a refund above the role's limit is refused in words; finance
confirms a refund made by hand in the channel. Run alone with ``pytest -m browser``."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fulfillment.models import Return, StockLevel
from fulfillment.returns import ReturnLineRequest, return_authorize, return_receive, return_request
from fulfillment.services import allocate
from orders.actors import Actor
from orders.models import Refund
from orders.validation import registry
from tests import test_browser
from tests.factories import make_user
from tests.fulfillment.returns_world import cs_limit, delivered_order, review_policy
from tests.test_browser import log_in, screenshot

# The browser (module scope: it closes when this module is done) and a page per test, as in
# tests/test_browser.py.
browser = test_browser.browser
page = test_browser.page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def shop(settings):
    settings.CRM_TARGETS = []
    settings.RETURN_WINDOW_DAYS_DEFAULT = 30
    saved = registry.snapshot()
    registry.set_allocator(allocate)  # as fulfillment's ready() does (see tests/fulfillment)
    review_policy()
    cs_limit("100")
    yield
    registry.restore(saved)


def start_return(page, live_server, order, reasons: dict[str, tuple[int, str]]) -> Return:
    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/admin/orders/order/{order.pk}/change/")
    returns = page.get_by_role("region", name="Returns")
    expect(returns).to_contain_text("No returns.")
    returns.get_by_role("link", name="Start a return").click()
    for sku, (units, reason) in reasons.items():
        page.get_by_label(f"Units of {sku}").fill(str(units))
        page.get_by_label(f"Reason for {sku}").select_option(reason)
    page.get_by_role("button", name="Start the return").click()
    ret = Return.objects.get(order=order)
    expect(page.locator(".messagelist .success")).to_have_text(
        f"{ret.rma_number} started (status Requested (waiting for customer service))."
    )
    return ret


def test_customer_service_returns_two_items_one_restocked_one_damaged_and_sees_the_refund(
    page, live_server
):
    from playwright.sync_api import expect

    make_user("carol", "customer_service")
    order = delivered_order([("MUG", 1, "10.00"), ("CUP", 2, "15.00")])
    log_in(page, live_server, "carol")

    ret = start_return(page, live_server, order,
                       {"MUG": (1, "changed_mind"), "CUP": (2, "damaged")})  # fmt: skip
    assert ret.requested_via == "admin"
    actions = page.get_by_role("region", name="Return actions")
    expect(page.locator(".field-verdict")).to_contain_text(
        "Needs customer service: the policy authorizes no return by itself."
    )
    actions.get_by_role("button", name="Authorize").click()
    expect(page.locator(".messagelist .success")).to_have_text(
        f"{ret.rma_number}: authorize done (status Authorized)."
    )
    # The label was bought through the outbox after commit: the local carrier's PDF.
    page.reload()
    label = page.get_by_role("link", name="Return label (PDF)")
    expect(label).to_be_visible()
    pdf = page.request.get(f"{live_server.url}{label.get_attribute('href')}")
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF")

    before = {sku: StockLevel.objects.get(sku=sku).on_hand for sku in ("MUG", "CUP")}
    actions = page.get_by_role("region", name="Return actions")
    actions.get_by_label("Condition of MUG").select_option("restock")
    actions.get_by_label("Condition of CUP").select_option("damaged")
    screenshot(page, "return_receive")  # for people; not asserted
    actions.get_by_role("button", name="Receive").click()
    expect(page.locator(".messagelist .success")).to_have_text(
        f"{ret.rma_number}: receive done (status Refunded)."
    )
    ret.refresh_from_db()
    refund = ret.refund
    assert refund is not None and refund.amount == order.total == Decimal("46.50")
    assert StockLevel.objects.get(sku="MUG").on_hand == before["MUG"] + 1
    assert StockLevel.objects.get(sku="CUP").on_hand == before["CUP"]

    page.get_by_role("link", name=order.order_number or order.external_id).first.click()
    refunds = page.get_by_role("region", name="Refunds")
    expect(refunds).to_contain_text(refund.reference)
    expect(refunds).to_contain_text("46.50 USD")
    expect(refunds).to_contain_text("original payment 46.50")
    expect(refunds).to_contain_text("refunded 46.50 USD")
    expect(page.get_by_role("region", name="Returns")).to_contain_text(ret.rma_number)
    expect(page.get_by_role("region", name="Lifecycle")).to_contain_text("Payment: Refunded")
    screenshot(page, "order_refunds")


def test_a_refund_above_the_customer_service_limit_is_refused_in_words(page, live_server):
    from playwright.sync_api import expect

    make_user("carol", "customer_service")
    order = delivered_order([("LAMP", 1, "150.00")])
    log_in(page, live_server, "carol")
    ret = start_return(page, live_server, order, {"LAMP": (1, "changed_mind")})
    actions = page.get_by_role("region", name="Return actions")
    actions.get_by_role("button", name="Authorize").click()
    expect(page.locator(".messagelist .success")).to_contain_text("authorize done")

    actions = page.get_by_role("region", name="Return actions")
    actions.get_by_role("button", name="Refund").click()
    expect(page.locator(".messagelist .error")).to_have_text(
        "Refused: A refund of 151.50 USD is above your limit of 100.00 USD: finance must issue it"
    )
    screenshot(page, "return_refund_refused")
    assert not Refund.objects.filter(order=order).exists()
    ret.refresh_from_db()
    assert ret.status == "authorized"


def test_finance_confirms_a_refund_made_by_hand_in_the_channel(page, live_server):
    from playwright.sync_api import expect

    carol = make_user("carol", "customer_service")
    make_user("fred", "finance")
    order = delivered_order([("MUG", 1, "10.00")])
    cs = Actor.for_user(carol)
    ret = return_request(order_id=order.pk, via="admin", actor=cs,
                         lines=[ReturnLineRequest(order.lines.get().pk, 1, "damaged")])  # fmt: skip
    return_authorize(return_id=ret.pk, actor=cs)
    [line] = ret.lines.all()
    return_receive(return_id=ret.pk, actor=cs, conditions={line.pk: "restock"})
    refund = Refund.objects.get(order=order)
    assert refund.status == "manual"

    log_in(page, live_server, "fred")
    page.goto(f"{live_server.url}/admin/orders/refund/?status__exact=manual")
    page.get_by_role("link", name=refund.reference).click()
    status = page.get_by_role("region", name="Refund status")
    expect(status).to_contain_text("Status: To be refunded in the channel by hand")
    expect(page.locator(".field-figures")).to_contain_text(
        "No difference between the channel's figures and ours."
    )
    screenshot(page, "refund_manual")
    status.get_by_role("button", name="Confirm refunded by hand").click()
    expect(page.locator(".messagelist .success")).to_have_text(
        f"Refund {refund.reference}: confirmed as refunded by hand."
    )
    expect(page.get_by_role("region", name="Refund status")).to_contain_text("Status: Succeeded")
    expect(page.get_by_role("button", name="Confirm refunded by hand")).to_have_count(0)
    refund.refresh_from_db()
    assert refund.status == "succeeded"
    assert Return.objects.get(pk=ret.pk).status == "closed"


def test_the_customer_starts_a_return_on_the_status_page_and_gets_the_label(page, live_server,
                                                                           settings):  # fmt: skip
    from playwright.sync_api import expect

    from fulfillment.models import ReturnPolicy
    from fulfillment.status_page import status_path

    settings.PUBLIC_BASE_URL = live_server.url
    ReturnPolicy.objects.update(auto_authorize_limit=Decimal("500"))  # authorized at once
    order = delivered_order([("MUG", 2, "12.50"), ("TEE", 1, "19.99")])

    page.goto(f"{live_server.url}{status_path(order.pk)}")
    page.get_by_role("link", name="Start a return").click()
    form = page.get_by_role("form", name="Start a return")
    expect(form).to_contain_text("within 30 days of delivery")
    page.get_by_label("MUG", exact=True).select_option("1")  # the quantity: at most the 2 delivered
    page.get_by_label("Reason for MUG").select_option("damaged")
    page.get_by_label("Anything we should know?").fill("The handle came off")
    screenshot(page, "status_start_return")  # for people to look at
    page.get_by_role("button", name="Start the return").click()

    ret = Return.objects.get(order=order)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Return {ret.rma_number}")
    expect(page.locator("[data-status]")).to_have_text(
        "Accepted: send the items back with the label"
    )
    with page.expect_download() as download:
        page.get_by_role("link", name="Download your return label (PDF)").click()
    assert download.value.suggested_filename == f"return-label-{ret.rma_number}.pdf"
    assert open(download.value.path(), "rb").read(4) == b"%PDF"
    screenshot(page, "status_return_started")
    page.get_by_role("link", name="Back to order").click()
    expect(page.get_by_role("region", name="Your returns")).to_contain_text(ret.rma_number)
    assert [(ln.quantity, ln.reason) for ln in ret.lines.all()] == [(1, "damaged")]
    assert ret.customer_note == "The handle came off"


def test_a_return_form_without_a_reason_says_so_and_keeps_the_choice(page, live_server):
    from playwright.sync_api import expect

    from fulfillment.status_page import status_path

    order = delivered_order([("MUG", 2, "12.50")])
    page.goto(f"{live_server.url}{status_path(order.pk)}")
    page.get_by_role("link", name="Start a return").click()
    page.get_by_label("MUG", exact=True).select_option("2")
    page.get_by_role("button", name="Start the return").click()

    expect(page.get_by_role("alert")).to_have_text("Tell us why you are returning MUG")
    expect(page.get_by_label("MUG", exact=True)).to_have_value("2")
    assert not Return.objects.exists()
