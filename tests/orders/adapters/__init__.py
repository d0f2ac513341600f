"""Address verifier tests share real public addresses and a way to put one on an order."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from orders.models import Order
from tests.factories import make_order

# The White House and Canada's Parliament (West Block): public addresses of government buildings.
WHITE_HOUSE = {
    "line1": "1600 Pennsylvania Ave NW",
    "city": "Washington",
    "region_code": "DC",
    "postal_code": "20500",
    "country_code": "US",
}
PARLIAMENT = {
    "line1": "111 Wellington St",
    "city": "Ottawa",
    "region_code": "ON",
    "postal_code": "K1A 0A9",
    "country_code": "CA",
}


def order_with(address: dict[str, Any]) -> Order:
    """A received order (its pipeline not run) shipping to ``address``."""
    order = make_order(pipeline=False, country=address.get("country_code") or "US")
    # The address is data, not state: set it as a channel would have sent it.
    Order.objects.filter(pk=order.pk).update(shipping_address=address)
    order.refresh_from_db()
    return order


def closed_port_url() -> str:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextmanager
def slow_server(
    path: str, *, delay: float, body: str, fast: dict[str, Any] | None = None
) -> Iterator[tuple[HTTPServer, list]]:
    """A threaded server of its own whose ``path`` answers after ``delay`` seconds (its
    sleeps hold up no other test's server); ``fast`` paths answer their JSON at once."""
    calls: list[float] = []
    lock = threading.Lock()

    def handler(request: Request) -> Response:
        with lock:
            calls.append(time.monotonic())
        time.sleep(delay)
        return Response(body, content_type="application/json")

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.expect_request(path).respond_with_handler(handler)
    for fast_path, json_body in (fast or {}).items():
        server.expect_request(fast_path).respond_with_json(json_body)
    server.start()
    try:
        yield server, calls
    finally:
        server.clear()
        server.stop()
