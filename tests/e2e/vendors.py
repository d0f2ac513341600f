"""Stateful loopback vendors for the feedback loop's end-to-end tests.

Each store answers on pytest-httpserver (127.0.0.1) the paths our channels call, starting from
the vendors' published samples (read as they are) and keeping state the way the store does: a
fulfillment (a shipment, a tracking) it creates is listed afterwards, events are kept per
record. Every request is kept in ``calls`` as (method, path, body) so a test can say exactly
what the store heard; ``fail_writes`` makes the store answer 503 to the next N write-back
calls (a store down for a while).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

SAMPLES = Path(settings.BASE_DIR).parent / "shared" / "samples"
CENT = Decimal("0.01")


def sample(*parts: str) -> Any:
    return json.loads(SAMPLES.joinpath(*parts).read_bytes())


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


class Store:
    """What every loopback store shares: the call log and the outage switch."""

    prefix = ""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.calls: list[tuple[str, str, Any]] = []
        self.down_for = 0  # answer 503 to this many more write-back calls
        self.refused: list[tuple[str, str]] = []

    def fail_writes(self, count: int) -> None:
        self.down_for = count

    def bodies(self, method: str, path: str | re.Pattern[str]) -> list[Any]:
        def hit(p: str) -> bool:
            return p == path if isinstance(path, str) else bool(path.fullmatch(p))

        return [body for m, p, body in self.calls if m == method and hit(p)]

    def _take(self, request: Request) -> tuple[str, Any, Response | None]:
        path = request.path.removeprefix(self.prefix)
        body = request.get_json(silent=True) if request.data else None
        self.calls.append((request.method, path, body))
        if self.down_for > 0:
            self.down_for -= 1
            self.refused.append((request.method, path))
            return path, body, Response(
                json.dumps({"errors": "Service Unavailable"}), status=503,
                content_type="application/json", headers={"Retry-After": "0"},
            )  # fmt: skip
        return path, body, None


# --- Shopify ------------------------------------------------------------------------------------
SHOPIFY_VERSION = "2026-07"
SHOPIFY_TOKEN = "shpat_e2e-loopback"


def shopify_fulfillment_orders(order: dict[str, Any]) -> list[dict[str, Any]]:
    """The fulfillment order sample (one location), its line items those of ``order``."""
    [fo] = copy.deepcopy(sample("shopify", "fulfillment_orders_order_450789469_list.json")[
        "fulfillment_orders"])  # fmt: skip
    template = fo["line_items"][0]
    fo["order_id"] = order["id"]
    fo["line_items"] = [
        {**template, "id": 1072503277 + n, "line_item_id": line["id"], "quantity": line["quantity"],
         "fulfillable_quantity": line["quantity"], "variant_id": line.get("variant_id")}
        for n, line in enumerate(order["line_items"])
    ]  # fmt: skip
    return [fo]


class Shopify(Store):
    """The Admin REST API paths of the tracking write-back, for one order."""

    def __init__(self, server: HTTPServer, order: dict[str, Any]) -> None:
        super().__init__(server)
        self.order = order
        self.fulfillment_orders = shopify_fulfillment_orders(order)
        self.fulfillments: list[dict[str, Any]] = []
        self.events: dict[int, list[dict[str, Any]]] = {}
        self._ids = itertools.count(1069019877)  # the sample's fulfillment id first
        self._event_ids = itertools.count(944956391)
        self.refunds: list[dict[str, Any]] = []
        self._refund_ids = itertools.count(929361473)
        self.lose_creates = 0  # create the next N fulfillments, then answer 503
        self.prefix = f"/shop/admin/api/{SHOPIFY_VERSION}/"
        server.expect_request(re.compile(r"^/shop/.*")).respond_with_handler(self.handle)

    @property
    def base_url(self) -> str:
        return self.server.url_for("/shop")

    def handle(self, request: Request) -> Response:
        if request.headers.get("X-Shopify-Access-Token") != SHOPIFY_TOKEN:
            return _json({"errors": "[API] Invalid API key or access token"}, 401)
        path, body, down = self._take(request)
        if down is not None:
            return down
        if request.method == "GET" and re.fullmatch(r"orders/\d+/fulfillment_orders\.json", path):
            return _json({"fulfillment_orders": self.fulfillment_orders})
        if request.method == "GET" and re.fullmatch(r"orders/\d+/fulfillments\.json", path):
            return _json({"fulfillments": self.fulfillments})
        if request.method == "POST" and path == "fulfillments.json":
            made = self._create(body["fulfillment"])
            if self.lose_creates > 0 and made.status_code == 201:
                self.lose_creates -= 1  # made, but the answer is lost on the way back
                self.refused.append((request.method, path))
                return _json({"errors": "Service Unavailable"}, 503)
            return made
        if m := re.fullmatch(r"orders/\d+/fulfillments/(\d+)\.json", path):
            return _json({"fulfillment": self._find(int(m[1]))})
        if m := re.fullmatch(r"fulfillments/(\d+)/update_tracking\.json", path):
            fulfillment = self._find(int(m[1]))
            self._track(fulfillment, body["fulfillment"]["tracking_info"])
            return _json({"fulfillment": fulfillment})
        if request.method == "GET" and re.fullmatch(r"orders/\d+/refunds\.json", path):
            return _json({"refunds": self.refunds})
        if request.method == "POST" and re.fullmatch(r"orders/\d+/refunds/calculate\.json", path):
            return _json({"refund": self._calculate(body["refund"])})
        if request.method == "POST" and re.fullmatch(r"orders/\d+/refunds\.json", path):
            return self._refund(body["refund"])
        if m := re.fullmatch(r"orders/\d+/fulfillments/(\d+)/events\.json", path):
            events = self.events.setdefault(int(m[1]), [])
            if request.method == "GET":
                return _json({"fulfillment_events": events})
            event = {"id": next(self._event_ids), "fulfillment_id": int(m[1]), **body["event"]}
            events.append(event)
            return _json({"fulfillment_event": event}, 201)
        return _json({"errors": "Not Found"}, 404)

    def _find(self, fulfillment_id: int) -> dict[str, Any]:
        return next(f for f in self.fulfillments if f["id"] == fulfillment_id)

    def _track(self, fulfillment: dict[str, Any], info: dict[str, Any]) -> None:
        fulfillment["tracking_number"] = info.get("number")
        fulfillment["tracking_numbers"] = [info["number"]] if info.get("number") else []
        fulfillment["tracking_url"] = info.get("url")
        fulfillment["tracking_urls"] = [info["url"]] if info.get("url") else []
        fulfillment["tracking_company"] = info.get("company")

    def _create(self, wanted: dict[str, Any]) -> Response:
        fulfillment = copy.deepcopy(sample("shopify", "fulfillment_1069019877_create.json")[
            "fulfillment"])  # fmt: skip
        fulfillment["id"] = next(self._ids)
        fulfillment["order_id"] = self.order["id"]
        self._track(fulfillment, wanted["tracking_info"])
        items = []
        for group in wanted["line_items_by_fulfillment_order"]:
            fo = next(
                f for f in self.fulfillment_orders if f["id"] == group["fulfillment_order_id"]
            )
            for asked in group["fulfillment_order_line_items"]:
                item = next(i for i in fo["line_items"] if i["id"] == asked["id"])
                if item["fulfillable_quantity"] < asked["quantity"]:
                    return _json({"errors": ["Invalid fulfillment order line item quantity"]},
                                 422)  # fmt: skip
                item["fulfillable_quantity"] -= asked["quantity"]
                items.append({"id": item["line_item_id"], "quantity": asked["quantity"]})
            left = sum(i["fulfillable_quantity"] for i in fo["line_items"])
            fo["status"] = "in_progress" if left else "closed"
        fulfillment["line_items"] = items
        self.fulfillments.append(fulfillment)
        return _json({"fulfillment": fulfillment}, 201)

    # --- refunds (the Refund resource: calculate, then create) ---
    def _line(self, line_item_id: int) -> dict[str, Any]:
        return next(li for li in self.order["line_items"] if li["id"] == line_item_id)

    def _refund_lines(self, asked: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Shopify's figures per refunded line: the unit price less the line's discount
        allocations, its tax lines, pro rata to the quantity."""
        out = []
        for item in asked:
            line = self._line(item["line_item_id"])
            share = Decimal(item["quantity"]) / Decimal(line["quantity"])
            discount = sum((Decimal(d["amount"]) for d in line["discount_allocations"]),
                           Decimal(0))  # fmt: skip
            tax = sum((Decimal(t["price"]) for t in line["tax_lines"]), Decimal(0))
            subtotal = Decimal(line["price"]) * item["quantity"] - discount * share
            out.append({
                "line_item_id": line["id"], "quantity": item["quantity"],
                "restock_type": item.get("restock_type", "no_restock"),
                "subtotal": str(subtotal.quantize(CENT)),
                "total_tax": str((tax * share).quantize(CENT)),
                "line_item": line,
            })  # fmt: skip
        return out

    def _calculate(self, asked: dict[str, Any]) -> dict[str, Any]:
        lines = self._refund_lines(asked.get("refund_line_items") or [])
        shipping = Decimal((asked.get("shipping") or {}).get("amount") or 0)
        total = shipping + sum(
            (Decimal(ln["subtotal"]) + Decimal(ln["total_tax"]) for ln in lines), Decimal(0)
        )
        refunded = sum((Decimal(t["amount"]) for r in self.refunds for t in r["transactions"]),
                       Decimal(0))  # fmt: skip
        left = Decimal(self.order["total_price"]) - refunded
        return {
            "shipping": {"amount": (asked.get("shipping") or {}).get("amount", "0.00")},
            "refund_line_items": lines,
            "transactions": [{"order_id": self.order["id"], "kind": "suggested_refund",
                              "gateway": "bogus", "parent_id": 389404469,
                              "amount": str(total.quantize(CENT)),
                              "maximum_refundable": str(left.quantize(CENT)),
                              "currency": self.order["currency"]}],
        }  # fmt: skip

    def _refund(self, wanted: dict[str, Any]) -> Response:
        suggested = self._calculate(wanted)
        limit = Decimal(suggested["transactions"][0]["maximum_refundable"])
        asked = sum((Decimal(t["amount"]) for t in wanted["transactions"]), Decimal(0))
        if asked > limit:
            return _json({"errors": {"base": ["Refund amount must be less than or equal to "
                                              f"{limit}"]}}, 422)  # fmt: skip
        refund = {
            "id": next(self._refund_ids), "order_id": self.order["id"],
            "created_at": "2026-12-02T10:00:00-05:00", "note": wanted.get("note"),
            "restock": any(ln["restock_type"] != "no_restock"
                           for ln in suggested["refund_line_items"]),
            "refund_line_items": [{"id": 1058498300 + n, **ln}
                                  for n, ln in enumerate(suggested["refund_line_items"])],
            "transactions": [{"id": 1068278400 + len(self.refunds) * 10 + n,
                              "order_id": self.order["id"], "kind": "refund",
                              "gateway": t.get("gateway"), "status": "success",
                              "parent_id": t["parent_id"], "amount": t["amount"],
                              "currency": self.order["currency"]}
                             for n, t in enumerate(wanted["transactions"])],
            "order_adjustments": [],
        }  # fmt: skip
        self.refunds.append(refund)
        return _json({"refund": refund}, 201)

    def fulfilled_lines(self) -> list[tuple[str, list[tuple[int, int]]]]:
        """Per fulfillment: its tracking number and (line_item_id, quantity) pairs."""
        return [
            (f["tracking_number"], sorted((i["id"], i["quantity"]) for i in f["line_items"]))
            for f in self.fulfillments
        ]


