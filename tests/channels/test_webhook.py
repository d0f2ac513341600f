"""The custom storefront webhook, end to end: POST /webhooks/<slug>/ -> inbox -> order.

Every test drives the real endpoint with Django's test client and lets the after-commit doorbells
ring (tasks run in-process in tests), so what is asserted is what a storefront would cause.
"""

from __future__ import annotations

import copy
import json
import re
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from channels.models import (
    ChannelKind,
    InboundEvent,
    SalesChannel,
    SkuMapping,
)
from channels.services import inbound_event_process, inbound_event_replay
from channels.signatures import sign_custom
from channels.tasks import inbound_event_sweep_task
from config import correlation
from orders.actors import Actor
from orders.models import Incident, Order, OrderEvent, Product
from orders.services import order_transition
from tests.factories import SalesChannelFactory

SLUG = "acme-store"
SECRET = "acme-signing-secret-1"
EMAIL = "jane.doe@example.com"
URL = f"/webhooks/{SLUG}/"

T1 = "2026-11-02T10:00:00+00:00"
T2 = "2026-11-02T11:00:00+00:00"
T3 = "2026-11-02T12:00:00+00:00"


# --- building deliveries -------------------------------------------------------------------------
def canonical_order(external_id: str = "W-1001", *, updated_at: str | None = T1) -> dict[str, Any]:
    """A consistent two-line order: 2 x 12.50 + 1 x 20.00 - 2.00 + 5.00 shipping + 3.44 tax."""
    order: dict[str, Any] = {
        "schema_version": 1,
        "external_id": external_id,
        "order_number": "#1001",
        "currency": "USD",
        "placed_at": "2026-11-02T09:30:00+00:00",
        "financial_status": "pending",
        "payment_method": "card",
        "customer": {"external_id": "C-77", "email": EMAIL, "name": "Jane Doe"},
        "shipping_address": {
            "name": "Jane Doe",
            "line1": "1 Main St",
            "city": "Springfield",
            "region_code": "IL",
            "postal_code": "62701",
            "country_code": "US",
        },
        "billing_address": {"name": "Jane Doe", "line1": "9 Bank Rd", "country_code": "US"},
        "lines": [
            {
                "external_line_id": "L1",
                "channel_sku": "MUG-RED",
                "variant_ref": "v-101",
                "title": "Red mug",
                "quantity": 2,
                "unit_price": "12.50",
                "discount": "0.00",
                "tax": "2.00",
            },
            {
                "external_line_id": "L2",
                "channel_sku": "TEE-L",
                "variant_ref": "v-202",
                "title": "T-shirt L",
                "quantity": 1,
                "unit_price": "20.00",
                "discount": "2.00",
                "tax": "1.44",
            },
        ],
        "subtotal": "45.00",
        "discount_total": "2.00",
        "shipping_total": "5.00",
        "tax_total": "3.44",
        "total": "51.44",
    }
    if updated_at is not None:
        order["updated_at"] = updated_at
    return order


def with_unmapped_line(order: dict[str, Any], ref: str = "gid-777") -> dict[str, Any]:
    """The second line names a variant our catalogue does not know (no channel SKU)."""
    order = copy.deepcopy(order)
    order["lines"][1]["channel_sku"] = ""
    order["lines"][1]["variant_ref"] = ref
    return order


def with_first_line_quantity(order: dict[str, Any], quantity: int) -> dict[str, Any]:
    """Line 1 (12.50 each, 1.00 tax each) at ``quantity``, the totals following it."""
    order = copy.deepcopy(order)
    order["lines"][0]["quantity"] = quantity
    order["lines"][0]["tax"] = f"{quantity}.00"
    subtotal = Decimal("12.50") * quantity + Decimal("20.00")
    tax = Decimal(quantity) + Decimal("1.44")
    order["subtotal"] = f"{subtotal:.2f}"
    order["tax_total"] = f"{tax:.2f}"
    order["total"] = f"{subtotal - 2 + 5 + tax:.2f}"
    return order


def envelope(order: Any, *, event_id: str = "evt_1", topic: str = "order.created") -> bytes:
    return json.dumps({"id": event_id, "topic": topic, "order": order}).encode()


def signature(body: bytes, *, secret: str = SECRET, age_seconds: int = 0) -> str:
    return sign_custom(secret=secret, body=body, timestamp=int(time.time()) - age_seconds)


def post(client, body: bytes, *, url: str = URL, sig: str | None = "sign", **headers: str):
    if sig == "sign":
        sig = signature(body)
    if sig is not None:
        headers["HTTP_X_SIGNATURE"] = sig
    return client.post(url, data=body, content_type="application/json", **headers)


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    """POST a signed body and let every after-commit doorbell ring (processing, pipeline)."""

    def _deliver(body: bytes, **kwargs: Any):
        with django_capture_on_commit_callbacks(execute=True):
            return post(client, body, **kwargs)

    return _deliver


