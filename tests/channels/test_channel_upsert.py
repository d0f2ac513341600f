"""sales_channel_upsert: the one write path for a channel (add_channel and the benches use it)."""

import pytest

from channels.models import SalesChannel
from channels.services import sales_channel_upsert

pytestmark = pytest.mark.django_db


def test_creates_a_channel_named_after_its_slug():
    channel, created, _ = sales_channel_upsert(slug="bench-store", kind="shopify")
    assert created
    assert (channel.slug, channel.kind, channel.name) == ("bench-store", "shopify", "Bench Store")


def test_running_it_again_changes_only_what_differs():
    sales_channel_upsert(slug="eu", kind="shopify", default_currency="EUR")
    channel, created, changed = sales_channel_upsert(
        slug="eu", kind="shopify", default_currency="GBP"
    )
    assert not created
    assert changed == ["default_currency"]
    assert SalesChannel.objects.get(slug="eu").default_currency == "GBP"
    _, _, changed = sales_channel_upsert(slug="eu", kind="shopify", default_currency="GBP")
    assert changed == []
