"""End to end on one machine: signed webhooks in, orders shipped out, against fixed physical
baselines measured in the same run (issue 15).

It starts the product exactly as the ``Procfile`` says (gunicorn, one Celery worker per queue,
beat; the same command lines ``make topology`` runs), on PostgreSQL and Redis, with the local
adapters: local carrier (a real PDF label), ERP CSV file drop, local WMS, confirmation email
(file backend) and ``FULFILLMENT_AUTO_SHIP``. Then, in this order:

- baseline (a), the write footprint: raw psycopg from 4 connections, per order one transaction
  with the order, 3 lines, a locked conditional stock update and one outbox row;
- baseline (c), the bare view: ``/bench/baseline/`` (``bench/urls.py``: one INSERT of the body)
  through the same gunicorn, the same bodies and clients as the webhook run, workers idle;
- baseline (b), a trivial Celery task (``celery.accumulate``) round trip through the same Redis
  with a worker of 2 processes started with the same options as the Procfile's;
- the run: Shopify and WooCommerce deliveries (``../shared/samples``, ids varied, signed as the
  vendors sign, 10% exact re-deliveries) at ``--rate`` per second for ``--seconds``, or a
  ``--backlog`` of N sent as fast as the clients can, until every order is shipped (or waits
  for stock / a person). ``--hot-sku``: every order wants the same SKU, of which there is
  stock for 70% of the orders; it reports oversell, which must be 0.

Counts come from the processes themselves (``bench/counters.py`` through ``bench/settings.py``:
SQL statements and task runs per process), from ``pg_stat_database`` (commits, tuples) and
``pg_stat_user_tables`` (sequential scans), and CPU seconds from psutil over each Procfile
process's tree, over the whole PostgreSQL server (the postmaster with its live and exited
children) and over the whole machine (``/proc/stat``). It prints each figure and its ratio to
the baseline; the exit status is 1 on a 5xx, a lost order or any oversell.

    .venv/bin/python bench/e2e.py                          # 5/s for 60 s (~270 orders), ~3 min
    .venv/bin/python bench/e2e.py --rate 20 --seconds 30
    .venv/bin/python bench/e2e.py --backlog 600            # drain time of a burst
    .venv/bin/python bench/e2e.py --hot-sku --backlog 400
    .venv/bin/python bench/e2e.py --backlog 60000 --timeout 7200   # the full-size backlog

Databases and queues are its own (``--database``, ``--broker``: both are wiped first); the
Procfile's sizes come from the environment (``WEB_WORKERS=3 INGEST_CONCURRENCY=3 ...``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import counters, ingest, soak  # noqa: E402
from bench.pipeline import recreate_database  # noqa: E402

PROCFILE = ROOT / "Procfile"
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/we_e2e"
DEFAULT_BROKER = "redis://127.0.0.1:6379/5"
KINDS = ("shopify", "woocommerce")
HOT_SKU = "IPOD2008GREEN"
SHIPPED = "shipped"
WAITING = ("backordered", "in_review", "on_hold", "cancelled")
FOOTPRINT_STATEMENTS = 6  # order, 3 lines, the stock update, the outbox row (+ the commit)


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def pct(values: list[float], q: int) -> float:
    return soak.pct(values, q)


# --- the processes, from the Procfile -----------------------------------------------------------
def procfile() -> dict[str, str]:
    """Process name -> command line, parsed as honcho parses it."""
    from honcho.environ import parse_procfile

    return dict(parse_procfile(PROCFILE.read_text()).processes)


def expand(command: str, env: dict[str, str]) -> str:
    """``${NAME:-default}`` as the shell expands it (so a command can be edited as words)."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1)) or m.group(2), command)


