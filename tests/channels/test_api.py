"""``/api/v1/inbound-events/``: who may read the inbox, its filters, quarantine errors without raw
bodies or headers, and the ``replay`` action, through DRF's real stack (auth, permissions,
filters, pagination) on the real database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from channels.models import ChannelKind, InboundEvent, InboundSource, SalesChannel
from channels.services import (
    body_dedup_key,
    inbound_event_ingest_file,
    inbound_event_process,
    inbound_event_store,
)
from orders.models import Order, Product
from tests.factories import SalesChannelFactory, make_user

URL = "/api/v1/inbound-events/"
SAMPLES = Path(settings.BASE_DIR).parent / "shared" / "samples"
SHOPIFY_GET = SAMPLES / "shopify" / "order_450789469_get.json"
SHOPIFY_EUR = SAMPLES / "shopify" / "order_1073459976_create_eur.json"
WOO_ORDER = SAMPLES / "woocommerce" / "order_727_get.json"

HEADER_SECRET = "shpat-header-value-never-listed"


def unwrapped(path: Path) -> bytes:
    data = json.loads(path.read_bytes())
    return json.dumps(data.get("order", data)).encode()


def stored(
    channel: SalesChannel,
    body: bytes,
    *,
    source: str = InboundSource.WEBHOOK,
    topic: str = "orders/create",
    process: bool = True,
) -> InboundEvent:
    event, created = inbound_event_store(
        channel=channel, source=source, topic=topic, dedup_key=body_dedup_key(body),
        headers={"x-shopify-topic": topic, "x-shopify-access-token": HEADER_SECRET}, body=body,
    )  # fmt: skip
    assert created and event is not None
    if process:
        inbound_event_process(event_id=event.pk)
    event.refresh_from_db()
    return event


@pytest.fixture
def inbox(db) -> dict[str, Any]:
    """Two channels and events of every kind the filters tell apart."""
    shop = SalesChannelFactory(kind=ChannelKind.SHOPIFY, slug="shop", webhook_secret="s")
    woo = SalesChannelFactory(kind=ChannelKind.WOOCOMMERCE, slug="woo", webhook_secret="w")
    usd = stored(shop, unwrapped(SHOPIFY_GET))  # webhook, orders/create, processed
    eur = stored(shop, unwrapped(SHOPIFY_EUR), source=InboundSource.FILE, topic="orders/updated")
    broken = stored(shop, b'{"id": 1, "email": "jane@example.com", "line_items": [')
    woo_event = stored(woo, WOO_ORDER.read_bytes(), topic="order.created")
    waiting = stored(woo, b'{"id": 728}', source=InboundSource.POLL, process=False)
    assert [e.status for e in (usd, eur, broken, woo_event, waiting)] == [
        "processed", "processed", "quarantined", "processed", "received",
    ]  # fmt: skip
    return {"shop": shop, "woo": woo, "usd": usd, "eur": eur, "broken": broken,
            "woo_event": woo_event, "waiting": waiting}  # fmt: skip


def ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


# --- who may read -------------------------------------------------------------------------------
def test_inbox_needs_authentication(inbox, api_client):
    response = api_client.get(URL)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_inbox_is_refused_403_to_a_user_without_a_role(inbox, api_client):
    api_client.force_authenticate(make_user("nobody"))

    assert api_client.get(URL).status_code == 403
    assert api_client.get(f"{URL}{inbox['usd'].pk}/").status_code == 403


def test_customer_service_can_list_and_read_the_inbox(inbox, api_client, cs_user):
    api_client.force_authenticate(cs_user)

    response = api_client.get(URL)

    assert response.status_code == 200
    data = response.json()
    assert data["count"] == 5
    assert {"count", "next", "results"} <= set(data)
    newest_first = [inbox[k].pk for k in ("waiting", "woo_event", "broken", "eur", "usd")]
    assert [row["id"] for row in data["results"]] == newest_first
    detail = api_client.get(f"{URL}{inbox['usd'].pk}/")
    assert detail.status_code == 200
    assert detail.json()["order"] == inbox["usd"].order_id


def test_token_authentication_works_for_the_inbox(inbox, api_client, cs_user):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=cs_user)

    response = api_client.get(URL, HTTP_AUTHORIZATION=f"Token {token.key}")

    assert response.status_code == 200
    assert response.json()["count"] == 5


# --- filters --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("status=quarantined", ["broken"], id="status-quarantined"),
        pytest.param("status=processed", ["usd", "eur", "woo_event"], id="status-processed"),
        pytest.param("status=received&status=quarantined", ["broken", "waiting"], id="statuses"),
        pytest.param("channel=woo", ["woo_event", "waiting"], id="channel"),
        pytest.param("channel=no-such", [], id="channel-unknown"),
        pytest.param("source=file", ["eur"], id="source-file"),
        pytest.param("source=poll", ["waiting"], id="source-poll"),
        pytest.param("topic=orders/updated", ["eur"], id="topic"),
        pytest.param("channel=shop&status=processed&source=webhook", ["usd"], id="combined"),
    ],
)
def test_inbox_filters(inbox, api_client, cs_user, query, expected):
    api_client.force_authenticate(cs_user)

    response = api_client.get(f"{URL}?{query}")

    assert ids(response) == {inbox[k].pk for k in expected}
    assert response.json()["count"] == len(expected)


def test_inbox_filters_by_order(inbox, api_client, cs_user):
    api_client.force_authenticate(cs_user)
    order = Order.objects.get(external_id="1073459976")

    response = api_client.get(f"{URL}?order={order.pk}")

    assert ids(response) == {inbox["eur"].pk}
    assert response.json()["results"][0]["order"] == order.pk


@pytest.mark.parametrize("query", ["status=lost", "source=email", "order=abc"])
def test_inbox_refuses_a_filter_value_it_does_not_know_with_400(inbox, api_client, cs_user, query):
    api_client.force_authenticate(cs_user)

    response = api_client.get(f"{URL}?{query}")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_inbox_pages_with_page_size(inbox, api_client, cs_user):
    api_client.force_authenticate(cs_user)

    first = api_client.get(f"{URL}?page_size=2").json()

    assert (first["count"], len(first["results"])) == (5, 2)
    assert first["next"] and "page=2" in first["next"]


# --- what an event shows --------------------------------------------------------------------------
def test_quarantined_event_shows_readable_errors_and_never_its_body_or_headers(
    inbox, api_client, cs_user
):
    api_client.force_authenticate(cs_user)

    response = api_client.get(f"{URL}?status=quarantined")

    [row] = response.json()["results"]
    assert row["status"] == "quarantined"
    assert row["channel"] == "shop"
    assert row["order"] is None
    assert row["errors"] and all(set(e) == {"pointer", "message", "value"} for e in row["errors"])
    assert row["errors"][0]["pointer"] == ""
    assert row["errors"][0]["message"].startswith("the body is not valid JSON at line 1 column")
    assert row["body_bytes"] == len(bytes(inbox["broken"].raw_body))
    assert not {"raw_body", "body", "headers", "fetched", "lease_until"} & set(row)
    text = response.content.decode()
    for secret in (HEADER_SECRET, "x-shopify-access-token", "jane@example.com", "line_items"):
        assert secret not in text


def test_processed_event_lists_no_errors_and_no_body(inbox, api_client, cs_user):
    api_client.force_authenticate(cs_user)

    row = api_client.get(f"{URL}{inbox['usd'].pk}/").json()

    assert row["errors"] == []
    assert (row["status"], row["outcome"], row["source"]) == ("processed", "created", "webhook")
    assert "raw_body" not in row and "headers" not in row
    assert "450789469" not in json.dumps(row)  # the order's id lives only in the body


def test_inbox_list_query_count_does_not_grow_with_the_number_of_events(
    inbox, api_client, cs_user, django_assert_max_num_queries
):
    api_client.force_authenticate(cs_user)

    def listing() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api_client.get(f"{URL}?page_size=100").status_code == 200
        return len(queries)

    few = listing()
    for n in range(30):
        stored(inbox["woo"], json.dumps({"id": 9000 + n}).encode(), process=n % 2 == 0)

    with django_assert_max_num_queries(few):
        response = api_client.get(f"{URL}?page_size=100")
    assert response.json()["count"] == 35


# --- replay -------------------------------------------------------------------------------------
STOREFRONT_ORDER = {
    "schema_version": 1, "external_id": "W-3001", "order_number": "#3001", "currency": "USD",
    "placed_at": "2026-11-02T09:30:00+00:00", "updated_at": "2026-11-02T10:00:00+00:00",
    "financial_status": "pending", "payment_method": "card",
    "shipping_address": {"line1": "1 Main St", "city": "Springfield", "country_code": "US"},
    "lines": [{"external_line_id": "L1", "channel_sku": "MUG-RED", "title": "Red mug",
               "quantity": 2, "unit_price": "12.50", "discount": "0.00", "tax": "2.00"}],
    "subtotal": "25.00", "discount_total": "0.00", "shipping_total": "5.00", "tax_total": "2.00",
    "total": "32.00",
}  # fmt: skip


@pytest.fixture
def quarantined(db) -> InboundEvent:
    """A storefront order quarantined because its channel's rounding rule was mistyped."""
    Product.objects.create(sku="MUG-RED", title="Red mug")
    store = SalesChannelFactory(kind=ChannelKind.CUSTOM, slug="acme", webhook_secret="k")
    SalesChannel.objects.filter(pk=store.pk).update(rounding="HALF_UP")
    body = json.dumps({"id": "evt-1", "topic": "order.created", "order": STOREFRONT_ORDER})
    event, _ = inbound_event_ingest_file(channel=store, body=body.encode(), topic="order.created")
    inbound_event_process(event_id=event.pk)
    event.refresh_from_db()
    assert event.status == "quarantined"
    return event


