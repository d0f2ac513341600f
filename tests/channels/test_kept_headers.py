"""What the inbox keeps of a delivery's headers: never a signature or a credential (a stored
body with its signature is a delivery anyone who reads the inbox could replay), for new
deliveries through the real webhook, and for rows stored before (the data migration)."""

from __future__ import annotations

import importlib
import json
import time
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection

from channels.models import ChannelKind, InboundEvent
from tests.channels.adapters.test_bigcommerce import _sign as standard_webhooks_headers
from tests.channels.adapters.test_shopify import _sign as shopify_sign
from tests.channels.adapters.test_woocommerce import _sign as woo_sign
from tests.factories import SalesChannelFactory

pytestmark = pytest.mark.django_db

BODY = json.dumps({"id": 1}).encode()  # only stored here: what processing makes of it is moot


@pytest.fixture
def post(client):
    """Store a signed delivery (processing is not rung: only what is kept matters here)."""

    def _post(slug: str, headers: dict[str, str]) -> InboundEvent:
        response = client.post(
            f"/webhooks/{slug}/", data=BODY, content_type="application/json", headers=headers
        )
        assert response.status_code == 202, response.content
        return InboundEvent.objects.get(pk=response.json()["event_id"])

    return _post


def test_no_channel_signature_or_auth_header_is_kept_with_an_event(db, post):
    SalesChannelFactory(kind=ChannelKind.SHOPIFY, slug="shop", webhook_secret="s1")
    SalesChannelFactory(kind=ChannelKind.WOOCOMMERCE, slug="woo", webhook_secret="s2")
    SalesChannelFactory(kind=ChannelKind.BIGCOMMERCE, slug="bc", webhook_secret="s3")
    SalesChannelFactory(
        kind=ChannelKind.BIGCOMMERCE, slug="bc-header", webhook_secret="",
        auth_header_name="X-Hook-Token", auth_header_value="hook-token-value",
    )  # fmt: skip
    shop_sig, woo_sig = shopify_sign(BODY, "s1"), woo_sign(BODY, "s2")
    bc = standard_webhooks_headers(BODY, msg_id="msg_1", timestamp=int(time.time()), secret="s3")

    events = [
        post("shop", {"X-Shopify-Hmac-Sha256": shop_sig, "X-Shopify-Topic": "orders/create",
                      "X-Shopify-Webhook-Id": "wh-1"}),
        post("woo", {"X-WC-Webhook-Signature": woo_sig, "X-WC-Webhook-Topic": "order.created",
                     "X-WC-Webhook-Delivery-ID": "d-1"}),
        post("bc", bc),
        post("bc-header", {"X-Hook-Token": "hook-token-value"}),
    ]  # fmt: skip

    for event in events:
        assert not {"x-shopify-hmac-sha256", "x-wc-webhook-signature", "webhook-signature",
                    "x-hook-token"} & set(event.headers), event.headers  # fmt: skip
        stored = json.dumps(event.headers)
        for secret in (shop_sig, woo_sig, bc["webhook-signature"], "hook-token-value"):
            assert secret not in stored
    # What is not a secret stays: the topic, the delivery ids, the timestamp.
    assert events[0].headers["x-shopify-topic"] == "orders/create"
    assert events[1].headers["x-wc-webhook-delivery-id"] == "d-1"
    assert events[2].headers["webhook-id"] == "msg_1"


def test_the_data_migration_strips_signatures_and_credentials_from_stored_events(db, monkeypatch):
    shop = SalesChannelFactory(kind=ChannelKind.SHOPIFY, slug="shop", webhook_secret="s1")
    bc = SalesChannelFactory(
        kind=ChannelKind.BIGCOMMERCE, slug="bc", auth_header_name="X-Hook-Token",
        auth_header_value="v",
    )  # fmt: skip
    kept = {"x-shopify-topic": "orders/create", "x-shopify-webhook-id": "wh-1"}

    def old_row(channel, n: int, headers: dict[str, str]) -> InboundEvent:
        return InboundEvent.objects.create(
            channel=channel, dedup_key=f"k{n}", headers=headers, raw_body=b"{}",
            correlation_id=f"c{n}",
        )  # fmt: skip

    rows = [old_row(shop, n, {**kept, "x-shopify-hmac-sha256": f"sig{n}"}) for n in range(7)]
    clean = old_row(shop, 100, dict(kept))
    custom = old_row(shop, 101, {"x-signature": "t=1,v1=ab", "authorization": "Bearer x"})
    header = old_row(bc, 102, {"x-hook-token": "v", "webhook-signature": "v1,xx", "a": "b"})
    migration = importlib.import_module(
        "channels.migrations.0006_inboundevent_strip_signature_headers"
    )

    monkeypatch.setattr(migration, "BATCH", 3)  # several batches and a remainder
    migration.strip_headers(apps, SimpleNamespace(connection=connection))

    for row in rows:
        row.refresh_from_db()
        assert row.headers == kept
    for row, expected in [(clean, kept), (custom, {}), (header, {"a": "b"})]:
        row.refresh_from_db()
        assert row.headers == expected