@pytest.fixture
def store(db) -> SalesChannel:
    return SalesChannelFactory(kind=ChannelKind.CUSTOM, slug=SLUG, webhook_secret=SECRET)


@pytest.fixture
def catalogue(db) -> dict[str, Product]:
    return {
        sku: Product.objects.create(sku=sku, title=title)
        for sku, title in [("MUG-RED", "Red mug"), ("TEE-L", "T-shirt, large")]
    }


@pytest.fixture
def storefront(store, catalogue):
    return store


def only_event() -> InboundEvent:
    return InboundEvent.objects.get()


def incidents(category: str) -> list[Incident]:
    return list(Incident.objects.filter(category=category).order_by("pk"))


def nothing_stored() -> bool:
    return not InboundEvent.objects.exists() and not Order.objects.exists()


# --- the happy path -------------------------------------------------------------------------------
def test_signed_delivery_is_accepted_202_with_event_and_correlation_ids(storefront, deliver):
    body = envelope(canonical_order(), event_id="evt_100")

    response = deliver(body)

    assert response.status_code == 202
    data = response.json()
    event = only_event()
    assert data == {
        "accepted": True,
        "event_id": event.pk,
        "correlation_id": event.correlation_id,
    }
    assert data["correlation_id"] == correlation.sign(f"{SLUG}:event:evt_100")


def test_inbox_keeps_the_raw_body_byte_for_byte_and_no_secret_header(storefront, deliver):
    order = canonical_order()
    # Odd spacing and key order on purpose: the stored body must be the bytes as sent.
    body = (
        b'{"topic":"order.created",  "id":"evt_raw",\n "order": '
        + json.dumps(order, indent=3, ensure_ascii=False).encode()
        + b"}"
    )

    response = deliver(
        body,
        HTTP_AUTHORIZATION="Bearer top-secret-token",
        HTTP_COOKIE="sessionid=session-secret",
        HTTP_X_API_KEY="api-key-secret",
        HTTP_X_STOREFRONT_REQUEST="req-42",
    )

    assert response.status_code == 202
    event = only_event()
    assert bytes(event.raw_body) == body
    assert event.body_bytes == len(body)
    assert event.source == "webhook"
    assert event.topic == "order.created"
    assert event.dedup_key == "event:evt_raw"
    assert all(key == key.lower() for key in event.headers)
    assert event.headers["x-storefront-request"] == "req-42"
    # The signature is not kept: with it, anyone who reads the inbox could replay the body.
    assert "x-signature" not in event.headers
    assert event.headers["content-type"] == "application/json"
    for secret_header in ("authorization", "cookie", "x-api-key"):
        assert secret_header not in event.headers
    stored = json.dumps(event.headers)
    for secret_value in ("top-secret-token", "session-secret", "api-key-secret", SECRET):
        assert secret_value not in stored


def test_processed_event_is_linked_to_the_order_it_created(storefront, deliver):
    deliver(envelope(canonical_order(), event_id="evt_1"))

    event = only_event()
    order = Order.objects.get()
    assert event.status == "processed"
    assert event.outcome == "created"
    assert event.order_id == order.pk
    assert event.attempts == 1
    assert event.errors == []
    assert event.processed_at is not None
    assert event.lease_until is None


def test_delivered_order_has_the_channel_amounts_lines_and_addresses(storefront, store, deliver):
    sent = canonical_order()
    deliver(envelope(sent))

    order = Order.objects.get()
    assert order.channel_id == store.pk
    assert order.external_id == "W-1001"
    assert order.order_number == "#1001"
    assert order.currency == "USD"
    assert (order.subtotal, order.discount_total, order.shipping_total) == (
        Decimal("45.00"),
        Decimal("2.00"),
        Decimal("5.00"),
    )
    assert (order.tax_total, order.total) == (Decimal("3.44"), Decimal("51.44"))
    assert order.refunded_total == Decimal("0")
    assert order.shipping_address == sent["shipping_address"]
    assert order.billing_address == sent["billing_address"]
    assert order.ship_to_country == "US"
    assert order.customer is not None and order.customer.email == EMAIL
    assert order.payment_method == "card"
    assert order.source_updated_at.isoformat() == T1
    assert order.status == "validated"
    assert order.payment_status == "pending"
    lines = [
        (ln.line_no, ln.external_line_id, ln.sku, ln.channel_sku, ln.variant_ref, ln.quantity,
         ln.unit_price, ln.discount_allocation, ln.tax_allocation)
        for ln in order.lines.order_by("line_no")
    ]  # fmt: skip
    assert lines == [
        (1, "L1", "MUG-RED", "MUG-RED", "v-101", 2, Decimal("12.50"), Decimal("0"), Decimal("2")),
        (2, "L2", "TEE-L", "TEE-L", "v-202", 1, Decimal("20"), Decimal("2"), Decimal("1.44")),
    ]


