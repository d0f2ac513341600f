"""Refunds in from BigCommerce (a thin webhook, the refund fetched from the v3 API) and Amazon
(refund events polled from the Finances API), each against the loopback vendor."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client, TestCase
from pytest_httpserver import HTTPServer

from channels.adapters import bigcommerce
from channels.adapters.base import ChannelConfig
from channels.models import InboundEvent, SalesChannel
from channels.services import inbound_event_process
from orders import jsonschemas
from orders.actors import Actor
from orders.models import Incident, Order, Refund, RefundPayment
from orders.services import LineInput, OrderInput, order_create, order_transition
from tests.channels.adapters.test_bigcommerce import _sign as standard_webhooks_headers
from tests.e2e.conftest import AMAZON_TOKEN, BC_REFUNDS, REFUNDS_PATH, SAMPLES, SECRETS
from tests.e2e.test_channel_samples import _post

pytestmark = [pytest.mark.django_db]

REFUND_WEBHOOK = SAMPLES / "bigcommerce" / "webhook_store_order_refund_created.json"
FINANCES = SAMPLES / "amazon" / "listFinancialEventsByGroupId_v0_sandbox.json"


def _order(channel: SalesChannel, external_id: str, lines: list[LineInput], **money: str) -> Order:
    """An order of the channel as if it had arrived, its payment captured."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        order = order_create(data=OrderInput(
            channel_id=channel.pk, external_id=external_id, currency="USD", lines=lines,
            placed_at=datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
            **{k: Decimal(v) for k, v in money.items()},
        ), actor=Actor.system("test"))  # fmt: skip
        order_transition(order_id=order.pk, transition="capture_payment",
                         actor=Actor.system("test"))  # fmt: skip
    order.refresh_from_db()
    return order


def _bc_order_250(channel: SalesChannel) -> Order:
    # The lines of the v2 products sample (ids 65 and 66: S-ORAN 55.99 less 1.59, tax 9.24;
    # ABS 0.00), under the order id the refund webhook names.
    return _order(channel, "250", [
        LineInput(sku="S-ORAN", quantity=1, unit_price=Decimal("55.99"), external_line_id="65",
                  discount=Decimal("1.59"), tax=Decimal("9.24"), channel_sku="S-ORAN"),
        LineInput(sku="ABS", quantity=1, unit_price=Decimal("0.00"), external_line_id="66",
                  discount=Decimal("0"), tax=Decimal("0"), channel_sku="ABS"),
    ], discount_total="1.59", shipping_total="11.09", shipping_tax="0.91", tax_total="10.15",
       total="75.64")  # fmt: skip


def _deliver_refund_webhook(client: Client, msg_id: str, *, status: int = 202) -> Any:
    body = REFUND_WEBHOOK.read_bytes()  # the sample as it is
    return _post(client, "bc", body, standard_webhooks_headers(
        body, msg_id=msg_id, timestamp=int(time.time()), secret=SECRETS["bc"]
    ), status=status)  # fmt: skip


# --- BigCommerce ------------------------------------------------------------------------------
def test_bigcommerce_refund_webhook_fetches_the_named_refund_once(
    world: dict[str, SalesChannel], client: Client, vendor: HTTPServer
) -> None:
    o250 = _bc_order_250(world["bc"])
    _deliver_refund_webhook(client, "msg_refund_1")
    _deliver_refund_webhook(client, "msg_refund_1", status=200)  # the same delivery again
    _deliver_refund_webhook(client, "msg_refund_2")  # BigCommerce fires it a second time

    refund = Refund.objects.get(order=o250)
    assert (refund.external_id, refund.amount, refund.reason) == (
        "3", Decimal("63.64"), "Damaged in transit"
    )  # fmt: skip
    # The money that moved, per provider; the declined 5.00 is not counted.
    assert sorted(RefundPayment.objects.filter(refund=refund).values_list("method", "amount")) == [
        ("braintree", Decimal("53.64")), ("storecredit", Decimal("10.00"))
    ]  # fmt: skip
    assert list(refund.lines.values_list("order_line__external_line_id", "quantity")) == [("65", 1)]
    o250.refresh_from_db()
    assert (o250.refunded_total, o250.payment_status) == (Decimal("63.64"), "partially_refunded")
    # 63.64 is our own 54.40 + 9.24 for one S-ORAN: nothing to flag.
    assert not Incident.objects.filter(order=o250, category="refund_mismatch").exists()
    # BigCommerce's own figures are kept as it sent them.
    assert refund.channel_figures["total_amount"] == "68.64"
    assert refund.channel_figures["declined_payments"] == [
        {"provider_id": "braintree", "amount": "5.00"}
    ]
    fetched = [r.path for r, _ in vendor.log if r.path.startswith("/stores/")]
    assert fetched == [REFUNDS_PATH, REFUNDS_PATH]  # the second firing; the replay is not read
    events = InboundEvent.objects.filter(channel__slug="bc").order_by("pk")
    assert [(e.status, e.outcome) for e in events] == [
        ("processed", "refund_recorded"), ("duplicate", "unchanged")
    ]  # fmt: skip


