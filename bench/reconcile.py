"""Reconciling a generated month on PostgreSQL, against importing the same rows in the same run.

Creates a fresh database, generates a month of N orders (``reconciliation.generator``: orders
through ``order_create``, planted discrepancies of every category), then times:

- baseline: importing the month's files (Shopify Payments payouts and balance transactions, the
  ERP export, the bank statement) through the real importers, no matching;
- reconcile: the same files imported into emptied tables again, then matching (``match_all``)
  and the variance (``compute_period``), as ``reconcile --period --no-import`` runs them after an
  import.

Each side is run ``--rounds`` times, which goes first alternating (the tables emptied before
each), and the median is kept. Prints the rows imported, rows/second of each side, the ratio,
and the matching and variance parts. Figures are ratios against the baseline of the same run,
never a timed assertion. Usage:

    .venv/bin/python bench/reconcile.py [--orders 50000] [--rounds 1] \
        [--database postgres://postgres@127.0.0.1:5432/orderdesk_bench_reconcile]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/orderdesk_bench_reconcile"
PERIOD = "2026-09"


def empty_imports() -> None:
    """What an import, matching and the variance wrote (the orders stay)."""
    from reconciliation.models import (
        BankLine,
        ErpDocument,
        ImportRun,
        Link,
        Payout,
        ProcessorTransaction,
        VarianceItem,
    )

    for model in (VarianceItem, Link, ProcessorTransaction, Payout, ErpDocument, BankLine,
                  ImportRun):  # fmt: skip
        model.objects.all()._raw_delete("default")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    args = parser.parse_args()
    if not args.database.startswith("postgres"):
        raise SystemExit("--database must be a PostgreSQL URL")
    sys.path.insert(0, str(ROOT))
    from bench.pipeline import django_on_fresh_database

    django_on_fresh_database(
        args.database, DJANGO_SETTINGS_MODULE="bench.settings", CELERY_TASK_ALWAYS_EAGER="1",
        LOG_LEVEL="WARNING",
    )  # fmt: skip
    from reconciliation.generator import generate_month, import_month
    from reconciliation.matching import match_all
    from reconciliation.variance import Period, compute_period

    period = Period.parse(PERIOD)
    out = Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    started = time.perf_counter()
    generated = generate_month(
        period=PERIOD, orders=args.orders, out=out, seed=1,
        progress=lambda n: sys.stderr.write(f"\r  generating: {n}/{args.orders} orders"),
    )  # fmt: skip
    sys.stderr.write("\n")
    gen_s = time.perf_counter() - started
    m = generated.manifest
    rows = m["payouts"] + m["transactions"] + m["erp_documents"] + m["bank_lines"]

    baseline: list[float] = []
    full: list[float] = []
    parts: dict[str, list[float]] = {"import": [], "match": [], "variance": []}

    def import_only() -> None:
        empty_imports()
        t0 = time.perf_counter()
        runs = import_month(generated)
        baseline.append(time.perf_counter() - t0)
        assert sum(r.rows_new for r in runs) == rows, "the baseline imported other rows"

    def reconcile_all() -> dict[str, str]:
        empty_imports()
        t0 = time.perf_counter()
        import_month(generated)
        t1 = time.perf_counter()
        match_all(since=period.start, until=period.end)
        t2 = time.perf_counter()
        result = compute_period(period)
        t3 = time.perf_counter()
        full.append(t3 - t0)
        parts["import"].append(t1 - t0)
        parts["match"].append(t2 - t1)
        parts["variance"].append(t3 - t2)
        return {r.currency: str(r.unexplained_total) for r in result}

    unexplained: dict[str, str] = {}
    for n in range(args.rounds):
        # Alternate which side goes first, so drift (caches, autovacuum) hits both alike.
        if n % 2 == 0:
            import_only()
            unexplained = reconcile_all()
        else:
            unexplained = reconcile_all()
            import_only()

    base, whole = statistics.median(baseline), statistics.median(full)
    print(f"generated month {PERIOD}: {args.orders} orders in {gen_s:.1f} s "
          f"({args.orders / gen_s:.0f} orders/s, order_create + capture + refunds)")  # fmt: skip
    print(f"rows imported per side: {rows} ({m['transactions']} balance transactions, "
          f"{m['payouts']} payouts, {m['erp_documents']} ERP documents, {m['bank_lines']} "
          f"bank lines); {args.rounds} round(s), medians")  # fmt: skip
    print(f"baseline  import only            {base:8.2f} s  {rows / base:8.0f} rows/s")
    print(f"reconcile import+match+variance  {whole:8.2f} s  {rows / whole:8.0f} rows/s")
    for name, values in parts.items():
        print(f"  {name:<8} {statistics.median(values):8.2f} s")
    print(f"ratio reconcile / baseline: {whole / base:.2f}x")
    print(f"unexplained after the run: {unexplained}")


if __name__ == "__main__":
    main()
