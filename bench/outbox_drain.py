"""The drain of a lane's backlog of due outbox actions, one action per message against a batch
per message (``OUTBOX_BATCH_SIZE``), in one process on PostgreSQL, both in the same run.

The situation it measures is the one batching is for: a lane whose actions piled up (the ERP
was down and its breaker has just closed, or the lane's worker was stopped) and now every
action is due, each with its doorbell message. Each message is run as the worker runs it
(``fulfillment.outbox_dispatch`` -> ``actions_dispatch(action_ids=[its action])``), in the
order the sweeper would ring them. With a batch size of 1 every message leases, calls and
records its own action; with a larger one the first message of a run of due actions takes
them all, and the messages after it find their action done.

The baseline is the first pass (``--baseline-batch``, default 1: one action per message, as
before batching); the second pass uses ``--batch`` (default: the setting's default, 50). The
adapter is the ERP file drop (one CSV per order, a real file), the same in both passes.

    .venv/bin/python bench/outbox_drain.py [--actions 1000] [--batch 50] \
        [--database postgres://postgres@127.0.0.1:5432/orderdesk_bench_drain]

Prints SQL statements per action (BEGIN and COMMIT are not statements here), CPU milliseconds
per action and the drain rate of each pass, and their ratios (batched / baseline).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/orderdesk_bench_drain"


def write_backlog(order_ids: list[int]) -> list[int]:
    """One due ERP action per order, its doorbell lost (the backlog's messages are rung by
    the drain itself, as the sweeper rings them)."""
    from django.db import transaction

    from fulfillment.models import ActionKind
    from fulfillment.outbox import services as outbox

    ids = []
    for order_id in order_ids:
        with transaction.atomic():
            pending = transaction.get_connection().run_on_commit
            already = len(pending)
            action = outbox.action_write(
                order_id=order_id, kind=ActionKind.ERP_POST, target="filedrop",
                payload={"order_id": order_id}, lane="sync",
            )  # fmt: skip
            del pending[already:]
        ids.append(action.pk)
    return ids


def drain(ids: list[int], batch: int) -> dict[str, float]:
    from django.conf import settings
    from django.db import connection

    from bench.counters import captured_sql
    from bench.pipeline import progress
    from fulfillment.models import ActionStatus, OutboundAction
    from fulfillment.outbox import services as outbox

    settings.OUTBOX_BATCH_SIZE = batch
    outcomes: dict[str, int] = {}
    cpu, wall = time.process_time(), time.perf_counter()
    with captured_sql(connection) as ctx:
        for i, pk in enumerate(ids, 1):
            outcome = outbox.actions_dispatch(action_ids=[pk])[pk]
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if i % 100 == 0 or i == len(ids):
                progress(f"batch {batch}", i, len(ids))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    done = OutboundAction.objects.filter(pk__in=ids, status=ActionStatus.SUCCEEDED).count()
    if done != len(ids):
        raise SystemExit(f"batch {batch}: only {done}/{len(ids)} actions succeeded ({outcomes})")
    n = len(ids)
    print(f"  batch {batch}: outcomes per message {outcomes}")
    return {
        "SQL statements per action": len(ctx.statements) / n,
        "CPU ms per action (this process)": cpu * 1000 / n,
        "actions/s drained": n / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--actions", type=int, default=1000, help="backlog size per pass")
    parser.add_argument("--batch", type=int, default=50, help="OUTBOX_BATCH_SIZE measured")
    parser.add_argument("--baseline-batch", type=int, default=1, help="OUTBOX_BATCH_SIZE before")
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from bench.pipeline import django_on_fresh_database

    tmp = Path(tempfile.mkdtemp(prefix="bench-drain-"))
    env = {
        **os.environ, "DATABASE_URL": args.database, "DJANGO_SETTINGS_MODULE": "config.settings",
        "LOG_LEVEL": "WARNING", "ERP_TARGET": "filedrop", "ERP_DROP_DIR": str(tmp / "erp"),
        "CONN_MAX_AGE": "60", "OUTBOX_SWEEP_GRACE_SECONDS": "0",
    }  # fmt: skip
    django_on_fresh_database(args.database, **env)
    from bench.orchestrate import create_orders

    orders = create_orders(args.actions * 2, "drain")
    figures = []
    for batch, order_ids in (
        (args.baseline_batch, orders[: args.actions]),
        (args.batch, orders[args.actions :]),
    ):
        figures.append(drain(write_backlog(order_ids), batch))
    before, after = figures
    print(f"\nDrain of {args.actions} due ERP file-drop actions, one message each, PostgreSQL")
    print(f"{'figure':<36}{'batch ' + str(args.batch):>12}{'batch ' + str(args.baseline_batch):>12}"
          f"{'ratio':>10}")  # fmt: skip
    for name, value in after.items():
        print(f"{name:<36}{value:>12.2f}{before[name]:>12.2f}{value / before[name]:>9.3f}x")


if __name__ == "__main__":
    main()
