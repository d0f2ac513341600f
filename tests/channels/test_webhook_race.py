"""Fifty signed Shopify orders for one scarce SKU, delivered at once (issue 10, item 4).

Every delivery is a real request through the Shopify webhook, each in its own thread with its
own database session, released together. Tasks are eager, so each request thread also runs
inbox processing and the full validation pipeline (every check, the allocator) right after its
inbox row commits, racing the others for the same stock row. This is the load under which
``refresh_from_db`` of the protected ``status`` used to raise "Direct status modification is
not allowed" (see tests/orders/test_concurrency.py for the deterministic form).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from channels.models import ChannelKind, InboundEvent
from config.celery import app
from fulfillment.models import Reservation, StockLevel
from orders.models import Order, Product
from tests.channels.adapters.test_shopify import _sign
from tests.channels.test_concurrency import sessions_at_once
from tests.concurrency import race
from tests.factories import SalesChannelFactory
from tests.fulfillment.helpers import add_warehouse, levels, stock
from tests.workers import purge_queues, start_worker, stop_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.pipeline, pytest.mark.postgres]

SAMPLES = Path(settings.BASE_DIR).parent / "shared" / "samples"
SAMPLE = SAMPLES / "shopify" / "order_450789469_get.json"  # three iPods, to Louisville KY
SLUG, SECRET = "race-shop", "race-shop-secret"
ORDERS = 50
SCARCE, SCARCE_ON_HAND = "IPOD2008GREEN", 20  # every order wants one; 30 must wait
PLENTY = ("IPOD2008RED", "IPOD2008BLACK")


def shopify_order(i: int) -> bytes:
    """The published sample (three iPods, one of each colour), as a distinct order by a
    distinct buyer, so neither the duplicate check nor the fraud velocity rules link them."""
    order: dict[str, Any] = json.loads(SAMPLE.read_bytes())["order"]
    order.update(id=7_000_000 + i, name=f"#R{i}", number=i, order_number=5000 + i,
                 email=f"buyer-{i}@mail.example.com", contact_email=f"buyer-{i}@mail.example.com",
                 browser_ip=None, client_details=None)  # fmt: skip
    if isinstance(order.get("customer"), dict):
        order["customer"] = {**order["customer"], "id": 8_000_000 + i,
                             "email": f"buyer-{i}@mail.example.com"}  # fmt: skip
    return json.dumps(order).encode()


def deliver_at_once(bodies: list[bytes]) -> list[int | Exception]:
    """POST every body as a Shopify delivery from its own thread and client, all at once."""

    def post(i: int, body: bytes) -> int:
        headers = {
            "X-Shopify-Hmac-Sha256": _sign(body, SECRET), "X-Shopify-Topic": "orders/create",
            "X-Shopify-Shop-Domain": "race.myshopify.com", "X-Shopify-API-Version": "2026-07",
            "X-Shopify-Webhook-Id": f"race-{i}",
        }  # fmt: skip
        return (
            Client()
            .post(f"/webhooks/{SLUG}/", data=body, content_type="application/json", headers=headers)
            .status_code
        )

    return race([partial(post, i, body) for i, body in enumerate(bodies)],
                at_most=sessions_at_once(len(bodies)))  # fmt: skip


@pytest.fixture
def shop(transactional_db: None) -> None:
    SalesChannelFactory(kind=ChannelKind.SHOPIFY, slug=SLUG, webhook_secret=SECRET)
    add_warehouse("TX1", region="US-TX", priority=10)
    for sku in (SCARCE, *PLENTY):
        Product.objects.create(sku=sku, title=sku)
    stock(SCARCE, "TX1", SCARCE_ON_HAND)
    for sku in PLENTY:
        stock(sku, "TX1", ORDERS)


def test_fifty_orders_for_one_scarce_sku_at_once_are_all_processed(shop: None) -> None:
    results = deliver_at_once([shopify_order(i) for i in range(ORDERS)])

    assert all(isinstance(r, int) and 200 <= r < 300 for r in results), Counter(map(str, results))
    assert Counter(InboundEvent.objects.values_list("status", flat=True)) == {"processed": ORDERS}
    statuses = Counter(Order.objects.values_list("status", flat=True))
    assert statuses == {"allocated": SCARCE_ON_HAND, "backordered": ORDERS - SCARCE_ON_HAND}
    assert levels(SCARCE) == {"TX1": (SCARCE_ON_HAND, SCARCE_ON_HAND)}
    assert Reservation.objects.filter(sku=SCARCE, status="active").count() == SCARCE_ON_HAND
    for level in StockLevel.objects.all():
        assert 0 <= level.reserved <= level.on_hand, level


def assert_fifty_processed_as_stock_allows() -> None:
    assert Counter(InboundEvent.objects.values_list("status", flat=True)) == {"processed": ORDERS}
    statuses = Counter(Order.objects.values_list("status", flat=True))
    assert statuses == {"allocated": SCARCE_ON_HAND, "backordered": ORDERS - SCARCE_ON_HAND}
    assert levels(SCARCE) == {"TX1": (SCARCE_ON_HAND, SCARCE_ON_HAND)}
    for level in StockLevel.objects.all():
        assert 0 <= level.reserved <= level.on_hand, level


@pytest.fixture
def threaded_worker(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A real worker whose pool is threads: its tasks share one process, as the report's
    threaded server did, so refreshes of one model race inside it."""
    purge_queues()
    log = tmp_path / "worker.log"
    proc = start_worker(log, name="race", concurrency=8, pool="threads", env={
        "ERP_DROP_DIR": str(tmp_path / "erp-drop"), "EMAIL_FILE_PATH": str(tmp_path / "mail"),
    })  # fmt: skip
    yield proc, log
    stop_worker(proc)


@pytest.mark.worker
@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
def test_fifty_orders_at_once_processed_by_a_real_threaded_worker(
    shop: None, threaded_worker: tuple[subprocess.Popen[bytes], Path]
) -> None:
    proc, log = threaded_worker
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False  # the deliveries only store and enqueue; the worker runs
    try:
        results = deliver_at_once([shopify_order(i) for i in range(ORDERS)])
    finally:
        app.conf.task_always_eager = eager
    assert all(isinstance(r, int) and 200 <= r < 300 for r in results), Counter(map(str, results))

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        done = Order.objects.filter(status__in=("allocated", "backordered")).count()
        if done == ORDERS:
            break
        time.sleep(0.5)
    assert proc.poll() is None, f"worker died:\n{log.read_text()[-3000:]}"
    assert "Direct status modification" not in log.read_text()
    assert_fifty_processed_as_stock_allows()
