"""Downstream systems on loopback (real HTTP servers, pytest-httpserver) and small steps that
make time pass for the outbox (a retry falls due, a lease runs out, a breaker cools down)."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.test import TestCase
from django.utils import timezone
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from fulfillment.models import ActionKind, CircuitBreaker, OutboundAction
from fulfillment.outbox.services import action_dispatch, action_write, outbox_sweep
from orders.models import Order

SALES_ORDER = "/services/rest/record/v1/salesOrder"


# --- outbox steps --------------------------------------------------------------------------
def committed(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Run ``call`` in a transaction and then its after-commit work (the eager dispatches)."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        with transaction.atomic():
            result = call(*args, **kwargs)
    return result


def write(order: Order | None, kind: str, target: str, payload: dict | None = None,
          **kwargs: Any) -> OutboundAction:  # fmt: skip
    """``action_write`` as a state change would call it; its dispatch runs after commit."""
    action = committed(
        action_write, order_id=order.pk if order else None, kind=kind, target=target,
        payload=payload if payload is not None else {"order_id": order.pk if order else None},
        **kwargs,
    )  # fmt: skip
    action.refresh_from_db()
    return action


def write_all(order: Order, *, warehouse: str = "EAST") -> list[OutboundAction]:
    """What orchestration writes for an order: ERP, the confirmation email, the WMS task."""
    from fulfillment.downstream import targets_for

    actions = []
    for target in targets_for(ActionKind.ERP_POST):
        actions.append(write(order, ActionKind.ERP_POST, target, {"order_id": order.pk}))
    for target in targets_for(ActionKind.NOTIFY_CUSTOMER):
        actions.append(write(order, ActionKind.NOTIFY_CUSTOMER, target,
                             {"order_id": order.pk, "template": "order_confirmation"},
                             lane="notify"))  # fmt: skip
    for target in targets_for(ActionKind.WMS_TASK):
        actions.append(
            write(
                order,
                ActionKind.WMS_TASK,
                target,
                {"order_id": order.pk, "warehouse": warehouse},
                lane="fulfillment",
            )
        )
    return actions


def write_silently(order: Order, kind: str, target: str, payload: dict | None = None,
                   **kwargs: Any) -> OutboundAction:  # fmt: skip
    """``action_write`` whose doorbell message is lost (Redis wiped; or, for a race, still
    queued): the row is committed, nothing was dispatched."""
    with transaction.atomic():
        pending = transaction.get_connection().run_on_commit
        already = len(pending)
        action = action_write(order_id=order.pk, kind=kind, target=target,
                              payload=payload or {"order_id": order.pk}, **kwargs)  # fmt: skip
        del pending[already:]
    return action


def dispatch(action: OutboundAction) -> str:
    """One worker running the doorbell message (with its after-commit work)."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return action_dispatch(action_id=action.pk)


def sweep(**kwargs: Any) -> int:
    """The beat sweeper, with the dispatches it enqueues run in-process."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return outbox_sweep(**kwargs)


def make_due(*actions: OutboundAction) -> None:
    """Time passes: the actions' next attempt (and the sweeper's grace) is in the past."""
    ids = [a.pk for a in actions] or list(OutboundAction.objects.values_list("pk", flat=True))
    OutboundAction.objects.filter(pk__in=ids).update(
        next_attempt_at=timezone.now() - timedelta(hours=1)
    )


def cool_down(target: str) -> None:
    """Time passes: the breaker's cooldown is over."""
    CircuitBreaker.objects.filter(target=target).update(
        retry_at=timezone.now() - timedelta(seconds=1)
    )


def fresh(action: OutboundAction) -> OutboundAction:
    return OutboundAction.objects.get(pk=action.pk)


def closed_port() -> int:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


# --- loopback servers ----------------------------------------------------------------------
class Loopback:
    """A threaded pytest-httpserver of the test's own (a slow handler holds up no one else)."""

    def __init__(self, port: int = 0) -> None:
        self.server = HTTPServer(host="127.0.0.1", port=port, threaded=True)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def __enter__(self) -> Any:
        self.server.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.clear()
        self.server.stop()