@dataclass
class Topology:
    """The Procfile's processes, each in its own session (its tree is its CPU)."""

    env: dict[str, str]
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # (kind, pid) -> the most CPU seconds seen: a process that exits keeps what it used
    seen: dict[tuple[str, int], float] = field(default_factory=dict)

    def start(self, name: str, command: str, extra: dict[str, str] | None = None) -> None:
        env = {**self.env, "BENCH_PROCESS_KIND": name, **(extra or {})}
        self.procs[name] = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {expand(command, env)}"], cwd=ROOT, env=env,
            stdout=(self.logs / f"{name}.log").open("a"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text()[-2000:]
                raise SystemExit(f"{name} exited ({proc.returncode}):\n{tail}")

    def track(self, name: str, processes: list[psutil.Process]) -> None:
        for p in processes:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                key = (name, p.pid)
                self.seen[key] = max(self.seen.get(key, 0.0), t.user + t.system)

    def track_server(self, backends: list[int]) -> None:
        """The whole PostgreSQL server (kind "postgres"): the postmaster, every live child
        (backends, WAL writer, checkpointer, autovacuum) and, through the postmaster's
        ``children_*`` times, every child that has exited (a backend whose connection closed
        between two samples): one cumulative figure, so nothing is lost between samples."""
        for pid in backends:
            with contextlib.suppress(psutil.Error):
                postmaster = psutil.Process(pid).parent()
                if postmaster is None:
                    continue
                t = postmaster.cpu_times()
                total = t.user + t.system + t.children_user + t.children_system
                for child in postmaster.children():
                    with contextlib.suppress(psutil.Error):
                        c = child.cpu_times()
                        total += c.user + c.system
                key = ("postgres", postmaster.pid)
                self.seen[key] = max(self.seen.get(key, 0.0), total)
                return

    def cpu(self, postgres: list[int] | None = None) -> dict[str, float]:
        """CPU seconds (user + system) per process kind, over each process and its children,
        and over the PostgreSQL backends ``postgres`` (kind "postgres") when given."""
        for name, proc in self.procs.items():
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(proc.pid)
                self.track(name, [root, *root.children(recursive=True)])
        if postgres:
            self.track_server(postgres)
        totals: dict[str, float] = {}
        for (name, _), seconds in self.seen.items():
            totals[name] = totals.get(name, 0.0) + seconds
        return totals

    def stop(self, name: str | None = None) -> None:
        names = [name] if name else list(self.procs)
        for n in names:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.procs[n].pid, 15)
        for n in names:
            try:
                self.procs[n].wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.procs[n].pid, 9)
                self.procs[n].wait()
            if name:
                del self.procs[n]


# --- setup ---------------------------------------------------------------------------------------
def prepare(env: dict[str, str], tmp: Path, secrets: dict[str, str], orders: int,
            hot: bool) -> int:  # fmt: skip
    """Channels, catalogue, one warehouse and stock through the commands; returns the hot SKU's
    on-hand (stock for 70% of the orders in ``--hot-sku``, plenty of everything otherwise)."""
    ingest.prepare(env)  # migrate, and the bare view's table
    for kind in KINDS:
        args = ["add_channel", "--kind", kind, "--slug", soak.CHANNELS[kind],
                "--secret", secrets[kind], "--name", f"E2E {kind}"]  # fmt: skip
        if kind == "shopify":
            args += ["--api-version", "2026-07"]
        soak.manage(env, *args)
    products = tmp / "products.csv"
    with products.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sku", "title", "weight", "hs_code", "origin_country", "tags"])
        writer.writerows([*p, "e2e"] for p in soak.PRODUCTS)
    soak.manage(env, "import_products", str(products))
    soak.manage(env, "add_warehouse", "--code", "NJ1", "--country", "US", "--region", "US-NJ",
                "--priority", "10")  # fmt: skip
    hot_on_hand = int(orders * 0.7) if hot else orders * 10
    levels = tmp / "stock.csv"
    with levels.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sku", "warehouse", "on_hand"])
        for sku, *_ in soak.PRODUCTS:
            writer.writerow([sku, "NJ1", hot_on_hand if sku == HOT_SKU else orders * 10])
    soak.manage(env, "import_stock", str(levels))
    return hot_on_hand


def deliveries(orders: int, secrets: dict[str, str], hot: bool) -> soak.Plan:
    """``orders`` orders alternating Shopify and WooCommerce, plus 10% exact re-deliveries of
    one sent a little earlier. In ``hot`` mode every order has one line of ``HOT_SKU``."""
    plan = soak.Plan(0, secrets, seed=15)
    if hot:  # WooCommerce's second line becomes the hot SKU; Shopify's first line already is
        for item in plan.woo["line_items"]:
            if item.get("sku") == "Bar3":
                item["sku"] = HOT_SKU
    now = datetime.now(UTC).replace(microsecond=0)
    sequence = []
    for i in range(1, orders + 1):
        kind = KINDS[i % 2]
        make = plan._shopify if kind == "shopify" else plan._woocommerce
        sequence.append(make(i, "create", now, now, 0))
        if i % 9 == 0:  # 1 in 10 deliveries is a re-delivery
            source = sequence[max(0, len(sequence) - 1 - plan.rng.randrange(0, 20))]
            again = copy.copy(source)
            again.duplicate, again.answers = True, Counter()
            sequence.append(again)
    for index, delivery in enumerate(sequence):
        delivery.index = index
    plan.deliveries = sequence
    plan.orders = Counter(d.kind for d in sequence if not d.duplicate)
    return plan