def test_order_timeline_names_the_channel_and_carries_the_event_correlation_id(storefront, deliver):
    deliver(envelope(canonical_order()))

    event = only_event()
    order = Order.objects.get()
    timeline = list(order.events.order_by("at", "id"))
    first = timeline[0]
    assert (first.action, first.actor_kind, first.actor_id) == ("received", "channel", SLUG)
    assert first.to_state == "received"
    assert order.correlation_id == event.correlation_id
    assert {e.correlation_id for e in timeline} == {event.correlation_id}
    assert [e.action for e in timeline][-1] == "validate"


# --- duplicates -----------------------------------------------------------------------------------
def test_duplicate_delivery_is_answered_200_and_not_processed_again(storefront, deliver):
    body = envelope(canonical_order(), event_id="evt_dup")
    assert deliver(body).status_code == 202
    order = Order.objects.get()
    events_before = order.events.count()

    again = deliver(body)
    # A re-delivery is signed afresh by the vendor: a new timestamp, the same event id.
    resigned = deliver(body, sig=signature(body, age_seconds=30))

    assert again.status_code == 200 and again.json() == {"duplicate": True}
    assert resigned.status_code == 200 and resigned.json() == {"duplicate": True}
    event = only_event()
    assert event.duplicate_deliveries == 2
    assert event.last_delivery_at is not None
    assert event.attempts == 1
    assert event.status == "processed"
    assert Order.objects.count() == 1
    assert order.lines.count() == 2
    assert order.events.count() == events_before


# --- refusals ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make_signature",
    [
        pytest.param(lambda body: signature(body, secret="not-the-secret"), id="wrong-secret"),
        pytest.param(lambda body: signature(body + b" "), id="signed-other-bytes"),
        pytest.param(lambda body: signature(body).split(",")[0] + ",v1=" + "0" * 64, id="forged"),
        pytest.param(lambda body: None, id="missing-header"),
        pytest.param(lambda body: "", id="empty-header"),
        pytest.param(lambda body: signature(body, age_seconds=301), id="older-than-5-minutes"),
        pytest.param(lambda body: signature(body, age_seconds=-400), id="from-the-future"),
        pytest.param(lambda body: "v1=" + signature(body).split("v1=")[1], id="no-timestamp"),
    ],
)
def test_delivery_without_a_valid_signature_is_refused_401_and_nothing_is_stored(
    storefront, deliver, make_signature
):
    body = envelope(canonical_order())

    response = deliver(body, sig=make_signature(body))

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    data = response.json()
    assert data["code"] == "signature_invalid"
    assert data["detail"]
    assert nothing_stored()


def test_signature_with_the_old_and_the_new_secret_is_accepted_while_rotating(storefront, deliver):
    body = envelope(canonical_order())
    old = signature(body, secret="previous-secret")
    new = signature(body)

    response = deliver(body, sig=f"{old},v1={new.split('v1=')[1]}")

    assert response.status_code == 202


def test_channel_without_a_secret_refuses_every_delivery(db, catalogue, deliver):
    SalesChannelFactory(kind=ChannelKind.CUSTOM, slug=SLUG, webhook_secret="")
    body = envelope(canonical_order())

    response = deliver(body, sig=sign_custom(secret="", body=body, timestamp=int(time.time())))

    assert response.status_code == 401
    assert response.json()["code"] == "signature_invalid"
    assert nothing_stored()


def test_unknown_channel_slug_is_404(storefront, deliver):
    response = deliver(envelope(canonical_order()), url="/webhooks/no-such-store/")

    assert response.status_code == 404
    assert response.json()["code"] == "unknown_channel"
    assert nothing_stored()


def test_inactive_channel_is_404_even_when_well_signed(storefront, store, deliver):
    SalesChannel.objects.filter(pk=store.pk).update(is_active=False)

    response = deliver(envelope(canonical_order()))

    assert response.status_code == 404
    assert response.json()["code"] == "unknown_channel"
    assert nothing_stored()


def test_body_over_the_size_limit_is_refused_413_and_nothing_is_stored(
    storefront, deliver, settings
):
    body = envelope(canonical_order())
    settings.WEBHOOK_MAX_BODY_BYTES = len(body) - 1

    response = deliver(body)

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert nothing_stored()


def test_body_at_the_size_limit_is_accepted(storefront, deliver, settings):
    body = envelope(canonical_order())
    settings.WEBHOOK_MAX_BODY_BYTES = len(body)

    assert deliver(body).status_code == 202


