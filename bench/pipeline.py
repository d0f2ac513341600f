"""Validation pipeline time per order on PostgreSQL, against a baseline in the same run.

Creates a fresh database, warehouses with stock and customers, then N demo-like orders (paid,
in the demo's mix of outcomes: clean, backordered, address problem, international -> review,
B2B on net terms, some over their credit limit) and times, order by order:

- baseline: the least any pipeline must do per order: lock it, one ``validate`` transition
  with its audit event, in one transaction (``order_transition``);
- pipeline: ``orders.validation.order_validate`` as the Celery task runs it: every registered check
  (totals, duplicate, address, payment, SKU mapping, fraud), each result audited, stock
  reserved across warehouses, the order validated / allocated / backordered / held / routed to
  review, incidents raised.

Prints median, p95 and p99 of each, the ratios, the outcome mix and each check's median. Usage:

    .venv/bin/python bench/pipeline.py [--orders 1000] \
        [--database postgres://postgres@127.0.0.1:5432/orderdesk_bench_pipeline]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/orderdesk_bench_pipeline"

US = {"line1": "1 Main St", "city": "Springfield", "region_code": "IL", "postal_code": "62701",
      "country_code": "US"}  # fmt: skip
BAD_ZIP = {**US, "postal_code": "6270"}
DE = {"line1": "Unter den Linden 77", "city": "Berlin", "postal_code": "10117",
      "country_code": "DE"}  # fmt: skip
SKUS = ["TSHIRT-BLK-M", "TSHIRT-BLK-L", "MUG-WHT", "HOODIE-GRY-M", "CAP-NVY", "POSTER-A2"]


def recreate_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def django_on_fresh_database(url: str, **env: str) -> None:
    """The benchmarks' start: ``env`` into this process's environment (``DATABASE_URL`` set to
    ``url``), a new empty database at ``url`` (PostgreSQL: dropped and made again), migrated
    by ``manage.py migrate`` in a child process with that environment, then ``django.setup()``."""
    os.environ.update(env, DATABASE_URL=url)
    if url.startswith("postgres"):
        recreate_database(url)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT,
                   env=os.environ.copy(), check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def progress(label: str, done: int, total: int) -> None:
    if done == total or done % max(1, total // 20) == 0:
        if sys.stderr.isatty():
            sys.stderr.write(f"\r  {label}: {done}/{total}" + ("\n" if done == total else ""))
        elif done == total:
            sys.stderr.write(f"  {label}: {done}/{total}\n")
        sys.stderr.flush()


def build_world(count: int):
    """Warehouses, stock, customers and ``count`` orders per side, created (not validated)."""
    from django.db import transaction

    from channels.services import sales_channel_upsert
    from fulfillment.services import stock_restock, warehouse_upsert
    from orders.actors import Actor
    from orders.models import AccountType
    from orders.services import (
        LineInput,
        OrderInput,
        customer_create,
        order_create,
        order_transition,
    )

    warehouse_upsert(code="NJ1", country="US", region="NJ", priority=1, ships_international=True)
    warehouse_upsert(code="RTM", country="NL", kind="3pl", priority=2, ships_international=True)
    for sku in SKUS:
        stock_restock(sku=sku, warehouse_code="NJ1", on_hand=count * 10)
        stock_restock(sku=sku, warehouse_code="RTM", on_hand=count * 10)
    channel, _, _ = sales_channel_upsert(slug="bench-store", kind="shopify")
    # Each side its own customers: one side's orders are no history (or twin) of the other's.
    consumers = {side: [customer_create(email=f"{side}{i}@example.com", name=f"Buyer {i}")
                        for i in range(200)] for side in ("baseline", "pipeline")}  # fmt: skip
    businesses = {side: [
        customer_create(email=f"{side}-ap{i}@corp.example", name=f"Corp {i}",
                        account_type=AccountType.BUSINESS, company_name=f"Corp {i}",
                        net_terms_days=30, net_terms_approved=True, credit_limit=Decimal("300"))
        for i in range(10)
    ] for side in ("baseline", "pipeline")}  # fmt: skip
    actor = Actor.system("bench")
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def make(i: int, side: str) -> int:
        kind = i % 10
        customer = consumers[side][i % len(consumers[side])]
        address, method, paid = US, "card", True
        lines = [(SKUS[i % len(SKUS)], 1 + i % 3, "19.99")]
        if kind == 6:
            lines = [("SOLD-OUT", 1, "49.00")]  # backordered
        elif kind == 7:
            address = BAD_ZIP  # address_format_invalid
        elif kind == 8:
            address = DE  # international: review
        elif kind == 9:
            customer, method, paid = businesses[side][i % 10], "net_terms", False
            lines = [(SKUS[i % len(SKUS)], 10 + i % 40, "9.50")]  # some exceed the limit
        with transaction.atomic():
            pending = transaction.get_connection().run_on_commit
            already = len(pending)
            order_id = _create(i, side, customer, address, method, paid, lines)
            # Drop the pipeline's doorbell: the orders wait in `received` for the timed part.
            del pending[already:]
        return order_id

    def _create(i, side, customer, address, method, paid, lines) -> int:
        order = order_create(
            data=OrderInput(
                channel_id=channel.pk, external_id=f"{side}-{i}", currency="USD",
                customer_id=customer.pk,
                lines=[LineInput(sku=s, quantity=q, unit_price=Decimal(p)) for s, q, p in lines],
                placed_at=start + timedelta(hours=i), shipping_total=Decimal("5.00"),
                shipping_address=dict(address), billing_address=dict(address),
                payment_method=method,
            ),
            actor=actor,
        )  # fmt: skip
        if paid:
            order_transition(order_id=order.pk, transition="capture_payment", actor=actor)
        return order.pk

    sides = {}
    for side in ("baseline", "pipeline"):
        ids = []
        for i in range(count):
            ids.append(make(i, side))
            progress(f"creating {side} orders", i + 1, count)
        sides[side] = ids
    return sides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    args = parser.parse_args()
    if not args.database.startswith("postgres"):
        raise SystemExit("--database must be a PostgreSQL URL")
    django_on_fresh_database(
        args.database, DJANGO_SETTINGS_MODULE="bench.settings", CELERY_TASK_ALWAYS_EAGER="1",
        LOG_LEVEL="WARNING",
    )  # fmt: skip
    from django.db import transaction

    from fulfillment.orchestration import on_order_transition, on_shipped
    from orders import hooks, validation
    from orders.actors import Actor
    from orders.models import Incident, Order, OrderEvent
    from orders.services import order_transition

    # The validation pipeline only: what happens once an order is allocated (routing, shipments,
    # the outbox) is bench/orchestrate.py's subject.
    for registered in hooks._HOOKS.values():
        registered[:] = [h for h in registered if h not in (on_order_transition, on_shipped)]
    sides = build_world(args.orders)
    actor = Actor.system("bench")

    def baseline(order_id: int) -> None:
        with transaction.atomic():
            order_transition(order_id=order_id, transition="validate", actor=actor,
                             expected_status="received")  # fmt: skip

    timings: dict[str, list[float]] = {}
    # Interleave the two sides so drift (autovacuum, caches) hits both alike.
    for name in ("baseline", "pipeline"):
        timings[name] = []
    for i, (base_id, pipe_id) in enumerate(zip(sides["baseline"], sides["pipeline"], strict=True)):
        started = time.perf_counter()
        baseline(base_id)
        timings["baseline"].append(time.perf_counter() - started)
        started = time.perf_counter()
        validation.order_validate(order_id=pipe_id)
        timings["pipeline"].append(time.perf_counter() - started)
        progress("validating", i + 1, args.orders)

    outcomes = Counter(
        Order.objects.filter(pk__in=sides["pipeline"]).values_list("status", flat=True)
    )
    incidents = Counter(
        Incident.objects.filter(order_id__in=sides["pipeline"]).values_list("category", flat=True)
    )
    per_check: dict[str, list[float]] = defaultdict(list)
    for data in OrderEvent.objects.filter(
        order_id__in=sides["pipeline"], action="check"
    ).values_list("data", flat=True):
        per_check[data["check"]].append(float(data["duration_ms"]))

    print(f"\nValidation pipeline, {args.orders} orders per side, PostgreSQL, one process")
    print(f"{'':<10}{'median ms':>11}{'p95 ms':>9}{'p99 ms':>9}{'orders/s':>10}")
    figures = {}
    for name, values in timings.items():
        med, p95, p99 = statistics.median(values), pct(values, 95), pct(values, 99)
        figures[name] = (med, p99)
        print(f"{name:<10}{med * 1000:>11.2f}{p95 * 1000:>9.2f}{p99 * 1000:>9.2f}"
              f"{len(values) / sum(values):>10.0f}")  # fmt: skip
    print(f"ratio pipeline/baseline: median {figures['pipeline'][0] / figures['baseline'][0]:.1f}x,"
          f" p99 {figures['pipeline'][1] / figures['baseline'][1]:.1f}x")  # fmt: skip
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    print("incidents: " + ", ".join(f"{k} {v}" for k, v in sorted(incidents.items())))
    print("check medians (ms): " + ", ".join(
        f"{k} {statistics.median(v):.2f}" for k, v in per_check.items()))  # fmt: skip


if __name__ == "__main__":
    main()
