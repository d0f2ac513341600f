"""Deterministic figures for the orchestration path (validated -> shipped), one process, eager
Celery: SQL queries, Celery tasks and audit events per order, and a pyinstrument profile.

Wall-clock numbers on a shared 2-CPU machine are noisy; these counts are not. Each order goes
through ``orders.order_allocate`` exactly as ``bench/orchestrate.py`` sends it, with the same
settings (local adapters, ERP file drop, e-mail to files, ``FULFILLMENT_AUTO_SHIP``), but every
task runs in-process (CELERY_TASK_ALWAYS_EAGER), so the whole chain of one order, with its
after-commit doorbells, is measured inside one ``bench.counters.captured_sql``.

Usage:

    .venv/bin/python bench/orchestrate_counts.py [--orders 50] [--profile 200] \
        [--database postgres://postgres@127.0.0.1:5432/orderdesk_bench_counts]

Prints queries / tasks / events per order (mean, and the breakdown of queries by statement
kind and table and of tasks by name), then the profile's top entries for ``--profile`` orders.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/orderdesk_bench_counts"
TABLE_RE = re.compile(r'(?:FROM|INTO|UPDATE)\s+"(\w+)"', re.IGNORECASE)


def statement(sql: str) -> str:
    """'SELECT orders_order' style label of one query (its verb and first table)."""
    verb = sql.split(None, 1)[0].upper() if sql.strip() else "?"
    match = TABLE_RE.search(sql)
    return f"{verb} {match.group(1) if match else ''}".strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=50, help="orders counted one by one")
    parser.add_argument("--profile", type=int, default=200, help="orders profiled (0: none)")
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--top", type=int, default=25, help="query kinds to list")
    parser.add_argument("--trace", type=int, default=0,
                        help="print the statements of N orders, and where from")  # fmt: skip
    parser.add_argument("--flat", action="store_true",
                        help="profile with cProfile: functions by their own time")  # fmt: skip
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from bench.pipeline import django_on_fresh_database

    tmp = Path(tempfile.mkdtemp(prefix="bench-counts-"))
    env = {
        **os.environ, "DATABASE_URL": args.database, "DJANGO_SETTINGS_MODULE": "config.settings",
        "CELERY_TASK_ALWAYS_EAGER": "1", "LOG_LEVEL": "WARNING", "FULFILLMENT_AUTO_SHIP": "1",
        "ERP_TARGET": "filedrop", "ERP_DROP_DIR": str(tmp / "erp"), "WMS_TARGET": "local",
        "NOTIFY_TARGETS": "email",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp / "mail"), "CONN_MAX_AGE": "60",
    }  # fmt: skip
    django_on_fresh_database(args.database, **env)
    from celery.signals import task_prerun
    from django.db import connection

    from bench.counters import captured_sql
    from bench.orchestrate import AFTER_VALIDATED, SKUS, create_orders
    from config.celery import app
    from fulfillment.services import stock_restock, warehouse_upsert
    from orders.models import Order, OrderEvent

    assert app.conf.task_always_eager
    warehouse_upsert(code="NJ1", country="US", region="NJ", priority=1)
    total = args.orders + args.profile
    for sku in SKUS:
        stock_restock(sku=sku, warehouse_code="NJ1", on_hand=total * 10)
    counted = create_orders(args.orders, "count")
    profiled = create_orders(args.profile, "prof") if args.profile else []

    tasks: Counter[str] = Counter()

    def on_task(sender: Any = None, **kwargs: Any) -> None:
        tasks[sender.name] += 1

    task_prerun.connect(on_task, weak=False)
    queries: Counter[str] = Counter()
    n_queries = 0
    for i, order_id in enumerate(counted):
        with captured_sql(connection, origins=i < args.trace) as ctx:
            app.tasks["orders.order_allocate"].apply(kwargs={"order_id": order_id}, throw=True)
        n_queries += len(ctx.statements)
        for sql, origin in zip(ctx.statements, ctx.origins or [], strict=False):
            print(f"  {statement(sql):38} {' < '.join(origin)}")
        queries.update(statement(sql) for sql in ctx.statements)
    n = len(counted)
    shipped = Order.objects.filter(pk__in=counted, status="shipped").count()
    events = OrderEvent.objects.filter(order_id__in=counted, action__in=AFTER_VALIDATED)
    by_action = Counter(events.values_list("action", flat=True))
    print(f"\n{n} orders, validated -> shipped, eager, {shipped} shipped")
    print(f"queries per order: {n_queries / n:.1f}")
    print(f"tasks per order:   {sum(tasks.values()) / n:.1f}  " + ", ".join(
        f"{k} {v / n:.1f}" for k, v in tasks.most_common()))  # fmt: skip
    print(f"events per order:  {sum(by_action.values()) / n:.1f}  " + ", ".join(
        f"{k} {v / n:.1f}" for k, v in by_action.most_common()))  # fmt: skip
    print("queries per order by kind:")
    for kind, count in queries.most_common(args.top):
        print(f"  {count / n:6.1f}  {kind}")
    if shipped != n:
        raise SystemExit(f"only {shipped}/{n} orders shipped")
    if profiled and args.flat:
        import cProfile
        import pstats

        flat = cProfile.Profile()
        flat.enable()
        for order_id in profiled:
            app.tasks["orders.order_allocate"].apply(kwargs={"order_id": order_id}, throw=True)
        flat.disable()
        out = tmp / "flat.txt"
        with out.open("w") as stream:
            pstats.Stats(flat, stream=stream).sort_stats("tottime").print_stats(60)
        print(f"\nflat profile: {len(profiled)} orders (one process, eager) -> {out}")
    elif profiled:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
        for order_id in profiled:
            app.tasks["orders.order_allocate"].apply(kwargs={"order_id": order_id}, throw=True)
        profiler.stop()
        out = tmp / "profile.txt"
        out.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
        seconds = profiler.last_session.duration if profiler.last_session else 0.0
        print(f"\nprofile: {len(profiled)} orders in {seconds:.2f} s (one process, eager) -> {out}")


if __name__ == "__main__":
    main()