def test_get_is_405(storefront, client):
    response = client.get(URL)

    assert response.status_code == 405
    assert nothing_stored()


# --- quarantine -----------------------------------------------------------------------------------
def test_signed_malformed_json_is_accepted_and_quarantined_with_a_readable_error(
    storefront, deliver
):
    body = b'{"id": "evt_broken", "topic": "order.created", "order": {'

    response = deliver(body)

    assert response.status_code == 202
    event = only_event()
    assert event.dedup_key.startswith("sha256:")
    assert event.status == "quarantined"
    assert bytes(event.raw_body) == body
    assert len(event.errors) == 1
    error = event.errors[0]
    assert error["pointer"] == ""
    assert re.fullmatch(r"the body is not valid JSON at line 1 column \d+", error["message"])
    assert not Order.objects.exists()
    [incident] = incidents("schema_invalid")
    assert incident.status == "open"
    assert incident.details["inbound_event_id"] == event.pk
    assert "not valid JSON" in incident.summary
    assert incident.correlation_id == event.correlation_id


def test_missing_total_is_quarantined_with_pointer_message_and_value(storefront, deliver):
    order = canonical_order()
    del order["total"]

    response = deliver(envelope(order))

    assert response.status_code == 202
    event = only_event()
    assert event.status == "quarantined"
    assert {"pointer": "/order", "message": "missing required field(s): total"} == {
        k: event.errors[0][k] for k in ("pointer", "message")
    }
    assert "value" in event.errors[0]
    assert not Order.objects.exists()
    [incident] = incidents("schema_invalid")
    assert "missing required field(s): total" in incident.summary


def test_quantity_that_is_not_a_number_is_quarantined_with_pointer_message_and_value(
    storefront, deliver
):
    order = canonical_order()
    order["lines"][0]["quantity"] = "two"

    response = deliver(envelope(order))

    assert response.status_code == 202
    event = only_event()
    assert event.status == "quarantined"
    [error] = [e for e in event.errors if e["pointer"].endswith("/lines/0/quantity")]
    assert error["message"] == "must be of type integer"
    assert error["value"] == "two"
    assert not Order.objects.exists()
    assert len(incidents("schema_invalid")) == 1


def test_negative_amount_is_quarantined_not_left_failing(storefront, deliver):
    """The canonical schema lets "-5.00" through and the orders table refuses it: the event must
    still end quarantined with a readable error (pitfall 9), not crash its worker until the
    sweeper gives up."""
    order = canonical_order()
    order["shipping_total"] = "-5.00"
    order["total"] = "41.44"

    response = deliver(envelope(order))

    assert response.status_code == 202
    event = only_event()
    assert event.status == "quarantined"
    assert any("shipping_total" in e["pointer"] for e in event.errors), event.errors
    assert not Order.objects.exists()


def test_quantity_beyond_what_a_line_can_hold_is_quarantined_on_every_database(storefront, deliver):
    """Ten billion mugs: the integer column overflows on PostgreSQL. The event must end
    quarantined with a pointer to the quantity, not crash its worker."""
    order = canonical_order()
    order["lines"][1]["quantity"] = 10**10

    response = deliver(envelope(order))

    assert response.status_code == 202
    event = only_event()
    assert event.status == "quarantined"
    assert any(e["pointer"].endswith("/lines/1/quantity") for e in event.errors), event.errors
    assert not Order.objects.exists()


def test_amount_that_is_not_a_decimal_is_quarantined_with_a_pointer_to_it(storefront, deliver):
    order = canonical_order()
    order["lines"][0]["unit_price"] = "12,50"

    deliver(envelope(order))

    event = only_event()
    assert event.status == "quarantined"
    [error] = event.errors
    assert error["pointer"].endswith("/lines/0/unit_price"), error
    assert error["value"] == "12,50"


def _email_as_a_list(order):
    order["customer"]["email"] = [EMAIL]


def _email_first_in_the_shipping_address(order):
    order["shipping_address"] = {"email": EMAIL, **order["shipping_address"]}


def _customer_first_and_total_missing(order):
    del order["total"]
    rest = dict(order)
    order.clear()
    order.update({"customer": rest.pop("customer"), **rest})


def _customer_is_just_an_email(order):
    order["customer"] = EMAIL


def _address_without_country(order):
    del order["shipping_address"]["country_code"]