def test_bigcommerce_refund_lines_are_named_as_normalize_names_the_v2_products(
    world: dict[str, SalesChannel],
) -> None:
    fetched = {
        "order": json.loads((SAMPLES / "bigcommerce" / "v2_get_order_218.json").read_bytes()),
        "products": json.loads(
            (SAMPLES / "bigcommerce" / "v2_get_order_products.json").read_bytes()
        ),
        "shipping_addresses": json.loads(
            (SAMPLES / "bigcommerce" / "v2_get_order_shipping_addresses.json").read_bytes()
        ),
    }
    config = ChannelConfig(id=1, slug="bc", kind="bigcommerce", secret="")
    canonical = bigcommerce.adapter.normalize(fetched, config, "store/order/created")
    refunds = json.loads(BC_REFUNDS, parse_float=Decimal)["data"]
    read = bigcommerce.refund_canonical(refunds[0], bigcommerce.Amounts("USD", "ROUND_HALF_UP"))
    assert [line["external_line_id"] for line in read["lines"]] == ["65"]
    assert "65" in [line["external_line_id"] for line in canonical["lines"]]
    assert jsonschemas.errors("orders", "canonical_refund.v1.json", read) == []
    # Without a refund id in the webhook, the newest refund is read.
    shipping_only = bigcommerce.refund_canonical(
        refunds[1], bigcommerce.Amounts("USD", "ROUND_HALF_UP")
    )
    assert (shipping_only["lines"], shipping_only["shipping"], shipping_only["total"]) == (
        [], "12.00", "12.00"
    )  # fmt: skip
    assert bigcommerce._pick_refund(refunds, None) is refunds[0]
    assert bigcommerce._pick_refund(refunds, 2) is refunds[1]
    assert bigcommerce._pick_refund(refunds, 9) is None


def test_bigcommerce_refund_for_an_order_not_received_waits_in_the_inbox(
    world: dict[str, SalesChannel], client: Client, vendor: HTTPServer, settings: Any
) -> None:
    settings.INGEST_RETRY_BASE_SECONDS = 0  # the retry lease runs out at once
    _deliver_refund_webhook(client, "msg_refund_early")
    event = InboundEvent.objects.get(channel__slug="bc")
    assert event.status == "received"
    assert "will retry" in event.errors[0]["message"]
    assert not Refund.objects.exists()

    o250 = _bc_order_250(world["bc"])
    with TestCase.captureOnCommitCallbacks(execute=True):
        inbound_event_process(event_id=event.pk)
    event.refresh_from_db()
    assert (event.status, event.order_id) == ("processed", o250.pk)
    assert list(Refund.objects.values_list("order_id", "external_id")) == [(o250.pk, "3")]


# --- Amazon -----------------------------------------------------------------------------------
def _serve_finances(vendor: HTTPServer) -> None:
    # Page 1: the sandbox sample as it is (its NextToken leads on); page 2: nothing more.
    vendor.expect_request(
        "/finances/v0/financialEvents", headers={"x-amz-access-token": AMAZON_TOKEN},
        query_string={"NextToken": "Next token value"},
    ).respond_with_json({"payload": {"FinancialEvents": {}}})  # fmt: skip
    vendor.expect_request(
        "/finances/v0/financialEvents", headers={"x-amz-access-token": AMAZON_TOKEN}
    ).respond_with_data(FINANCES.read_bytes(), content_type="application/json")


