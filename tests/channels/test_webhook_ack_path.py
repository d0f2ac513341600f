"""The webhook acknowledgement's fast path: the channel is read once per process (and again
whenever it changes), the inbox row is one autocommitted INSERT, a re-delivery is one failed
INSERT and one UPDATE. What the cache must never do: refuse a secret that was just rotated,
keep accepting for a channel saved as inactive here, or call a delivery it did not store a
duplicate."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels.models import ChannelKind, InboundEvent, SalesChannel
from channels.selectors import active_channel_by_slug
from tests.channels.test_webhook import SECRET, SLUG, canonical_order, envelope, post, signature
from tests.factories import SalesChannelFactory


@pytest.fixture
def store(db) -> SalesChannel:
    return SalesChannelFactory(kind=ChannelKind.CUSTOM, slug=SLUG, webhook_secret=SECRET)


def _sql(ctx: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"]]


def test_a_second_delivery_reads_no_channel_row(store, client):
    assert post(client, envelope(canonical_order("W-1"), event_id="e1")).status_code == 202

    with CaptureQueriesContext(connection) as ctx:
        response = post(client, envelope(canonical_order("W-2"), event_id="e2"))

    assert response.status_code == 202
    assert not [s for s in _sql(ctx) if "channels_saleschannel" in s]
    assert [s.split(" (")[0] for s in _sql(ctx)] == ['INSERT INTO "channels_inboundevent"']
    assert InboundEvent.objects.filter(channel=store).count() == 2


def test_a_secret_rotated_in_another_process_is_accepted_at_once(store, client):
    assert post(client, envelope(canonical_order("W-1"), event_id="e1")).status_code == 202
    # Another process rotates the secret: this process hears no signal, its cache is stale.
    SalesChannel.objects.filter(pk=store.pk).update(webhook_secret="rotated-secret-2")
    body = envelope(canonical_order("W-2"), event_id="e2")

    response = post(client, body, sig=signature(body, secret="rotated-secret-2"))

    assert response.status_code == 202
    old = envelope(canonical_order("W-3"), event_id="e3")
    refused = post(client, old, sig=signature(old, secret=SECRET))
    assert refused.status_code == 401
    assert refused.json()["code"] == "signature_invalid"


def test_a_channel_saved_inactive_here_is_404_at_once(store, client):
    assert post(client, envelope(canonical_order("W-1"), event_id="e1")).status_code == 202
    store.is_active = False
    store.save()

    response = post(client, envelope(canonical_order("W-2"), event_id="e2"))

    assert response.status_code == 404
    assert response.json()["code"] == "unknown_channel"
    assert InboundEvent.objects.filter(channel=store).count() == 1


def test_a_channel_switched_off_elsewhere_refuses_a_bad_signature_as_unknown(store, client):
    assert post(client, envelope(canonical_order("W-1"), event_id="e1")).status_code == 202
    SalesChannel.objects.filter(pk=store.pk).update(is_active=False)  # no signal here

    body = envelope(canonical_order("W-2"), event_id="e2")
    response = post(client, body, sig=signature(body, secret="not-the-secret"))

    assert response.status_code == 404
    assert active_channel_by_slug(SLUG) is None  # the re-read dropped it from the cache


def test_an_unknown_slug_is_not_cached(store, client):
    assert active_channel_by_slug("later-store") is None
    SalesChannelFactory(kind=ChannelKind.CUSTOM, slug="later-store", webhook_secret=SECRET)
    SalesChannel.objects.filter(slug="later-store").update(name="Created elsewhere")

    channel = active_channel_by_slug("later-store")

    assert channel is not None and channel.name == "Created elsewhere"


def test_cache_off_reads_the_row_every_time(store, client, settings):
    settings.CHANNEL_CACHE_SECONDS = 0
    assert post(client, envelope(canonical_order("W-1"), event_id="e1")).status_code == 202

    with CaptureQueriesContext(connection) as ctx:
        post(client, envelope(canonical_order("W-2"), event_id="e2"))

    assert [s for s in _sql(ctx) if "channels_saleschannel" in s]


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_inbox_row_is_one_autocommitted_insert(client):
    SalesChannelFactory(kind=ChannelKind.CUSTOM, slug=SLUG, webhook_secret=SECRET)
    body = envelope(canonical_order("W-1"), event_id="e1")
    active_channel_by_slug(SLUG)  # warm, as any delivery after the first finds it

    with CaptureQueriesContext(connection) as ctx:
        response = post(client, body)

    assert response.status_code == 202
    # No BEGIN/SAVEPOINT first: the INSERT commits on its own, and only then does the doorbell
    # run processing (in-process in tests), which finds the committed row.
    assert ctx.captured_queries[0]["sql"].startswith('INSERT INTO "channels_inboundevent"')
    event = InboundEvent.objects.get()
    assert event.status == "processed"

    with CaptureQueriesContext(connection) as again:
        duplicate = post(client, body)

    assert duplicate.status_code == 200 and duplicate.json() == {"duplicate": True}
    assert [q["sql"].split(" ")[0] for q in again.captured_queries] == ["INSERT", "UPDATE"]
    event.refresh_from_db()
    assert event.duplicate_deliveries == 1


@pytest.mark.django_db(transaction=True)  # autocommit: the foreign key is checked at the INSERT
def test_a_channel_made_again_elsewhere_under_the_same_slug_stores_under_the_new_row(store, client):
    assert active_channel_by_slug(SLUG) == store  # this process has the row cached
    # Another process deletes the channel and creates it again: this process's cached row
    # names a channel that is gone; no signal reaches it.
    with connection.cursor() as cursor:  # no model signals: as another process would
        cursor.execute("DELETE FROM channels_saleschannel WHERE id = %s", [store.pk])
    [again] = SalesChannel.objects.bulk_create([  # bulk_create sends no post_save either
        SalesChannel(kind=ChannelKind.CUSTOM, slug=SLUG, name="again", webhook_secret=SECRET)
    ])  # fmt: skip
    if again.pk is None:  # SQLite before RETURNING: read it back
        again = SalesChannel.objects.get(slug=SLUG)

    response = post(client, envelope(canonical_order("W-2"), event_id="e2"))

    assert response.status_code == 202, response.content
    assert InboundEvent.objects.get().channel_id == again.pk