@pytest.mark.parametrize(
    "break_order",
    [
        _email_as_a_list,
        _email_first_in_the_shipping_address,
        _customer_first_and_total_missing,
        _customer_is_just_an_email,
        _address_without_country,
    ],
)
def test_personal_data_never_appears_in_quarantine_errors_or_incident(
    storefront, deliver, break_order
):
    """Errors are stored, listed in the API and logged: a value that is (or holds) an email,
    a name or a street is redacted, whatever the key order or shape of the bad payload."""
    order = canonical_order()
    break_order(order)

    deliver(envelope(order))

    event = only_event()
    assert event.status == "quarantined"
    assert event.errors and all({"pointer", "message", "value"} <= set(e) for e in event.errors)
    [incident] = incidents("schema_invalid")
    for where, text in [
        ("errors", json.dumps(event.errors, ensure_ascii=False)),
        ("incident summary", incident.summary),
        ("incident details", json.dumps(incident.details, ensure_ascii=False)),
    ]:
        for personal in (EMAIL, "Jane Doe", "Main St"):
            assert personal not in text, f"{personal!r} in the {where}: {text}"


def test_email_under_a_personal_data_key_is_shown_redacted(storefront, deliver):
    order = canonical_order()
    order["customer"]["email"] = [EMAIL]

    deliver(envelope(order))

    [error] = [e for e in only_event().errors if e["pointer"].endswith("/customer/email")]
    assert error["value"] == "[redacted]"
    assert error["message"] == "must be of type string"


# --- replay ---------------------------------------------------------------------------------------
@pytest.fixture
def misconfigured_store(store, catalogue):
    """A rounding rule mistyped in the admin: every payload is fine, normalizing is not."""
    SalesChannel.objects.filter(pk=store.pk).update(rounding="HALF_UP")
    return store


def test_quarantined_event_is_replayed_after_the_channel_is_fixed(
    misconfigured_store, deliver, django_capture_on_commit_callbacks
):
    deliver(envelope(canonical_order()))
    event = only_event()
    assert event.status == "quarantined"
    assert "rounding" in event.errors[0]["message"]
    assert not Order.objects.exists()
    [incident] = incidents("schema_invalid")

    SalesChannel.objects.filter(pk=misconfigured_store.pk).update(rounding="ROUND_HALF_UP")
    with django_capture_on_commit_callbacks(execute=True):
        replayed = inbound_event_replay(event_id=event.pk, actor=Actor.system("test"))

    assert replayed.status == "replayed"
    assert replayed.outcome == "created"
    assert replayed.errors == []
    order = Order.objects.get()
    assert replayed.order_id == order.pk
    assert order.status == "validated"
    assert order.total == Decimal("51.44")
    assert order.correlation_id == event.correlation_id
    incident.refresh_from_db()
    assert incident.status == "resolved"
    assert "Replayed successfully" in incident.resolution_note


def test_replaying_an_unfixed_event_keeps_it_quarantined_and_bumps_its_incident(
    misconfigured_store, deliver
):
    deliver(envelope(canonical_order()))
    event = only_event()

    again = inbound_event_replay(event_id=event.pk, actor=Actor.system("test"))

    assert again.status == "quarantined"
    assert again.errors and "rounding" in again.errors[0]["message"]
    event.refresh_from_db()
    assert event.attempts == 2
    [incident] = incidents("schema_invalid")
    assert incident.status == "open"
    assert incident.occurrence_count == 2
    assert not Order.objects.exists()


def test_replaying_a_replayed_event_changes_nothing(
    misconfigured_store, deliver, django_capture_on_commit_callbacks
):
    deliver(envelope(canonical_order()))
    event = only_event()
    SalesChannel.objects.filter(pk=misconfigured_store.pk).update(rounding="ROUND_HALF_UP")
    with django_capture_on_commit_callbacks(execute=True):
        inbound_event_replay(event_id=event.pk, actor=Actor.system("test"))
    before = (OrderEvent.objects.count(), Incident.objects.count(), InboundEvent.objects.get())

    with django_capture_on_commit_callbacks(execute=True):
        again = inbound_event_replay(event_id=event.pk, actor=Actor.system("test"))

    assert again.status == "replayed"
    after = InboundEvent.objects.get()
    assert (after.attempts, after.processed_at) == (before[2].attempts, before[2].processed_at)
    assert (OrderEvent.objects.count(), Incident.objects.count()) == before[:2]
    assert Order.objects.count() == 1


def test_replaying_a_processed_event_changes_nothing(
    storefront, deliver, django_capture_on_commit_callbacks
):
    deliver(envelope(canonical_order()))
    event = only_event()
    events_before = OrderEvent.objects.count()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = inbound_event_replay(event_id=event.pk, actor=Actor.system("test"))

    assert callbacks == []
    assert again.status == "processed"
    fresh = only_event()
    assert (fresh.attempts, fresh.processed_at, fresh.outcome) == (
        event.attempts,
        event.processed_at,
        "created",
    )
    assert OrderEvent.objects.count() == events_before


