"""The feedback loop end to end, with real processes: an order comes in through the channel's
real entry point (a signed webhook POSTed over HTTP to gunicorn, or the Amazon poll), a real
Celery worker validates, allocates, buys the local carrier's labels and ships them
(``FULFILLMENT_AUTO_SHIP``), tells the channel each parcel (the loopback store of
``tests/e2e/vendors.py``), then hears the carrier through the polling fallback (the beat tasks
sent by name, as beat sends them) until the order is delivered with nobody touching it; the
channel hears the delivery, the review request is sent once, and the customer's status page
(fetched from gunicorn) names every parcel.

The server and the worker are started once for the module; each test builds its own world
(channels, warehouses, stock) in the test database they share."""

from __future__ import annotations

import copy
import io
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.management import call_command
from django.utils import timezone
from pytest_httpserver import HTTPServer

from channels.models import SalesChannel, SkuMapping
from channels.signatures import sign_custom
from config.celery import app
from fulfillment import status_page
from fulfillment.carriers import local
from fulfillment.carriers.base import Tracking
from fulfillment.carriers.base import TrackingEvent as TrackingEventData
from fulfillment.models import OutboundAction, Shipment, TrackingEvent, TrackingSource
from fulfillment.outbox.services import outbox_sweep
from fulfillment.tracking import tracking_record
from orders.models import Order, Product
from tests.channels.adapters.test_bigcommerce import _sign as standard_webhooks_headers
from tests.channels.adapters.test_shopify import _sign as shopify_sign
from tests.channels.adapters.test_woocommerce import _sign as woo_sign
from tests.channels.test_webhook import canonical_order, envelope
from tests.e2e import vendors
from tests.fulfillment.helpers import add_warehouse, stock
from tests.servers import start_server, stop_server
from tests.workers import purge_queues, start_worker, stop_worker

pytestmark = [
    pytest.mark.worker,
    pytest.mark.pipeline,
    pytest.mark.orchestration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
]

SECRET = "shpss_e2e-feedback-secret"
WOO_SECRET = "woo-e2e-feedback-secret"
WEB_SECRET = "web-e2e-feedback-secret"
BC_SECRET = "bc-e2e-feedback-secret"
REVIEW_SUBJECT = "How was your order"


