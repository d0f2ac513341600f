"""A return end to end, with real processes and nobody but the customer and the warehouse:
Shopify's sample order comes in through its signed webhook, ships in two parcels and is
delivered (the feedback loop's stack: gunicorn, a Celery worker, the local carrier's polling).
The customer opens the status page from gunicorn, starts a return of two iPods there, the
return policy authorizes it, the worker buys the local carrier's return label (a real PDF, sent
by email and downloadable from the return's page). The warehouse receives the parcel through
the API: one iPod back to stock, one damaged. The refund is computed exactly and goes out
through the outbox: the loopback Shopify gets one refund (calculated first), the loopback
NetSuite one credit memo under the refund's correlation id, the customer one refund email, and
stock on hand rises by the restocked unit only."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
from pypdf import PdfReader
from pytest_httpserver import HTTPServer
from rest_framework.authtoken.models import Token

from channels.models import InboundEvent
from fulfillment.models import OutboundAction, Return, ReturnPolicy, Shipment, StockLevel
from orders.models import Refund
from tests.channels.adapters.test_shopify import _sign as shopify_sign
from tests.e2e import vendors
from tests.e2e.test_feedback_loop import (
    SECRET,
    Stack,
    delivered,
    open_stack,
    post_shopify,
    shipped,
    shopify_world,
    stack_env,
)
from tests.factories import make_user

pytestmark = [
    pytest.mark.worker,
    pytest.mark.pipeline,
    pytest.mark.orchestration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
]

GREEN, RED, BLACK = "IPOD2008GREEN", "IPOD2008RED", "IPOD2008BLACK"  # KY1, TX1, KY1
REFUND_SUBJECT = "Your refund for order"
LABEL_SUBJECT = "Your return label for order"


@pytest.fixture(scope="module")
def stack(
    django_db_setup: None, tmp_path_factory: pytest.TempPathFactory, make_httpserver: HTTPServer
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("return-loop")
    env = {
        **stack_env(root),
        # The sale and its credit memo go to NetSuite (the loopback below, on the session's
        # pytest-httpserver: its address is known before the processes start).
        "ERP_TARGET": "netsuite",
        "NETSUITE_API_BASE": make_httpserver.url_for("/netsuite"),
        "NETSUITE_TOKEN": vendors.NETSUITE_TOKEN,
        "NETSUITE_CUSTOMER_ID": "77",
        "RETURN_LABEL_CARRIER": "local",
    }
    yield from open_stack(root, env, "returns")


def mails(stack: Stack, subject: str) -> list[str]:
    """Every email the file backend wrote whose subject starts with ``subject``."""
    if not stack.mail_dir.exists():
        return []
    found = []
    for f in sorted(stack.mail_dir.iterdir()):
        for message in re.split(r"^-{79}$", f.read_text(), flags=re.M):
            if re.search(rf"^Subject: {re.escape(subject)}", message, flags=re.M):
                found.append(message)
    return found


def on_hand(sku: str, warehouse: str) -> int:
    return StockLevel.objects.get(sku=sku, warehouse__code=warehouse).on_hand


def start_return_on_the_status_page(stack: Stack, order: Any, browser: requests.Session) -> str:
    """What the customer does: the status page's "Start a return" link, the form, two iPods
    with a reason each. Returns the return's page address."""
    from fulfillment.status_page import status_url

    page = browser.get(status_url(order), timeout=10)
    assert page.status_code == 200 and not page.cookies
    [link] = re.findall(r'<a class="start-return" href="([^"]+)"', page.text)
    form = browser.get(f"{stack.base_url}{link}", timeout=10)
    assert form.status_code == 200, form.text[:500]
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form.text))
    lines = {ln.sku: ln.pk for ln in order.lines.all()}
    assert f'name="qty_{lines[RED]}"' in form.text  # every delivered line may come back
    data = {
        **fields,
        f"qty_{lines[GREEN]}": "1", f"reason_{lines[GREEN]}": "size_or_fit",
        f"qty_{lines[BLACK]}": "1", f"reason_{lines[BLACK]}": "defective",
        "resolution": "refund", "note": "The black one will not switch on",
    }  # fmt: skip
    sent = browser.post(f"{stack.base_url}{link}", data=data, timeout=10, allow_redirects=False,
                        headers={"Referer": f"{stack.base_url}{link}"})  # fmt: skip
    assert sent.status_code == 303, sent.text[:1000]
    # The same form sent again (a double click): the same return, not a second one.
    again = browser.post(f"{stack.base_url}{link}", data=data, timeout=10, allow_redirects=False,
                         headers={"Referer": f"{stack.base_url}{link}"})  # fmt: skip
    assert again.headers["Location"] == sent.headers["Location"]
    return f"{stack.base_url}{sent.headers['Location']}"


