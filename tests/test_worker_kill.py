"""A real Celery worker is SIGKILLed in the middle of a downstream call. After a new worker
starts and the sweeper runs, every outbox action completes, and the receiving WMS (a real HTTP
server on loopback that applies each idempotency key once) applied every key exactly once."""

import json
import os
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import transaction

from fulfillment.models import OutboundAction
from fulfillment.outbox import services as outbox
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse
from tests.workers import purge_queues, start_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ACTIONS = 4
LEASE_SECONDS = 3


class IdempotentWMS:
    """POST /tasks applies a task once per Idempotency-Key (a repeat answers 409). The first
    request is slow, so a worker can be killed while it waits for the answer."""

    def __init__(self) -> None:
        self.applied: dict[str, int] = {}
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.first_arrived = threading.Event()
        wms = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                key = self.headers.get("Idempotency-Key", "")
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with wms.lock:
                    wms.requests.append(key)
                    first = len(wms.requests) == 1
                if first:
                    wms.first_arrived.set()
                    time.sleep(4)  # the caller is killed meanwhile; we still apply it
                with wms.lock:
                    repeat = key in wms.applied
                    wms.applied[key] = wms.applied.get(key, 0) + (0 if repeat else 1)
                body = json.dumps({"id": key}).encode()
                self.send_response(409 if repeat else 201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def start_kill_test_worker(tmp_path, wms_url: str, name: str) -> subprocess.Popen:
    return start_worker(
        tmp_path / f"{name}.log", name=name, concurrency=2, new_session=True,
        env={"WMS_TARGET": "rest", "WMS_API_BASE": wms_url,
             "OUTBOX_LEASE_SECONDS": str(LEASE_SECONDS), "DOWNSTREAM_READ_TIMEOUT": "30"},
    )  # fmt: skip


def kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=15)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:  # a warm shutdown waiting on a task: stop it cold
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


def test_a_worker_killed_mid_dispatch_loses_nothing_and_applies_nothing_twice(tmp_path, not_eager):
    purge_queues()
    wms = IdempotentWMS()
    add_warehouse("A")
    orders = [make_order(paid=True, pipeline=False, lines=[("MUG", 1, "10.00")])
              for _ in range(ACTIONS)]  # fmt: skip
    first = start_kill_test_worker(tmp_path, wms.url, "first")
    second = None
    try:
        with transaction.atomic():
            for order in orders:
                outbox.action_write(
                    order_id=order.pk, kind="wms_task", target="rest", lane="fulfillment",
                    payload={"warehouse": "A", "lines": [{"sku": "MUG", "quantity": 1}]},
                )  # fmt: skip
        assert wms.first_arrived.wait(60), (tmp_path / "first.log").read_text()[-3000:]
        kill_group(first, signal.SIGKILL)  # mid-call: its lease stays taken, its answer lost

        second = start_kill_test_worker(tmp_path, wms.url, "second")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(LEASE_SECONDS)
            outbox.outbox_sweep()  # beat's job: re-send what is due or left in flight
            statuses = list(OutboundAction.objects.values_list("status", flat=True))
            if statuses == ["succeeded"] * ACTIONS:
                break
        actions = list(OutboundAction.objects.order_by("pk"))
        log = (tmp_path / "second.log").read_text()[-3000:]
        assert [a.status for a in actions] == ["succeeded"] * ACTIONS, log
        assert sorted(wms.applied) == sorted(a.idempotency_key for a in actions)
        assert set(wms.applied.values()) == {1}  # each key applied exactly once
        # The killed call was made again (its lease expired): the WMS answered "already done".
        assert len(wms.requests) > ACTIONS
        assert max(a.attempts for a in actions) >= 2
    finally:
        if second is not None:
            kill_group(second, signal.SIGTERM)
        wms.server.shutdown()
