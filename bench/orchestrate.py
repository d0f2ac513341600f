"""Orders per second from `validated` to `shipped` with the local adapters, against a raw-SQL
baseline of the same writes, both on PostgreSQL in the same run.

- measured: N validated, paid orders; one ``orders.order_allocate`` message each to a real
  Celery worker with 2 processes on Redis. The worker reserves stock, routes, plans the
  shipment, writes the outbox actions, and performs them on their lanes: ERP CSV file drop,
  local WMS pick task, confirmation email (file backend), label purchase (local carrier: a
  real PDF label) and, with FULFILLMENT_AUTO_SHIP, the hand-over: stock consumed, order
  shipped, shipping confirmation. The clock runs from the first message to the last order
  shipped.
- baseline: the same rows written by plain SQL from 2 connections (psycopg, one transaction per
  step as the real flow commits them): the same numbers of order events, outbox actions and
  their lease/outcome updates, reservations, stock updates, shipment rows and pick tasks per
  order, counted from the measured run. No Python domain logic, no broker, no label rendering.

Usage:

    .venv/bin/python bench/orchestrate.py [--orders 500] \
        [--database postgres://postgres@127.0.0.1:5432/orderdesk_bench_orchestrate] \
        [--broker redis://127.0.0.1:6379/13]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/orderdesk_bench_orchestrate"
US = {"line1": "1 Main St", "city": "Springfield", "region_code": "IL", "postal_code": "62701",
      "country_code": "US"}  # fmt: skip
SKUS = ["TSHIRT-BLK-M", "MUG-WHT", "HOODIE-GRY-M", "CAP-NVY"]


def progress(label: str, done: int, total: int) -> None:
    if sys.stderr.isatty():
        sys.stderr.write(f"\r  {label}: {done}/{total}" + ("\n" if done >= total else ""))
    elif done >= total:
        sys.stderr.write(f"  {label}: {done}/{total}\n")
    sys.stderr.flush()


def create_orders(count: int, side: str) -> list[int]:
    from django.db import transaction

    from channels.services import sales_channel_upsert
    from orders.actors import Actor
    from orders.services import (
        LineInput,
        OrderInput,
        customer_create,
        order_create,
        order_transition,
    )

    channel, _, _ = sales_channel_upsert(slug=f"bench-{side}", kind="shopify")
    actor = Actor.system("bench")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ids = []
    for i in range(count):
        with transaction.atomic():
            pending = transaction.get_connection().run_on_commit
            already = len(pending)
            customer = customer_create(email=f"{side}{i}@example.com", name=f"Buyer {i}")
            order = order_create(
                data=OrderInput(
                    channel_id=channel.pk, external_id=f"{side}-{i}", currency="USD",
                    customer_id=customer.pk,
                    lines=[LineInput(sku=SKUS[i % len(SKUS)], quantity=1 + i % 2,
                                     unit_price=Decimal("19.99"))],
                    placed_at=start + timedelta(minutes=i), shipping_total=Decimal("5.00"),
                    shipping_address=dict(US), billing_address=dict(US), payment_method="card",
                ),
                actor=actor,
            )  # fmt: skip
            order_transition(order_id=order.pk, transition="capture_payment", actor=actor)
            order_transition(order_id=order.pk, transition="validate", actor=actor)
            del pending[already:]  # no pipeline doorbell: the timed part starts them
        ids.append(order.pk)
        if (i + 1) % 50 == 0 or i + 1 == count:
            progress(f"creating {side} orders", i + 1, count)
    return ids


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    from django.conf import settings

    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--queues",
         ",".join(settings.CELERY_TASK_QUEUES_NAMES), "--concurrency", "2",
         "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
         "--hostname", f"bench-{uuid.uuid4().hex[:6]}@%h"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def wait_ready(app, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.control.ping(timeout=1.0):
            return
    raise SystemExit("the worker did not answer a ping")


def measured(order_ids: list[int], env: dict[str, str], tmp: Path) -> float:
    from config.celery import app
    from orders.models import Order

    worker = start_worker(env, tmp / "worker.log")
    try:
        wait_ready(app)
        started = time.perf_counter()
        for order_id in order_ids:
            app.send_task("orders.order_allocate", kwargs={"order_id": order_id}, queue="ingest")
        total = len(order_ids)
        deadline = time.monotonic() + 1800
        done = 0
        while done < total and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.2)
            done = Order.objects.filter(pk__in=order_ids, status="shipped").count()
            progress("shipped", done, total)
        elapsed = time.perf_counter() - started
        if done < total:
            tail = (tmp / "worker.log").read_text()[-3000:]
            raise SystemExit(f"only {done}/{total} orders shipped; worker log:\n{tail}")
        # Shipped is not the end of the work: the shipping confirmations (notify lane) may
        # still wait. The drain time is until every outbox action of these orders is done.
        from fulfillment.models import ActionStatus, OutboundAction

        open_actions = OutboundAction.objects.filter(order_id__in=order_ids).exclude(
            status__in=[ActionStatus.SUCCEEDED, ActionStatus.DEAD]
        )
        while open_actions.exists() and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.2)
        DRAINED.append(time.perf_counter() - started)
        return elapsed
    finally:
        os.killpg(worker.pid, 15)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, 9)


DRAINED: list[float] = []  # seconds until every outbox action of the measured orders was done


def writes_per_order(order_ids: list[int]) -> dict[str, float]:
    from fulfillment.models import OutboundAction, PickTask, Reservation, Shipment
    from orders.models import OrderEvent

    n = len(order_ids)
    return {
        "events": OrderEvent.objects.filter(
            order_id__in=order_ids, action__in=AFTER_VALIDATED
        ).count()
        / n,  # fmt: skip
        "actions": OutboundAction.objects.filter(order_id__in=order_ids).count() / n,
        "reservations": Reservation.objects.filter(order_id__in=order_ids).count() / n,
        "shipments": Shipment.objects.filter(order_id__in=order_ids).count() / n,
        "pick_tasks": PickTask.objects.filter(order_id__in=order_ids).count() / n,
    }


# The timeline entries written from allocation on (those before belong to creation/validation).
AFTER_VALIDATED = [
    "allocation",
    "allocate",
    "routed",
    "shipment_created",
    "start_fulfillment",
    "outbound_queued",
    "outbound_succeeded",
    "label_purchased",
    "reservation_consumed",
    "ship",
    "ship_partially",
]


def baseline(order_ids: list[int], per_order: dict[str, float], dsn: str) -> float:
    """The same rows by plain SQL, 2 connections, one transaction per step."""
    import psycopg

    events = round(per_order["events"])
    actions = round(per_order["actions"])
    now = datetime.now(UTC)

    def work(chunk: list[int], index: int) -> None:
        with psycopg.connect(dsn) as conn:

            def one(query: str, params: tuple[Any, ...] | None = None) -> tuple[Any, ...]:
                """The row this query always returns (psycopg types ``fetchone()`` as optional)."""
                row = conn.execute(query, params).fetchone()
                if row is None:
                    raise RuntimeError("the bench query returned no row")
                return row

            wh = one("SELECT id FROM fulfillment_warehouse ORDER BY id LIMIT 1")[0]
            for order_id in chunk:
                line_id, sku, qty = one(
                    "SELECT id, sku, quantity FROM orders_orderline WHERE order_id = %s",
                    (order_id,),
                )

                def event(action: str, order_id: int = order_id) -> None:
                    conn.execute(
                        "INSERT INTO orders_orderevent (order_id, at, actor_kind, actor_id, action,"
                        " field, from_state, to_state, correlation_id, data)"
                        " VALUES (%s, %s, 'system', 'bench', %s, '', '', '', 'c-bench', '{}')",
                        (order_id, now, action),
                    )

                with conn.transaction():  # allocate + route + plan + write the outbox
                    conn.execute(
                        "UPDATE fulfillment_stocklevel SET reserved = reserved + %s,"
                        " updated_at = %s WHERE sku = %s AND warehouse_id = %s"
                        " AND on_hand >= reserved + %s",
                        (qty, now, sku, wh, qty),
                    )
                    res_id = one(
                        "INSERT INTO fulfillment_reservation (order_id, order_line_id,"
                        " warehouse_id, sku, quantity, status, expires_at, created_at)"
                        " VALUES (%s, %s, %s, %s, %s, 'active', %s, %s) RETURNING id",
                        (order_id, line_id, wh, sku, qty, now + timedelta(days=7), now),
                    )[0]
                    conn.execute("UPDATE orders_order SET status = 'allocated', updated_at = %s"
                                 " WHERE id = %s", (now, order_id))  # fmt: skip
                    conn.execute(
                        "INSERT INTO fulfillment_routingdecision (order_id, actions, explanation,"
                        " decided_at) VALUES (%s, '{}', '[]', %s)", (order_id, now),
                    )  # fmt: skip
                    ship_id = one(
                        "INSERT INTO fulfillment_shipment (order_id, warehouse_id, status, carrier,"
                        " service_level, carrier_shipment_id, tracking_number, tracking_url,"
                        " rate_currency, label_zpl, flags, created_at, updated_at, carrier_name,"
                        " carrier_status, channel_ref, tracking_status) VALUES (%s, %s, 'draft',"
                        " '', '', '', '', '', '', '', '{}', %s, %s, '', '', '', '') RETURNING id",
                        (order_id, wh, now, now),
                    )[0]
                    conn.execute(
                        "INSERT INTO fulfillment_shipmentline (shipment_id, order_line_id,"
                        " reservation_id, sku, quantity) VALUES (%s, %s, %s, %s, %s)",
                        (ship_id, line_id, res_id, sku, qty),
                    )
                    conn.execute("UPDATE orders_order SET status = 'fulfilling', updated_at = %s"
                                 " WHERE id = %s", (now, order_id))  # fmt: skip
                    action_ids = [
                        one(
                            "INSERT INTO fulfillment_outboundaction (order_id, kind, target,"
                            " version, idempotency_key, lane, payload, status, attempts,"
                            " max_attempts, next_attempt_at, last_error, result, correlation_id,"
                            " created_at, updated_at) VALUES (%s, 'erp_post', 'x', %s, %s, 'sync',"
                            " '{}', 'pending', 0, 8, %s, '', '{}', 'c-bench', %s, %s) RETURNING id",
                            (order_id, a + 1, f"b{index}-{order_id}-{a}", now, now, now),
                        )[0]
                        for a in range(actions)
                    ]
                    for _ in range(events // 2):
                        event("bench")
                for action_id in action_ids:  # lease, then outcome, as the dispatcher commits
                    with conn.transaction():
                        conn.execute(
                            "UPDATE fulfillment_outboundaction SET status = 'in_flight', attempts ="
                            " attempts + 1, lease_expires_at = %s WHERE id = %s AND status ="
                            " 'pending'", (now, action_id),
                        )  # fmt: skip
                    with conn.transaction():
                        conn.execute(
                            "UPDATE fulfillment_outboundaction SET status = 'succeeded',"
                            " completed_at = %s, result = '{}' WHERE id = %s AND status ="
                            " 'in_flight'", (now, action_id),
                        )  # fmt: skip
                with conn.transaction():  # the pick task and the label
                    conn.execute(
                        "INSERT INTO fulfillment_picktask (idempotency_key, order_id, warehouse_id,"
                        " lines, status, created_at, updated_at) VALUES (%s, %s, %s, '[]', 'open',"
                        " %s, %s)", (f"b{index}-{order_id}", order_id, wh, now, now),
                    )  # fmt: skip
                    conn.execute(
                        "UPDATE fulfillment_shipment SET status = 'label_purchased',"
                        " tracking_number = %s, label_pdf = %s WHERE id = %s",
                        (f"BENCH{order_id}", b"%PDF-1.4 " + b"0" * 3000, ship_id),
                    )
                with conn.transaction():  # hand-over: consume the stock, ship the order
                    conn.execute(
                        "UPDATE fulfillment_stocklevel SET on_hand = on_hand - %s, reserved ="
                        " reserved - %s WHERE sku = %s AND warehouse_id = %s AND reserved >= %s",
                        (qty, qty, sku, wh, qty),
                    )
                    conn.execute("UPDATE fulfillment_reservation SET status = 'consumed',"
                                 " consumed_at = %s WHERE id = %s", (now, res_id))  # fmt: skip
                    conn.execute("UPDATE fulfillment_shipment SET status = 'shipped', shipped_at ="
                                 " %s WHERE id = %s", (now, ship_id))  # fmt: skip
                    conn.execute("UPDATE orders_order SET status = 'shipped', updated_at = %s"
                                 " WHERE id = %s", (now, order_id))  # fmt: skip
                    for _ in range(events - events // 2):
                        event("bench")

    chunks = [order_ids[0::2], order_ids[1::2]]
    errors: list[BaseException] = []

    def guarded(chunk: list[int], index: int) -> None:
        try:
            work(chunk, index)
        except BaseException as exc:  # reported below: a failed baseline must not be timed
            errors.append(exc)

    started = time.perf_counter()
    threads = [threading.Thread(target=guarded, args=(c, i)) for i, c in enumerate(chunks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"the baseline failed: {errors[0]!r}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from bench.pipeline import django_on_fresh_database

    tmp = Path(tempfile.mkdtemp(prefix="bench-orchestrate-"))
    env = {
        **os.environ, "DATABASE_URL": args.database, "CELERY_BROKER_URL": args.broker,
        "DJANGO_SETTINGS_MODULE": "config.settings", "CELERY_TASK_ALWAYS_EAGER": "0",
        "LOG_LEVEL": "WARNING", "FULFILLMENT_AUTO_SHIP": "1", "ERP_TARGET": "filedrop",
        "ERP_DROP_DIR": str(tmp / "erp"), "WMS_TARGET": "local", "NOTIFY_TARGETS": "email",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp / "mail"), "CONN_MAX_AGE": "60",
    }  # fmt: skip
    django_on_fresh_database(args.database, **env)
    from config.celery import app
    from fulfillment.services import stock_restock, warehouse_upsert

    with app.connection_for_write() as conn:
        for queue in ("ingest", "fulfillment", "sync", "notify", "subscriptions"):
            try:
                conn.default_channel.queue_purge(queue)  # type: ignore[attr-defined]  # kombu channels have it, the stub not
            except Exception:
                pass
    warehouse_upsert(code="NJ1", country="US", region="NJ", priority=1)
    for sku in SKUS:
        stock_restock(sku=sku, warehouse_code="NJ1", on_hand=args.orders * 10)
    ours = create_orders(args.orders, "flow")
    theirs = create_orders(args.orders, "sql")

    flow_seconds = measured(ours, env, tmp)
    per_order = writes_per_order(ours)
    sql_seconds = baseline(theirs, per_order, args.database)

    flow_rate, sql_rate = args.orders / flow_seconds, args.orders / sql_seconds
    print(f"\nValidated -> shipped, {args.orders} orders, PostgreSQL + Redis, 2 worker processes")
    print("writes per order (measured run): " + ", ".join(
        f"{k} {v:.1f}" for k, v in per_order.items()))  # fmt: skip
    print(f"{'':<28}{'seconds':>9}{'orders/s':>10}")
    print(f"{'baseline (raw SQL, 2 conns)':<28}{sql_seconds:>9.2f}{sql_rate:>10.1f}")
    print(f"{'orchestration (worker)':<28}{flow_seconds:>9.2f}{flow_rate:>10.1f}")
    print(f"ratio orchestration/baseline: {flow_rate / sql_rate:.3f}x "
          f"({sql_rate / flow_rate:.1f}x slower)")  # fmt: skip
    if DRAINED:
        drained_rate = args.orders / DRAINED[0]
        print(f"{'all outbox actions done':<28}{DRAINED[0]:>9.2f}{drained_rate:>10.1f}")
        print(f"ratio drained/baseline: {drained_rate / sql_rate:.3f}x")


if __name__ == "__main__":
    main()
