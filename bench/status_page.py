"""Server time of the customer's order status page, against a baseline in the same run.

Builds, through the real services, one order with two parcels (from two warehouses) and about
20 carrier events and a return policy, then times requests in-process through Django's WSGI
handler (the whole middleware stack and view, what gunicorn calls; no network), interleaved:

- baseline: ``/bench/constant/``, a bare view answering a constant (``bench/urls.py``): what any
  page costs here before it does anything;
- page: ``/status/<token>/``: the token check, the six queries, the template, the JSON-LD.

Prints p50 / p95 / p99 of each in milliseconds, the ratios, and the page's query count. Usage:

    .venv/bin/python bench/status_page.py [--requests 2000] \
        [--database postgres://postgres@127.0.0.1:5432/orderdesk_bench_status]

Without ``--database`` it runs on a SQLite file in a temporary folder. A PostgreSQL database
named by ``--database`` is dropped and created again.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import wsgiref.util
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
EVENTS_PER_PARCEL = 10  # plus the hand-over each: 22 events


def recreate_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


class WsgiClient:
    """GET requests straight into a WSGI application, as a server would make them."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def get(self, path: str) -> tuple[int, bytes]:
        environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": path}
        wsgiref.util.setup_testing_defaults(environ)
        environ["HTTP_HOST"] = "127.0.0.1"
        status: list[str] = []

        def start_response(line: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(line)

        result = self.app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()  # request_finished: connections go back as after a real request
        return int(status[0].split()[0]), body


def build_order() -> int:
    """The order the page shows; its id."""
    from django.db import transaction

    from channels.services import sales_channel_upsert
    from fulfillment.carriers.base import Tracking, TrackingEvent
    from fulfillment.models import ReturnPolicy, Shipment
    from fulfillment.services import stock_restock, warehouse_upsert
    from fulfillment.shipments import shipment_buy_label, shipment_ship
    from fulfillment.tracking import tracking_record
    from orders import validation
    from orders.actors import Actor
    from orders.services import (
        LineInput,
        OrderInput,
        customer_create,
        order_create,
        order_transition,
    )

    actor = Actor.system("bench")
    warehouse_upsert(code="EAST", country="US", priority=1)
    warehouse_upsert(code="WEST", country="US", priority=2)
    for sku, code, on_hand in [("MUG", "EAST", 1), ("MUG", "WEST", 1), ("TEE", "WEST", 5),
                               ("CAP", "EAST", 5)]:  # fmt: skip
        stock_restock(sku=sku, warehouse_code=code, on_hand=on_hand)
    channel, _created, _changed = sales_channel_upsert(kind="custom", slug="bench-store",
                                                       name="Bench Store")  # fmt: skip
    ReturnPolicy.objects.create(name="Standard", window_days=30, conditions="Unworn, tags on.",
                                how_to_start="Reply to your shipping email.")  # fmt: skip
    customer = customer_create(email="bench@example.com", name="Bench Buyer")
    address = {"line1": "1 Main St", "city": "Springfield", "region_code": "IL",
               "postal_code": "62701", "country_code": "US"}  # fmt: skip
    with transaction.atomic():
        order = order_create(
            data=OrderInput(
                channel_id=channel.pk, external_id="BENCH-1", currency="USD",
                customer_id=customer.pk, placed_at=datetime(2026, 11, 20, 9, 30, tzinfo=UTC),
                lines=[LineInput(sku="MUG", title="Mug white", quantity=2,
                                 unit_price=Decimal("12.50")),
                       LineInput(sku="TEE", title="T-shirt black", quantity=1,
                                 unit_price=Decimal("19.99"))],
                shipping_total=Decimal("5.00"), shipping_address=address,
                billing_address=address,
            ),
            actor=actor,
        )  # fmt: skip
        order_transition(order_id=order.pk, transition="capture_payment", actor=actor)
    validation.order_validate(order_id=order.pk)  # what the after-commit task does
    for shipment in Shipment.objects.filter(order_id=order.pk).order_by("pk"):
        shipment.refresh_from_db()
        if shipment.status == "draft":
            shipment_buy_label(shipment_id=shipment.pk, actor=actor)
        shipment_ship(shipment_id=shipment.pk, actor=actor)
    parcels = list(Shipment.objects.filter(order_id=order.pk, status="shipped").order_by("pk"))
    if len(parcels) != 2:
        order.refresh_from_db()
        raise SystemExit(f"expected 2 parcels, the order ({order.status}: "
                         f"{order.status_reason}) has {len(parcels)}")  # fmt: skip
    for n, parcel in enumerate(parcels):
        start = parcel.shipped_at or datetime.now(UTC)
        last = "delivered" if n == 0 else "out_for_delivery"
        events = [
            TrackingEvent(at=start + timedelta(hours=h + 1),
                          status="in_transit" if h < EVENTS_PER_PARCEL - 1 else last,
                          description=f"Scan {h + 1}", carrier_status="in_transit",
                          location="Chicago, IL")
            for h in range(EVENTS_PER_PARCEL)
        ]  # fmt: skip
        eta = start + timedelta(days=2)
        tracking_record(
            shipment_id=parcel.pk, source="webhook",
            tracking=Tracking(tracking_number=parcel.tracking_number, status=last, events=events,
                              estimated_delivery_from=eta,
                              estimated_delivery_until=eta + timedelta(hours=6)),
        )  # fmt: skip
    return order.pk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per endpoint")
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL", ""))
    args = parser.parse_args()
    var_dir = tempfile.mkdtemp(prefix="bench-status-")
    env: dict[str, str] = {
        "DJANGO_SETTINGS_MODULE": "bench.settings", "VAR_DIR": var_dir,
        "CELERY_TASK_ALWAYS_EAGER": "1", "LOG_LEVEL": "WARNING", "ALLOCATION_ALLOW_SPLIT": "1",
    }  # fmt: skip
    if args.database:
        if not args.database.startswith("postgres"):
            raise SystemExit("--database must be a PostgreSQL URL (or leave it out: SQLite)")
        recreate_database(args.database)
        env["DATABASE_URL"] = args.database
    else:
        os.environ.pop("DATABASE_URL", None)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from django.db import connection

    from fulfillment.models import TrackingEvent
    from fulfillment.status_page import status_path

    call_command("migrate", "--noinput", verbosity=0)
    order_id = build_order()
    page_path = status_path(order_id)
    client = WsgiClient(WSGIHandler())
    queries: list[str] = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        queries.append(sql)
        return execute(sql, params, many, context)

    # (Not CaptureQueriesContext: every request starts by emptying the connection's query log.)
    with connection.execute_wrapper(count):
        response = client.get(page_path)
    status, body = response
    if status != 200:
        raise SystemExit(f"the status page answered {status}")
    events = TrackingEvent.objects.filter(order_id=order_id).count()
    endpoints = {"baseline": "/bench/constant/", "page": page_path}
    timings: dict[str, list[float]] = {name: [] for name in endpoints}
    for _ in range(min(200, args.requests)):  # warm up: templates, connections, caches
        for path in endpoints.values():
            client.get(path)
    for _ in range(args.requests):
        for name, path in endpoints.items():  # interleaved: both see the same machine
            started = time.perf_counter()
            status, _body = client.get(path)
            timings[name].append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise SystemExit(f"{path} answered {status}")
    engine = connection.vendor
    print(f"status page bench: {engine}, order with 2 parcels and {events} tracking events, "
          f"{len(queries)} queries, {len(body)} bytes, {args.requests} requests "
          "per endpoint (Django's WSGI handler, in-process)")  # fmt: skip
    print(f"{'':10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    stats = {}
    for name, values in timings.items():
        stats[name] = (statistics.median(values), pct(values, 95), pct(values, 99))
        print(f"{name:10} {stats[name][0]:8.2f} {stats[name][1]:8.2f} {stats[name][2]:8.2f}")
    ratios = [page / base for page, base in zip(stats["page"], stats["baseline"], strict=True)]
    print(f"{'ratio':10} {ratios[0]:8.1f}x {ratios[1]:7.1f}x {ratios[2]:7.1f}x")


if __name__ == "__main__":
    main()
