"""Loopback stores for the tracking write-back tests, shipped orders of their channels, the
``ShipmentUpdate`` a first write-back hears, and the outbox run that tells the channel.

``FakeShopify`` serves the Admin REST API paths the write-back calls from pytest-httpserver on
127.0.0.1. It starts from Shopify's own sample payloads, read as they are (its fulfillment
orders are the sample's unless a test passes a list built from it) and keeps state like the
store does: a fulfillment it creates takes the fulfilled units off its fulfillment orders and
is listed afterwards; events are kept per fulfillment.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.test import TestCase
from django.utils import timezone
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from fulfillment.models import ActionStatus, OutboundAction
from fulfillment.outbox.services import outbox_drain
from fulfillment.shipments import shipment_buy_label, shipment_ship, shipments_create_for_order
from orders.actors import Actor
from orders.feedback import ShipmentUpdate, ShipmentUpdateLine
from orders.models import Order
from orders.services import LineInput, OrderInput, order_create, order_transition
from tests.factories import DEFAULT_ADDRESSES, CustomerFactory
from tests.fulfillment.helpers import add_warehouse, stock

SAMPLES = Path(settings.BASE_DIR).parent / "shared" / "samples"
SHOPIFY = SAMPLES / "shopify"
FO_LIST = SHOPIFY / "fulfillment_orders_order_450789469_list.json"
FULFILLMENT_CREATE = SHOPIFY / "fulfillment_1069019877_create.json"
BIGCOMMERCE = SAMPLES / "bigcommerce"
API_VERSION = "2025-04"
TOKEN = "shpat_loopback"
OPS = Actor.system("test")


def sample(path: Path) -> Any:
    return json.loads(path.read_bytes())


class _FakeStore:
    """What the loopback stores share: the calls they heard, failures queued per call."""

    prefix = "/"

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.calls: list[tuple[str, str, Any]] = []  # (method, path after the prefix, body)
        self.failures: dict[tuple[str, str], list[tuple[int, Any]]] = {}

    def fail_next(self, method: str, path: str, status: int, body: Any = None) -> None:
        self.failures.setdefault((method, path), []).append((status, body))

    def bodies(self, method: str, path: str) -> list[Any]:
        return [body for m, p, body in self.calls if (m, p) == (method, path)]

    def _json(self, body: Any, status: int = 200) -> Response:
        return Response(json.dumps(body), status=status, content_type="application/json")

    def _heard(self, request: Request) -> tuple[str, Any, tuple[int, Any] | None]:
        """(path after the prefix, JSON body, the failure queued for this call or None)."""
        path = request.path.removeprefix(self.prefix)
        body = request.get_json(silent=True) if request.data else None
        self.calls.append((request.method, path, body))
        queued = self.failures.get((request.method, path))
        return path, body, queued.pop(0) if queued else None


class FakeShopify(_FakeStore):
    def __init__(
        self, server: HTTPServer, *, fulfillment_orders: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(server)
        self.fulfillment_orders = copy.deepcopy(
            fulfillment_orders
            if fulfillment_orders is not None
            else sample(FO_LIST)["fulfillment_orders"]
        )
        self.fulfillments: list[dict[str, Any]] = []
        self.events: dict[int, list[dict[str, Any]]] = {}
        self.create_delay = 0.0
        self._ids = itertools.count(1069019877)  # the sample's fulfillment id first
        self._event_ids = itertools.count(944956391)
        self.prefix = f"/shop/admin/api/{API_VERSION}/"
        server.expect_request(re.compile(r"^/shop/.*")).respond_with_handler(self.handle)

    @property
    def base_url(self) -> str:
        return self.server.url_for("/shop")

    def handle(self, request: Request) -> Response:
        path, body, failure = self._heard(request)
        if request.headers.get("X-Shopify-Access-Token") != TOKEN:
            return self._json({"errors": "[API] Invalid API key or access token"}, 401)
        if failure:
            status, answer = failure
            return self._json(answer if answer is not None else {"errors": "busy"}, status)
        if request.method == "GET" and re.fullmatch(r"orders/\d+/fulfillment_orders\.json", path):
            return self._json({"fulfillment_orders": self.fulfillment_orders})
        if request.method == "GET" and re.fullmatch(r"orders/\d+/fulfillments\.json", path):
            return self._json({"fulfillments": self.fulfillments})
        if request.method == "POST" and path == "fulfillments.json":
            return self._create(body["fulfillment"])
        if m := re.fullmatch(r"orders/\d+/fulfillments/(\d+)\.json", path):
            return self._json({"fulfillment": self._find(int(m[1]))})
        if m := re.fullmatch(r"fulfillments/(\d+)/update_tracking\.json", path):
            fulfillment = self._find(int(m[1]))
            self._track(fulfillment, body["fulfillment"]["tracking_info"])
            return self._json({"fulfillment": fulfillment})
        if m := re.fullmatch(r"orders/\d+/fulfillments/(\d+)/events\.json", path):
            events = self.events.setdefault(int(m[1]), [])
            if request.method == "GET":
                return self._json({"fulfillment_events": events})
            event = {"id": next(self._event_ids), "fulfillment_id": int(m[1]), **body["event"]}
            events.append(event)
            return self._json({"fulfillment_event": event}, 201)
        return self._json({"errors": "Not Found"}, 404)

    def _find(self, fulfillment_id: int) -> dict[str, Any]:
        return next(f for f in self.fulfillments if f["id"] == fulfillment_id)

    def _track(self, fulfillment: dict[str, Any], info: dict[str, Any]) -> None:
        fulfillment["tracking_number"] = info.get("number")
        fulfillment["tracking_numbers"] = [info["number"]] if info.get("number") else []
        fulfillment["tracking_url"] = info.get("url")
        fulfillment["tracking_urls"] = [info["url"]] if info.get("url") else []
        fulfillment["tracking_company"] = info.get("company")

    def _create(self, request: dict[str, Any]) -> Response:
        fulfillment = copy.deepcopy(sample(FULFILLMENT_CREATE)["fulfillment"])
        fulfillment["id"] = next(self._ids)
        self._track(fulfillment, request["tracking_info"])
        for group in request["line_items_by_fulfillment_order"]:
            fo_id = group["fulfillment_order_id"]
            fo = next(f for f in self.fulfillment_orders if f["id"] == fo_id)
            for wanted in group["fulfillment_order_line_items"]:
                item = next(i for i in fo["line_items"] if i["id"] == wanted["id"])
                assert item["fulfillable_quantity"] >= wanted["quantity"], "over-fulfilled"
                item["fulfillable_quantity"] -= wanted["quantity"]
            left = sum(i["fulfillable_quantity"] for i in fo["line_items"])
            fo["status"] = "in_progress" if left else "closed"
        self.fulfillments.append(fulfillment)
        if self.create_delay:
            time.sleep(self.create_delay)  # processed, but the answer comes too late
        return self._json({"fulfillment": fulfillment}, 201)


def shipped_order(
    channel: Any,
    *,
    external_id: str,
    lines: list[tuple[str, str, int]],
    split_settings: Any = None,
    source: dict[str, Any] | None = None,
    in_stock: bool = False,
) -> tuple[Order, list[Any]]:
    """An order of ``channel`` (lines: sku, the channel's line id, quantity), paid, allocated
    by the pipeline, its parcels labelled and shipped (each ship writes its first write-back).
    ``split_settings``: pytest-django's ``settings``, to let the allocation split the order.
    ``in_stock``: warehouse ``A`` is added with enough of every line (else the test stocks)."""
    if split_settings is not None:
        split_settings.ALLOCATION_ALLOW_SPLIT = True
    if in_stock:
        add_warehouse("A")
        for sku, _line_id, quantity in lines:
            stock(sku, "A", quantity + 5)
    with TestCase.captureOnCommitCallbacks(execute=True), transaction.atomic():
        order = order_create(
            data=OrderInput(
                channel_id=channel.pk, external_id=external_id, currency="USD",
                customer_id=CustomerFactory().pk,
                lines=[LineInput(sku=sku, quantity=qty, unit_price=Decimal("10.00"),
                                 external_line_id=line_id) for sku, line_id, qty in lines],
                placed_at=datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
                shipping_total=Decimal("5.00"), tax_total=Decimal("1.50"),
                shipping_address=dict(DEFAULT_ADDRESSES["US"]), source=dict(source or {}),
            ),
            actor=OPS,
        )  # fmt: skip
        order_transition(order_id=order.pk, transition="capture_payment", actor=OPS)
    order.refresh_from_db()
    assert order.status == "allocated", order.status_reason
    parcels = []
    for draft in shipments_create_for_order(order_id=order.pk, actor=OPS):
        shipment = shipment_buy_label(shipment_id=draft.pk, actor=OPS)
        parcels.append(shipment_ship(shipment_id=shipment.pk, actor=OPS))
    order.refresh_from_db()
    return order, parcels


BC_TOKEN = "bc-access-token"


class FakeBigCommerce(_FakeStore):
    """The V2 order sub-resources the write-back calls: ``products`` (the sample, as it is),
    ``shipments`` (kept here; an empty collection answers 204 as the V2 API does)."""

    def __init__(self, server: HTTPServer) -> None:
        super().__init__(server)
        self.shipments: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self.prefix = "/stores/abc123/v2/orders/"
        server.expect_request(re.compile(r"^/stores/abc123/.*")).respond_with_handler(self.handle)

    @property
    def base_url(self) -> str:
        return self.server.url_for("/stores/abc123")

    def handle(self, request: Request) -> Response:
        path, body, failure = self._heard(request)
        if request.headers.get("X-Auth-Token") != BC_TOKEN:
            return self._json([{"status": 401, "message": "You are not authorized"}], 401)
        if failure:
            status, answer = failure
            return self._json(answer if answer is not None else [{"status": status}], status)
        order_id = int(path.split("/")[0])
        if path == f"{order_id}/products" and request.method == "GET":
            page = int(request.args.get("page", 1))
            if page > 1:
                return Response("", status=204)
            return Response((BIGCOMMERCE / "v2_get_order_products.json").read_bytes(),
                            content_type="application/json")  # fmt: skip
        if path == f"{order_id}/shipments":
            if request.method == "GET":
                page = int(request.args.get("page", 1))
                mine = [s for s in self.shipments if s["order_id"] == order_id]
                return self._json(mine) if mine and page == 1 else Response("", status=204)
            shipment = {"id": next(self._ids), "order_id": order_id, "customer_id": 0,
                        "date_created": "Tue, 20 Nov 2012 00:00:00 +0000", "comments": "",
                        "shipping_method": "", "shipping_provider": "", "tracking_carrier": "",
                        "tracking_link": "", **body}  # fmt: skip
            self.shipments.append(shipment)
            return self._json(shipment, 201)
        if m := re.fullmatch(rf"{order_id}/shipments/(\d+)", path):
            shipment = next(s for s in self.shipments if s["id"] == int(m[1]))
            if request.method == "PUT":
                shipment.update(body)
            return self._json(shipment)
        return self._json([{"status": 404, "message": "The requested resource was not found."}],
                          404)  # fmt: skip


def writebacks(order: Order) -> list[OutboundAction]:
    """The order's ``channel_tracking_sync`` actions, oldest first."""
    return list(OutboundAction.objects.filter(order=order, kind="channel_tracking_sync")
                .order_by("pk"))  # fmt: skip


def drain_now() -> dict[str, int]:
    """Make every scheduled retry due, then run the outbox once."""
    OutboundAction.objects.filter(status=ActionStatus.RETRY_SCHEDULED).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    return outbox_drain()


def an_update(channel_id: int, **overrides: Any) -> ShipmentUpdate:
    """A parcel's first write-back, as the outbox adapter builds it."""
    shipped = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    values: dict[str, Any] = {
        "channel_id": channel_id, "order_external_id": "727", "order_number": "727",
        "order_source": {}, "reference": "shipment-12", "channel_ref": "",
        "lines": (ShipmentUpdateLine(external_line_id="315", sku="SKU-1", quantity=2,
                                     line_no=1),),
        "carrier": "easypost", "carrier_name": "USPS", "service": "GroundAdvantage",
        "tracking_number": "9400100208303109505657",
        "tracking_url": "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400100208303109505657",
        "status": "pre_transit", "occurred_at": shipped, "shipped_at": shipped,
        "idempotency_key": "channel_tracking_sync:1:channel:shop:1",
    }  # fmt: skip
    values.update(overrides)
    return ShipmentUpdate(**values)