# --- baselines -----------------------------------------------------------------------------------
FOOTPRINT_TABLES = """
DROP TABLE IF EXISTS bench_fp_line, bench_fp_outbox, bench_fp_order, bench_fp_stock;
CREATE TABLE bench_fp_stock (sku text PRIMARY KEY, on_hand int NOT NULL, reserved int NOT NULL,
    updated_at timestamptz NOT NULL);
CREATE TABLE bench_fp_order (id bigserial PRIMARY KEY, channel_id int NOT NULL,
    external_id text NOT NULL, status text NOT NULL, currency text NOT NULL,
    total numeric(12, 2) NOT NULL, placed_at timestamptz NOT NULL, data jsonb NOT NULL,
    UNIQUE (channel_id, external_id));
CREATE TABLE bench_fp_line (id bigserial PRIMARY KEY, order_id bigint NOT NULL
    REFERENCES bench_fp_order, sku text NOT NULL, quantity int NOT NULL,
    unit_price numeric(12, 2) NOT NULL);
CREATE INDEX ON bench_fp_line (order_id);
CREATE TABLE bench_fp_outbox (id bigserial PRIMARY KEY, order_id bigint NOT NULL
    REFERENCES bench_fp_order, kind text NOT NULL, idempotency_key text NOT NULL UNIQUE,
    status text NOT NULL, payload jsonb NOT NULL, created_at timestamptz NOT NULL);
"""


def footprint_baseline(dsn: str, orders: int, clients: int = 4) -> dict[str, float]:
    """Baseline (a): one order's least write footprint, one commit each, ``clients`` connections.
    CPU is this process's plus the PostgreSQL backends' of those connections."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(FOOTPRINT_TABLES)
        conn.execute("INSERT INTO bench_fp_stock SELECT 'SKU-' || n, 1000000000, 0, now()"
                     " FROM generate_series(0, 9) n")  # fmt: skip
    backends: list[int] = []
    errors: list[BaseException] = []

    def client(index: int) -> None:
        try:
            with psycopg.connect(dsn) as conn:
                row = conn.execute("SELECT pg_backend_pid()").fetchone()
                backends.append(int(row[0]) if row else 0)
                conn.commit()
                start.wait()
                for n in range(index, orders, clients):
                    with conn.transaction():
                        order = conn.execute(
                            "INSERT INTO bench_fp_order (channel_id, external_id, status, currency,"
                            " total, placed_at, data) VALUES (1, %s, 'received', 'USD', 64.97,"
                            " now(), '{}') RETURNING id", (f"FP-{n}",),
                        ).fetchone()  # fmt: skip
                        order_id = order[0] if order else 0
                        with conn.cursor() as cur:
                            cur.executemany(
                                "INSERT INTO bench_fp_line (order_id, sku, quantity, unit_price)"
                                " VALUES (%s, %s, 1, 19.99)",
                                [(order_id, f"SKU-{(n + k) % 10}") for k in range(3)],
                            )
                        conn.execute(
                            "UPDATE bench_fp_stock SET reserved = reserved + 1, updated_at = now()"
                            " WHERE sku = %s AND on_hand >= reserved + 1", (f"SKU-{n % 10}",),
                        )  # fmt: skip
                        conn.execute(
                            "INSERT INTO bench_fp_outbox (order_id, kind, idempotency_key, status,"
                            " payload, created_at) VALUES (%s, 'erp_post', %s, 'pending', '{}',"
                            " now())", (order_id, f"fp-{n}"),
                        )  # fmt: skip
        except BaseException as exc:  # reported below: a failed baseline must not be timed
            errors.append(exc)
            start.set()

    start = threading.Event()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    while len(backends) < clients and not errors:
        time.sleep(0.01)
    cpu_before = backend_cpu(backends) + time.process_time()
    started = time.perf_counter()
    start.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"the footprint baseline failed: {errors[0]!r}")
    cpu = backend_cpu(backends) + time.process_time() - cpu_before
    return {"orders_s": orders / elapsed, "cpu_per_order": cpu / orders, "clients": clients}


def backend_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


def celery_baseline(topology: Topology, command: str, env: dict[str, str],
                    tasks: int) -> dict[str, float]:  # fmt: skip
    """Baseline (b): ``tasks`` trivial tasks (``celery.accumulate``) sent and their results
    awaited, through the same Redis, by a worker with the Procfile's options on a queue of its
    own (2 processes), with a result backend (the product runs without one)."""
    from config.celery import app

    backend = env["CELERY_BROKER_URL"]
    args = shlex.split(expand(command, env))
    queue = f"bench-roundtrip-{uuid.uuid4().hex[:6]}"
    args[args.index("--queues") + 1] = queue
    args[args.index("--hostname") + 1] = f"{queue}@%h"
    args[args.index("--concurrency") + 1] = "2"
    topology.start("roundtrip", shlex.join(args), {"CELERY_RESULT_BACKEND": backend})
    app.conf.update(result_backend=backend)
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[f"{queue}@{os.uname().nodename}"], timeout=1):
            topology.check_alive()
            if time.monotonic() > deadline:
                raise SystemExit("the round-trip worker did not answer a ping")
        for r in [app.send_task("celery.accumulate", args=(i,), queue=queue) for i in range(50)]:
            r.get(timeout=60)  # warm: pool processes forked, connections open
        before = topology.cpu().get("roundtrip", 0.0)
        started = time.perf_counter()
        results = [app.send_task("celery.accumulate", args=(i,), queue=queue)
                   for i in range(tasks)]  # fmt: skip
        for r in results:
            r.get(timeout=120)
        elapsed = time.perf_counter() - started
        cpu = topology.cpu().get("roundtrip", 0.0) - before
    finally:
        topology.stop("roundtrip")
        app.conf.update(result_backend=None)
    return {"tasks_s": tasks / elapsed, "worker_cpu_per_task": cpu / tasks}


def bare_view_baseline(base: str, plan: soak.Plan, clients: int) -> dict[str, float]:
    """Baseline (c): the bare view with the run's own bodies (unsigned: it checks nothing)."""
    bodies = [d.body for d in plan.deliveries[: min(len(plan.deliveries), 1500)]]
    ingest.drive(f"{base}/bench/baseline/", bodies[:100], clients, sign=False)  # warm
    elapsed, latencies = ingest.drive(f"{base}/bench/baseline/", bodies, clients, sign=False)
    ms = [x * 1000 for x in latencies]
    return {"req_s": len(bodies) / elapsed, "p50": pct(ms, 50), "p99": pct(ms, 99)}


