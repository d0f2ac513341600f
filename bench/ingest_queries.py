"""Deterministic figures for ingest and validation: SQL queries, audit rows and task messages per
delivery and per order, plus an optional pyinstrument profile of each phase.

Wall-clock numbers on a shared machine are noise; these counts are not. Three phases, each
measured on its own (the doorbells go to an in-memory broker, so one phase never runs the next):

- ack: ``POST /webhooks/<slug>/`` through Django's test client (the whole middleware stack),
  signed Shopify and custom-storefront deliveries, 10% of them re-deliveries (duplicates);
- process: ``inbound_event_process`` of each stored event (schema, normalize, SKU resolution,
  customer, order upsert);
- validate: ``order_validate`` of each order (every registered check, their audit, stock
  reservation, the order validated / allocated / held / routed to review).

Downstream orchestration (routing, shipments, the outbox) is left out as in bench/pipeline.py.
Usage:

    .venv/bin/python bench/ingest_queries.py [--orders 200] [--profile] \
        [--database postgres://postgres@127.0.0.1:5432/wg_queries]
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import hmac
import json
import os
import re
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/wg_queries"
SAMPLES = ROOT.parent / "shared" / "samples"
SECRET = "bench-secret"
SKUS = ["MUG-WHT", "TEA-SENCHA", "TSHIRT-BLK-M", "IPOD2008GREEN", "IPOD2008RED", "IPOD2008BLACK"]
BASE = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def customer_of(i: int) -> int:
    """Mostly new customers; every fourth order is a returning one (history, no twin)."""
    return i - 4 if i % 4 == 3 else i


def custom_delivery(i: int) -> tuple[bytes, dict[str, str]]:
    from channels.signatures import sign_custom

    event = json.loads((ROOT / "demo" / "custom_order_created.json").read_text())
    event["id"] = f"evt_q_{i}"
    order = event["order"]
    order["external_id"] = f"Q-{i}"
    order["customer"]["email"] = f"buyer{customer_of(i)}@example.co.uk"
    order["placed_at"] = order["updated_at"] = (BASE + timedelta(hours=i)).isoformat()
    body = json.dumps(event).encode()
    return body, {"X-Signature": sign_custom(secret=SECRET, body=body,
                                                  timestamp=int(time.time()))}  # fmt: skip


def shopify_delivery(i: int) -> tuple[bytes, dict[str, str]]:
    order = json.loads((SAMPLES / "shopify" / "order_450789469_get.json").read_text())["order"]
    order["id"] = 9_000_000 + i
    order["email"] = order["contact_email"] = f"shopper{customer_of(i)}@example.com"
    order["customer"]["email"] = order["email"]
    order["customer"]["id"] = 7_000_000 + customer_of(i)
    # A paid order as it is created: the sample's refund and its status are a later event.
    order["refunds"], order["financial_status"] = [], "paid"
    order["created_at"] = order["processed_at"] = order["updated_at"] = (
        BASE + timedelta(hours=i)
    ).isoformat()
    body = json.dumps(order).encode()
    sig = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    return body, {
        "X-Shopify-Hmac-Sha256": sig,
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Api-Version": "2026-07",
        "X-Shopify-Webhook-Id": f"wh-{i}",
        "X-Shopify-Event-Id": f"ev-{i}",
    }


_LITERALS = re.compile(r"'[^']*'|\b\d+\b")


def shape(sql: str) -> str:
    """A query with its literals taken out, cut short: what repeats across orders."""
    return _LITERALS.sub("?", sql)[:150]


class Phase:
    def __init__(self, name: str) -> None:
        self.name = name
        self.queries: list[int] = []
        self.shapes: Counter[str] = Counter()
        self.seconds: list[float] = []

    def run(self, fn: Any) -> Any:
        from django.db import connection

        from bench.counters import captured_sql

        with captured_sql(connection) as ctx:
            started = time.perf_counter()
            result = fn()
            self.seconds.append(time.perf_counter() - started)
        self.queries.append(len(ctx.statements))
        self.shapes.update(shape(sql) for sql in ctx.statements)
        return result

    def report(self, top: int) -> None:
        n = len(self.queries)
        print(f"\n{self.name}: {n} runs, queries per run mean {sum(self.queries) / n:.1f} "
              f"(min {min(self.queries)}, max {max(self.queries)}), "
              f"median {statistics.median(self.seconds) * 1000:.2f} ms in-process")  # fmt: skip
        for sql, count in self.shapes.most_common(top):
            if count / n < 0.05:  # savepoints of the odd retry: noise
                continue
            print(f"  {count / n:5.2f}/run  {sql}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--profile", action="store_true", help="pyinstrument of each phase")
    parser.add_argument("--top", type=int, default=12, help="query shapes shown per phase")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from bench.pipeline import django_on_fresh_database

    django_on_fresh_database(
        args.database, DJANGO_SETTINGS_MODULE="bench.settings", CELERY_BROKER_URL="memory://",
        CELERY_TASK_ALWAYS_EAGER="0", LOG_LEVEL="WARNING", ADDRESS_VERIFIER="",
    )  # fmt: skip
    from celery.signals import before_task_publish
    from django.core.handlers.wsgi import WSGIHandler
    from werkzeug.test import Client

    from channels.models import InboundEvent
    from channels.services import inbound_event_process, sales_channel_upsert
    from fulfillment.orchestration import on_order_transition, on_shipped
    from fulfillment.services import stock_restock, warehouse_upsert
    from orders import hooks, validation
    from orders.models import Order, OrderEvent, Product

    for registered in hooks._HOOKS.values():
        registered[:] = [h for h in registered if h not in (on_order_transition, on_shipped)]
    warehouse_upsert(code="NJ1", country="US", region="NJ", priority=1, ships_international=True)
    for sku in SKUS:
        Product.objects.get_or_create(sku=sku, defaults={"title": sku})
        stock_restock(sku=sku, warehouse_code="NJ1", on_hand=args.orders * 10)
    sales_channel_upsert(slug="q-custom", kind="custom", webhook_secret=SECRET)
    sales_channel_upsert(slug="q-shop", kind="shopify", webhook_secret=SECRET)

    published: Counter[str] = Counter()
    before_task_publish.connect(
        lambda sender=None, **kw: published.update([str(sender)]), weak=False
    )
    profiles = {}

    def profiled(name: str, loop: Any) -> None:
        if not args.profile:
            loop()
            return
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
        loop()
        profiler.stop()
        profiles[name] = profiler.output_text(unicode=False, color=False)

    client = Client(WSGIHandler())  # the whole Django stack, in this process
    ack, dup = Phase("ack (new delivery)"), Phase("ack (duplicate delivery)")
    deliveries = []
    for i in range(args.orders):
        slug, (body, headers) = (
            ("q-custom", custom_delivery(i)) if i % 2 else ("q-shop", shopify_delivery(i))
        )
        deliveries.append((slug, body, headers))

    def ack_all() -> None:
        for i, (slug, body, headers) in enumerate(deliveries):
            post = functools.partial(
                client.post, f"/webhooks/{slug}/", data=body, content_type="application/json",
                headers=headers,
            )  # fmt: skip
            response = ack.run(post)
            assert response.status_code == 202, response.get_data()
            if i % 10 == 0:  # 10% re-deliveries of the same event
                response = dup.run(post)
                assert response.status_code == 200, response.get_data()

    profiled("ack", ack_all)
    ack_messages = sum(published.values())
    published.clear()

    process = Phase("process (inbox event -> order)")
    event_ids = list(InboundEvent.objects.order_by("pk").values_list("pk", flat=True))
    profiled("process", lambda: [process.run(lambda e=e: inbound_event_process(event_id=e))
                                 for e in event_ids])  # fmt: skip
    process_messages = sum(published.values())
    published.clear()

    validate = Phase("validate (checks, audit, reservation, transition)")
    order_ids = list(Order.objects.order_by("pk").values_list("pk", flat=True))
    events_before = OrderEvent.objects.count()
    profiled("validate", lambda: [validate.run(lambda o=o: validation.order_validate(order_id=o))
                                  for o in order_ids])  # fmt: skip
    validate_events = OrderEvent.objects.count() - events_before
    validate_messages = sum(published.values())

    vendor = "postgresql" if args.database.startswith("postgres") else "sqlite"
    print(f"{args.orders} deliveries (Shopify and custom, 10% re-delivered), {vendor}")
    for phase in (ack, dup, process, validate):
        phase.report(args.top)
    n = len(order_ids)
    print(
        f"\nbroker messages: ack {ack_messages / len(deliveries):.2f}/delivery, "
        f"process {process_messages / n:.2f}/order, validate {validate_messages / n:.2f}/order"
    )
    print(f"audit rows per order written by validation: {validate_events / n:.2f}")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(Counter(
        Order.objects.values_list("status", flat=True)).items())))  # fmt: skip
    for name, text in profiles.items():
        print(f"\n--- profile: {name} ---")
        print(text)


if __name__ == "__main__":
    main()