def fix_rounding(event: InboundEvent) -> None:
    SalesChannel.objects.filter(pk=event.channel_id).update(rounding="ROUND_HALF_UP")


def replay_url(event_id: int) -> str:
    return f"{URL}{event_id}/replay/"


def test_customer_service_may_not_replay(quarantined, api_client, cs_user):
    fix_rounding(quarantined)
    api_client.force_authenticate(cs_user)

    response = api_client.post(replay_url(quarantined.pk))

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    quarantined.refresh_from_db()
    assert (quarantined.status, quarantined.attempts) == ("quarantined", 1)
    assert not Order.objects.exists()


def test_replay_needs_authentication(quarantined, api_client):
    assert api_client.post(replay_url(quarantined.pk)).status_code == 401
    quarantined.refresh_from_db()
    assert quarantined.status == "quarantined"


def test_ops_admin_replays_a_fixed_event(quarantined, api_client, ops_user):
    fix_rounding(quarantined)
    api_client.force_authenticate(ops_user)

    response = api_client.post(replay_url(quarantined.pk))

    assert response.status_code == 200
    data = response.json()
    order = Order.objects.get()
    assert (data["id"], data["status"], data["outcome"], data["order"], data["errors"]) == (
        quarantined.pk, "replayed", "created", order.pk, []
    )  # fmt: skip
    assert order.external_id == "W-3001"
    assert order.events.get(action="received").correlation_id == quarantined.correlation_id


