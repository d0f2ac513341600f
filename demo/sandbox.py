"""A vendor sandbox on loopback for the demo: BigCommerce's V2 order API and Amazon's LWA +
Orders API, answering with the vendors' own published examples (``../shared/samples``).

The demo's BigCommerce and Amazon channels point at it while ``setup_demo`` runs, so a new user
sees those channels' real fetch and poll code at work without any account or network.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROUTES = [
    ("POST", r"^/auth/o2/token$", None),
    ("GET", r"^/orders/v0/orders$", "amazon/getOrders_v0_sandbox_TEST_CASE_200.json"),
    ("GET", r"^/orders/v0/orders/[^/]+/orderItems$",
     "amazon/getOrderItems_v0_sandbox_TEST_CASE_200.json"),
    ("GET", r"^/v2/orders/\d+$", "bigcommerce/v2_get_order_218.json"),
    ("GET", r"^/v2/orders/\d+/products$", "bigcommerce/v2_get_order_products.json"),
    ("GET", r"^/v2/orders/\d+/shipping_addresses$",
     "bigcommerce/v2_get_order_shipping_addresses.json"),
]  # fmt: skip
TOKEN = {"access_token": "Atza|demo-sandbox-token", "token_type": "bearer", "expires_in": 3600}


def _handler(samples: Path) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method: str) -> None:
            path = self.path.split("?", 1)[0]
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            for verb, pattern, sample in ROUTES:
                if verb == method and re.match(pattern, path):
                    body = json.dumps(TOKEN).encode() if sample is None else (
                        (samples / sample).read_bytes()
                    )  # fmt: skip
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
            self.send_error(404)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._answer("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._answer("POST")

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return  # the demo prints its own summary

    return Handler


@contextmanager
def vendor_sandbox(samples: Path) -> Iterator[str]:
    """Serve the samples on 127.0.0.1 (a free port) for the duration; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(samples))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