# --- unmapped SKUs -----------------------------------------------------------------------------
def test_unmapped_sku_holds_the_order_until_a_mapping_is_added_and_the_hold_released(
    storefront, store, catalogue, deliver, django_capture_on_commit_callbacks
):
    deliver(envelope(with_unmapped_line(canonical_order(), "gid-777")))

    event = only_event()
    order = Order.objects.get()
    assert event.status == "processed"
    assert order.status == "on_hold"
    assert "gid-777" in order.status_reason
    assert [ln.sku for ln in order.lines.order_by("line_no")] == ["MUG-RED", ""]
    [incident] = incidents("sku_unmapped")
    assert incident.order_id == order.pk
    assert "gid-777" in incident.summary
    assert incident.details["unmapped"] == ["gid-777"]

    SkuMapping.objects.create(channel=store, external_ref="gid-777", product=catalogue["TEE-L"])
    with django_capture_on_commit_callbacks(execute=True):
        order_transition(order_id=order.pk, transition="release_hold", actor=Actor.system("cs"))

    order.refresh_from_db()
    assert order.status == "validated"
    assert [ln.sku for ln in order.lines.order_by("line_no")] == ["MUG-RED", "TEE-L"]
    resolved = order.events.get(action="sku_resolved")
    assert resolved.data == {"lines": {"2": "TEE-L"}}


def test_explicit_mapping_wins_over_an_identical_catalogue_sku(
    storefront, store, catalogue, deliver
):
    SkuMapping.objects.create(channel=store, external_ref="v-101", product=catalogue["TEE-L"])

    deliver(envelope(canonical_order()))

    assert [ln.sku for ln in Order.objects.get().lines.order_by("line_no")] == ["TEE-L", "TEE-L"]


# --- updates -------------------------------------------------------------------------------------
def snapshot(order: Order) -> dict[str, Any]:
    order.refresh_from_db()
    return {
        "amounts": [order.subtotal, order.discount_total, order.shipping_total, order.tax_total,
                    order.total],
        "lines": [(ln.external_line_id, ln.quantity, ln.unit_price, ln.tax_allocation)
                  for ln in order.lines.order_by("line_no")],
        "shipping_address": order.shipping_address,
        "source_updated_at": order.source_updated_at.isoformat(),
    }  # fmt: skip


def test_newer_update_rewrites_a_received_order_and_is_audited(
    storefront, client, deliver, django_capture_on_commit_callbacks
):
    # The order is in and its checks have not run yet (their message is still on its way).
    with django_capture_on_commit_callbacks(execute=False):
        post(client, envelope(canonical_order(updated_at=T1), event_id="evt_c"))
    with django_capture_on_commit_callbacks(execute=False):
        inbound_event_process(event_id=only_event().pk)
    order = Order.objects.get()
    assert order.status == "received"

    update = with_first_line_quantity(canonical_order(updated_at=T2), 3)
    update["shipping_address"]["line1"] = "2 Elm St"
    response = deliver(envelope(update, event_id="evt_u", topic="order.updated"))

    assert response.status_code == 202
    event = InboundEvent.objects.get(dedup_key="event:evt_u")
    assert (event.status, event.outcome, event.order_id) == ("processed", "updated", order.pk)
    assert Order.objects.count() == 1
    state = snapshot(order)
    assert state["lines"][0] == ("L1", 3, Decimal("12.50"), Decimal("3.00"))
    assert state["amounts"][0] == Decimal("57.50") and state["amounts"][4] == Decimal("64.94")
    assert state["shipping_address"]["line1"] == "2 Elm St"
    assert state["source_updated_at"] == T2
    audit = order.events.get(action="channel_update")
    assert (audit.actor_kind, audit.actor_id) == ("channel", SLUG)
    assert audit.correlation_id == event.correlation_id
    assert audit.data["applied"] is True
    assert {"lines", "subtotal", "tax_total", "total", "shipping_address"} <= set(
        audit.data["changed"]
    )


def test_newer_update_of_an_on_hold_order_is_applied_and_its_checks_run_again(storefront, deliver):
    deliver(envelope(with_unmapped_line(canonical_order(updated_at=T1)), event_id="evt_c"))
    order = Order.objects.get()
    assert order.status == "on_hold"

    fixed = canonical_order(updated_at=T2)  # the storefront now sends its SKU on line 2
    deliver(envelope(fixed, event_id="evt_u", topic="order.updated"))

    order.refresh_from_db()
    assert order.status == "validated"
    assert [ln.sku for ln in order.lines.order_by("line_no")] == ["MUG-RED", "TEE-L"]
    assert order.events.filter(action="channel_update", data__applied=True).count() == 1
    assert order.events.filter(action="release_hold").count() == 1


