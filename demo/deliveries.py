"""The demo's ingestion: the vendors' published samples delivered through the real webhook path
(signed exactly as each vendor signs, handed to ``channels.services.webhook_receive``, the service
the webhook view calls) and the real polling path (against the loopback vendor sandbox), plus one
delivery that is quarantined and one that is a duplicate."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from channels.models import InboundEvent, SalesChannel, SkuMapping
from channels.polling import channel_poll
from channels.services import inbound_event_process, webhook_receive
from channels.signatures import sign_custom
from demo.sandbox import vendor_sandbox
from orders.models import Product

DEMO_DIR = Path(__file__).resolve().parent


def samples_dir() -> Path:
    return Path(settings.DEMO_SAMPLES_DIR)


CHANNELS: dict[str, dict[str, Any]] = {
    "demo-shopify": {"kind": "shopify", "name": "Demo Shopify store", "api_version": "2026-07"},
    "demo-woo": {"kind": "woocommerce", "name": "Demo WooCommerce shop"},
    "demo-bigcommerce": {"kind": "bigcommerce", "name": "Demo BigCommerce store"},
    "demo-amazon": {"kind": "amazon", "name": "Demo Amazon (sandbox)"},
    "demo-webstore": {"kind": "custom", "name": "Demo web storefront"},
}
PRODUCTS = [
    ("IPOD2008GREEN", "iPod Nano 8GB green", 200, "851981", "CN"),
    ("IPOD2008RED", "iPod Nano 8GB red", 200, "851981", "CN"),
    ("IPOD2008BLACK", "iPod Nano 8GB black", 200, "851981", "CN"),
    ("WOO-WOO-LOGO", "Woo Logo T-shirt", 180, "610910", "US"),
    ("WOO-SINGLE", "Woo Single #1", 90, "852349", "US"),
    ("WOO-ALBUM", "Woo Album #1", 110, "852349", "US"),
    ("Bar3", "Ship Your Idea – Color: Black", 150, "610910", "US"),
    ("S-ORAN", "Orange sweater", 400, "611020", "PT"),
    ("ABS", "Able Brewing System", 1800, "851671", "US"),
    ("AMZ-NABETA", "Amazon sandbox item", 300, "392690", "US"),
    ("MUG-WHT", "Mug white", 350, "691200", "PT"),
    ("TEA-SENCHA", "Sencha 100 g", 120, "090210", "JP"),
]  # fmt: skip
# Channel references that differ from our SKUs (the mapping table at work).
MAPPINGS = [
    ("demo-woo", "93", "WOO-WOO-LOGO"),
    ("demo-woo", "87", "WOO-SINGLE"),
    ("demo-woo", "34", "WOO-ALBUM"),
    ("demo-amazon", "NABetaASINB00551Q3CS", "AMZ-NABETA"),
]


@dataclass
class DemoReport:
    lines: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.lines.append(text)


def ensure_channels(sandbox_url: str) -> dict[str, SalesChannel]:
    channels = {}
    for slug, spec in CHANNELS.items():
        channel, _ = SalesChannel.objects.get_or_create(
            slug=slug,
            defaults={"kind": spec["kind"], "name": spec["name"],
                      "api_version": spec.get("api_version", ""),
                      "webhook_secret": secrets.token_urlsafe(24)},
        )  # fmt: skip
        channels[slug] = channel
    bc, amazon = channels["demo-bigcommerce"], channels["demo-amazon"]
    bc.api_base_url = sandbox_url
    bc.credentials = {"access_token": "demo-sandbox"}
    bc.save(update_fields=["api_base_url", "credentials"])
    amazon.api_base_url = sandbox_url
    amazon.credentials = {
        "client_id": "demo", "client_secret": "demo", "refresh_token": "demo",
        "marketplace_ids": ["ATVPDKIKX0DER"], "lwa_token_url": f"{sandbox_url}/auth/o2/token",
    }  # fmt: skip
    amazon.is_active = True
    amazon.save(update_fields=["api_base_url", "credentials", "is_active"])
    return channels


def ensure_catalogue(channels: dict[str, SalesChannel]) -> None:
    for sku, title, grams, hs_code, country in PRODUCTS:
        Product.objects.get_or_create(
            sku=sku, defaults={"title": title, "weight_grams": grams, "hs_code": hs_code,
                               "origin_country": country},
        )  # fmt: skip
    for slug, ref, sku in MAPPINGS:
        SkuMapping.objects.get_or_create(
            channel=channels[slug], external_ref=ref,
            defaults={"product": Product.objects.get(sku=sku)},
        )  # fmt: skip


def _shopify_headers(
    channel: SalesChannel, body: bytes, topic: str, webhook_id: str
) -> dict[str, str]:
    digest = hmac.new(channel.webhook_secret.encode(), body, hashlib.sha256).digest()
    return {
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": "demo-shop.myshopify.com",
        "X-Shopify-API-Version": channel.api_version,
        "X-Shopify-Webhook-Id": webhook_id,
    }


def _woo_headers(
    channel: SalesChannel, body: bytes, topic: str, delivery_id: str
) -> dict[str, str]:
    digest = hmac.new(channel.webhook_secret.encode(), body, hashlib.sha256).digest()
    return {
        "X-WC-Webhook-Signature": base64.b64encode(digest).decode(),
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Source": "https://demo-woo.example/",
        "X-WC-Webhook-Delivery-ID": delivery_id,
    }


def _standard_webhook_headers(channel: SalesChannel, body: bytes, msg_id: str) -> dict[str, str]:
    ts = str(int(time.time()))
    signed = f"{msg_id}.{ts}.".encode() + body
    digest = hmac.new(channel.webhook_secret.encode(), signed, hashlib.sha256).digest()
    return {"webhook-id": msg_id, "webhook-timestamp": ts,
            "webhook-signature": "v1," + base64.b64encode(digest).decode()}  # fmt: skip


def _custom_headers(channel: SalesChannel, body: bytes) -> dict[str, str]:
    return {"X-Signature": sign_custom(secret=channel.webhook_secret, body=body,
                                       timestamp=int(time.time()))}  # fmt: skip


def deliver_all(report: DemoReport) -> None:
    """Deliver every demo payload; process what was accepted while the sandbox is up."""
    samples = samples_dir()
    if not samples.is_dir():
        report.add(f"Vendor samples not found at {samples}: only the web storefront is shown.")
    # The sandbox speaks plain http on 127.0.0.1: the outbound URL guard lets it through only
    # with INTEGRATIONS_ALLOW_LOOPBACK_HTTP (`make demo` and `make run` set it).
    sandbox_allowed = settings.INTEGRATIONS_ALLOW_LOOPBACK_HTTP
    if not sandbox_allowed:
        report.add("  BigCommerce and Amazon (the loopback sandbox) skipped: set "
                   "INTEGRATIONS_ALLOW_LOOPBACK_HTTP=1 to fetch their orders.")  # fmt: skip
    with vendor_sandbox(samples) as sandbox_url:
        channels = ensure_channels(sandbox_url)
        ensure_catalogue(channels)
        accepted: list[int] = []

        def post(slug: str, body: bytes, headers: dict[str, str], label: str) -> None:
            # What the HTTP request would carry besides the vendor's own headers.
            sent = {"Content-Type": "application/json", "Content-Length": str(len(body)),
                    **headers}  # fmt: skip
            answer = webhook_receive(slug=slug, headers=sent, body=body, declared_length=len(body))
            if answer.status == 202:
                accepted.append(answer.body["event_id"])
                report.add(f"  {label}: 202 accepted (event {answer.body['event_id']})")
            else:
                report.add(f"  {label}: {answer.status} {json.dumps(answer.body)}")

        def sample(path: str, unwrap: str | None = None) -> bytes | None:
            file = samples / path
            if not file.exists():
                return None
            data = json.loads(file.read_bytes())
            return json.dumps(data[unwrap] if unwrap else data).encode()

        shop = channels["demo-shopify"]
        for name, topic, webhook_id in [
            ("order_450789469_get.json", "orders/create", "demo-shopify-1"),
            ("order_1073459976_create_eur.json", "orders/create", "demo-shopify-2"),
            ("order_450789469_cancel_refund_gift_card.json", "orders/cancelled", "demo-shopify-3"),
            ("order_450789469_get.json", "orders/create", "demo-shopify-1"),  # re-delivery
        ]:  # fmt: skip
            if (body := sample(f"shopify/{name}", "order")) is not None:
                post(shop.slug, body, _shopify_headers(shop, body, topic, webhook_id),
                     f"Shopify {topic} {name}")  # fmt: skip
        woo = channels["demo-woo"]
        woo_orders = []
        if (body := sample("woocommerce/order_727_get.json")) is not None:
            woo_orders.append((body, "demo-woo-727"))
        if (listing := sample("woocommerce/orders_list.json")) is not None:
            for order in json.loads(listing):
                if order["id"] != 727:
                    woo_orders.append((json.dumps(order).encode(), f"demo-woo-{order['id']}"))
        for body, delivery_id in woo_orders:
            post(woo.slug, body, _woo_headers(woo, body, "order.created", delivery_id),
                 f"WooCommerce order.created {delivery_id}")  # fmt: skip
        bc = channels["demo-bigcommerce"]
        if sandbox_allowed and (body := sample("bigcommerce/webhook_store_order_created.json")):
            post(bc.slug, body, _standard_webhook_headers(bc, body, "demo-bc-1"),
                 "BigCommerce store/order/created (order fetched from the V2 API)")  # fmt: skip
        web = channels["demo-webstore"]
        body = (DEMO_DIR / "custom_order_created.json").read_bytes()
        post(web.slug, body, _custom_headers(web, body), "Web storefront order.created")
        broken = _broken_delivery()
        post(web.slug, broken, _custom_headers(web, broken),
             "Web storefront order.created with a broken line (will be quarantined)")  # fmt: skip

        for event_id in accepted:
            inbound_event_process(event_id=event_id)
        if samples.is_dir() and sandbox_allowed:
            result = channel_poll(channel_id=channels["demo-amazon"].pk)
            polled = InboundEvent.objects.filter(
                channel=channels["demo-amazon"], status="received"
            ).values_list("pk", flat=True)
            for event_id in polled:
                inbound_event_process(event_id=event_id)
            report.add(f"  Amazon getOrders poll: {result.new} new order version(s), "
                       f"{result.duplicates} already known")  # fmt: skip
    # The sandbox is gone now: stop the schedule from polling a closed port.
    SalesChannel.objects.filter(pk=channels["demo-amazon"].pk).update(is_active=False)


def _broken_delivery() -> bytes:
    data = json.loads((DEMO_DIR / "custom_order_created.json").read_bytes())
    data["id"] = "evt_demo_5002_broken"
    data["order"]["external_id"] = "WEB-5002"
    data["order"]["lines"][0]["quantity"] = "two"
    return json.dumps(data).encode()


def run(write: Callable[[str], None]) -> None:
    report = DemoReport()
    deliver_all(report)
    for line in report.lines:
        write(line)
