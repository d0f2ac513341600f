"""Webhook acknowledgement throughput and latency: the full endpoint against a baseline.

Runs gunicorn on loopback against PostgreSQL (and Redis as the broker when it answers), then
drives both endpoints with the same number of concurrent clients and the same payload size:

- baseline: a bare Django view that inserts the raw body (``bench/urls.py``);
- full: ``POST /webhooks/<slug>/`` of a custom-storefront channel: signature check, dedup
  insert into the inbox, doorbell to the broker after commit.

Prints requests/second, p50 and p99 latency of each and the ratios. Usage:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/orderdesk_bench \
      .venv/bin/python bench/ingest.py [--clients 16] [--requests 4000] [--workers 4]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"
SLUG = "bench-web"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


def prepare(env: dict[str, str]) -> None:
    manage("migrate", "--noinput", env=env)
    manage("add_channel", "--kind", "custom", "--slug", SLUG, "--secret", SECRET, env=env)
    code = (
        "from django.db import connection\n"
        "with connection.cursor() as c:\n"
        "    c.execute('CREATE TABLE IF NOT EXISTS bench_raw (id bigserial primary key, "
        "body bytea not null, received_at timestamptz not null default now())')\n"
        "    c.execute('TRUNCATE bench_raw')\n"
        "from channels.models import InboundEvent\n"
        "InboundEvent.objects.filter(channel__slug='" + SLUG + "')._raw_delete('default')\n"
    )
    subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env,
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip


def payload(i: int) -> bytes:
    order = json.loads((ROOT / "demo" / "custom_order_created.json").read_text())
    order["id"] = f"evt_bench_{i}"
    order["order"]["external_id"] = f"BENCH-{i}"
    return json.dumps(order).encode()


def signed_headers(body: bytes) -> dict[str, str]:
    sys.path.insert(0, str(ROOT))
    from channels.signatures import sign_custom

    signature = sign_custom(secret=SECRET, body=body, timestamp=int(time.time()))
    return {"Content-Type": "application/json", "X-Signature": signature}


def drive(url: str, bodies: list[bytes], clients: int, sign: bool) -> tuple[float, list[float]]:
    """Send every body once, spread over ``clients`` threads with keep-alive sessions."""
    latencies: list[float] = []
    lock = threading.Lock()
    chunks = [bodies[i::clients] for i in range(clients)]
    failures: list[str] = []

    def client(chunk: list[bytes]) -> None:
        session = requests.Session()
        mine = []
        for body in chunk:
            headers = signed_headers(body) if sign else {"Content-Type": "application/json"}
            started = time.perf_counter()
            response = session.post(url, data=body, headers=headers, timeout=30)
            mine.append(time.perf_counter() - started)
            if response.status_code != 202:
                failures.append(f"{response.status_code} {response.text[:120]}")
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, first: {failures[0]}")
    return elapsed, latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL database (see the module docstring)")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings", "LOG_LEVEL": "WARNING"}
    try:
        import redis

        redis.Redis(host="127.0.0.1", port=6379, socket_timeout=1).ping()
        env.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")
    except Exception:  # no Redis here: the embedded broker rings the doorbell instead
        pass
    prepare(env)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "bench.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", str(args.workers), "--log-level", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                requests.get(f"{base}/healthz", timeout=1)
                break
            except requests.RequestException:  # not listening yet, or still booting
                time.sleep(0.2)
        n = args.requests
        warm = [payload(-i - 1) for i in range(200)]
        drive(f"{base}/bench/baseline/", warm, args.clients, sign=False)
        drive(f"{base}/webhooks/{SLUG}/", warm, args.clients, sign=True)
        bodies = [payload(i) for i in range(n)]
        results = {}
        for name, url, sign in (("baseline", f"{base}/bench/baseline/", False),
                                ("webhook", f"{base}/webhooks/{SLUG}/", True)):  # fmt: skip
            elapsed, lat = drive(url, bodies, args.clients, sign)
            results[name] = (n / elapsed, pct(lat, 50), pct(lat, 99))
        print(f"{n} requests per endpoint, {args.clients} concurrent clients, "
              f"gunicorn {args.workers} workers, body {len(bodies[0])} bytes, "
              f"broker {env.get('CELERY_BROKER_URL', 'filesystem')}")  # fmt: skip
        print(f"{'endpoint':<10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
        for name, (rps, p50, p99) in results.items():
            print(f"{name:<10}{rps:>10.0f}{p50:>10.2f}{p99:>10.2f}")
        (b_rps, b50, b99), (w_rps, w50, w99) = results["baseline"], results["webhook"]
        print(f"ratio webhook/baseline: throughput {w_rps / b_rps:.2f}x, "
              f"p50 {w50 / b50:.2f}x, p99 {w99 / b99:.2f}x")  # fmt: skip
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