def test_update_after_validation_is_not_applied_and_raises_an_incident(storefront, deliver):
    deliver(envelope(canonical_order(updated_at=T1), event_id="evt_c"))
    order = Order.objects.get()
    assert order.status == "validated"
    before = snapshot(order)["lines"]

    changed = with_first_line_quantity(canonical_order(updated_at=T2), 5)
    deliver(envelope(changed, event_id="evt_u", topic="order.updated"))

    assert snapshot(order)["lines"] == before
    assert order.status == "validated"
    audit = order.events.get(action="channel_update")
    assert audit.data["applied"] is False and "lines" in audit.data["changed"]
    [incident] = incidents("other")
    assert incident.order_id == order.pk
    assert "lines" in incident.summary


@pytest.mark.parametrize("delivery_order", ["oldest_first", "newest_first"])
def test_older_update_never_overwrites_a_newer_one_whatever_the_delivery_order(
    storefront, deliver, delivery_order
):
    # Kept on hold (an unmapped line) so that the channel's updates may still rewrite it.
    created = with_unmapped_line(canonical_order(updated_at=T1))
    middle = with_first_line_quantity(with_unmapped_line(canonical_order(updated_at=T2)), 3)
    newest = with_first_line_quantity(with_unmapped_line(canonical_order(updated_at=T3)), 4)
    newest["shipping_address"]["line1"] = "3 Oak Ave"
    deliver(envelope(created, event_id="evt_c"))
    updates = [("evt_t2", middle), ("evt_t3", newest)]
    if delivery_order == "newest_first":
        updates.reverse()

    for event_id, payload in updates:
        response = deliver(envelope(payload, event_id=event_id, topic="order.updated"))
        assert response.status_code == 202

    order = Order.objects.get()
    state = snapshot(order)
    assert state["source_updated_at"] == T3
    assert state["lines"][0] == ("L1", 4, Decimal("12.50"), Decimal("4.00"))
    assert state["amounts"][4] == Decimal(newest["total"])
    assert state["shipping_address"]["line1"] == "3 Oak Ave"
    stale = order.events.filter(action="stale_update_ignored")
    t2_event = InboundEvent.objects.get(dedup_key="event:evt_t2")
    if delivery_order == "newest_first":
        assert (t2_event.status, t2_event.outcome) == ("processed", "stale")
        [ignored] = stale
        assert ignored.data == {"incoming_updated_at": T2, "held": T3}
        assert ignored.actor_kind == "channel"
    else:
        assert t2_event.outcome == "updated"
        assert not stale.exists()


def test_same_updated_at_again_is_marked_duplicate_and_changes_nothing(storefront, deliver):
    deliver(envelope(canonical_order(updated_at=T1), event_id="evt_c"))
    order = Order.objects.get()
    events_before = order.events.count()

    same = canonical_order(updated_at=T1)
    response = deliver(envelope(same, event_id="evt_again", topic="order.updated"))

    assert response.status_code == 202
    event = InboundEvent.objects.get(dedup_key="event:evt_again")
    assert (event.status, event.outcome, event.order_id) == ("duplicate", "unchanged", order.pk)
    assert order.events.count() == events_before


# --- state facts from the channel -----------------------------------------------------------------
def test_channel_cancellation_cancels_the_order(storefront, deliver):
    deliver(envelope(canonical_order(updated_at=T1), event_id="evt_c"))

    cancelled = canonical_order(updated_at=T2)
    response = deliver(envelope(cancelled, event_id="evt_x", topic="order.cancelled"))

    assert response.status_code == 202
    order = Order.objects.get()
    assert order.status == "cancelled"
    assert order.status_reason == "Cancelled in the sales channel"
    event = InboundEvent.objects.get(dedup_key="event:evt_x")
    assert (event.status, event.outcome) == ("processed", "cancelled")
    cancel = order.events.get(action="cancel")
    assert (cancel.actor_kind, cancel.actor_id, cancel.from_state) == ("channel", SLUG, "validated")


def test_paid_financial_status_marks_the_payment_paid(storefront, deliver):
    order_data = canonical_order()
    order_data["financial_status"] = "paid"

    deliver(envelope(order_data))

    order = Order.objects.get()
    assert order.payment_status == "paid"
    assert order.events.filter(action="capture_payment", actor_kind="channel").count() == 1


def test_partial_refund_from_the_channel_sets_the_refunded_total(storefront, deliver):
    paid = canonical_order(updated_at=T1)
    paid["financial_status"] = "paid"
    deliver(envelope(paid, event_id="evt_paid"))
    refunded = canonical_order(updated_at=T2)
    refunded.update(financial_status="partially_refunded", refunded_total="10.00")
    more = canonical_order(updated_at=T3)
    more.update(financial_status="partially_refunded", refunded_total="15.00")

    deliver(envelope(refunded, event_id="evt_r1", topic="order.updated"))
    order = Order.objects.get()
    assert (order.payment_status, order.refunded_total) == ("partially_refunded", Decimal("10"))
    deliver(envelope(more, event_id="evt_r2", topic="order.updated"))

    order.refresh_from_db()
    assert (order.payment_status, order.refunded_total) == ("partially_refunded", Decimal("15"))
    amounts = [e.data["amount"] for e in order.events.filter(action="refund_partially")]
    assert amounts == ["10.00", "5.00"]