# --- the run -------------------------------------------------------------------------------------
def db_counters(dsn: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted,"
            " tup_returned, tup_fetched FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()  # fmt: skip
    names = ("commits", "rollbacks", "inserted", "updated", "deleted", "returned", "fetched")
    return dict(zip(names, row or (0,) * len(names), strict=True))


def table_scans(dsn: str) -> dict[str, tuple[int, int]]:
    """Per table: sequential scans and the rows they read (``pg_stat_user_tables``)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        rows = conn.execute(
            "SELECT relname, seq_scan, seq_tup_read FROM pg_stat_user_tables"
        ).fetchall()
    return {name: (int(scans or 0), int(read or 0)) for name, scans, read in rows}


@dataclass
class Snapshot:
    at: float
    cpu: dict[str, float]
    counts: dict[str, dict[str, Any]]
    db: dict[str, int]
    machine: float = 0.0
    scans: dict[str, tuple[int, int]] = field(default_factory=dict)


def backends(dsn: str) -> list[int]:
    """The PostgreSQL backends serving the product's connections to the run's database."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchall()  # fmt: skip
    return [int(r[0]) for r in rows]


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy since boot (all CPUs: not idle, not waiting
    on I/O), from /proc/stat: what the process kinds do not cover (the kernel's own work,
    Redis, this driver) shows as the difference."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def snapshot(topology: Topology, count_dir: Path, dsn: str) -> Snapshot:
    time.sleep(1.2)  # the counters' files (0.5 s) and PostgreSQL's statistics (1 s) catch up
    cpu = topology.cpu(backends(dsn))
    return Snapshot(time.time(), cpu, counters.collect(count_dir), db_counters(dsn),
                    machine_busy(), table_scans(dsn))  # fmt: skip


# The run's tables grow from empty within a minute, faster than autovacuum (one-minute naptime)
# re-reads their statistics: without fresh ones the planner takes a growing table for an empty
# one and picks its indexes by chance, as no production database with autovacuum would have it.
ANALYZE_EVERY = 10.0


def analyze(dsn: str) -> None:
    """ANALYZE the run's database, as autovacuum keeps a production database analyzed."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE")


def order_states() -> Counter[str]:
    from django.db import close_old_connections

    close_old_connections()
    return soak.orders_by_state()


def run(plan: soak.Plan, base: str, rate: float, clients: int, topology: Topology,
        timeout: float, dsn: str) -> tuple[soak.Sender, float, float, float]:  # fmt: skip
    """Send every delivery, wait until every order is shipped or waits.
    Returns the sender, the start (wall clock and monotonic) and the end (wall clock)."""
    sender = soak.Sender(base, plan, soak.Vendors(), rate, clients)
    total = sum(plan.orders.values())
    started, started_mono = time.time(), time.monotonic()
    sender.start()
    deadline = time.monotonic() + timeout
    last = analyzed = 0.0
    while time.monotonic() < deadline:
        time.sleep(1)
        topology.check_alive()
        states = order_states()
        settled = states[SHIPPED] + sum(states[s] for s in WAITING)
        now = time.monotonic()
        if now - analyzed >= ANALYZE_EVERY:
            analyzed = now
            analyze(dsn)
        if now - last >= 5:
            last = now
            topology.cpu(backends(dsn))  # a process that exits before the end keeps its CPU
            a = sender.answers
            say(f"{time.time() - started:6.0f}s sent {sender.sent_first}/{len(plan.deliveries)} "
                f"acked {sum(v for k, v in a.items() if k.startswith('2'))} "
                f"5xx {sum(v for k, v in a.items() if k.startswith('5'))} | orders "
                f"{sum(states.values())}/{total}: " + ", ".join(
                    f"{k} {v}" for k, v in sorted(states.items())))  # fmt: skip
        if sender.done() and settled >= total:
            quiet, _, _ = soak.quiet()
            if quiet:
                break
    else:
        say(f"timed out after {timeout:.0f} s; the figures cover what was done")
    return sender, started, started_mono, time.time()


def shipped_times(plan: soak.Plan, sender: soak.Sender) -> tuple[list[float], list[float]]:
    """Seconds from an order's first 2xx to its ``shipped`` event, and when each order shipped
    (epoch seconds, in order)."""
    from django.db.models import Min

    from channels.models import SalesChannel
    from orders.models import Order, OrderEvent

    channels = dict(SalesChannel.objects.values_list("slug", "pk"))
    first_ack: dict[tuple[int, str], float] = {}
    for d in plan.deliveries:
        if d.acked:
            key = (channels[d.slug], d.order_ref)
            first_ack[key] = min(first_ack.get(key, d.first_ack), d.first_ack)
    orders = {(c, e): pk for pk, c, e in Order.objects.values_list("pk", "channel_id",
                                                                   "external_id")}  # fmt: skip
    shipped = dict(
        OrderEvent.objects.filter(to_state=SHIPPED).values("order_id").annotate(at=Min("at"))
        .values_list("order_id", "at")
    )  # fmt: skip
    times = [shipped[orders[key]].timestamp() - at for key, at in first_ack.items()
             if key in orders and orders[key] in shipped]  # fmt: skip
    return times, sorted(at.timestamp() for at in shipped.values())


def oversell(sku: str, initial: int) -> dict[str, int]:
    """The stock row's own consistency, and units held or shipped against what was imported."""
    from django.db.models import F, Q, Sum

    from fulfillment.models import Reservation, ShipmentLine, StockLevel

    bad_rows = StockLevel.objects.filter(
        Q(reserved__gt=F("on_hand")) | Q(reserved__lt=0) | Q(on_hand__lt=0)
    ).count()  # fmt: skip
    held = Reservation.objects.filter(sku=sku, status__in=["active", "consumed"]).aggregate(
        q=Sum("quantity"))["q"] or 0  # fmt: skip
    shipped = ShipmentLine.objects.filter(sku=sku, shipment__status="shipped").aggregate(
        q=Sum("quantity"))["q"] or 0  # fmt: skip
    return {"inconsistent stock rows": bad_rows,
            "units reserved+consumed beyond stock": max(0, held - initial),
            "units shipped beyond stock": max(0, shipped - initial)}  # fmt: skip


def lost_orders(plan: soak.Plan) -> int:
    from channels.models import SalesChannel
    from orders.models import Order

    channels = dict(SalesChannel.objects.values_list("slug", "pk"))
    kept = set(Order.objects.values_list("channel_id", "external_id"))
    acked = {(channels[d.slug], d.order_ref) for d in plan.deliveries if d.acked}
    return len(acked - kept)


# --- the report ----------------------------------------------------------------------------------
def ratio(value: float, base: float) -> str:
    return f"{value / base:.3f}x" if base else "n/a"


def report(args: argparse.Namespace, plan: soak.Plan, sender: soak.Sender, t0: float,
           t0_mono: float, t_end: float, before: Snapshot, after: Snapshot,
           baselines: dict[str, dict[str, float]], hot_on_hand: int) -> bool:  # fmt: skip
    states = order_states()
    shipped = states[SHIPPED]
    times, shipped_at = shipped_times(plan, sender)
    last_shipped = shipped_at[-1] if shipped_at else None
    span = (last_shipped or t_end) - t0
    orders_s = shipped / span if span > 0 else 0.0
    per = max(shipped, 1)
    answers = sender.answers
    five = sum(v for k, v in answers.items() if k.startswith("5") or k == "0")
    acks = [x * 1000 for x in sender.latencies]
    fp, rt, bare = baselines["footprint"], baselines["roundtrip"], baselines["bare"]
    kinds = sorted(set(after.counts) | set(after.cpu))
    queries = {k: after.counts.get(k, {}).get("queries", 0)
               - before.counts.get(k, {}).get("queries", 0) for k in kinds}  # fmt: skip
    tasks: Counter[str] = Counter()
    for k in kinds:
        tasks.update(after.counts.get(k, {}).get("tasks", Counter()))
        tasks.subtract(before.counts.get(k, {}).get("tasks", Counter()))
    tasks = +tasks
    cpu = {k: after.cpu.get(k, 0.0) - before.cpu.get(k, 0.0) for k in kinds}
    db = {k: after.db[k] - before.db[k] for k in after.db}
    total_q, total_t, total_cpu = sum(queries.values()), sum(tasks.values()), sum(cpu.values())
    mode = (f"backlog {args.backlog}" if args.backlog else
            f"steady {args.rate:g}/s for {args.seconds:g} s")  # fmt: skip
    out = [
        "",
        "=" * 78,
        f"END TO END ({mode}{', hot SKU' if args.hot_sku else ''}), "
        f"PostgreSQL + Redis, Procfile topology, {psutil.cpu_count()} CPUs (shared)",
        "=" * 78,
    ]
    out.append(f"deliveries {len(plan.deliveries)} ({sum(d.duplicate for d in plan.deliveries)} "
               f"re-deliveries) for {sum(plan.orders.values())} orders; answers "
               + ", ".join(f"{k} {v}" for k, v in sorted(answers.items())) + f"; retries "
               f"{sender.retries}")  # fmt: skip
    out.append("orders by state: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
               + f"; 'per order' below is per order shipped ({shipped})")  # fmt: skip
    out.append("-" * 78)
    out.append(f"{'figure':<44}{'measured':>12}{'baseline':>12}{'ratio':>10}")

    def row(name: str, value: float, base: float | None, fmt: str = ".1f") -> None:
        shown = f"{base:{fmt}}" if base is not None else "-"
        out.append(f"{name:<44}{value:>12{fmt}}{shown:>12}"
                   f"{ratio(value, base) if base is not None else '':>10}".rstrip())  # fmt: skip

    row("orders/s received -> shipped (a)", orders_s, fp["orders_s"])
    send_s = sender.last_send - t0_mono if sender.last_send else 0.0
    if args.backlog and send_s > 0:
        row("webhook deliveries/s acked, backlog (c)", len(plan.deliveries) / send_s,
            bare["req_s"])  # fmt: skip
    row("webhook ack p50 ms, workers running (c)", pct(acks, 50), bare["p50"], ".2f")
    row("webhook ack p99 ms, workers running (c)", pct(acks, 99), bare["p99"], ".2f")
    row("time to shipped p50 s", pct(times, 50), None, ".2f")
    row("time to shipped p95 s", pct(times, 95), None, ".2f")
    row("SQL statements per order (a)", total_q / per, FOOTPRINT_STATEMENTS)
    row("commits per order (a)", db["commits"] / per, 1.0)
    row("rows inserted per order (a)", db["inserted"] / per, 5.0)
    row("rows updated per order (a)", db["updated"] / per, 1.0)
    messages = sum(n for name, n in tasks.items() if not name.endswith(counters.INLINE))
    row("Celery tasks per order", total_t / per, None)
    row("  of them sent as broker messages", messages / per, None)
    row("Celery task runs/s during the run (b)", total_t / span if span else 0, rt["tasks_s"])
    row("CPU s per order, all processes (a)", total_cpu / per, fp["cpu_per_order"], ".4f")
    machine = after.machine - before.machine
    row("CPU s per order, whole machine (a)", machine / per, fp["cpu_per_order"], ".4f")
    row("worker CPU s per task (b)", sum(v for k, v in cpu.items() if k not in ("web", "beat"))
        / max(total_t, 1), rt["worker_cpu_per_task"], ".4f")  # fmt: skip
    if args.backlog:
        out.append(f"drain time of the backlog (first send -> last shipped): {span:.1f} s")
    elif sender.last_send:  # did the system keep up with the offered rate?
        sending_ended = t0 + (sender.last_send - t0_mono)
        behind = sum(1 for at in shipped_at if at > sending_ended)
        out.append(f"offered {args.rate:g} deliveries/s; when the last one was acked "
                   f"{behind} of the {shipped} orders were still to ship, the last "
                   f"{max(0.0, (last_shipped or sending_ended) - sending_ended):.1f} s later "
                   f"({'kept up' if behind <= args.rate * 10 else 'fell behind'})")  # fmt: skip
    out.append("-" * 78)
    out.append(f"{'process kind':<16}{'CPU s':>9}{'CPU s/order':>13}{'SQL':>9}{'SQL/order':>11}")
    for k in kinds:
        if not cpu[k] and not queries[k]:
            continue  # a process of a baseline, or a management command of the setup
        out.append(f"{k:<16}{cpu[k]:>9.1f}{cpu[k] / per:>13.4f}{queries[k]:>9}"
                   f"{queries[k] / per:>11.1f}")  # fmt: skip
    other = machine - total_cpu
    out.append(f"{'other':<16}{other:>9.1f}{other / per:>13.4f}  (the machine's busy time not in a "
               "kind above: the kernel, Redis, this driver's senders)")  # fmt: skip
    out.append("tasks per order by name: " + ", ".join(
        f"{name} {n / per:.2f}" for name, n in tasks.most_common(12)))  # fmt: skip
    scans = {t: (n - before.scans.get(t, (0, 0))[0], r - before.scans.get(t, (0, 0))[1])
             for t, (n, r) in after.scans.items()}  # fmt: skip
    out.append("sequential scans per order (rows read): " + ", ".join(
        f"{t} {n / per:.1f} ({r / per:.0f})"
        for t, (n, r) in sorted(scans.items(), key=lambda kv: -kv[1][1])[:6] if n))  # fmt: skip
    out.append("pg_stat_database per order: " + ", ".join(f"{k} {v / per:.1f}"
                                                           for k, v in db.items()))  # fmt: skip
    out.append(f"baselines: (a) raw footprint {fp['orders_s']:.0f} orders/s with "
               f"{fp['clients']:.0f} connections, {fp['cpu_per_order'] * 1000:.2f} ms CPU/order; "
               f"(b) trivial task round trip {rt['tasks_s']:.0f}/s; (c) bare view "
               f"{bare['req_s']:.0f} req/s, p50 {bare['p50']:.2f} ms, p99 {bare['p99']:.2f} ms "
               f"({args.clients} clients)")  # fmt: skip
    lost = lost_orders(plan)
    must_be_zero = {"5xx or unanswered deliveries": five, "orders acked but not kept": lost}
    if args.hot_sku:
        out.append(f"hot SKU {HOT_SKU}: {hot_on_hand} on hand for {sum(plan.orders.values())} "
                   f"orders; shipped {shipped}, backordered {states['backordered']}")  # fmt: skip
        must_be_zero.update(oversell(HOT_SKU, hot_on_hand))
    failed = False
    for name, value in must_be_zero.items():
        failed |= value != 0
        out.append(f"  {name:<60}{value:>6}  {'ok' if value == 0 else 'FAIL'}")
    out.append(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print("\n".join(out), flush=True)
    return failed


# --- main ----------------------------------------------------------------------------------------
def main() -> None:
    # A SIGTERM (kill, a CI timeout) ends the run through its ``finally``: the topology it
    # started in sessions of their own is stopped, not left consuming the next run's queues.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=5.0, help="deliveries per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to send at --rate")
    parser.add_argument(
        "--backlog",
        type=int,
        default=0,
        help="send N deliveries as fast as possible instead; report the drain",
    )
    parser.add_argument("--hot-sku", action="store_true", help="every order wants one SKU")
    parser.add_argument("--clients", type=int, default=8, help="webhook client threads")
    parser.add_argument("--footprint-orders", type=int, default=4000)
    parser.add_argument("--roundtrip-tasks", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the end")
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--broker", default=DEFAULT_BROKER)
    parser.add_argument("--keep", action="store_true", help="keep the logs folder")
    args = parser.parse_args()
    total = args.backlog or round(args.rate * args.seconds)
    orders = max(2, round(total / 1.1))  # one delivery in 11 is a re-delivery
    rate = 1e6 if args.backlog else args.rate

    tmp = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    count_dir = tmp / "counts"
    secrets = {kind: f"e2e-{kind}-{uuid.uuid4().hex}" for kind in KINDS}
    port = ingest.free_port()
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "PORT": str(port),
        "DJANGO_SETTINGS_MODULE": "bench.settings", "DATABASE_URL": args.database,
        "CELERY_BROKER_URL": args.broker, "CELERY_TASK_ALWAYS_EAGER": "0", "DEBUG": "0",
        "SECRET_KEY": uuid.uuid4().hex * 2, "LOG_LEVEL": "WARNING", "CONN_MAX_AGE": "60",
        "BENCH_COUNT_DIR": str(count_dir), "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prometheus"),
        "MEDIA_ROOT": str(tmp / "media"), "VAR_DIR": str(tmp / "var"),
        "FULFILLMENT_AUTO_SHIP": "1", "ROUTING_DEFAULT_CARRIER": "local",
        "ERP_TARGET": "filedrop", "ERP_DROP_DIR": str(tmp / "erp"), "WMS_TARGET": "local",
        "NOTIFY_TARGETS": "email", "EMAIL_FILE_PATH": str(tmp / "mail"),
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
    }  # fmt: skip
    (tmp / "prometheus").mkdir()
    # This process only sends and reads: no counting of its own statements.
    os.environ.update({k: v for k, v in env.items() if k != "BENCH_COUNT_DIR"})
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    say(f"database {args.database}, broker {args.broker}, web 127.0.0.1:{port}, logs {tmp}")
    recreate_database(args.database)
    import redis

    redis.Redis.from_url(args.broker).flushdb()  # our own db number only
    say(f"preparing: migrate, channels, catalogue, stock for {orders} orders")
    hot_on_hand = prepare(env, tmp, secrets, orders, args.hot_sku)
    import django

    django.setup()
    plan = deliveries(orders, secrets, args.hot_sku)

    baselines: dict[str, dict[str, float]] = {}
    say(f"baseline (a): raw write footprint, {args.footprint_orders} orders")
    baselines["footprint"] = footprint_baseline(args.database, args.footprint_orders)
    say(f"  {baselines['footprint']['orders_s']:.0f} orders/s")

    commands = procfile()
    topology = Topology(env, tmp)
    failed = True
    try:
        for name, command in commands.items():
            topology.start(name, command)
        base = f"http://127.0.0.1:{port}"
        from config.celery import app

        deadline = time.monotonic() + 120
        while True:
            topology.check_alive()
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    replies = app.control.ping(timeout=1.0) or []
                    if len(replies) >= len(commands) - 2:  # every worker but web and beat
                        break
            if time.monotonic() > deadline:
                raise SystemExit("the topology did not come up (see the logs)")
            time.sleep(0.5)
        say("topology up: " + ", ".join(commands))
        say("baseline (c): the bare view through the same gunicorn")
        baselines["bare"] = bare_view_baseline(base, plan, args.clients)
        say(f"  {baselines['bare']['req_s']:.0f} req/s")
        say(f"baseline (b): trivial Celery task round trip, {args.roundtrip_tasks} tasks")
        baselines["roundtrip"] = celery_baseline(topology, commands["notify"], env,
                                                 args.roundtrip_tasks)  # fmt: skip
        say(f"  {baselines['roundtrip']['tasks_s']:.0f} tasks/s")
        before = snapshot(topology, count_dir, args.database)
        say(f"sending {len(plan.deliveries)} deliveries "
            + ("as fast as possible" if args.backlog else f"at {rate:g}/s"))  # fmt: skip
        sender, t0, t0_mono, t_end = run(plan, base, rate, args.clients, topology, args.timeout,
                                         args.database)  # fmt: skip
        after = snapshot(topology, count_dir, args.database)
        failed = report(args, plan, sender, t0, t0_mono, t_end, before, after, baselines,
                        hot_on_hand)  # fmt: skip
    finally:
        topology.stop()
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        if args.keep or failed:
            say(f"logs kept in {tmp}")
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