def test_replay_of_an_unfixed_event_answers_200_still_quarantined_with_the_errors(
    quarantined, api_client, ops_user
):
    api_client.force_authenticate(ops_user)

    response = api_client.post(replay_url(quarantined.pk))

    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "quarantined"
    assert data["errors"] == [
        {"pointer": "/order", "message": "Unknown rounding mode 'HALF_UP'", "value": None}
    ]
    assert data["attempts"] == 2
    assert not Order.objects.exists()


def test_replay_is_idempotent_a_replayed_or_processed_event_comes_back_unchanged(
    quarantined, inbox, api_client, ops_user
):
    fix_rounding(quarantined)
    api_client.force_authenticate(ops_user)
    first = api_client.post(replay_url(quarantined.pk)).json()
    order_events = Order.objects.get(external_id="W-3001").events.count()

    again = api_client.post(replay_url(quarantined.pk))
    processed = api_client.post(replay_url(inbox["usd"].pk))

    assert again.status_code == 200 and again.json() == first
    assert processed.status_code == 200
    assert processed.json() == api_client.get(f"{URL}{inbox['usd'].pk}/").json()
    assert processed.json()["status"] == "processed"
    assert Order.objects.get(external_id="W-3001").events.count() == order_events
    fresh = InboundEvent.objects.get(pk=inbox["usd"].pk)
    assert (fresh.attempts, fresh.processed_at) == (
        inbox["usd"].attempts,
        inbox["usd"].processed_at,
    )


