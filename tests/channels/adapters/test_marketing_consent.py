"""Marketing consent as each channel really states it, read from the vendors' own samples
(variants are copies changed in memory, never the sample files): Shopify's customer record
consent or ``buyer_accepts_marketing``, BigCommerce's ``is_email_opt_in``, nothing from
WooCommerce or Amazon (so no); a later update of the order updates it, a stale one does not."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from channels.adapters import amazon, bigcommerce, get_adapter, woocommerce
from channels.adapters.base import ChannelConfig
from channels.adapters.shopify import accepts_marketing
from orders import jsonschemas, money
from orders.actors import Actor
from orders.canonical import order_upsert
from orders.models import Customer
from tests.factories import SalesChannelFactory

SAMPLES = Path(settings.BASE_DIR).parent / "shared" / "samples"
SHOPIFY_GET = SAMPLES / "shopify" / "order_450789469_get.json"
SHOPIFY_EUR = SAMPLES / "shopify" / "order_1073459976_create_eur.json"


def _json(path: Path) -> Any:
    return json.loads(path.read_bytes())


def _shopify(state: str | None = None, buyer: bool | None = None) -> dict[str, Any]:
    order = copy.deepcopy(_json(SHOPIFY_GET)["order"])
    if state is not None:
        order["customer"]["email_marketing_consent"]["state"] = state
    if buyer is not None:
        order["buyer_accepts_marketing"] = buyer
    return order


def test_shopify_samples_say_no():
    order = _json(SHOPIFY_GET)["order"]
    assert order["customer"]["email_marketing_consent"]["state"] == "not_subscribed"
    assert accepts_marketing(order) is False
    eur = _json(SHOPIFY_EUR)["order"]  # no customer record, buyer_accepts_marketing false
    assert eur["customer"] is None and accepts_marketing(eur) is False


def test_shopify_subscribed_customer_record_says_yes_and_its_withdrawal_wins():
    assert accepts_marketing(_shopify(state="subscribed")) is True
    # The record is the current truth: ticked at checkout, unsubscribed since.
    assert accepts_marketing(_shopify(state="unsubscribed", buyer=True)) is False
    without_record = _shopify(buyer=True)
    del without_record["customer"]["email_marketing_consent"]
    assert accepts_marketing(without_record) is True


def test_shopify_normalize_puts_it_on_the_canonical_customer():
    adapter = get_adapter("shopify")
    channel = ChannelConfig(id=7, slug="shop", kind="shopify", secret="s")
    canonical = adapter.normalize(_shopify(state="subscribed"), channel, "orders/create")
    assert canonical["customer"]["accepts_marketing"] is True
    assert jsonschemas.errors("orders", "canonical_order.v1.json", canonical) == []


def test_bigcommerce_is_email_opt_in():
    order = _json(SAMPLES / "bigcommerce" / "v2_get_order_218.json")
    assert order["is_email_opt_in"] is False
    assert bigcommerce._customer(order)["accepts_marketing"] is False
    opted_in = {**order, "is_email_opt_in": True}
    assert bigcommerce._customer(opted_in)["accepts_marketing"] is True


def test_woocommerce_and_amazon_do_not_say_so_it_is_no():
    woo = _json(SAMPLES / "woocommerce" / "order_727_get.json")
    assert woocommerce._customer(woo)["accepts_marketing"] is False
    buyer = _json(SAMPLES / "amazon" / "getOrders_v0_response_example.json")["payload"]["Orders"][0]
    assert amazon._customer(buyer["BuyerInfo"])["accepts_marketing"] is False


@pytest.mark.django_db
def test_a_later_update_of_the_order_updates_consent_and_a_stale_one_does_not():
    adapter = get_adapter("shopify")
    row = SalesChannelFactory(kind="shopify")
    config = ChannelConfig(id=row.pk, slug=row.slug, kind="shopify", secret="s")
    actor = Actor.channel(row.slug)

    def upsert(order: dict[str, Any]) -> None:
        canonical = adapter.normalize(order, config, "orders/updated")
        order_upsert(channel_id=row.pk, canonical=canonical, actor=actor,
                     rounding=money.ROUND_HALF_UP)  # fmt: skip

    first = _shopify(state="subscribed")
    upsert(first)
    customer = Customer.objects.get(email="bob.norman@mail.example.com")
    assert customer.accepts_marketing is True

    withdrawn = _shopify(state="unsubscribed")
    withdrawn["updated_at"] = "2025-04-03T09:00:00-05:00"
    upsert(withdrawn)
    customer.refresh_from_db()
    assert customer.accepts_marketing is False

    stale = _shopify(state="subscribed")
    stale["updated_at"] = "2025-04-01T09:00:00-05:00"
    upsert(stale)
    customer.refresh_from_db()
    assert customer.accepts_marketing is False