# --- WooCommerce --------------------------------------------------------------------------------
WOO_KEY, WOO_SECRET = "ck_e2e-loopback", "cs_e2e-loopback"


class WooCommerce(Store):
    """A store with the Shipment Tracking extension: its trackings, order notes and the order
    itself (the sample, as it is, until we complete it)."""

    prefix = "/woo/wp-json"

    def __init__(self, server: HTTPServer, order: dict[str, Any]) -> None:
        super().__init__(server)
        self.order = copy.deepcopy(order)
        self.trackings: list[dict[str, Any]] = []
        self.notes: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        server.expect_request(re.compile(r"^/woo/.*")).respond_with_handler(self.handle)

    @property
    def base_url(self) -> str:
        return self.server.url_for("/woo")

    def handle(self, request: Request) -> Response:
        auth = request.authorization
        if auth is None or (auth.username, auth.password) != (WOO_KEY, WOO_SECRET):
            return _json({"code": "woocommerce_rest_cannot_view", "message": "Sorry"}, 401)
        path, body, down = self._take(request)
        if down is not None:
            return down
        oid = self.order["id"]
        if path == f"/wc-shipment-tracking/v3/orders/{oid}/shipment-trackings":
            if request.method == "GET":
                return _json(self.trackings)
            tracking = {"tracking_id": f"{next(self._ids):032x}", "tracking_link": "",
                        "tracking_provider": "", **body}  # fmt: skip
            self.trackings.append(tracking)
            return _json(tracking, 201)
        if path == f"/wc/v3/orders/{oid}/notes":
            if request.method == "GET":
                return _json(self.notes)
            note = {"id": 280 + next(self._ids), "author": "system", **body}
            self.notes.append(note)
            return _json(note, 201)
        if path == f"/wc/v3/orders/{oid}":
            if request.method == "PUT":
                self.order.update(body)
            return _json(self.order)
        return _json({"code": "rest_no_route", "message": "No route was found"}, 404)