def test_replay_of_a_missing_event_is_404(db, api_client, ops_user):
    api_client.force_authenticate(ops_user)

    response = api_client.post(replay_url(987654))

    assert response.status_code == 404
    assert api_client.get(f"{URL}987654/").status_code == 404


def test_replay_is_post_only(quarantined, api_client, ops_user):
    api_client.force_authenticate(ops_user)

    assert api_client.get(replay_url(quarantined.pk)).status_code == 405
    quarantined.refresh_from_db()
    assert quarantined.status == "quarantined"


# --- raw payloads: the data steward and superusers only ------------------------------------------
@pytest.fixture
def bad_total(inbox) -> InboundEvent:
    """A Shopify order quarantined on a total that is not an amount (an error with a value)."""
    order = json.loads(unwrapped(SHOPIFY_GET))
    order.update(id=777001, total_price="12,50")
    event = stored(inbox["shop"], json.dumps(order).encode())
    assert event.status == "quarantined"
    assert {"pointer": "/total_price", "value": "12,50"}.items() <= event.errors[0].items()
    return event


@pytest.mark.parametrize("role", ["customer_service", "reviewer", "finance", "ops_admin"])
def test_other_roles_get_the_event_without_raw_fields_and_with_error_values_redacted(
    bad_total, api_client, role
):
    api_client.force_authenticate(make_user("someone", role))

    row = api_client.get(f"{URL}{bad_total.pk}/").json()
    listed = api_client.get(f"{URL}?status=quarantined").json()["results"]

    assert not {"raw_body", "headers", "fetched"} & set(row)
    assert (row["channel"], row["topic"], row["status"]) == ("shop", "orders/create", "quarantined")
    assert row["errors"][0] == {
        "pointer": "/total_price", "message": row["errors"][0]["message"], "value": "[redacted]"
    }  # fmt: skip
    assert "12,50" not in json.dumps(row) and "12,50" not in json.dumps(listed)


def test_the_data_steward_gets_the_raw_body_headers_and_error_values_of_one_event(
    bad_total, api_client, steward_user
):
    api_client.force_authenticate(steward_user)

    row = api_client.get(f"{URL}{bad_total.pk}/").json()

    assert row["raw_body"] == bytes(bad_total.raw_body).decode()
    assert "bob.norman@mail.example.com" in row["raw_body"]
    assert row["headers"]["x-shopify-topic"] == "orders/create"
    assert row["fetched"] is None
    assert row["errors"][0]["value"] == "12,50"


def test_the_data_steward_lists_events_without_their_raw_fields(
    bad_total, api_client, steward_user
):
    api_client.force_authenticate(steward_user)

    rows = api_client.get(URL).json()["results"]

    assert rows and all(not {"raw_body", "headers", "fetched"} & set(row) for row in rows)
    assert next(r for r in rows if r["id"] == bad_total.pk)["errors"][0]["value"] == "12,50"


def test_a_superuser_gets_the_raw_fields(bad_total, api_client):
    api_client.force_authenticate(make_user("root", superuser=True))

    row = api_client.get(f"{URL}{bad_total.pk}/").json()

    assert {"raw_body", "headers", "fetched"} <= set(row)