class Stack:
    def __init__(self, root: Path, worker: Any, worker_log: Path, server: Any, server_log: Path,
                 port: int) -> None:  # fmt: skip
        self.root, self.worker, self.worker_log = root, worker, worker_log
        self.server, self.server_log, self.port = server, server_log, port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mail_dir(self) -> Path:
        return self.root / "mail"

    def logs(self) -> str:
        return (f"\n--- worker log ---\n{self.worker_log.read_text()[-4000:]}"
                f"\n--- server log ---\n{self.server_log.read_text()[-2000:]}")  # fmt: skip

    def wait(self, what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
        """Poll ``check`` until it returns something truthy; fail with the logs' tails."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.worker.poll() is None, f"worker died{self.logs()}"
            result = check()
            if result:
                return result
            time.sleep(0.2)
        pytest.fail(f"timed out waiting for {what}{self.logs()}")

    def beat(self, task: str) -> None:
        """Send a beat task by name, as beat would."""
        app.send_task(task)

    def review_mails(self) -> int:
        if not self.mail_dir.exists():
            return 0
        return sum(
            len(re.findall(rf"^Subject: {REVIEW_SUBJECT}", f.read_text(), flags=re.M))
            for f in self.mail_dir.iterdir()
        )


def stack_env(root: Path) -> dict[str, str]:
    """The settings the web server and the worker of an end-to-end stack run with."""
    return {
        "FULFILLMENT_AUTO_SHIP": "1",
        "ALLOCATION_ALLOW_SPLIT": "1",
        "LOCAL_CARRIER_TRACKING_STEP_SECONDS": "0",
        "LOCAL_CARRIER_EXCEPTION_RATE": "0",
        "TRACKING_POLL_QUIET_SECONDS": "0",
        "SURVEY_DELAY_HOURS": "0",
        "OUTBOX_BACKOFF_BASE_SECONDS": "0.2",
        "OUTBOX_BACKOFF_CAP_SECONDS": "0.5",
        "OUTBOX_SWEEP_GRACE_SECONDS": "0",
        "OUTBOX_BREAKER_THRESHOLD": "100",
        "OUTBOX_MAX_ATTEMPTS": "20",
        "CHANNEL_HTTP_BACKOFF_FACTOR": "0",
        "ERP_TARGET": "filedrop",
        "ERP_DROP_DIR": str(root / "erp"),
        "WMS_TARGET": "local",
        "NOTIFY_TARGETS": "email",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(root / "mail"),
    }


def open_stack(root: Path, env: dict[str, str], name: str) -> Iterator[Stack]:
    """A gunicorn and a worker (4 processes) on the test database, until the generator ends."""
    purge_queues()
    worker_log, server_log = root / "worker.log", root / "server.log"
    worker = start_worker(worker_log, name=name, concurrency=4, env=env)
    try:
        server, port = start_server("gunicorn", server_log, env=env)
    except Exception:
        stop_worker(worker)
        raise
    yield Stack(root, worker, worker_log, server, server_log, port)
    stop_server(server)
    stop_worker(worker)
    purge_queues()


@pytest.fixture(scope="module")
def stack(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("feedback-loop")
    yield from open_stack(root, stack_env(root), "feedback")


@pytest.fixture
def loop(stack: Stack, settings: Any) -> Stack:
    settings.PUBLIC_BASE_URL = stack.base_url  # the links status_url() makes point at gunicorn
    settings.OUTBOX_SWEEP_GRACE_SECONDS = 0  # the sweeps run here see what the worker's see
    for f in stack.mail_dir.glob("*") if stack.mail_dir.exists() else []:
        f.unlink()
    return stack


# --- the world ---------------------------------------------------------------------------------
def shopify_order() -> dict[str, Any]:
    """Shopify's sample order (a webhook body is the bare resource), paid, its buyer accepting
    marketing: three iPods, stocked below in two warehouses (a split into two parcels)."""
    order = copy.deepcopy(vendors.sample("shopify", "order_450789469_get.json")["order"])
    order.update(financial_status="paid", buyer_accepts_marketing=True, refunds=[],
                 fulfillments=[], fulfillment_status=None)  # fmt: skip
    order["customer"]["email_marketing_consent"].update(
        state="subscribed", opt_in_level="single_opt_in", consent_updated_at=order["created_at"]
    )
    for line in order["line_items"]:
        line["fulfillable_quantity"] = line["quantity"]
    return order


def two_warehouses(first: list[str], second: list[str]) -> None:
    add_warehouse("KY1", region="US-KY", priority=10)
    add_warehouse("TX1", region="US-TX", priority=20)
    for sku in first:
        stock(sku, "KY1", 5)
    for sku in second:
        stock(sku, "TX1", 5)


def shopify_world(server: HTTPServer) -> tuple[vendors.Shopify, dict[str, Any]]:
    order = shopify_order()
    store = vendors.Shopify(server, order)
    call_command(
        "add_channel", "--kind", "shopify", "--slug", "shop", "--secret", SECRET,
        "--api-url", store.base_url, "--api-version", vendors.SHOPIFY_VERSION,
        "--credentials", json.dumps({"access_token": vendors.SHOPIFY_TOKEN}),
        stdout=io.StringIO(),
    )  # fmt: skip
    for sku, title in [("IPOD2008GREEN", "green"), ("IPOD2008RED", "red"),
                       ("IPOD2008BLACK", "black")]:  # fmt: skip
        _product(sku, f"iPod Nano 8GB {title}")
    two_warehouses(["IPOD2008GREEN", "IPOD2008BLACK"], ["IPOD2008RED"])
    return store, order


def _product(sku: str, title: str) -> None:
    Product.objects.get_or_create(sku=sku, defaults={"title": title, "weight_grams": 200})


def post_shopify(stack: Stack, order: dict[str, Any], webhook_id: str) -> None:
    body = json.dumps(order).encode()
    response = requests.post(
        f"{stack.base_url}/webhooks/shop/", data=body, timeout=10, headers={
            "Content-Type": "application/json",
            "X-Shopify-Hmac-Sha256": shopify_sign(body, SECRET), "X-Shopify-Topic": "orders/create",
            "X-Shopify-Shop-Domain": "e2e.myshopify.com",
            "X-Shopify-API-Version": vendors.SHOPIFY_VERSION, "X-Shopify-Webhook-Id": webhook_id,
        },
    )  # fmt: skip
    assert response.status_code == 202, response.text


# --- reading ------------------------------------------------------------------------------------
def the_order(slug: str, external_id: str) -> Order | None:
    return Order.objects.filter(channel__slug=slug, external_id=external_id).first()


def all_synced(order: Order) -> bool:
    statuses = set(
        OutboundAction.objects.filter(order=order, kind="channel_tracking_sync").values_list(
            "status", flat=True
        )
    )
    return statuses == {"succeeded"}


def parcels(order: Order) -> list[Shipment]:
    return list(Shipment.objects.filter(order=order).order_by("pk"))


def shipped(stack: Stack, slug: str, external_id: str) -> Order:
    """Wait until the order's parcels all left and each first write-back succeeded."""

    def check() -> Order | None:
        order = the_order(slug, external_id)
        if order is not None and order.status in ("on_hold", "in_review", "cancelled"):
            pytest.fail(f"order {external_id} {order.status}: {order.status_reason}{stack.logs()}")
        if order is None or order.status not in ("shipped", "partially_shipped"):
            return None
        if any(s.status != "shipped" for s in parcels(order)) or not all_synced(order):
            return None
        return order if order.status == "shipped" else None

    return stack.wait(f"{slug} order {external_id} shipped and told", check, timeout=90)


def delivered(stack: Stack, order: Order) -> Order:
    """Drive the polling fallback (beat's task, sent by name) until the order is delivered and
    every write-back is done."""
    stack.beat("fulfillment.tracking_poll")

    def check() -> Order | None:
        order.refresh_from_db()
        return order if order.status == "delivered" and all_synced(order) else None

    return stack.wait("the order delivered", check)


def status_page_parcels(stack: Stack, order: Order) -> dict[str, Any]:
    url = status_page.status_url(order)
    assert url.startswith(stack.base_url)
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text[:500]
    [script] = re.findall(
        r'<script type="application/ld\+json">(.*?)</script>', response.text, flags=re.S
    )
    return json.loads(script)


def status_page_tracking_numbers(stack: Stack, order: Order) -> list[str]:
    """The status page fetched from gunicorn; its JSON-LD parses, one ParcelDelivery per
    parcel, each part of the order: their tracking numbers."""
    graph = status_page_parcels(stack, order)
    nodes = graph["@graph"] if "@graph" in graph else [graph]
    [order_node] = [n for n in nodes if n.get("@type") == "Order"]
    deliveries = [n for n in nodes if n.get("@type") == "ParcelDelivery"]
    assert sorted(d["@id"] for d in order_node["orderDelivery"]) == sorted(
        d["@id"] for d in deliveries
    )
    return sorted(d["trackingNumber"] for d in deliveries)


def nothing_changes_on_a_repeated_or_late_carrier_event(stack: Stack, order: Order) -> None:
    """The polling fallback asked again (the worker's round, and the carrier's very same answer
    recorded once more) and a late, older scan: no new state, no new channel_tracking_sync
    action, the late scan on the timeline with its "recorded only" effect."""
    before = [(s.pk, s.status, s.tracking_status, s.last_event_at) for s in parcels(order)]
    actions_before = OutboundAction.objects.filter(order=order).count()
    events_before = TrackingEvent.objects.filter(order=order).count()

    stack.beat("fulfillment.tracking_poll")  # delivered parcels are not polled again
    stack.beat("fulfillment.outbox_sweep")
    for s in parcels(order):
        answer = local.simulate(s.tracking_number, shipped_at=s.shipped_at,
                                now=timezone.now(), step_seconds=0, exception_rate=0)  # fmt: skip
        result = tracking_record(shipment_id=s.pk, tracking=answer, source=TrackingSource.POLL)
        assert (result.new_events, result.applied_event_id) == (0, None)
        assert result.duplicates == len(answer.events)

    late = parcels(order)[0]
    scan = TrackingEventData(at=late.last_event_at - timedelta(minutes=5),
                             status="in_transit", description="Arrived at the sorting hub",
                             location="Sorting hub", carrier_status="in_transit",
                             carrier_detail="arrived_hub")  # fmt: skip
    result = tracking_record(
        shipment_id=late.pk, source=TrackingSource.POLL,
        tracking=Tracking(tracking_number=late.tracking_number, status="in_transit",
                          events=[scan], carrier_status="in_transit"),
    )  # fmt: skip
    assert (result.new_events, result.applied_event_id) == (1, None)
    row = TrackingEvent.objects.get(shipment=late, carrier_detail="arrived_hub")
    assert row.applied is False and row.effect.startswith("recorded only: older"), row.effect

    order.refresh_from_db()
    assert order.status == "delivered"
    assert [(s.pk, s.status, s.tracking_status, s.last_event_at) for s in parcels(order)] == before
    assert OutboundAction.objects.filter(order=order).count() == actions_before
    assert TrackingEvent.objects.filter(order=order).count() == events_before + 1


def review_sent_once(stack: Stack, order: Order) -> None:
    review = OutboundAction.objects.get(order=order, kind="notify_customer",
                                        payload__template="review_request")  # fmt: skip
    # Scheduled in the database for SURVEY_DELAY_HOURS (0 here) after the last delivery.
    last = max(s.delivered_at for s in parcels(order) if s.delivered_at)
    assert review.next_attempt_at >= last
    stack.beat("fulfillment.outbox_sweep")
    stack.wait(
        "the review request sent",
        lambda: OutboundAction.objects.filter(pk=review.pk, status="succeeded").exists(),
    )
    stack.wait("one review email", lambda: stack.review_mails() >= 1)
    # Beat's next round finds nothing due: the request is never sent twice.
    assert outbox_sweep() == 0
    review.refresh_from_db()
    assert (review.status, review.attempts) == ("succeeded", 1)
    assert stack.review_mails() == 1


def delivered_by_the_carrier(order: Order) -> None:
    event = order.events.get(action="deliver")
    assert event.actor_kind == "carrier", (event.actor_kind, event.actor_id)
    assert not order.events.filter(actor_kind="user").exists()


# --- 1. Shopify ---------------------------------------------------------------------------------
def test_shopify_split_order_from_webhook_to_delivered_review_and_status_page(
    loop: Stack, httpserver: HTTPServer
) -> None:
    store, body = shopify_world(httpserver)
    post_shopify(loop, body, "e2e-feedback-1")
    order = shipped(loop, "shop", str(body["id"]))
    assert order.customer.accepts_marketing is True
    boxes = parcels(order)
    assert len(boxes) == 2 and len({s.warehouse.code for s in boxes}) == 2

    # One fulfillment per parcel, with its tracking number and its own lines and quantities.
    line_ids = {line.sku: int(line.external_line_id) for line in order.lines.all()}
    expected = sorted(
        (s.tracking_number,
         sorted((line_ids[sl.order_line.sku], sl.quantity) for sl in s.lines.all()))
        for s in boxes
    )  # fmt: skip
    assert sorted(store.fulfilled_lines()) == expected
    assert len(store.bodies("POST", "fulfillments.json")) == 2

    order = delivered(loop, order)
    delivered_by_the_carrier(order)
    for s in parcels(order):
        assert (s.status, s.tracking_status) == ("delivered", "delivered")
    # The delivered fulfillment events, one per fulfillment.
    assert {
        fid: [e["status"] for e in events if e["status"] == "delivered"]
        for fid, events in store.events.items()
    } == {f["id"]: ["delivered"] for f in store.fulfillments}
    assert len(store.fulfillments) == 2

    review_sent_once(loop, order)

    assert status_page_tracking_numbers(loop, order) == sorted(s.tracking_number for s in boxes)

    # 3. The carrier heard again: nothing changes.
    nothing_changes_on_a_repeated_or_late_carrier_event(loop, order)
    assert len(store.fulfillments) == 2
    assert sum(len(events) for events in store.events.values()) == 2


# --- 4. The channel down for a while ------------------------------------------------------------
def test_shopify_down_for_a_while_delays_the_write_back_and_loses_nothing(
    loop: Stack, httpserver: HTTPServer
) -> None:
    """Shopify answers 503 to the first several write-back calls, then makes one fulfillment
    but its answer is lost: the write-back is retried by the outbox (backoff), looks for what
    the lost answer made before creating again, and ends with exactly one fulfillment per
    parcel and one delivered event on each."""
    store, body = shopify_world(httpserver)
    store.fail_writes(6)
    store.lose_creates = 1
    post_shopify(loop, body, "e2e-feedback-down")
    order = shipped(loop, "shop", str(body["id"]))
    assert store.down_for == 0 and store.lose_creates == 0
    assert len(store.refused) == 7
    retried = OutboundAction.objects.filter(order=order, kind="channel_tracking_sync",
                                            attempts__gt=1)  # fmt: skip
    assert retried.exists()
    assert not order.incidents.filter(category="channel_sync_failed").exists()

    boxes = parcels(order)
    assert len(boxes) == 2
    assert sorted(t for t, _ in store.fulfilled_lines()) == sorted(s.tracking_number for s in boxes)
    assert all(s.channel_ref for s in boxes)
    assert sorted(str(f["id"]) for f in store.fulfillments) == sorted(s.channel_ref for s in boxes)
    # Each line's units told once: nothing lost, nothing doubled.
    told = sorted(pair for _, pairs in store.fulfilled_lines() for pair in pairs)
    assert told == sorted((int(line.external_line_id), line.quantity)
                          for line in order.lines.all())  # fmt: skip

    order = delivered(loop, order)
    delivered_by_the_carrier(order)
    assert len(store.fulfillments) == 2
    assert {fid: [e["status"] for e in events] for fid, events in store.events.items()} == {
        f["id"]: ["delivered"] for f in store.fulfillments
    }


# --- 2. The other channels ----------------------------------------------------------------------
def one_warehouse(*skus: str) -> None:
    add_warehouse("TX1", region="US-TX", priority=10)
    for sku in skus:
        _product(sku, sku)
        stock(sku, "TX1", 5)


def test_woocommerce_from_webhook_to_delivered_tracking_and_completed_once(
    loop: Stack, httpserver: HTTPServer
) -> None:
    """The sample order 727 ("processing", two lines) as its order.created webhook; the store
    has the Shipment Tracking extension: one tracking, the order completed once, the delivery
    as a private note."""
    order_727 = vendors.sample("woocommerce", "order_727_get.json")
    store = vendors.WooCommerce(httpserver, order_727)
    call_command(
        "add_channel", "--kind", "woocommerce", "--slug", "woo", "--secret", WOO_SECRET,
        "--api-url", store.base_url, "--credentials",
        json.dumps({"consumer_key": vendors.WOO_KEY, "consumer_secret": vendors.WOO_SECRET}),
        stdout=io.StringIO(),
    )  # fmt: skip
    one_warehouse("WOO-LOGO", "Bar3")
    SkuMapping.objects.create(channel=SalesChannel.objects.get(slug="woo"), external_ref="93",
                              product=Product.objects.get(sku="WOO-LOGO"))  # fmt: skip
    body = json.dumps(order_727).encode()
    response = requests.post(f"{loop.base_url}/webhooks/woo/", data=body, timeout=10, headers={
        "Content-Type": "application/json", "X-WC-Webhook-Signature": woo_sign(body, WOO_SECRET),
        "X-WC-Webhook-Topic": "order.created", "X-WC-Webhook-Source": "https://woo.example/",
        "X-WC-Webhook-Delivery-ID": "e2e-feedback-woo-1",
    })  # fmt: skip
    assert response.status_code == 202, response.text

    order = shipped(loop, "woo", "727")
    [parcel] = parcels(order)
    assert [t["tracking_number"] for t in store.trackings] == [parcel.tracking_number]
    assert parcel.channel_ref == f"tracking:{store.trackings[0]['tracking_id']}"
    assert store.order["status"] == "completed"
    assert len(store.bodies("PUT", "/wc/v3/orders/727")) == 1

    order = delivered(loop, order)
    delivered_by_the_carrier(order)
    assert [n["customer_note"] for n in store.notes] == [False]
    assert "Delivered" in store.notes[0]["note"]
    assert len(store.trackings) == 1 and len(store.bodies("PUT", "/wc/v3/orders/727")) == 1
    assert status_page_tracking_numbers(loop, order) == [parcel.tracking_number]


def test_custom_storefront_from_signed_webhook_to_delivered_signed_callbacks(
    loop: Stack, httpserver: HTTPServer
) -> None:
    receiver = vendors.CallbackReceiver(httpserver, WEB_SECRET)
    call_command("add_channel", "--kind", "custom", "--slug", "web", "--secret", WEB_SECRET,
                 stdout=io.StringIO())  # fmt: skip
    SalesChannel.objects.filter(slug="web").update(tracking_callback_url=receiver.url)
    one_warehouse("MUG-RED", "TEE-L")
    body = envelope({**canonical_order("W-77"), "financial_status": "paid"}, event_id="evt_fb_1")
    response = requests.post(f"{loop.base_url}/webhooks/web/", data=body, timeout=10, headers={
        "Content-Type": "application/json",
        "X-Signature": sign_custom(secret=WEB_SECRET, body=body, timestamp=int(time.time())),
    })  # fmt: skip
    assert response.status_code == 202, response.text

    order = shipped(loop, "web", "W-77")
    [parcel] = parcels(order)
    order = delivered(loop, order)
    delivered_by_the_carrier(order)
    # Every call verified (t=...,v1=...), each event once: the parcel's creation, then the
    # delivery (the local carrier's whole story arrives in one poll: the latest scan decides).
    assert receiver.bad_signatures == 0
    events = list(receiver.events.values())
    assert [(e["topic"], e["shipment"]["status"]) for e in events] == [
        ("shipment.created", "pre_transit"), ("shipment.updated", "delivered"),
    ]  # fmt: skip
    assert {e["shipment"]["tracking_number"] for e in events} == {parcel.tracking_number}
    assert {e["order"]["external_id"] for e in events} == {"W-77"}
    assert status_page_tracking_numbers(loop, order) == [parcel.tracking_number]


def test_amazon_from_the_poll_to_delivered_confirmed_and_read_back(
    loop: Stack, httpserver: HTTPServer
) -> None:
    """The worker polls the loopback SP-API (beat's channels.poll_all): the sandbox's two
    Unshipped orders; each parcel confirmed once (confirmShipment) and read back from the
    2026-01-01 getOrder; Amazon hears nothing of the delivery."""
    amazon = vendors.Amazon(httpserver)
    call_command(
        "add_channel", "--kind", "amazon", "--slug", "amzn", "--api-url", amazon.base_url,
        "--credentials", json.dumps({
            "client_id": "amzn1.application-oa2-client.e2e", "client_secret": "lwa-secret",
            "refresh_token": "Atzr|e2e-refresh", "marketplace_ids": ["ATVPDKIKX0DER"],
            "lwa_token_url": httpserver.url_for("/auth/o2/token")}),
        stdout=io.StringIO(),
    )  # fmt: skip
    one_warehouse("AMZ-NABETA")
    SkuMapping.objects.create(channel=SalesChannel.objects.get(slug="amzn"),
                              external_ref="NABetaASINB00551Q3CS",
                              product=Product.objects.get(sku="AMZ-NABETA"))  # fmt: skip
    loop.beat("channels.poll_all")
    orders = [shipped(loop, "amzn", oid) for oid in ("902-1845936-5435065", "902-8745147-1934268")]
    for order in orders:
        [parcel] = parcels(order)
        [package] = amazon.packages(order.external_id).values()
        assert package["trackingNumber"] == parcel.tracking_number
        assert package["orderItems"] == [{"orderItemId": "05015851154158", "quantity": 1}]
        assert parcel.channel_ref == f"package:{package['packageReferenceId']}"
        assert len(amazon.bodies("POST", f"/orders/v0/orders/{order.external_id}"
                                 "/shipmentConfirmation")) == 1  # fmt: skip
        sync = OutboundAction.objects.get(order=order, kind="channel_tracking_sync")
        assert sync.result["verified"] is True
    for order in orders:
        order = delivered(loop, order)
        delivered_by_the_carrier(order)
    confirmations = [b for m, p, b in amazon.calls if p.endswith("/shipmentConfirmation")]
    assert len(confirmations) == 2


def test_bigcommerce_from_the_thin_webhook_to_delivered_one_shipment_per_parcel(
    loop: Stack, httpserver: HTTPServer
) -> None:
    """The store/order/created sample names order 250 only: the worker fetches it from the
    loopback V2 API (an order of our own in the V2 shape, two products stocked apart: two
    parcels); one shipment POSTed per parcel with its products; BigCommerce keeps no delivery
    events, so the delivery tells it nothing."""
    store = vendors.BigCommerce(httpserver, 250)
    call_command(
        "add_channel", "--kind", "bigcommerce", "--slug", "bc", "--secret", BC_SECRET,
        "--api-url", store.base_url, "--credentials",
        json.dumps({"access_token": vendors.BC_TOKEN}), stdout=io.StringIO(),
    )  # fmt: skip
    for sku in ("S-ORAN", "ABS"):
        _product(sku, sku)
    two_warehouses(["S-ORAN"], ["ABS"])
    body = (vendors.SAMPLES / "bigcommerce" / "webhook_store_order_created.json").read_bytes()
    response = requests.post(f"{loop.base_url}/webhooks/bc/", data=body, timeout=10, headers={
        "Content-Type": "application/json",
        **standard_webhooks_headers(body, msg_id="msg_fb_1", timestamp=int(time.time()),
                                    secret=BC_SECRET),
    })  # fmt: skip
    assert response.status_code == 202, response.text

    order = shipped(loop, "bc", "250")
    assert order.customer.accepts_marketing is True
    boxes = parcels(order)
    assert len(boxes) == 2
    product_ids = {line.sku: int(line.external_line_id) for line in order.lines.all()}
    assert sorted(
        (s["tracking_number"], s["order_address_id"],
         sorted((i["order_product_id"], i["quantity"]) for i in s["items"]))
        for s in store.shipments
    ) == sorted(
        (s.tracking_number, 132,
         sorted((product_ids[sl.order_line.sku], sl.quantity) for sl in s.lines.all()))
        for s in boxes
    )  # fmt: skip
    assert sorted(s.channel_ref for s in boxes) == sorted(str(s["id"]) for s in store.shipments)

    writes = len([c for c in store.calls if c[0] != "GET"])
    order = delivered(loop, order)
    delivered_by_the_carrier(order)
    assert len(store.shipments) == 2
    assert len([c for c in store.calls if c[0] != "GET"]) == writes
    review_sent_once(loop, order)
    assert status_page_tracking_numbers(loop, order) == sorted(s.tracking_number for s in boxes)
