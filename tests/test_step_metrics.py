"""``pipeline_step_seconds`` for the steps at both ends of an order's path, each after a real run
of its code: ``processing`` (a signed webhook delivery processed from the inbox) and
``tracking_writeback`` (a shipped parcel's tracking pushed to a loopback Shopify). The middle
steps (checks, allocation, routing, label, downstream targets) are in
tests/reviews/test_dashboard.py."""

from __future__ import annotations

import pytest

from channels.writeback.shopify import ShopifyWriteback  # noqa: F401  (registers the adapter)
from fulfillment.outbox.services import action_dispatch
from reviews.dashboard import Buckets, histogram_buckets
from tests.channels.test_webhook import (  # noqa: F401  (fixtures)
    canonical_order,
    catalogue,
    deliver,
    envelope,
    store,
    storefront,
)
from tests.channels.writeback.helpers import FakeShopify, shipped_order, writebacks
from tests.channels.writeback.test_shopify import LINE_ID, ORDER_ID, shopify_channel

pytestmark = [pytest.mark.django_db]


def observations(step: str) -> int:
    return histogram_buckets("pipeline_step_seconds", by="step").get(step, Buckets()).observations


def test_processing_an_inbox_event_is_timed(storefront, deliver):  # noqa: F811 (fixtures)
    before = observations("processing")
    deliver(envelope(canonical_order(), event_id="evt_metrics"))
    assert observations("processing") == before + 1


@pytest.mark.pipeline
def test_a_tracking_write_back_is_timed(httpserver):
    shop = FakeShopify(httpserver)
    channel = shopify_channel(shop.base_url)
    before = observations("tracking_writeback")
    order, _ = shipped_order(channel, external_id=ORDER_ID, lines=[("RED", LINE_ID, 1)],
                             in_stock=True)  # fmt: skip
    [action] = writebacks(order)
    if action.status != "succeeded":
        assert action_dispatch(action_id=action.pk) == "succeeded"
    assert observations("tracking_writeback") == before + 1
    assert observations(f"downstream:{action.target}") >= 1
