"""The chaos soak: signed deliveries over four channel kinds while workers, Redis, the WMS and
PostgreSQL fail, then the guarantees counted (issue 10, "The soak"; docs/reliability.md).

Everything runs on this machine, and everything it stops it also started:

- its own PostgreSQL (``initdb`` into a temporary directory, run as the ``postgres`` OS user)
  and its own Redis (no persistence, ``noeviction``), on ports of their own;
- the product as in production: ``migrate``, gunicorn (``config.wsgi``, 2 workers), one Celery
  worker with 2 prefork processes on every queue, and ``celery beat`` (the database
  scheduler), with settings from the environment (``bench/soak_settings.py`` adds only the
  SMTP host and port);
- loopback vendors it counts, keyed by each request's idempotency key: the BigCommerce V2 API
  (orders fetched by the product), a REST WMS (``Idempotency-Key``), NetSuite (``externalId``),
  EasyPost (shipment ``reference``) and an SMTP server (``Message-ID``);
- channels, catalogue and stock through the management commands (``add_channel``,
  ``import_products``, ``add_warehouse``, ``import_stock``), some SKUs deliberately scarce.

It sends the deliveries from a few client threads at a steady rate, signed as each vendor
signs: 20% exact re-deliveries of an earlier delivery, 10% out of order (an update or a cancel
before its create). Meanwhile: three SIGKILLs of worker processes (two pool processes, then the
whole worker, restarted as a supervisor would), Redis stopped for 60 s and started again empty,
the WMS answering 500 for 5 minutes, PostgreSQL stopped (immediate) and started again. A
delivery not answered 2xx is sent again later, as vendors do.

Then it waits until the system is quiet (or 120 s after the last fault and the last delivery)
and prints the figures; the exit status is 1 if any figure that must be zero is not.

    .venv/bin/python bench/soak.py                       # 10,000 deliveries, ~35 minutes
    .venv/bin/python bench/soak.py --quick               # ~3 minutes, faults compressed
    .venv/bin/python bench/soak.py --deliveries 2000 --rate 6
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import csv
import hashlib
import heapq
import hmac
import json
import os
import random
import re
import shutil
import signal
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email import message_from_bytes
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import requests

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT.parent / "shared" / "samples"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
QUEUES = "ingest,fulfillment,sync,notify,subscriptions"
TERMINAL = ("shipped", "delivered", "closed", "cancelled")
# Waiting for a person: a review, a hold, or stock nobody has yet (purchasing restocks; the
# backorder sweeper then allocates). An order in any other state must still be moving.
PERSON = ("in_review", "on_hold", "backordered")
US_ADDRESS = {"name": "Soak Buyer", "line1": "1 Main St", "city": "Springfield",
              "region_code": "IL", "postal_code": "62701", "country_code": "US"}  # fmt: skip
CHANNELS = {"shopify": "soak-shopify", "woocommerce": "soak-woo",
            "bigcommerce": "soak-bigcommerce", "custom": "soak-web"}  # fmt: skip
PRODUCTS = [  # sku, title, grams, hs code, origin
    ("IPOD2008GREEN", "iPod Nano 8GB green", 200, "851981", "CN"),
    ("IPOD2008RED", "iPod Nano 8GB red", 200, "851981", "CN"),
    ("IPOD2008BLACK", "iPod Nano 8GB black", 200, "851981", "CN"),
    ("WOO-WOO-LOGO", "Woo Logo T-shirt", 180, "610910", "US"),
    ("Bar3", "Ship Your Idea - Color: Black", 150, "610910", "US"),
    ("S-ORAN", "Orange sweater", 400, "611020", "PT"),
    ("ABS", "Able Brewing System", 1800, "851671", "US"),
    ("MUG-WHT", "Mug white", 350, "691200", "PT"),
    ("TEA-SENCHA", "Sencha 100 g", 120, "090210", "JP"),
]  # fmt: skip
SCARCE = {"IPOD2008GREEN": "shopify", "MUG-WHT": "custom"}  # sku -> the channel that wants it


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise SystemExit("no free port")


def pct(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


# --- our own PostgreSQL and Redis ---------------------------------------------------------------
class Postgres:
    """A cluster of its own, run as the ``postgres`` OS user (we are root)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="soak-pg-"))
        self.data = self.dir / "data"
        self.started = False

    def _as_postgres(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*prefix, *args], check=check, capture_output=True, text=True)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                          "-A", "trust", "-E", "UTF8", "--no-instructions")  # fmt: skip
        self.start()

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories="
                   f"{self.dir} -c max_connections=100 -c shared_buffers=64MB")  # fmt: skip
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l",
                          str(self.dir / "postgres.log"), "-w", "-t", "60", "-o", options,
                          "start")  # fmt: skip
        self.started = True

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                          "stop", check=False)  # fmt: skip
        self.started = False

    def url(self, db: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def cleanup(self) -> None:
        if self.started:
            self.stop("fast")
        shutil.rmtree(self.dir, ignore_errors=True)


class Redis:
    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--maxmemory-policy", "noeviction", "--daemonize", "no"],
            stdout=self.log.open("a"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        for _ in range(100):
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.1)
        raise SystemExit("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # no save on the way down: it comes back empty
            self.proc.wait(timeout=10)
        self.proc = None


# --- the product's processes ---------------------------------------------------------------------
class Product:
    """gunicorn, one worker with 2 pool processes, beat; restarted when they die (a supervisor)."""

    def __init__(self, env: dict[str, str], tmp: Path, http_port: int) -> None:
        self.env = env
        self.tmp = tmp
        self.http_port = http_port
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.restarts: Counter[str] = Counter()
        self.stopping = False
        self.lock = threading.Lock()

    def command(self, name: str) -> list[str]:
        py = sys.executable
        if name == "web":
            return [py, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{self.http_port}",
                    "--workers", "2", "--graceful-timeout", "5", "--timeout", "60",
                    "--log-level", "warning"]  # fmt: skip
        if name == "worker":
            return [py, "-m", "celery", "-A", "config", "worker", "--queues", QUEUES,
                    "--concurrency", "2", "--loglevel", "WARNING", "--without-gossip",
                    "--without-mingle",
                    "--hostname", f"soak-{uuid.uuid4().hex[:6]}@%h"]  # fmt: skip
        return [py, "-m", "celery", "-A", "config", "beat", "--loglevel", "WARNING",
                "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"]  # fmt: skip

    def start(self, name: str) -> None:
        log = (self.tmp / f"{name}.log").open("a")
        self.procs[name] = subprocess.Popen(
            self.command(name), cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def start_all(self) -> None:
        for name in ("web", "worker", "beat"):
            self.start(name)
        base = f"http://127.0.0.1:{self.http_port}"
        for _ in range(300):
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise SystemExit("gunicorn did not answer /healthz")

    def supervise(self) -> None:
        """Start again what exited (checked every second), as systemd or Kubernetes would."""
        while not self.stopping:
            with self.lock:
                for name, proc in list(self.procs.items()):
                    if proc.poll() is not None and not self.stopping:
                        self.restarts[name] += 1
                        say(f"supervisor: {name} exited ({proc.returncode}); starting it again")
                        self.start(name)
            time.sleep(1)

    def pool_processes(self) -> list[int]:
        worker = self.procs["worker"].pid
        try:
            text = Path(f"/proc/{worker}/task/{worker}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def kill_pool_process(self) -> str:
        children = self.pool_processes()
        if not children:
            return "no pool process to kill"
        victim = random.choice(children)
        os.kill(victim, signal.SIGKILL)
        return f"SIGKILL pool process {victim}"

    def kill_worker(self) -> str:
        with self.lock:
            proc = self.procs["worker"]
            os.killpg(proc.pid, signal.SIGKILL)  # the main process and its pool, at once
            proc.wait()
            self.restarts["worker"] += 1
            self.start("worker")
        return f"SIGKILL worker {proc.pid} with its pool; started again"

    def stop_all(self) -> None:
        self.stopping = True
        with self.lock:
            for proc in self.procs.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in self.procs.values():
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


# --- the loopback vendors ------------------------------------------------------------------------
@dataclass
class Vendors:
    """State and counts of every loopback vendor (one lock: they are tiny)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    wms_failing: bool = False
    # BigCommerce: order id -> (order, products, addresses) as the store has it now
    bc_orders: dict[int, tuple[dict[str, Any], list[Any], list[Any]]] = field(default_factory=dict)
    bc_fetches: int = 0
    # WMS: Idempotency-Key -> order id; tasks per order; replays answered with the first task
    wms_tasks: dict[str, int] = field(default_factory=dict)
    wms_per_order: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    wms_replays: int = 0
    wms_500: int = 0
    # NetSuite: externalId -> record id; documents per order reference; refused duplicates
    ns_records: dict[str, int] = field(default_factory=dict)
    ns_per_order: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    ns_refused: int = 0
    # EasyPost: shipment id -> shipment; labels bought per reference
    ep_shipments: dict[str, dict[str, Any]] = field(default_factory=dict)
    ep_by_reference: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    ep_labels: Counter[str] = field(default_factory=Counter)
    ep_refused_buys: int = 0
    ep_refunds: int = 0
    # SMTP: (order number, kind of email) -> messages; Message-IDs seen
    mails: Counter[tuple[str, str]] = field(default_factory=Counter)
    mail_ids: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))


def _easypost_rate(shipment_id: str) -> dict[str, Any]:
    return {"id": f"rate_{shipment_id[4:]}", "object": "Rate", "mode": "test",
            "service": "GroundAdvantage", "carrier": "USPS", "rate": "6.07", "currency": "USD",
            "delivery_days": 3, "est_delivery_days": 3, "shipment_id": shipment_id}  # fmt: skip


def vendor_handler(vendors: Vendors, base: Callable[[], str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

        def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            return json.loads(raw) if raw else None

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            query = self.path.partition("?")[2]
            if m := re.fullmatch(r"/bc/v2/orders/(\d+)(/products|/shipping_addresses)?", path):
                with vendors.lock:
                    vendors.bc_fetches += 1
                    found = vendors.bc_orders.get(int(m.group(1)))
                if found is None:
                    return self._send(404, [{"status": 404, "message": "not found"}])
                if m.group(2) and "page=1" not in query.split("&"):
                    return self._send(204)
                order, products, addresses = found
                part = {"/products": products, "/shipping_addresses": addresses}
                return self._send(200, part[m.group(2)] if m.group(2) else order)
            if m := re.fullmatch(r"/ns/services/rest/record/v1/salesOrder/eid:(.+)", path):
                with vendors.lock:
                    record = vendors.ns_records.get(unquote(m.group(1)))
                if record is None:
                    return self._send(404, {"o:errorDetails": [{"o:errorCode": "NONEXISTENT_ID"}]})
                return self._send(200, {"id": str(record)})
            if m := re.fullmatch(r"/easypost/v2/shipments/([^/]+)", path):
                key = unquote(m.group(1))
                with vendors.lock:
                    shipment = vendors.ep_shipments.get(key)
                    if shipment is None and vendors.ep_by_reference.get(key):
                        shipment = vendors.ep_shipments[vendors.ep_by_reference[key][-1]]
                if shipment is None:
                    return self._send(404, {"error": {"code": "NOT_FOUND", "message": "no"}})
                return self._send(200, shipment)
            self._send(404, {"error": "no route"})

        def do_POST(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            body = self._body()
            if path == "/wms/tasks":
                key = self.headers.get("Idempotency-Key") or ""
                with vendors.lock:
                    if vendors.wms_failing:
                        vendors.wms_500 += 1
                        return self._send(500, {"error": "the WMS is down"})
                    if key in vendors.wms_tasks:
                        vendors.wms_replays += 1  # a real WMS answers a repeat with the first
                    else:
                        vendors.wms_tasks[key] = int(body["order_id"])
                        vendors.wms_per_order[int(body["order_id"])].add(key)
                return self._send(201, {"id": f"task-{hashlib.sha1(key.encode()).hexdigest()}"})
            if path == "/ns/services/rest/record/v1/salesOrder":
                external_id = str(body["externalId"])
                with vendors.lock:
                    if external_id in vendors.ns_records:
                        vendors.ns_refused += 1  # NetSuite keeps external ids unique
                        return self._send(400, {"o:errorDetails": [{
                            "detail": "A record with this external ID already exists",
                            "o:errorCode": "DUP_RCRD"}]})  # fmt: skip
                    record = len(vendors.ns_records) + 1
                    vendors.ns_records[external_id] = record
                    vendors.ns_per_order[str(body.get("memo") or "")].add(external_id)
                location = f"{base()}/ns/services/rest/record/v1/salesOrder/{record}"
                return self._send(204, None, {"Location": location})
            if path == "/easypost/v2/shipments":
                reference = str(body["shipment"]["reference"])
                shipment_id = f"shp_{uuid.uuid4().hex}"
                shipment: dict[str, Any] = {"id": shipment_id, "object": "Shipment", "mode": "test",
                            "reference": reference, "status": "unknown",
                            "rates": [_easypost_rate(shipment_id)], "messages": [],
                            "tracking_code": None, "postage_label": None, "selected_rate": None,
                            "tracker": None, "refund_status": None}  # fmt: skip
                with vendors.lock:
                    vendors.ep_shipments[shipment_id] = shipment
                    vendors.ep_by_reference[reference].append(shipment_id)
                return self._send(201, shipment)
            if m := re.fullmatch(r"/easypost/v2/shipments/([^/]+)/(buy|refund)", path):
                with vendors.lock:
                    if m.group(1) not in vendors.ep_shipments:
                        return self._send(404, {"error": {"code": "NOT_FOUND", "message": "no"}})
                    shipment = vendors.ep_shipments[m.group(1)]
                    if m.group(2) == "refund":
                        vendors.ep_refunds += 1
                        shipment["refund_status"] = "submitted"
                        return self._send(200, shipment)
                    if shipment["tracking_code"]:
                        vendors.ep_refused_buys += 1
                        return self._send(422, {"error": {
                            "code": "SHIPMENT.POSTAGE.EXISTS",
                            "message": "The shipment already has postage"}})  # fmt: skip
                    vendors.ep_labels[shipment["reference"]] += 1
                    code = f"9400{len(vendors.ep_shipments):018d}"
                    label = f"{base()}/labels/{shipment['id']}.pdf"
                    shipment.update(
                        tracking_code=code, selected_rate=shipment["rates"][0],
                        postage_label={"object": "PostageLabel", "label_url": label,
                                       "label_pdf_url": label,
                                       "label_file_type": "application/pdf"},
                        tracker={"id": f"trk_{shipment['id'][4:]}", "tracking_code": code,
                                 "public_url": f"{base()}/track/{code}"},
                    )  # fmt: skip
                    answer = copy.deepcopy(shipment)
                return self._send(200, answer)
            self._send(404, {"error": "no route"})

    return Handler


class SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for Django's backend: EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    vendors: Vendors

    def reply(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 soak ESMTP")
        while line := self.rfile.readline():
            verb = line.decode(errors="replace").strip().split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250-soak\r\n250 8BITMIME")
            elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 go ahead")
                data = bytearray()
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                self.count(bytes(data))
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not here")

    def count(self, data: bytes) -> None:
        message = message_from_bytes(data)
        subject = str(message.get("Subject", ""))
        m = re.match(r"Your order (.+?) (is confirmed|has shipped)", subject)
        number, kind = (m.group(1), m.group(2)) if m else (subject, "other")
        with self.vendors.lock:
            self.vendors.mails[(number, kind)] += 1
            self.vendors.mail_ids[(number, kind)].add(str(message.get("Message-ID", "")))


class ThreadingSMTP(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


# --- the deliveries ------------------------------------------------------------------------------
@dataclass
class Delivery:
    index: int
    kind: str
    slug: str
    order_ref: str  # our external id of the order
    topic: str
    body: bytes
    dedup_key: str
    headers: dict[str, str]
    resign: Callable[[], dict[str, str]] | None = None  # timestamped schemes sign at send time
    bc_state: tuple[int, int] | None = None  # (order id, version) the store has when sent
    duplicate: bool = False
    early: bool = False  # sent before an event that happened before it
    attempts: int = 0
    acked: bool = False
    first_ack: float = 0.0
    answers: Counter[int] = field(default_factory=Counter)


def _b64_hmac(secret: str, data: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), data, hashlib.sha256).digest()).decode()


class Plan:
    """Orders and their events per channel kind, made into signed deliveries."""

    def __init__(self, total: int, secrets: dict[str, str], seed: int) -> None:
        self.rng = random.Random(seed)
        self.secrets = secrets
        self.shopify = json.loads((SAMPLES / "shopify" / "order_450789469_get.json").read_bytes())
        self.woo = json.loads((SAMPLES / "woocommerce" / "order_727_get.json").read_bytes())
        bc = SAMPLES / "bigcommerce"
        self.bc_order = json.loads((bc / "v2_get_order_218.json").read_bytes())
        self.bc_products = json.loads((bc / "v2_get_order_products.json").read_bytes())
        self.bc_addresses = json.loads((bc / "v2_get_order_shipping_addresses.json").read_bytes())
        self.custom = json.loads((ROOT / "demo" / "custom_order_created.json").read_bytes())
        self.bc_versions: dict[int, list[tuple[dict[str, Any], list[Any], list[Any]]]] = {}
        self.orders: Counter[str] = Counter()  # kind -> orders planned
        self.deliveries = self._build(total)

    # one order's events, oldest first: (topic, body, dedup key, headers, bc_state)
    def _events(self, kind: str, i: int, extra: list[str]) -> list[Delivery]:
        now = datetime.now(UTC).replace(microsecond=0)
        stamps = [now + timedelta(minutes=k) for k in range(len(extra) + 1)]
        out = []
        for step, what in enumerate(["create", *extra]):
            out.append(getattr(self, f"_{kind}")(i, what, stamps[0], stamps[step], step))
        return out

    def _shopify(self, i: int, what: str, placed: datetime, at: datetime, step: int) -> Delivery:
        order = copy.deepcopy(self.shopify["order"])
        email = f"soak-shop-{i}@mail.example.com"
        order.update(id=9_100_000_000 + i, name=f"#S{i}", number=i, order_number=100_000 + i,
                     email=email, contact_email=email, browser_ip=None, client_details=None,
                     financial_status="paid", refunds=[], cancelled_at=None, cancel_reason=None,
                     created_at=placed.isoformat(), updated_at=at.isoformat(),
                     processed_at=placed.isoformat(), note=f"soak step {step}")  # fmt: skip
        if isinstance(order.get("customer"), dict):
            order["customer"] = {**order["customer"], "id": 9_200_000_000 + i, "email": email}
        topic = {"create": "orders/create", "update": "orders/updated",
                 "cancel": "orders/cancelled"}[what]  # fmt: skip
        if what == "cancel":
            order.update(cancelled_at=at.isoformat(), cancel_reason="customer")
        body = json.dumps(order).encode()
        event_id = f"soak-shopify-{i}-{step}"
        headers = {"X-Shopify-Hmac-Sha256": _b64_hmac(self.secrets["shopify"], body),
                   "X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": "soak.myshopify.com",
                   "X-Shopify-API-Version": "2026-07", "X-Shopify-Event-Id": event_id,
                   "X-Shopify-Webhook-Id": f"{event_id}-w",
                   "X-Shopify-Triggered-At": at.isoformat()}  # fmt: skip
        return Delivery(0, "shopify", CHANNELS["shopify"], str(order["id"]), topic, body,
                        f"event:{event_id}", headers)  # fmt: skip

    def _woocommerce(self, i: int, what: str, placed: datetime, at: datetime, step: int):
        order = copy.deepcopy(self.woo)
        gmt = "%Y-%m-%dT%H:%M:%S"
        order.update(id=500_000 + i, number=f"W{i}", order_key=f"wc_order_soak{i}",
                     customer_id=0, customer_ip_address="", status="processing",
                     date_created_gmt=placed.strftime(gmt), date_modified_gmt=at.strftime(gmt),
                     date_created=placed.strftime(gmt), date_modified=at.strftime(gmt),
                     customer_note=f"soak step {step}", refunds=[])  # fmt: skip
        order["billing"] = {**order["billing"], "email": f"soak-woo-{i}@mail.example.com"}
        for item in order["line_items"]:
            if not item.get("sku") and item.get("product_id") == 93:
                item["sku"] = "WOO-WOO-LOGO"  # the shop's own SKU for product 93
        if what == "cancel":
            order["status"] = "cancelled"
        topic = "order.created" if what == "create" else "order.updated"
        body = json.dumps(order).encode()
        delivery_id = f"soak-woo-{i}-{step}"
        headers = {"X-WC-Webhook-Signature": _b64_hmac(self.secrets["woocommerce"], body),
                   "X-WC-Webhook-Topic": topic, "X-WC-Webhook-Source": "https://soak-woo.example/",
                   "X-WC-Webhook-Delivery-ID": delivery_id,
                   "X-WC-Webhook-Resource": "order"}  # fmt: skip
        return Delivery(0, "woocommerce", CHANNELS["woocommerce"], str(order["id"]), topic, body,
                        f"delivery:{delivery_id}", headers)  # fmt: skip

    def _bigcommerce(self, i: int, what: str, placed: datetime, at: datetime, step: int):
        order_id = 300_000 + i
        order = copy.deepcopy(self.bc_order)
        order.update(id=order_id, customer_id=400_000 + i, date_created=format_datetime(placed),
                     date_modified=format_datetime(at), ip_address="",
                     staff_notes=f"soak step {step}")  # fmt: skip
        order["billing_address"] = {**order["billing_address"],
                                    "email": f"soak-bc-{i}@mail.example.com"}  # fmt: skip
        if what == "cancel":
            order.update(status_id=5, status="Cancelled")
        products = [{**p, "order_id": order_id} for p in self.bc_products]
        order.update(bc_totals(products))
        addresses = [{**a, "order_id": order_id} for a in self.bc_addresses[:1]]
        if i % 2 == 0:  # half of them ship to the buyer; the other half to someone else, which
            # the fraud check always sends a first-time customer's order to review for
            billing = order["billing_address"]
            keys = ("first_name", "last_name", "company", "street_1", "street_2", "city",
                    "state", "zip", "country", "country_iso2", "phone", "email")  # fmt: skip
            addresses = [{**a, **{k: billing.get(k, "") for k in keys}} for a in addresses]
        self.bc_versions.setdefault(order_id, []).append((order, products, addresses))
        scope = {"create": "store/order/created", "update": "store/order/updated",
                 "cancel": "store/order/statusUpdated"}[what]  # fmt: skip
        envelope = {"scope": scope, "store_id": "1025646",
                    "data": {"type": "order", "id": order_id},
                    "hash": hashlib.sha1(f"{order_id}-{step}".encode()).hexdigest(),
                    "created_at": int(at.timestamp()), "producer": "stores/soak"}  # fmt: skip
        body = json.dumps(envelope).encode()
        msg_id = f"soak-bc-{i}-{step}"
        secret = self.secrets["bigcommerce"]

        def sign() -> dict[str, str]:
            ts = str(int(time.time()))
            signature = _b64_hmac(secret, f"{msg_id}.{ts}.".encode() + body)
            return {"webhook-id": msg_id, "webhook-timestamp": ts,
                    "webhook-signature": f"v1,{signature}"}  # fmt: skip

        return Delivery(0, "bigcommerce", CHANNELS["bigcommerce"], str(order_id), scope, body,
                        f"webhook:{msg_id}", {}, resign=sign,
                        bc_state=(order_id, step))  # fmt: skip

    def _custom(self, i: int, what: str, placed: datetime, at: datetime, step: int) -> Delivery:
        from channels.signatures import sign_custom

        event = copy.deepcopy(self.custom)
        order = event["order"]
        order.update(external_id=f"WEB-{i}", order_number=f"C{i}", currency="USD",
                     placed_at=placed.isoformat(), updated_at=at.isoformat(),
                     customer={"email": f"soak-web-{i}@mail.example.com",
                               "name": "Soak Buyer"},
                     shipping_address=dict(US_ADDRESS),
                     billing_address=dict(US_ADDRESS))  # fmt: skip
        topic = {"create": "order.created", "update": "order.updated",
                 "cancel": "order.cancelled"}[what]  # fmt: skip
        event_id = f"evt_soak_{i}_{step}"
        event.update(id=event_id, topic=topic)
        body = json.dumps(event).encode()
        secret = self.secrets["custom"]

        def sign() -> dict[str, str]:
            return {"X-Signature": sign_custom(secret=secret, body=body,
                                               timestamp=int(time.time()))}  # fmt: skip

        return Delivery(0, "custom", CHANNELS["custom"], f"WEB-{i}", topic, body,
                        f"event:{event_id}", {}, resign=sign)  # fmt: skip

    def _build(self, total: int) -> list[Delivery]:
        rng = self.rng
        originals = total - round(total * 0.2)
        kinds = list(CHANNELS)
        per_order: list[list[Delivery]] = []
        count = 0
        while count < originals:
            kind = kinds[len(per_order) % len(kinds)]
            roll = rng.random()  # 1.3 later events per order on average, 15% cancelled
            extra = (["update"] if roll < 0.35 else ["update", "update"] if roll < 0.70
                     else ["update", "cancel"] if roll < 0.80 else ["cancel"] if roll < 0.85
                     else [])  # fmt: skip
            extra = extra[: originals - count - 1]
            self.orders[kind] += 1
            events = self._events(kind, self.orders[kind], extra)
            per_order.append(events)
            count += len(events)
        # Interleave orders: each order's events close together, orders overlapping.
        sequence: list[Delivery] = []
        pending: list[tuple[float, int, Delivery]] = []
        for n, events in enumerate(per_order):
            for step, event in enumerate(events):
                heapq.heappush(pending, (n + step * rng.uniform(3, 30), len(pending), event))
        while pending:
            sequence.append(heapq.heappop(pending)[2])
        # 10% out of order: a later event of an order moved before its predecessor.
        wanted, moved = round(total * 0.1), 0
        later = [d for d in sequence if not d.topic.endswith(("create", "created"))]
        rng.shuffle(later)
        for event in later:
            if moved >= wanted:
                break
            pos = sequence.index(event)
            first = next(j for j, d in enumerate(sequence) if d.order_ref == event.order_ref
                         and d.kind == event.kind)  # fmt: skip
            if first >= pos:
                continue
            sequence.pop(pos)
            sequence.insert(first, event)
            event.early = True
            moved += 1
        # 20% exact re-deliveries of something sent a little earlier.
        for _ in range(total - len(sequence)):
            pos = rng.randrange(1, len(sequence) + 1)
            source = sequence[rng.randrange(max(0, pos - 200), pos)]
            sequence.insert(pos, Delivery(0, source.kind, source.slug, source.order_ref,
                                          source.topic, source.body, source.dedup_key,
                                          source.headers, source.resign, source.bc_state,
                                          duplicate=True))  # fmt: skip
        for index, delivery in enumerate(sequence):
            delivery.index = index
        return sequence


def bc_totals(products: list[dict[str, Any]]) -> dict[str, str]:
    """Order totals that add up from its products (the sample order and the sample products
    are of different orders), shipping 10.00 without tax, discounts as the products carry."""
    subtotal = sum(Decimal(p["price_ex_tax"]) * int(p["quantity"]) for p in products)
    tax = sum(Decimal(p["total_tax"]) for p in products)
    discount = sum(Decimal(d["amount"]) for p in products for d in p.get("applied_discounts") or [])
    shipping = Decimal("10.0000")
    total_ex = subtotal - discount + shipping
    return {
        "subtotal_ex_tax": f"{subtotal:.4f}", "subtotal_inc_tax": f"{subtotal + tax:.4f}",
        "subtotal_tax": f"{tax:.4f}", "discount_amount": f"{discount:.4f}",
        "coupon_discount": "0.0000", "base_shipping_cost": f"{shipping:.4f}",
        "shipping_cost_ex_tax": f"{shipping:.4f}", "shipping_cost_inc_tax": f"{shipping:.4f}",
        "shipping_cost_tax": "0.0000", "total_ex_tax": f"{total_ex:.4f}",
        "total_inc_tax": f"{total_ex + tax:.4f}", "total_tax": f"{tax:.4f}",
    }  # fmt: skip


# --- sending -------------------------------------------------------------------------------------
@dataclass
class Window:
    """When PostgreSQL was down: from after its stop returned to before its start began."""

    start: float
    end: float = float("inf")


class Sender:
    def __init__(self, base: str, plan: Plan, vendors: Vendors, rate: float, clients: int):
        self.base = base
        self.plan = plan
        self.vendors = vendors
        self.interval = 1.0 / rate
        self.clients = clients
        self.queue: list[tuple[float, int, Delivery]] = []
        self.cond = threading.Condition()
        self.next_slot = time.monotonic()
        self.outstanding = len(plan.deliveries)
        self.sent_first = 0
        self.retries = 0
        self.answers: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.pg_windows: list[Window] = []
        self.acked_while_pg_down: list[str] = []
        self.bc_seen: dict[int, int] = {}
        self.last_send = 0.0
        self.threads: list[threading.Thread] = []
        self.paused = False  # the backlog is over what the system digests: hold new sends
        self.paused_seconds = 0.0

    def start(self) -> None:
        now = time.monotonic()
        for d in self.plan.deliveries:  # each at its own slot, so that re-sends fit in between
            self.queue.append((now + d.index * self.interval, d.index, d))
        heapq.heapify(self.queue)
        for _ in range(self.clients):
            thread = threading.Thread(target=self._client, daemon=True)
            thread.start()
            self.threads.append(thread)

    def done(self) -> bool:
        with self.cond:
            return self.outstanding == 0

    def _take(self) -> Delivery | None:
        with self.cond:
            while True:
                if self.outstanding == 0:
                    return None
                now = time.monotonic()
                if (self.queue and self.queue[0][0] <= now and self.next_slot <= now
                        and not self.paused):  # fmt: skip
                    self.next_slot = max(self.next_slot + self.interval, now - 1.0)
                    return heapq.heappop(self.queue)[2]
                wait = max(self.next_slot, self.queue[0][0] if self.queue else now + 1) - now
                self.cond.wait(timeout=min(max(wait, 0.001), 1.0))

    def _client(self) -> None:
        session = requests.Session()
        while (delivery := self._take()) is not None:
            self._send(session, delivery)

    def _send(self, session: requests.Session, d: Delivery) -> None:
        if d.bc_state is not None:  # the store changed before it fired the webhook
            order_id, version = d.bc_state
            with self.vendors.lock:
                if version >= self.bc_seen.get(order_id, -1):
                    self.bc_seen[order_id] = version
                    self.vendors.bc_orders[order_id] = self.plan.bc_versions[order_id][version]
        headers = {"Content-Type": "application/json", **d.headers,
                   **(d.resign() if d.resign else {})}  # fmt: skip
        d.attempts += 1
        with self.cond:
            if d.attempts == 1:
                self.sent_first += 1
            else:
                self.retries += 1
        sent = time.monotonic()
        try:
            response = session.post(f"{self.base}/webhooks/{d.slug}/", data=d.body,
                                    headers=headers, timeout=30)  # fmt: skip
            status = response.status_code
        except requests.RequestException:
            status = 0
        answered = time.monotonic()
        self.last_send = answered
        d.answers[status] += 1
        with self.cond:
            self.answers[str(status)] += 1
            if 200 <= status < 300:
                if any(w.start <= sent and answered <= w.end for w in self.pg_windows):
                    self.acked_while_pg_down.append(f"{d.slug} {d.dedup_key} {status}")
                if not d.acked:
                    d.acked, d.first_ack = True, time.time()
                    self.latencies.append(answered - sent)
                self.outstanding -= 1
            elif status in (0, 429) or status >= 500:
                backoff = min(30.0, 2.0 * 2 ** min(d.attempts - 1, 4)) * random.uniform(0.5, 1)
                heapq.heappush(self.queue, (answered + backoff, d.index, d))
            else:  # 4xx: a refusal the vendor would not retry; counted as a failure
                self.outstanding -= 1
            self.cond.notify_all()


# --- faults --------------------------------------------------------------------------------------
@dataclass
class Fault:
    at: float  # seconds after sending began
    name: str
    duration: float = 0.0


class Faults:
    def __init__(self, faults: list[Fault], product: Product, redis: Redis, pg: Postgres,
                 vendors: Vendors, sender: Sender) -> None:  # fmt: skip
        self.faults = sorted(faults, key=lambda f: f.at)
        self.product, self.redis, self.pg = product, redis, pg
        self.vendors, self.sender = vendors, sender
        self.current: set[str] = set()
        self.log: list[str] = []
        self.kills = 0
        self.last_fault_end = 0.0
        self.errors: list[str] = []

    def run(self, started: float) -> None:
        threads = []
        for fault in self.faults:
            thread = threading.Thread(target=self._one, args=(fault, started), daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()

    def _note(self, text: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {text}")
        say(f"fault: {text}")

    def _one(self, fault: Fault, started: float) -> None:
        time.sleep(max(0.0, started + fault.at - time.monotonic()))
        self.current.add(fault.name)
        try:
            if fault.name == "kill-pool-process":
                self._note(self.product.kill_pool_process())
                self.kills += 1
            elif fault.name == "kill-worker":
                self._note(self.product.kill_worker())
                self.kills += 1
            elif fault.name == "redis-down":
                self.redis.stop()
                self._note(f"Redis stopped for {fault.duration:.0f} s")
                time.sleep(fault.duration)
                self.redis.start()
                self._note("Redis started again, empty")
            elif fault.name == "wms-500":
                with self.vendors.lock:
                    self.vendors.wms_failing = True
                self._note(f"the WMS answers 500 for {fault.duration:.0f} s")
                time.sleep(fault.duration)
                with self.vendors.lock:
                    self.vendors.wms_failing = False
                self._note("the WMS answers again")
            elif fault.name == "postgres-restart":
                self.pg.stop("immediate")
                window = Window(time.monotonic())
                with self.sender.cond:
                    self.sender.pg_windows.append(window)
                self._note(f"PostgreSQL stopped (immediate) for {fault.duration:.0f} s")
                time.sleep(fault.duration)
                window.end = time.monotonic()
                self.pg.start()
                self._note("PostgreSQL started again")
        except Exception as exc:  # a fault that could not be injected is reported, not hidden
            self.errors.append(f"{fault.name}: {exc!r}")
            say(f"fault {fault.name} FAILED: {exc!r}")
        finally:
            self.current.discard(fault.name)
            self.last_fault_end = max(self.last_fault_end, time.monotonic())


def fault_plan(send_seconds: float, quick: bool) -> list[Fault]:
    redis_down, wms_down, pg_down = (15.0, 30.0, 5.0) if quick else (60.0, 300.0, 15.0)
    at = [0.06, 0.15, 0.25, 0.30, 0.50, 0.65]
    names = ["kill-pool-process", "redis-down", "kill-pool-process", "wms-500",
             "postgres-restart", "kill-worker"]  # fmt: skip
    durations = [0.0, redis_down, 0.0, wms_down, pg_down, 0.0]
    return [Fault(send_seconds * a, n, d) for a, n, d in zip(at, names, durations, strict=True)]


# --- setup ---------------------------------------------------------------------------------------
def manage(env: dict[str, str], *args: str) -> None:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True)  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"manage.py {args[0]} failed:\n{result.stdout}\n{result.stderr}")


def prepare(env: dict[str, str], tmp: Path, vendor_base: str, plan_orders: Counter[str],
            secrets: dict[str, str]) -> dict[tuple[str, str], int]:  # fmt: skip
    """Channels, catalogue, warehouses and stock through the commands; returns the on-hand set."""
    manage(env, "migrate", "--noinput")
    for kind, slug in CHANNELS.items():
        args = ["add_channel", "--kind", kind, "--slug", slug, "--secret", secrets[kind],
                "--name", f"Soak {kind}"]  # fmt: skip
        if kind == "shopify":
            args += ["--api-version", "2026-07"]
        if kind == "bigcommerce":
            args += ["--api-url", f"{vendor_base}/bc",
                     "--credentials", json.dumps({"access_token": "soak-token"})]  # fmt: skip
        manage(env, *args)
    products = tmp / "products.csv"
    with products.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sku", "title", "weight", "hs_code", "origin_country", "tags"])
        for sku, title, grams, hs, origin in PRODUCTS:
            writer.writerow([sku, title, grams, hs, origin, "soak"])
    manage(env, "import_products", str(products))
    manage(env, "add_warehouse", "--code", "NJ1", "--country", "US", "--region", "US-NJ",
           "--priority", "10")  # fmt: skip
    manage(env, "add_warehouse", "--code", "TX1", "--country", "US", "--region", "US-TX",
           "--priority", "20")  # fmt: skip
    stock: dict[tuple[str, str], int] = {}
    most = max(plan_orders.values())
    for sku, *_ in PRODUCTS:
        if sku in SCARCE:
            wanted = plan_orders[SCARCE[sku]] * (2 if sku == "MUG-WHT" else 1)
            scarce = int(wanted * 0.8)  # a fifth of those orders must wait for stock
            stock[(sku, "NJ1")] = scarce // 2
            stock[(sku, "TX1")] = scarce - scarce // 2
        else:
            stock[(sku, "NJ1")] = most * 3
            stock[(sku, "TX1")] = most
    levels = tmp / "stock.csv"
    with levels.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sku", "warehouse", "on_hand"])
        for (sku, warehouse), on_hand in stock.items():
            writer.writerow([sku, warehouse, on_hand])
    manage(env, "import_stock", str(levels))
    return stock


# --- the figures ---------------------------------------------------------------------------------
def orders_by_state() -> Counter[str]:
    from django.db.models import Count

    from orders.models import Order

    rows = Order.objects.values("status").annotate(n=Count("id"))
    return Counter({row["status"]: row["n"] for row in rows})


def quiet() -> tuple[bool, str, int]:
    """Nothing left to do: no order moving, no inbox row unprocessed, no outbox action due."""
    from channels.models import InboundEvent
    from fulfillment.models import OutboundAction
    from orders.models import Order

    moving = Order.objects.exclude(status__in=[*TERMINAL, *PERSON]).count()
    inbox = InboundEvent.objects.filter(status="received").count()
    outbox = OutboundAction.objects.filter(status__in=["pending", "in_flight"]).count()
    return (
        moving == 0 and inbox == 0 and outbox == 0,
        f"moving orders {moving}, inbox unprocessed {inbox}, outbox open {outbox}",
        moving + inbox,
    )


def figures(
    plan: Plan, sender: Sender, vendors: Vendors, stock: dict[tuple[str, str], int],
    faults: Faults, product: Product, started_wall: float,
) -> tuple[list[str], bool]:  # fmt: skip
    from django.db import close_old_connections
    from django.db.models import Count, Min, Q, Sum

    from channels.models import InboundEvent, SalesChannel
    from fulfillment.models import OutboundAction, Reservation, StockLevel
    from orders.models import Incident, Order, OrderEvent

    close_old_connections()
    channels = {c.slug: c.pk for c in SalesChannel.objects.all()}
    kept = set(InboundEvent.objects.values_list("channel_id", "dedup_key"))
    quarantined = InboundEvent.objects.filter(status="quarantined").count()
    acked = [d for d in plan.deliveries if d.acked]
    lost_events = [d for d in acked if (channels[d.slug], d.dedup_key[:200]) not in kept]
    orders = {(o.channel_id, o.external_id): o for o in Order.objects.all()}
    acked_orders = {(channels[d.slug], d.order_ref) for d in acked}
    lost_orders = [key for key in acked_orders if key not in orders]
    refused = [d for d in plan.deliveries if not d.acked]

    # duplicate side effects, counted at the vendors
    with vendors.lock:
        labels = sum(n - 1 for n in vendors.ep_labels.values() if n > 1)
        erp = sum(len(ids) - 1 for ids in vendors.ns_per_order.values() if len(ids) > 1)
        wms = sum(len(keys) - 1 for keys in vendors.wms_per_order.values() if len(keys) > 1)
        mails = sum(n - 1 for n in vendors.mails.values() if n > 1)
        mail_examples = [f"{key} x{n}, Message-IDs {sorted(vendors.mail_ids[key])}"
                         for key, n in vendors.mails.items() if n > 1]  # fmt: skip
        same_id = sum(n - len(vendors.mail_ids[key]) for key, n in vendors.mails.items())
        mail_total = sum(vendors.mails.values())
        counts = (len(vendors.ep_labels), len(vendors.ns_records), len(vendors.wms_tasks),
                  vendors.wms_replays, vendors.wms_500, vendors.ns_refused,
                  vendors.ep_refused_buys, vendors.bc_fetches)  # fmt: skip
    held = ["active", "consumed"]
    reservations = (
        Reservation.objects.filter(status__in=held).values("order_line_id")
        .annotate(n=Count("id")).filter(n__gt=1).count()
    )  # fmt: skip
    oversold = StockLevel.objects.filter(Q(reserved__gt=models_f("on_hand")) | Q(reserved__lt=0)
                                         | Q(on_hand__lt=0)).count()  # fmt: skip
    consumed = {
        (r["sku"], r["warehouse__code"]): r["q"]
        for r in Reservation.objects.filter(status__in=held)
        .values("sku", "warehouse__code").annotate(q=Sum("quantity"))
    }  # fmt: skip
    over_initial = [key for key, q in consumed.items() if q > stock.get(key, 0)]

    states = orders_by_state()
    open_incidents = set(
        Incident.objects.filter(status__in=["open", "acknowledged"], order__isnull=False)
        .values_list("order_id", flat=True)
    )  # fmt: skip
    stuck = [o for o in orders.values() if o.status not in TERMINAL
             and o.status not in PERSON and o.pk not in open_incidents]  # fmt: skip
    outbox = Counter(OutboundAction.objects.values_list("status", flat=True))
    from reviews.models import ReviewCase

    slugs = {pk: slug for slug, pk in channels.items()}
    review_reasons = {
        order_id: "; ".join(str(r) for r in reasons or [])
        for order_id, reasons in ReviewCase.objects.values_list("order_id", "reasons")
    }
    waiting = Counter(
        f"{o.status} {slugs[o.channel_id]}: "
        + re.sub(r"\d+", "#", o.status_reason or review_reasons.get(o.pk, ""))[:70]
        for o in orders.values() if o.status in PERSON
    )  # fmt: skip
    incidents = Counter(
        category + ": " + re.sub(r"\d+", "#", summary)[:70]
        for category, summary in Incident.objects.values_list("category", "summary")
    )

    # time to terminal: first 2xx of any delivery of the order -> its first terminal state
    first_ack: dict[tuple[int, str], float] = {}
    for d in acked:
        key = (channels[d.slug], d.order_ref)
        first_ack[key] = min(first_ack.get(key, d.first_ack), d.first_ack)
    reached = dict(
        OrderEvent.objects.filter(to_state__in=TERMINAL).values("order_id")
        .annotate(at=Min("at")).values_list("order_id", "at")
    )  # fmt: skip
    ttt = [reached[o.pk].timestamp() - first_ack[key] for key, o in orders.items()
           if o.pk in reached and key in first_ack]  # fmt: skip
    acks_ms = [x * 1000 for x in sender.latencies]
    a = sender.answers
    required = {
        "orders lost (acked 2xx, no inbox row or no order kept)": len(lost_events)
        + len(lost_orders),
        "deliveries never acked (refused 4xx or given up)": len(refused),
        "valid deliveries quarantined": quarantined,
        "duplicate labels bought (per shipment reference)": labels,
        "duplicate ERP documents (per order)": erp,
        "duplicate WMS tasks (per order)": wms,
        "duplicate emails (per order and kind)": mails,
        "order lines holding more than one reservation": reservations,
        "oversold stock rows (reserved > on_hand or below 0)": oversold,
        "stock rows reserved+consumed beyond the stock imported": len(over_initial),
        "orders not terminal nor in a person's queue": len(stuck),
        "2xx answers while PostgreSQL was down": len(sender.acked_while_pg_down),
        "faults that could not be injected": len(faults.errors),
    }
    lines = ["", "=" * 78, "SOAK RESULT", "=" * 78]
    lines.append(f"deliveries {len(plan.deliveries)} (orders {sum(plan.orders.values())}: "
                 + ", ".join(f"{k} {v}" for k, v in plan.orders.items()) + ")")  # fmt: skip
    lines.append(f"  exact re-deliveries {sum(d.duplicate for d in plan.deliveries)}, "
                 f"out of order {sum(d.early for d in plan.deliveries)}, "
                 f"acked {len(acked)}, retries {sender.retries}; sending held for backlog "
                 f"{sender.paused_seconds:.0f} s")  # fmt: skip
    lines.append("  answers: " + ", ".join(f"{k} {a[k]}" for k in sorted(a)) + " (0 = no answer)")
    lines.append(f"faults: {faults.kills} SIGKILLs; " + "; ".join(faults.log))
    restarts = ", ".join(f"{k} {v}" for k, v in product.restarts.items()) or "none"
    lines.append(f"  process restarts by the supervisor: {restarts}")
    lines.append(f"orders by state: {dict(sorted(states.items()))}; open incidents on "
                 f"{len(open_incidents)} orders")  # fmt: skip
    lines.append(f"outbox actions by status: {dict(sorted(outbox.items()))}")
    lines.append("waiting for a person (state: reason), most common: " + "; ".join(
        f"{n} x {text}" for text, n in waiting.most_common(6)))  # fmt: skip
    lines.append("incidents (category: summary), most common: " + "; ".join(
        f"{n} x {text}" for text, n in incidents.most_common(6)))  # fmt: skip
    lines.append(f"vendors: labels {counts[0]}, ERP documents {counts[1]}, WMS tasks {counts[2]}, "
                 f"emails {mail_total}; WMS repeats answered with the first task {counts[3]}, "
                 f"WMS 500s {counts[4]}, ERP creates refused as duplicates {counts[5]}, "
                 f"label buys refused (already bought) {counts[6]}, BigCommerce fetches "
                 f"{counts[7]}; emails re-sent with the same Message-ID {same_id}")  # fmt: skip
    lines.append(f"ack latency (2xx): p50 {pct(acks_ms, 50):.1f} ms, p99 {pct(acks_ms, 99):.1f} ms")
    lines.append(f"time to terminal (first ack -> shipped/cancelled): p50 {pct(ttt, 50):.1f} s, "
                 f"p95 {pct(ttt, 95):.1f} s over {len(ttt)} orders")  # fmt: skip
    lines.append("-" * 78)
    failed = False
    for name, value in required.items():
        mark = "ok" if value == 0 else "FAIL"
        failed |= value != 0
        lines.append(f"  {name:<66}{value:>6}  {mark}")
    examples: list[tuple[list[Any], str]] = [
        (lost_events, "lost event"), (stuck, "stuck order"),
        (sender.acked_while_pg_down, "2xx while down"), (faults.errors, "fault error"),
        (refused, "never acked"), (mail_examples, "duplicate email"),
    ]  # fmt: skip
    for sample_list, label in examples:
        for item in list(sample_list)[:5]:
            shown = (f"{item.pk} {item.status}" if isinstance(item, Order) else
                     f"{item.slug} {item.dedup_key} {dict(item.answers)}"
                     if isinstance(item, Delivery) else str(item))  # fmt: skip
            lines.append(f"    {label}: {shown}")
    lines.append(f"run took {(time.time() - started_wall) / 60:.1f} min")
    return lines, failed


def models_f(name: str) -> Any:
    from django.db.models import F

    return F(name)


# --- main ----------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="~3 minutes, faults compressed")
    parser.add_argument("--rate", type=float, default=5.0, help="deliveries per second")
    parser.add_argument("--clients", type=int, default=4, help="webhook client threads")
    parser.add_argument("--backlog", type=int, default=300,
                        help="hold new deliveries while more than this many inbox rows and "
                        "orders are still to be processed (resume at half)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.quick and args.deliveries == 10_000:
        args.deliveries = 600
    sys.path.insert(0, str(ROOT))
    started_wall = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    pg = Postgres(free_port(55432))
    redis = Redis(free_port(56379), tmp / "redis.log")
    vendors = Vendors()
    http = ThreadingHTTPServer(("127.0.0.1", 0), vendor_handler(vendors, lambda: vendor_base))
    vendor_base = f"http://127.0.0.1:{http.server_address[1]}"
    SMTPHandler.vendors = vendors
    smtp = ThreadingSMTP(("127.0.0.1", 0), SMTPHandler)
    web_port = free_port(58000)
    secrets = {kind: f"soak-{kind}-{uuid.uuid4().hex}" for kind in CHANNELS}
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.soak_settings",
        "DATABASE_URL": pg.url("soak"), "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis.port}/0",
        "CELERY_TASK_ALWAYS_EAGER": "0", "DEBUG": "0", "SECRET_KEY": uuid.uuid4().hex * 2,
        "LOG_LEVEL": "WARNING", "CONN_MAX_AGE": "60",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prometheus"), "MEDIA_ROOT": str(tmp / "media"),
        "FULFILLMENT_AUTO_SHIP": "1", "INTEGRATIONS_ALLOW_LOOPBACK_HTTP": "1",
        "ERP_TARGET": "netsuite", "NETSUITE_API_BASE": f"{vendor_base}/ns",
        "NETSUITE_TOKEN": "soak-netsuite", "NETSUITE_CUSTOMER_ID": "42",
        "WMS_TARGET": "rest", "WMS_API_BASE": f"{vendor_base}/wms", "WMS_API_TOKEN": "soak-wms",
        "NOTIFY_TARGETS": "email", "SOAK_SMTP_HOST": "127.0.0.1",
        "SOAK_SMTP_PORT": str(smtp.server_address[1]),
        "ROUTING_DEFAULT_CARRIER": "easypost", "EASYPOST_API_KEY": "EZTK_soak",
        "EASYPOST_API_BASE": f"{vendor_base}/easypost/v2", "EASYPOST_BACKOFF": "0.2",
        # Recovery within two minutes of a fault: leases and sweeps shorter than the defaults.
        "INGEST_LEASE_SECONDS": "60", "OUTBOX_LEASE_SECONDS": "60",
        "INBOUND_SWEEP_SECONDS": "20", "INGEST_SWEEP_AFTER_SECONDS": "30",
        "PIPELINE_SWEEP_SECONDS": "20", "ORDER_PIPELINE_STUCK_AFTER_SECONDS": "60",
        "ALLOCATE_SWEEP_SECONDS": "20", "ORDER_ALLOCATE_STUCK_AFTER_SECONDS": "60",
        "OUTBOX_SWEEP_SECONDS": "20", "ORCHESTRATE_SWEEP_SECONDS": "30",
        "OUTBOX_BACKOFF_CAP_SECONDS": "60", "OUTBOX_BREAKER_COOLDOWN_SECONDS": "30",
        "BACKORDER_RETRY_SECONDS": "60",
    }  # fmt: skip
    (tmp / "prometheus").mkdir()
    product = Product(env, tmp, web_port)
    failed = True

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        for server in (http, smtp):
            threading.Thread(target=server.serve_forever, daemon=True).start()
        say(f"PostgreSQL on {pg.port} ({pg.dir}), Redis on {redis.port}, vendors {vendor_base}, "
            f"SMTP {smtp.server_address[1]}, web {web_port}, logs in {tmp}")  # fmt: skip
        pg.init()
        pg._as_postgres(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(pg.port),
                        "-U", "postgres", "soak")  # fmt: skip
        redis.start()
        os.environ.update(env)
        import django

        django.setup()
        plan = Plan(args.deliveries, secrets, args.seed)
        say(f"plan: {len(plan.deliveries)} deliveries for {sum(plan.orders.values())} orders")
        stock = prepare(env, tmp, vendor_base, plan.orders, secrets)
        product.start_all()
        threading.Thread(target=product.supervise, daemon=True).start()
        sender = Sender(f"http://127.0.0.1:{web_port}", plan, vendors, args.rate, args.clients)
        send_seconds = len(plan.deliveries) / args.rate
        faults = Faults(fault_plan(send_seconds, args.quick), product, redis, pg, vendors, sender)
        say(f"sending at {args.rate}/s for ~{send_seconds / 60:.1f} min; faults at "
            + ", ".join(f"{f.at:.0f}s {f.name}" for f in faults.faults))  # fmt: skip
        started = time.monotonic()
        sender.start()
        fault_thread = threading.Thread(target=faults.run, args=(started,), daemon=True)
        fault_thread.start()
        last_progress = last_print = 0.0
        deadline: float | None = None
        while True:
            time.sleep(1)
            now = time.monotonic()
            sending_done = sender.done() and not fault_thread.is_alive()
            if sending_done and deadline is None:
                deadline = max(faults.last_fault_end, sender.last_send) + 120
                say(f"all deliveries acked or refused; checking at the latest in "
                    f"{deadline - now:.0f} s")  # fmt: skip
            if sender.paused:
                sender.paused_seconds += 1
            if now - last_progress >= 5 or (deadline is not None and now >= deadline):
                last_progress = now
                try:
                    from django.db import close_old_connections

                    close_old_connections()
                    states = dict(sorted(orders_by_state().items()))
                    is_quiet, detail, backlog = quiet()
                    if backlog > args.backlog and not sender.paused:
                        sender.paused = True
                    elif backlog < args.backlog // 2 and sender.paused:
                        sender.paused = False
                except Exception as exc:  # PostgreSQL is down: say so and carry on
                    states, is_quiet, detail = {}, False, f"(database: {type(exc).__name__})"
                    sender.paused = False  # the webhook answers 503 now; a vendor keeps sending
                a = sender.answers
                if now - last_print >= 10 or deadline is not None and now >= deadline:
                    last_print = now
                    say(f"{now - started:6.0f}s sent {sender.sent_first}/{len(plan.deliveries)} "
                    f"acked {sum(d.acked for d in plan.deliveries)} retries {sender.retries} "
                    f"503 {a['503']} 5xx {sum(v for k, v in a.items() if k[0] == '5')} "
                    f"| {states} | {detail} | faults now: "
                    f"{', '.join(sorted(faults.current)) or '-'}"
                    + (" | sending held: backlog" if sender.paused else ""))  # fmt: skip
                if deadline is not None and (is_quiet or now >= deadline):
                    say("quiet" if is_quiet else "120 s after the last fault: checking now")
                    break
        lines, failed = figures(plan, sender, vendors, stock, faults, product, started_wall)
        print("\n".join(lines), flush=True)
        print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    except KeyboardInterrupt:
        say("interrupted: stopping everything this soak started")
    finally:
        product.stop_all()
        redis.stop()
        http.shutdown()
        smtp.shutdown()
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        pg.cleanup()
        if args.keep or failed:
            say(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