# --- a custom storefront's callback receiver ----------------------------------------------------
class CallbackReceiver(Store):
    """The storefront's tracking callback URL: verifies ``X-Signature`` (t=...,v1=...) with the
    channel's webhook secret, keeps each event once by its ``Idempotency-Key``."""

    prefix = "/storefront"

    def __init__(self, server: HTTPServer, secret: str) -> None:
        super().__init__(server)
        self.secret = secret
        self.events: dict[str, dict[str, Any]] = {}
        self.bad_signatures = 0
        server.expect_request("/storefront/tracking", method="POST").respond_with_handler(
            self.handle
        )

    @property
    def url(self) -> str:
        return self.server.url_for("/storefront/tracking")

    def verified(self, request: Request) -> bool:
        parts = dict(
            p.split("=", 1) for p in request.headers.get("X-Signature", "").split(",") if "=" in p
        )
        if not parts.get("t") or not parts.get("v1"):
            return False
        signed = f"{parts['t']}.".encode() + request.get_data()
        want = hmac.new(self.secret.encode(), signed, hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, parts["v1"])

    def handle(self, request: Request) -> Response:
        if not self.verified(request):
            self.bad_signatures += 1
            return _json({"error": "bad signature"}, 401)
        _path, body, down = self._take(request)
        if down is not None:
            return down
        key = request.headers.get("Idempotency-Key", "")
        self.events.setdefault(key, body)
        return _json({"ok": True})