def _amazon_order(channel: SalesChannel) -> Order:
    # The order the sandbox's chargeback names (444-555-3343433), its one item the sample's
    # OrderItemId / SellerSKU.
    return _order(channel, "444-555-3343433", [
        LineInput(sku="AMZ-NABETA", quantity=2, unit_price=Decimal("50.00"),
                  external_line_id="4565465645646", tax=Decimal("8.00"),
                  channel_sku="456454455464"),
    ], tax_total="8.00", total="108.00")  # fmt: skip


def _poll_refunds(*args: str) -> str:
    out = io.StringIO()
    with TestCase.captureOnCommitCallbacks(execute=True):
        call_command("poll_refunds", *args, stdout=out)
    return out.getvalue()


def test_amazon_refund_events_polled_into_one_refund_each(
    world: dict[str, SalesChannel], vendor: HTTPServer, settings: Any
) -> None:
    settings.INGEST_RETRY_BASE_SECONDS = 0
    _serve_finances(vendor)
    # The sample's order is not ours yet: the event is kept and retried, nothing is recorded.
    out = _poll_refunds("--channel", "amzn")
    assert "Polled refunds of amzn: 1 new, 0 unchanged" in out
    event = InboundEvent.objects.get(channel__slug="amzn", topic="finances/refund")
    assert event.status == "received" and "will retry" in event.errors[0]["message"]
    assert event.dedup_key == (
        "finances:chargeback:444-555-3343433:2020-02-05T13:56:00.363Z:456456465464"
    )
    # Amazon's numbers are stored as the decimals it wrote, never floats.
    stored = json.loads(bytes(event.raw_body))
    item = stored["event"]["ShipmentItemAdjustmentList"][0]
    assert item["ItemChargeAdjustmentList"][0]["ChargeAmount"]["CurrencyAmount"] == "25.37"
    # The sandbox event (2020) is older than the first poll's start (POLL_BACKFILL_DAYS ago):
    # the cursor stays at that start, it never moves back.
    cursor = SalesChannel.objects.get(slug="amzn").refunds_poll_cursor
    assert cursor is not None
    first = next(r for r, _ in vendor.log if r.path == "/finances/v0/financialEvents")
    assert first.args["PostedAfter"] == cursor.strftime("%Y-%m-%dT%H:%M:%SZ")

    order = _amazon_order(world["amzn"])
    with TestCase.captureOnCommitCallbacks(execute=True):
        inbound_event_process(event_id=event.pk)
    event.refresh_from_db()
    assert (event.status, event.outcome) == ("processed", "refund_recorded")
    refund = Refund.objects.get(order=order)
    # The chargeback's customer-facing figures: item Tax 25.37 + its promotion 25.37 + the
    # order-level Tax 25.37 = 76.11; its quantity is 0, so it is refunded by amount only. The
    # fee adjustments (item, shipment and order fee: 3 x 25.37, the seller's) are in the raw
    # figures, not in the buyer's refund.
    assert (refund.amount, refund.reason) == (Decimal("76.11"), "chargeback")
    assert refund.external_id == "chargeback:444-555-3343433:2020-02-05T13:56:00.363Z:456456465464"
    assert refund.channel_figures["fees"] == "76.11"
    assert refund.channel_figures["seller_sign"] == "+"  # the sandbox's positive placeholders
    assert not refund.lines.exists()
    order.refresh_from_db()
    assert (order.refunded_total, order.payment_status) == (Decimal("76.11"), "partially_refunded")

    # The next poll asks again from a little before the cursor: the same event is a duplicate.
    out = _poll_refunds()
    assert "Polled refunds of amzn: 0 new, 1 unchanged" in out
    assert Refund.objects.filter(order=order).count() == 1
    polled = [r.args for r, _ in vendor.log if r.path == "/finances/v0/financialEvents"]
    assert len(polled) == 4
    assert polled[2]["PostedAfter"] == (cursor - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_amazon_refund_event_lines_found_by_item_id_or_seller_sku(
    world: dict[str, SalesChannel],
) -> None:
    from channels.adapters import amazon
    from channels.services import channel_config
    from orders.channel_refunds import refund_input

    order = _amazon_order(world["amzn"])
    config = channel_config(world["amzn"])

    # A production-shaped refund event: Amazon's side, negative; one unit of the item, with
    # Amazon's facilitator tax and its commission refund (the seller's, not the buyer's).
    def usd(value: str) -> dict[str, str]:
        return {"CurrencyCode": "USD", "CurrencyAmount": value}

    event = {"AmazonOrderId": "444-555-3343433", "PostedDate": "2026-11-20T10:00:00Z",
             "ShipmentItemAdjustmentList": [{
                 "SellerSKU": "456454455464", "OrderAdjustmentItemId": "99", "QuantityShipped": 1,
                 "ItemChargeAdjustmentList": [
                     {"ChargeType": "Principal", "ChargeAmount": usd("-50.00")},
                     {"ChargeType": "Tax", "ChargeAmount": usd("-4.00")},
                     {"ChargeType": "MarketplaceFacilitatorTax-Principal",
                      "ChargeAmount": usd("4.00")}],
                 "ItemFeeAdjustmentList": [{"FeeType": "Commission",
                                            "FeeAmount": usd("7.50")}]}]}  # fmt: skip
    payload = {"kind": "refund", "event": event}
    assert jsonschemas.errors("channels", "amazon_refund_event.v0.json", payload) == []
    external, canonical = amazon.adapter.read_refund(config, payload, "finances/refund")
    assert external == "444-555-3343433"
    assert jsonschemas.errors("orders", "canonical_refund.v1.json", canonical) == []
    assert (canonical["total"], canonical["raw"]["seller_sign"]) == ("54.00", "-")
    assert canonical["raw"]["fees"] == "7.50"
    assert canonical["raw"]["marketplace_facilitator_tax"] == "4.00"
    assert canonical["lines"] == [{"external_line_id": "", "quantity": 1, "amount": "50.00",
                                   "tax": "4.00", "channel_sku": "456454455464"}]  # fmt: skip
    # No OrderItemId: the line is the order's one line of that SellerSKU.
    data = refund_input(order, canonical)
    assert [ln.order_line_id for ln in data.lines] == [order.lines.get().pk]


def test_poll_refunds_refuses_a_channel_that_is_not_polled_or_unknown(
    world: dict[str, SalesChannel],
) -> None:
    with pytest.raises(CommandError, match=r"Polling refunds of shop failed: Channel shop "
                       r"\(shopify\) has no refund events to poll"):  # fmt: skip
        call_command("poll_refunds", "--channel", "shop", stdout=io.StringIO())
    with pytest.raises(CommandError, match="No channel 'nope'"):
        call_command("poll_refunds", "--channel", "nope", stdout=io.StringIO())
    assert not InboundEvent.objects.exists()


def test_refund_polling_is_on_the_beat_hourly_for_each_amazon_channel(
    world: dict[str, SalesChannel], vendor: HTTPServer, settings: Any
) -> None:
    from channels.tasks import refunds_poll_all_task

    entry = settings.CELERY_BEAT_SCHEDULE["channels-refunds-poll"]
    assert (entry["task"], entry["schedule"]) == ("channels.refunds_poll_all", 3600.0)
    _serve_finances(vendor)
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert refunds_poll_all_task() == 1  # amzn only; eager: its poll runs here
    assert InboundEvent.objects.filter(channel__slug="amzn", topic="finances/refund").count() == 1


def test_bigcommerce_refund_we_sent_is_found_by_our_marker_not_recorded_twice(
    world: dict[str, SalesChannel],
) -> None:
    from orders.channel_refunds import refund_from_channel
    from orders.refunds import marker, refund_issue

    o250 = _bc_order_250(world["bc"])
    ours = refund_issue(order_id=o250.pk, actor=Actor.system("test"), key="goodwill-1",
                        amount=Decimal("10.00"), reason="goodwill").refund  # fmt: skip
    # BigCommerce's refund of it: our marker at the end of a long reason.
    theirs = {"id": 7, "order_id": 250, "total_amount": Decimal("10.00"),
              "reason": "x" * 80 + f" {marker(ours.reference)}",
              "payments": [{"id": 71, "provider_id": "braintree", "amount": Decimal("10.00"),
                            "is_declined": False}],
              "items": [{"item_type": "ORDER", "item_id": 250,
                         "requested_amount": Decimal("10.00")}]}  # fmt: skip
    canonical = bigcommerce.refund_canonical(theirs, bigcommerce.Amounts("USD", "ROUND_HALF_UP"))
    result = refund_from_channel(channel_id=world["bc"].pk, order_external_id="250",
                                 refund=canonical, actor=Actor.channel("bc"))  # fmt: skip
    assert (result.created, result.refund.pk) == (False, ours.pk)
    assert Refund.objects.filter(order=o250).count() == 1
