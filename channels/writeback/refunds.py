"""Our refunds sent to the channel (``orders.feedback.ChannelRefunds``), one class per kind,
registered from ``ChannelsConfig.ready()``; ``fulfillment.downstream.channel_refund`` calls
``push_refund`` outside any transaction, and the outbox is the retry loop.

Idempotency: a POST is never repeated inside the session (``channels.writeback.session``); every
push first lists the order's refunds in the channel and adopts one whose note (Shopify) or
reason (WooCommerce) carries our marker (``[RF-...]``): a retry after an ambiguous timeout finds
the first refund instead of making a second.

- Shopify (REST Admin API): ``GET orders/{id}/refunds.json``; ``POST
  orders/{id}/refunds/calculate.json`` (``refund_line_items`` with ``line_item_id``,
  ``quantity``, ``restock_type``; ``shipping.amount``); ``POST orders/{id}/refunds.json`` with
  the calculated transactions as ``kind: refund`` (``parent_id``, ``gateway``, our amount split
  over them in order) and our note. ``notify`` is false: our own email tells the customer.
- WooCommerce (``/wp-json/wc/v3``): ``GET orders/{id}/refunds``; ``POST orders/{id}/refunds``
  with ``amount``, ``reason`` (with the marker), ``line_items`` (``id``, ``quantity``,
  ``refund_total``) and ``api_refund: true`` (the gateway moves the money).
- BigCommerce (V3 payment actions): ``GET orders/{id}/payment_actions/refunds`` (our marker in
  a refund's ``reason``); ``POST .../refund_quotes`` with the ``PRODUCT`` items
  (``item_id`` = the order product id, ``quantity``); ``POST .../refunds`` with the items, our
  reason and the quote's first refund method's payments (``provider_id``, ``amount``,
  ``offline``). Shipping is not sent (the shipping item needs the order address id).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from decimal import Decimal
from typing import Any, ClassVar

from channels.adapters.bigcommerce import api_headers as bc_headers
from channels.adapters.bigcommerce import api_ready as bc_ready
from channels.adapters.shopify import admin_api_ready, admin_headers, admin_url
from channels.writeback import WritebackChannel, WritebackError, call_json, numeric_id, session
from channels.writeback import writeback_channel as _channel
from channels.writeback.woocommerce import rest_api_ready
from orders import money
from orders.feedback import RefundPush
from orders.refunds import marker


def _ready(channel_id: int, kind: str, ready: Any) -> WritebackChannel | None:
    channel = _channel(channel_id)
    if channel is None or not channel.active or channel.config.kind != kind:
        return None
    return channel if ready(channel) else None


class _Refunds(ABC):
    kind: ClassVar[str]
    needs: ClassVar[str]

    @staticmethod
    @abstractmethod
    def ready(channel: WritebackChannel) -> bool:
        """Whether the channel has what its API needs to be asked to refund."""

    def configured(self, channel_id: int) -> bool:
        return _ready(channel_id, self.kind, self.ready) is not None

    def channel(self, push: RefundPush) -> WritebackChannel:
        channel = _ready(push.channel_id, self.kind, self.ready)
        if channel is None:
            raise WritebackError(
                f"{self.kind} channel {push.channel_id} is inactive or needs {self.needs} to be "
                "asked to refund", retryable=False,
            )  # fmt: skip
        return channel


def _s(amount: Decimal, currency: str) -> str:
    return str(money.quantize(amount, currency, rounding=money.ROUND_HALF_UP))


class ShopifyRefunds(_Refunds):
    kind = "shopify"
    needs = "an api_base_url, an api_version and an access_token"

    @staticmethod
    def ready(channel: WritebackChannel) -> bool:
        return admin_api_ready(channel.config)

    def push_refund(self, push: RefundPush) -> dict[str, Any]:
        config = self.channel(push).config
        order_id = numeric_id(push.order_external_id, "Shopify order id")
        headers = admin_headers(config)
        mark = marker(push.reference)

        def api(method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
            answer = call_json(http, method, admin_url(config, f"orders/{order_id}/{path}"),
                               what=f"Shopify {what}", headers=headers, **kwargs)  # fmt: skip
            if not isinstance(answer, dict):
                raise WritebackError(f"Shopify {what}: the answer is not an object",
                                     retryable=True)  # fmt: skip
            return answer

        with session(config) as http:
            for found in api("GET", "refunds.json", "list refunds").get("refunds") or []:
                if mark in str(found.get("note") or ""):
                    return {"channel_refund_id": str(found["id"]), "outcome": "adopted"}
            lines = [{"line_item_id": numeric_id(ln.external_line_id, "Shopify line item id"),
                      "quantity": ln.quantity,
                      "restock_type": "return" if ln.restock else "no_restock"}
                     for ln in push.lines]  # fmt: skip
            body: dict[str, Any] = {"refund_line_items": lines}
            if push.shipping:
                body["shipping"] = {"amount": _s(push.shipping, push.currency)}
            calculated = api("POST", "refunds/calculate.json", "calculate refund",
                             json={"refund": {"currency": push.currency, **body}})  # fmt: skip
            suggested = (calculated.get("refund") or {}).get("transactions") or []
            if not suggested:
                raise WritebackError(
                    f"Shopify order {order_id}: no transaction can take the refund",
                    retryable=False,
                )
            transactions, left = [], push.amount
            for i, tx in enumerate(suggested):
                cap = money.to_decimal(tx.get("maximum_refundable") or tx.get("amount") or 0)
                part = left if i == len(suggested) - 1 else min(left, cap)
                if part <= 0:
                    continue
                transactions.append({"parent_id": tx["parent_id"], "kind": "refund",
                                     "gateway": tx.get("gateway", ""),
                                     "amount": _s(part, push.currency)})  # fmt: skip
                left -= part
            created = api("POST", "refunds.json", "create refund", json={"refund": {
                **body, "currency": push.currency, "note": push.note, "notify": False,
                "transactions": transactions,
            }})  # fmt: skip
        refund_id = (created.get("refund") or {}).get("id")
        if not refund_id:
            raise WritebackError("Shopify create refund: the answer has no id", retryable=True)
        return {"channel_refund_id": str(refund_id), "outcome": "created"}


class WooCommerceRefunds(_Refunds):
    kind = "woocommerce"
    needs = "an api_base_url and consumer_key and consumer_secret"

    @staticmethod
    def ready(channel: WritebackChannel) -> bool:
        return rest_api_ready(channel)

    def push_refund(self, push: RefundPush) -> dict[str, Any]:
        config = self.channel(push).config
        order_id = numeric_id(push.order_external_id, "WooCommerce order id")
        creds = config.credentials
        auth = (str(creds.get("consumer_key") or ""), str(creds.get("consumer_secret") or ""))
        url = f"{config.api_base_url.rstrip('/')}/wp-json/wc/v3/orders/{order_id}/refunds"
        mark = marker(push.reference)
        with session(config) as http:
            listed = call_json(http, "GET", url, what="WooCommerce list refunds", auth=auth,
                               params={"per_page": 100})  # fmt: skip
            for found in listed if isinstance(listed, list) else []:
                if mark in str(found.get("reason") or ""):
                    return {"channel_refund_id": str(found["id"]), "outcome": "adopted"}
            body = {
                "amount": _s(push.amount, push.currency), "reason": push.note,
                "api_refund": True,
                "line_items": [{"id": numeric_id(ln.external_line_id, "WooCommerce line id"),
                                "quantity": ln.quantity,
                                "refund_total": _s(ln.amount, push.currency)}
                               for ln in push.lines],
            }  # fmt: skip
            created = call_json(http, "POST", url, what="WooCommerce create refund", auth=auth,
                                json=body)  # fmt: skip
        refund_id = created.get("id") if isinstance(created, dict) else None
        if not refund_id:
            raise WritebackError("WooCommerce create refund: the answer has no id",
                                 retryable=True)  # fmt: skip
        return {"channel_refund_id": str(refund_id), "outcome": "created"}


class BigCommerceRefunds(_Refunds):
    kind = "bigcommerce"
    needs = "an api_base_url and an access_token"

    @staticmethod
    def ready(channel: WritebackChannel) -> bool:
        return bc_ready(channel.config)

    def push_refund(self, push: RefundPush) -> dict[str, Any]:
        config = self.channel(push).config
        order_id = numeric_id(push.order_external_id, "BigCommerce order id")
        base = f"{config.api_base_url.rstrip('/')}/v3/orders/{order_id}/payment_actions"
        headers = {**bc_headers(config), "Content-Type": "application/json"}
        mark = marker(push.reference)

        def api(method: str, path: str, what: str, **kwargs: Any) -> Any:
            answer = call_json(http, method, f"{base}/{path}", what=f"BigCommerce {what}",
                               headers=headers, **kwargs)  # fmt: skip
            return (answer or {}).get("data") if isinstance(answer, dict) else None

        items = [{"item_type": "PRODUCT", "quantity": ln.quantity,
                  "item_id": numeric_id(ln.external_line_id, "BigCommerce order product id")}
                 for ln in push.lines]  # fmt: skip
        with session(config) as http:
            for found in api("GET", "refunds", "list refunds") or []:
                if mark in str(found.get("reason") or ""):
                    return {"channel_refund_id": str(found["id"]), "outcome": "adopted"}
            quote = api("POST", "refund_quotes", "refund quote", json={"items": items}) or {}
            methods = quote.get("refund_methods") or []
            if not methods or not methods[0]:
                raise WritebackError(
                    f"BigCommerce order {order_id}: the quote offers no refund method",
                    retryable=False,
                )
            payments = [{"provider_id": p["provider_id"], "amount": p["amount"],
                         "offline": bool(p.get("offline"))} for p in methods[0]]  # fmt: skip
            quoted = sum((money.to_decimal(str(p["amount"])) for p in payments), Decimal(0))
            if money.quantize(
                quoted, push.currency, rounding=money.ROUND_HALF_UP
            ) != money.quantize(push.amount, push.currency, rounding=money.ROUND_HALF_UP):
                # The quote's amounts are sent as BigCommerce gave them (never re-computed as
                # floats here): a quote that is not our figure is for a person to decide.
                raise WritebackError(
                    f"BigCommerce order {order_id}: the refund quote ({quoted}) is not our "
                    f"refund ({push.amount} {push.currency})",
                    retryable=False,
                )
            created = api("POST", "refunds", "create refund", json={
                "items": items, "payments": payments, "reason": push.note[:1000],
            }) or {}  # fmt: skip
        if not created.get("id"):
            raise WritebackError("BigCommerce create refund: the answer has no id",
                                 retryable=True)  # fmt: skip
        return {"channel_refund_id": str(created["id"]), "outcome": "created"}
