"""The write-back settings are on the channel's admin form; the callback URL meets the outbound
URL guard like the API base URL."""

from __future__ import annotations

import pytest
from django.urls import reverse

from channels.models import ChannelKind, SalesChannel
from tests.factories import SalesChannelFactory

pytestmark = pytest.mark.django_db


def post(client, channel: SalesChannel, **changes: str):
    data = {
        "name": channel.name, "slug": channel.slug, "kind": channel.kind, "is_active": "on",
        "default_currency": "USD", "rounding": "ROUND_HALF_UP", "webhook_secret": "",
        "auth_header_name": "", "auth_header_value": "", "api_base_url": "", "api_version": "",
        "credentials_json": "", "tracking_writeback": "on", "writeback_complete_order": "on",
        "_save": "Save",
    }  # fmt: skip
    data.update(changes)
    return client.post(reverse("admin:channels_saleschannel_change", args=[channel.pk]), data)


def test_ops_sets_the_callback_url_and_the_customer_setting(client, ops_user):
    channel = SalesChannelFactory(kind=ChannelKind.CUSTOM, slug="sf", webhook_secret="s3cret")
    client.force_login(ops_user)
    response = post(client, channel, tracking_callback_url="https://shop.example/hooks/tracking",
                    writeback_notify_customer="on")  # fmt: skip
    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.tracking_callback_url == "https://shop.example/hooks/tracking"
    assert channel.writeback_notify_customer and channel.tracking_writeback
    assert channel.webhook_secret == "s3cret"  # blank keeps it


def test_a_callback_to_the_metadata_address_is_refused(client, ops_user):
    channel = SalesChannelFactory(kind=ChannelKind.CUSTOM, slug="sf2", webhook_secret="s3cret")
    client.force_login(ops_user)
    response = post(client, channel, tracking_callback_url="https://169.254.169.254/latest")
    assert response.status_code == 200  # the form again, with the error
    assert "Refused" in response.content.decode()
    channel.refresh_from_db()
    assert channel.tracking_callback_url == ""