# --- Amazon SP-API ------------------------------------------------------------------------------
AMAZON_TOKEN = "Atza|e2e-feedback-token"


class Amazon(Store):
    """LWA, getOrders / getOrderItems (the sandbox samples, as they are: two Unshipped
    orders), confirmShipment (kept per order) and the 2026-01-01 getOrder that reads the
    packages back (the searchOrders example's order, its packages ours)."""

    def __init__(self, server: HTTPServer) -> None:
        super().__init__(server)
        self.confirmations: dict[str, list[dict[str, Any]]] = {}
        server.expect_request("/auth/o2/token", method="POST").respond_with_json(
            {"access_token": AMAZON_TOKEN, "token_type": "bearer", "expires_in": 3600}
        )
        server.expect_request(re.compile(r"^/orders/.*")).respond_with_handler(self.handle)

    @property
    def base_url(self) -> str:
        return self.server.url_for("/").rstrip("/")

    def handle(self, request: Request) -> Response:
        if request.headers.get("x-amz-access-token") != AMAZON_TOKEN:
            return _json({"errors": [{"code": "Unauthorized", "message": "Access denied"}]}, 403)
        path, body, down = self._take(request)
        if down is not None:
            return down
        if path == "/orders/v0/orders":
            return Response((SAMPLES / "amazon" / "getOrders_v0_sandbox_TEST_CASE_200.json")
                            .read_bytes(), content_type="application/json")  # fmt: skip
        if re.fullmatch(r"/orders/v0/orders/[^/]+/orderItems", path):
            return Response((SAMPLES / "amazon" / "getOrderItems_v0_sandbox_TEST_CASE_200.json")
                            .read_bytes(), content_type="application/json")  # fmt: skip
        if m := re.fullmatch(r"/orders/v0/orders/([^/]+)/shipmentConfirmation", path):
            self.confirmations.setdefault(m[1], []).append(body)
            return Response("", status=204)
        if m := re.fullmatch(r"/orders/2026-01-01/orders/([^/]+)", path):
            return _json({"order": self.order(m[1])})
        return _json({"errors": [{"code": "NotFound", "message": "Not found"}]}, 404)

    def packages(self, order_id: str) -> dict[str, dict[str, Any]]:
        """What Amazon recorded: one package per packageReferenceId (a re-send edits it)."""
        found: dict[str, dict[str, Any]] = {}
        for body in self.confirmations.get(order_id, []):
            detail = body["packageDetail"]
            found[str(detail["packageReferenceId"])] = detail
        return found

    def order(self, order_id: str) -> dict[str, Any]:
        example = sample("amazon", "searchOrders_2026-01-01_response_example.json")["orders"][0]
        order = {**copy.deepcopy(example), "orderId": order_id}
        order["packages"] = [
            {"packageReferenceId": ref, "createdTime": detail["shipDate"],
             "packageStatus": {"status": "SHIPPED", "detailedStatus": "SHIPPED"},
             "carrier": detail.get("carrierName") or detail["carrierCode"],
             "shipTime": detail["shipDate"], "shippingService": detail.get("shippingMethod"),
             "trackingNumber": detail["trackingNumber"],
             "packageItems": [{"orderItemId": i["orderItemId"], "quantity": i["quantity"]}
                              for i in detail["orderItems"]]}
            for ref, detail in self.packages(order_id).items()
        ]  # fmt: skip
        return order