def test_channel_total_that_does_not_add_up_holds_the_order_and_is_not_fixed(storefront, deliver):
    order_data = canonical_order()
    order_data["total"] = "99.99"

    deliver(envelope(order_data))

    event = only_event()
    order = Order.objects.get()
    assert event.status == "processed"
    assert order.status == "on_hold"
    assert order.total == Decimal("99.99")
    [incident] = incidents("schema_invalid")
    assert incident.order_id == order.pk
    assert incident.details["check"] == "totals"
    assert incident.details["mismatches"]["total"] == {"expected": "99.99", "computed": "51.44"}


# --- the sweeper ---------------------------------------------------------------------------------
def test_sweeper_processes_an_event_whose_message_was_lost(
    storefront, client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as doorbells:
        response = post(client, envelope(canonical_order()))
    assert response.status_code == 202 and len(doorbells) == 1  # the message that gets lost
    event = only_event()
    assert event.status == "received"

    with django_capture_on_commit_callbacks(execute=True):
        too_early = inbound_event_sweep_task()
    assert too_early == 0
    assert only_event().status == "received"

    InboundEvent.objects.filter(pk=event.pk).update(
        received_at=timezone.now() - timedelta(minutes=10)
    )
    with django_capture_on_commit_callbacks(execute=True):
        swept = inbound_event_sweep_task()

    assert swept == 1
    event.refresh_from_db()
    assert event.status == "processed"
    assert Order.objects.get().pk == event.order_id
    with django_capture_on_commit_callbacks(execute=True):
        assert inbound_event_sweep_task() == 0


def test_sweeper_leaves_an_event_another_worker_holds(
    storefront, client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        post(client, envelope(canonical_order()))
    InboundEvent.objects.update(
        received_at=timezone.now() - timedelta(minutes=10),
        lease_until=timezone.now() + timedelta(minutes=2),
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert inbound_event_sweep_task() == 0

    assert only_event().status == "received"
    assert not Order.objects.exists()


# --- metrics --------------------------------------------------------------------------------------
def metric(client, name: str, **labels: str) -> float:
    text = client.get("/metrics").content.decode()
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))  # exposition order
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_deliveries_duplicates_refusals_and_quarantines(storefront, client, deliver):
    topic = {"channel": SLUG, "topic": "order.created"}
    names = {
        "received": ("ingest_events_received_total", topic),
        "duplicates": ("ingest_duplicate_deliveries_total", topic),
        "signature": ("ingest_signature_failures_total", {"channel": SLUG}),
        "quarantined": ("ingest_events_quarantined_total", topic),
        "created": ("ingest_events_processed_total", {**topic, "outcome": "created"}),
        "too_large": ("ingest_payload_too_large_total", {"channel": SLUG}),
    }
    before = {key: metric(client, name, **labels) for key, (name, labels) in names.items()}

    good = envelope(canonical_order("W-1"), event_id="evt_m1")
    deliver(good)
    deliver(good)
    deliver(good, sig=signature(good, secret="wrong"))
    broken = canonical_order("W-2")
    del broken["total"]
    deliver(envelope(broken, event_id="evt_m2"))

    after = {key: metric(client, name, **labels) for key, (name, labels) in names.items()}
    assert {key: after[key] - before[key] for key in names} == {
        "received": 2.0,
        "duplicates": 1.0,
        "signature": 1.0,
        "quarantined": 1.0,
        "created": 1.0,
        "too_large": 0.0,
    }


def test_a_worker_whose_event_was_taken_over_meanwhile_leaves_the_others_outcome(
    storefront, client, caplog
):
    # A worker that ran past its lease: another took the event and recorded it first. Its final
    # state is one UPDATE while the event is still `received`, so it writes nothing over it.
    assert post(client, envelope(canonical_order(), event_id="evt_taken")).status_code == 202
    event = only_event()
    moved: list[int] = []

    def another_worker_first(execute, sql, params, many, context):  # just before our final UPDATE
        if not moved and sql.startswith('UPDATE "channels_inboundevent" SET "status"'):
            moved.append(event.pk)
            InboundEvent.objects.filter(pk=event.pk).update(status="processed")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(another_worker_first):
        assert inbound_event_process(event_id=event.pk) is None
    assert moved == [event.pk]
    event.refresh_from_db()
    assert event.status == "processed" and event.outcome == "" and event.order_id is None
    assert Order.objects.filter(channel=storefront, external_id="W-1001").count() == 1
    assert "inbound.taken_over" in caplog.text