class FakeWMS(Loopback):
    """A REST WMS: ``POST /tasks`` with an Idempotency-Key. While ``down`` it answers 503 (and
    always for a key in ``fail_keys``); a key it has seen answers 409 (already done)."""

    def __init__(
        self,
        port: int = 0,
        *,
        down: bool = False,
        fail_keys: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(port)
        self.down = down
        self.fail_keys = set(fail_keys)
        self.requests: list[dict[str, Any]] = []  # every request: key, body, headers
        self.created: dict[str, dict[str, Any]] = {}  # key -> task
        self.server.expect_request("/tasks", method="POST").respond_with_handler(self.handle)

    def handle(self, request: Request) -> Response:
        key = request.headers.get("Idempotency-Key", "")
        with self.lock:
            self.requests.append(
                {"key": key, "body": request.get_json(), "headers": dict(request.headers)}
            )
            if self.down or key in self.fail_keys:
                return Response("Service Unavailable", status=503)
            if key in self.created:
                return Response(json.dumps({"error": "duplicate"}), status=409,
                                content_type="application/json")  # fmt: skip
            task = {"id": f"T-{len(self.created) + 1}", "status": "open"}
            self.created[key] = task
        return Response(json.dumps(task), status=201, content_type="application/json")

    def keys_created(self) -> Counter:
        return Counter(list(self.created))


class FakeNetSuite(Loopback):
    """NetSuite's REST Record API for sales orders: create (204 + Location), external ids
    unique (a repeat is refused with DUP_RCRD), ``GET .../salesOrder/eid:{id}``.

    ``slow``: seconds a create takes before it is stored and answered; ``hold``: an event the
    first create waits for (a worker stuck mid-call)."""

    def __init__(self, *, slow: float = 0.0, store_first: bool = False,
                 hold: threading.Event | None = None) -> None:  # fmt: skip
        super().__init__()
        self.slow = slow
        self.store_first = store_first  # store, then answer slowly (vs. slow, then store)
        self.hold = hold
        self.records: dict[str, dict[str, Any]] = {}
        self.posts: list[dict[str, Any]] = []
        self.gets: list[str] = []
        self.server.expect_request(SALES_ORDER, method="POST").respond_with_handler(self.create)
        self.server.expect_request(
            re.compile(rf"^{SALES_ORDER}/eid:.+$"), method="GET"
        ).respond_with_handler(self.get)

    @property
    def creates(self) -> int:
        return len(self.records)

    def create(self, request: Request) -> Response:
        body = request.get_json()
        with self.lock:
            self.posts.append({"body": body, "headers": dict(request.headers)})
            first = len(self.posts) == 1
        if self.hold is not None and first:
            self.hold.wait(10)
        if self.store_first:
            answer = self._store(body)
            time.sleep(self.slow)
            return answer
        time.sleep(self.slow)
        return self._store(body)

    def _store(self, body: dict[str, Any]) -> Response:
        external_id = body["externalId"]
        with self.lock:
            if external_id in self.records:
                return Response(json.dumps({
                    "type": "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1",
                    "title": "Bad Request", "status": 400,
                    "o:errorDetails": [{
                        "detail": "A record with this external ID already exists.",
                        "o:errorCode": "DUP_RCRD",
                    }],
                }), status=400, content_type="application/vnd.oracle.resource+json")  # fmt: skip
            record_id = str(1000 + len(self.records) + 1)
            self.records[external_id] = {"id": record_id, **body}
        return Response(status=204, headers={"Location": f"{self.url}{SALES_ORDER}/{record_id}"})

    def get(self, request: Request) -> Response:
        external_id = request.path.rsplit("eid:", 1)[1]
        with self.lock:
            self.gets.append(external_id)
            record = self.records.get(external_id)
        if record is None:
            return Response(json.dumps({
                "title": "Not Found", "status": 404,
                "o:errorDetails": [{"detail": "The record instance does not exist.",
                                    "o:errorCode": "NONEXISTENT_ID"}],
            }), status=404, content_type="application/vnd.oracle.resource+json")  # fmt: skip
        return Response(
            json.dumps({"id": record["id"], "externalId": external_id}),
            status=200,
            content_type="application/vnd.oracle.resource+json",
        )