# --- BigCommerce V2 -----------------------------------------------------------------------------
BC_TOKEN = "bc-e2e-feedback-token"


def bigcommerce_order(order_id: int) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """An order of our own in the V2 shape: the samples' order, products and shipping address
    (which belong to three different orders and do not add up) made one consistent order
    ``order_id``: the products' amounts as they are, the order's sums made theirs (55.99 less
    the 1.59 manual discount, 12.00 shipping, 9.24 tax: 75.64), no fees, one address, a
    customer opted in to email, shipping to her own name."""
    order = sample("bigcommerce", "v2_get_order_218.json")
    order.update(
        id=order_id, status_id=11, status="Awaiting Fulfillment",
        custom_status="Awaiting Fulfillment",
        subtotal_ex_tax="55.9900", subtotal_inc_tax="65.2300", subtotal_tax="9.2400",
        base_shipping_cost="12.0000", shipping_cost_ex_tax="12.0000",
        shipping_cost_inc_tax="12.0000", shipping_cost_tax="0.0000", total_ex_tax="66.4000",
        total_inc_tax="75.6400", total_tax="9.2400", discount_amount="1.5900",
        coupon_discount="0.0000", items_total=2, fees=[], is_email_opt_in=True,
    )  # fmt: skip
    [address, *_] = sample("bigcommerce", "v2_get_order_shipping_addresses.json")
    # The billing customer ships to herself (the samples' names differ: a fraud signal).
    billing = order["billing_address"]
    address = {
        **address,
        "order_id": order_id,
        "first_name": billing["first_name"],
        "last_name": billing["last_name"],
    }
    products = [
        {**p, "order_id": order_id, "order_address_id": address["id"]}
        for p in sample("bigcommerce", "v2_get_order_products.json")
    ]
    return order, products, [address]