def test_a_delivered_order_is_returned_from_the_status_page_and_refunded_everywhere_once(
    stack: Stack, settings: Any, httpserver: HTTPServer
) -> None:
    settings.PUBLIC_BASE_URL = stack.base_url
    store, sample = shopify_world(httpserver)
    netsuite = vendors.NetSuite(httpserver)
    ReturnPolicy.objects.create(
        name="30-day returns", window_days=30, auto_authorize_limit=Decimal("1000"),
        refund_trigger="receipt",
    )  # fmt: skip
    post_shopify(stack, sample, "ret-1")
    order = delivered(stack, shipped(stack, "shop", str(sample["id"])))
    stack.wait("the sale in NetSuite", lambda: len(netsuite.records["salesOrder"]) == 1)
    stock_before = {(sku, wh): on_hand(sku, wh)
                    for sku, wh in ((GREEN, "KY1"), (BLACK, "KY1"), (RED, "TX1"))}  # fmt: skip

    browser = requests.Session()
    return_page = start_return_on_the_status_page(stack, order, browser)
    ret = Return.objects.get(order=order)
    assert (ret.status, ret.requested_via, ret.auto_authorized) == ("authorized", "status_page",
                                                                     True)  # fmt: skip
    assert ret.warehouse.code == "KY1"  # both came from there

    # The worker buys the return label (the local carrier's PDF) and emails it.
    stack.wait("the return label", lambda: Return.objects.filter(
        pk=ret.pk).exclude(tracking_number="").exists())  # fmt: skip
    label = stack.wait("the label on the return's page", lambda: (
        r if (r := browser.get(f"{return_page}label.pdf", timeout=10)).status_code == 200
        else None))  # fmt: skip
    assert label.headers["Content-Type"] == "application/pdf"
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(label.content)).pages)
    assert ret.rma_number in text and "RETURN" in text.upper()
    [label_mail] = stack.wait("the label email", lambda: mails(stack, LABEL_SUBJECT))
    assert f'filename="return-label-{ret.rma_number}.pdf"' in label_mail

    # The warehouse: the parcel is back, the green one as new, the black one damaged.
    cs = make_user("warehouse-desk", "customer_service")
    token = Token.objects.create(user=cs)
    by_sku = {ln.sku: ln.pk for ln in ret.lines.all()}
    received = requests.post(
        f"{stack.base_url}/api/v1/returns/{ret.pk}/receive/", timeout=20,
        headers={"Authorization": f"Token {token.key}"},
        json={"conditions": {str(by_sku[GREEN]): "restock", str(by_sku[BLACK]): "damaged"},
              "note": "black one dented"},
    )  # fmt: skip
    assert received.status_code == 200, received.text
    assert received.json()["status"] == "refunded"

    # The refund, exactly: each iPod 199.00 less its discount allocation (3.34, 3.33) plus its
    # tax (3.98); shipping was free; "defective" is our fault, so no restocking fee.
    refund = Refund.objects.get(order=order)
    assert (refund.source, refund.external_id) == ("rma", ret.rma_number)
    assert refund.amount == Decimal("199.64") + Decimal("199.65") == Decimal("399.29")
    assert (refund.lines_amount, refund.lines_tax, refund.restocking_fee) == (
        Decimal("391.33"), Decimal("7.96"), Decimal("0.00"))  # fmt: skip

    def sent_everywhere() -> bool:
        actions = OutboundAction.objects.filter(
            order=order, kind__in=["channel_refund", "erp_credit_note"]
        ).values_list("kind", "status")
        emails = OutboundAction.objects.filter(order=order, kind="notify_customer",
                                               payload__template="refund_issued")  # fmt: skip
        return (sorted(actions) == [("channel_refund", "succeeded"),
                                    ("erp_credit_note", "succeeded")]
                and emails.filter(status="succeeded").exists())  # fmt: skip

    stack.wait("the refund sent to Shopify, NetSuite and the customer", sent_everywhere)
    stack.beat("fulfillment.outbox_sweep")  # a sweep finds nothing left to send

    # Shopify: calculated, then exactly one refund, for our amount, with our reference.
    assert len(store.bodies("POST", re.compile(r"orders/\d+/refunds/calculate\.json"))) >= 1
    [created] = store.bodies("POST", re.compile(r"orders/\d+/refunds\.json"))
    assert sum(Decimal(t["amount"]) for t in created["refund"]["transactions"]) == refund.amount
    assert refund.reference in created["refund"]["note"]
    restocks = sorted((li["line_item_id"], li["restock_type"])
                      for li in created["refund"]["refund_line_items"])  # fmt: skip
    assert restocks == [(466157049, "return"), (703073504, "no_restock")]
    assert len(store.refunds) == 1
    # NetSuite: one credit memo, its external id our refund's correlation id.
    [memo] = netsuite.records["creditMemo"].values()
    assert memo["externalId"] == f"{refund.correlation_id}-{refund.reference}"
    assert len(netsuite.bodies("POST", "creditMemo")) == 1
    # The customer: one refund email.
    [refund_mail] = mails(stack, REFUND_SUBJECT)
    assert "399.29" in refund_mail
    # Stock: the restocked unit only.
    assert {key: on_hand(*key) for key in stock_before} == {
        **stock_before,
        (GREEN, "KY1"): stock_before[(GREEN, "KY1")] + 1,
    }
    refund.refresh_from_db()
    ret.refresh_from_db()
    order.refresh_from_db()
    assert (refund.status, ret.status) == ("succeeded", "closed")
    assert (order.refunded_total, order.payment_status) == (Decimal("399.29"),
                                                            "partially_refunded")  # fmt: skip
    # The KY1 parcel came back whole; TX1's red iPod is still with the customer.
    assert sorted(Shipment.objects.filter(order=order).values_list(
        "warehouse__code", "status")) == [("KY1", "returned"), ("TX1", "delivered")]  # fmt: skip
    # Shopify's own refunds/create webhook for the refund we made: recognised as ours, nothing
    # new (the inbox calls it a duplicate).
    body = json.dumps(store.refunds[0]).encode()
    echo = requests.post(f"{stack.base_url}/webhooks/shop/", data=body, timeout=10, headers={
        "Content-Type": "application/json", "X-Shopify-Topic": "refunds/create",
        "X-Shopify-Hmac-Sha256": shopify_sign(body, SECRET),
        "X-Shopify-API-Version": vendors.SHOPIFY_VERSION, "X-Shopify-Webhook-Id": "ret-echo",
    })  # fmt: skip
    assert echo.status_code == 202, echo.text
    stack.wait("the echo processed", lambda: InboundEvent.objects.filter(
        topic="refunds/create", status="duplicate").exists())  # fmt: skip
    assert Refund.objects.filter(order=order).count() == 1
    assert store.bodies("POST", re.compile(r"orders/\d+/refunds\.json")) == [created]
    # The return's page says so, and the status page lists it.
    page = browser.get(return_page, timeout=10).text
    assert "Done" in page and "Refunded: <strong>399.29 USD</strong>" in page
    from fulfillment.status_page import status_url

    assert f">{ret.rma_number}</a>" in browser.get(status_url(order), timeout=10).text
    assert len(mails(stack, REFUND_SUBJECT)) == 1