class BigCommerce(Store):
    """The V2 order (ours, above), its products and address, and its shipments (kept here; an
    empty collection answers 204 as the V2 API does)."""

    prefix = "/stores/e2e/v2/orders/"

    def __init__(self, server: HTTPServer, order_id: int) -> None:
        super().__init__(server)
        self.order, self.products, self.addresses = bigcommerce_order(order_id)
        self.shipments: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        server.expect_request(re.compile(r"^/stores/e2e/.*")).respond_with_handler(self.handle)

    @property
    def base_url(self) -> str:
        return self.server.url_for("/stores/e2e")

    def handle(self, request: Request) -> Response:
        if request.headers.get("X-Auth-Token") != BC_TOKEN:
            return _json([{"status": 401, "message": "You are not authorized"}], 401)
        path, body, down = self._take(request)
        if down is not None:
            return down
        oid = self.order["id"]
        page = int(request.args.get("page", 1))
        if path == f"{oid}" and request.method == "GET":
            return _json(self.order)
        if path == f"{oid}/products" and request.method == "GET":
            return _json(self.products) if page == 1 else Response("", status=204)
        if path == f"{oid}/shipping_addresses" and request.method == "GET":
            return _json(self.addresses) if page == 1 else Response("", status=204)
        if path == f"{oid}/shipments":
            if request.method == "GET":
                return _json(self.shipments) if self.shipments and page == 1 else Response(
                    "", status=204)  # fmt: skip
            shipment = {"id": next(self._ids), "order_id": oid, "customer_id": 0,
                        "date_created": "Tue, 20 Nov 2012 00:00:00 +0000", "comments": "",
                        "shipping_method": "", "shipping_provider": "", "tracking_carrier": "",
                        "tracking_link": "", **body}  # fmt: skip
            self.shipments.append(shipment)
            return _json(shipment, 201)
        if m := re.fullmatch(rf"{oid}/shipments/(\d+)", path):
            shipment = next(s for s in self.shipments if s["id"] == int(m[1]))
            if request.method == "PUT":
                shipment.update(body)
            return _json(shipment)
        return _json([{"status": 404, "message": "The requested resource was not found."}], 404)


# --- NetSuite (REST Record API) -----------------------------------------------------------------
NETSUITE_TOKEN = "ns-e2e-loopback-token"
NETSUITE_RECORDS = ("salesOrder", "creditMemo")


class NetSuite(Store):
    """Sales orders and credit memos: create answers 204 with the new record's Location, an
    external id is unique per record type (a repeat is refused with DUP_RCRD), and
    ``GET .../{type}/eid:{externalId}`` finds a record by it."""

    prefix = "/netsuite/services/rest/record/v1/"

    def __init__(self, server: HTTPServer) -> None:
        super().__init__(server)
        self.records: dict[str, dict[str, dict[str, Any]]] = {r: {} for r in NETSUITE_RECORDS}
        self._ids = itertools.count(5001)
        server.expect_request(re.compile(r"^/netsuite/.*")).respond_with_handler(self.handle)

    @property
    def base_url(self) -> str:
        return self.server.url_for("/netsuite")

    def handle(self, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {NETSUITE_TOKEN}":
            return _json({"title": "Unauthorized", "status": 401}, 401)
        path, body, down = self._take(request)
        if down is not None:
            return down
        kind, _, rest = path.partition("/")
        if kind not in self.records:
            return _json({"title": "Not Found", "status": 404}, 404)
        records = self.records[kind]
        if request.method == "POST" and not rest:
            if body["externalId"] in records:
                return _json({"title": "Bad Request", "status": 400, "o:errorDetails": [{
                    "detail": "A record with this external ID already exists.",
                    "o:errorCode": "DUP_RCRD"}]}, 400)  # fmt: skip
            record_id = str(next(self._ids))
            records[body["externalId"]] = {"id": record_id, **body}
            return Response(
                status=204,
                headers={"Location": f"{self.base_url}/services/rest/record/v1/{kind}/{record_id}"},
            )
        if request.method == "GET" and rest.startswith("eid:"):
            record = records.get(rest.removeprefix("eid:"))
            if record is None:
                return _json({"title": "Not Found", "status": 404, "o:errorDetails": [{
                    "detail": "The record instance does not exist.",
                    "o:errorCode": "NONEXISTENT_ID"}]}, 404)  # fmt: skip
            return _json({"id": record["id"], "externalId": record["externalId"]})
        return _json({"title": "Not Found", "status": 404}, 404)
