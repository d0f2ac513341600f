"""Shopify's mandatory compliance webhooks, end to end through POST /webhooks/<slug>/, and the
inbox's retention of raw bodies.

The bodies are of the shape Shopify documents for ``customers/data_request``,
``customers/redact`` and ``shop/redact`` (shop_id, shop_domain, customer {id, email, phone},
orders_requested / orders_to_redact, data_request {id}); the orders they name are delivered
first from the vendor's own sample (order 450789469, Bob Norman of Louisville).
"""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from channels.models import ChannelKind, InboundEvent, InboundStatus
from channels.tasks import inbound_raw_purge_task
from orders.actors import Actor
from orders.models import Customer, Incident, IncidentCategory, Order, OrderEvent
from orders.transitions import order_event_record
from tests.channels.adapters.test_shopify import _sign
from tests.factories import CustomerFactory, SalesChannelFactory, make_order

SAMPLES = Path(settings.BASE_DIR).parent / "shared" / "samples"
SAMPLE = SAMPLES / "shopify" / "order_450789469_get.json"
SECRET = "shpss_compliance_secret"
SLUG = "bob-shop"
URL = f"/webhooks/{SLUG}/"
DOMAIN = "bob-shop.myshopify.com"
BOB = "bob.norman@mail.example.com"
BOB_ID = 207119551
ALICE = "alice.other@example.com"

_events = iter(range(1, 10**6))


def bob_order() -> dict[str, Any]:
    return json.loads(SAMPLE.read_bytes())["order"]


def alice_order() -> dict[str, Any]:
    """Another customer of the same shop: must come through every request untouched."""
    order = copy.deepcopy(bob_order())
    order["id"] = 450789470
    order["email"] = ALICE
    order["contact_email"] = ALICE
    order["phone"] = "+15550100"
    order["customer"] = {"id": 999001, "email": ALICE, "first_name": "Alice", "last_name": "Other"}
    for key in ("shipping_address", "billing_address"):
        order[key] = {
            **order[key],
            "first_name": "Alice",
            "last_name": "Other",
            "name": "Alice Other",
            "address1": "1 Elm Road",
            "zip": "40207",
            "phone": "+15550100",
        }
    return order


def data_request_body(request_id: int = 9999) -> dict[str, Any]:
    return {
        "shop_id": 954889,
        "shop_domain": DOMAIN,
        "orders_requested": [450789469],
        "customer": {"id": BOB_ID, "email": BOB, "phone": "+557734881234"},
        "data_request": {"id": request_id},
    }


def customer_redact_body() -> dict[str, Any]:
    return {
        "shop_id": 954889,
        "shop_domain": DOMAIN,
        "customer": {"id": BOB_ID, "email": BOB, "phone": "+557734881234"},
        "orders_to_redact": [450789469],
    }


def shop_redact_body() -> dict[str, Any]:
    return {"shop_id": 954889, "shop_domain": DOMAIN}


@pytest.fixture
def shop(db, tmp_path, settings):
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    settings.PRIVACY_EXPORT_DIR = str(tmp_path / "exports")
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return SalesChannelFactory(kind=ChannelKind.SHOPIFY, slug=SLUG, webhook_secret=SECRET)


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    def _deliver(payload: Any, topic: str, *, secret: str = SECRET):
        body = json.dumps(payload).encode()
        headers = {
            "HTTP_X_SHOPIFY_HMAC_SHA256": _sign(body, secret),
            "HTTP_X_SHOPIFY_TOPIC": topic,
            "HTTP_X_SHOPIFY_SHOP_DOMAIN": DOMAIN,
            "HTTP_X_SHOPIFY_API_VERSION": "2026-07",
            "HTTP_X_SHOPIFY_EVENT_ID": f"evt-{next(_events)}",
        }
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(URL, data=body, content_type="application/json", **headers)

    return _deliver


def send_email(to: str, subject: str, text: str) -> None:
    """What the file email backend writes for a notification (Django's own backend)."""
    backend = get_connection(
        "django.core.mail.backends.filebased.EmailBackend", file_path=settings.EMAIL_FILE_PATH
    )
    EmailMessage(subject, text, "shop@example.com", [to], connection=backend).send()


@pytest.fixture
def orders(shop, deliver):
    """Bob's and Alice's orders, delivered as Shopify would, and an email to each."""
    assert deliver(bob_order(), "orders/create").status_code == 202
    assert deliver(alice_order(), "orders/create").status_code == 202
    send_email(BOB, "Your order #1001 is confirmed", "Hello Bob Norman, Chestnut Street 92")
    send_email(ALICE, "Your order #1002 is confirmed", "Hello Alice Other, 1 Elm Road")
    bob = Order.objects.get(channel=shop, external_id="450789469")
    alice = Order.objects.get(channel=shop, external_id="450789470")
    assert bob.customer.email == BOB and alice.customer.email == ALICE
    return bob, alice


def event_of(topic: str) -> InboundEvent:
    return InboundEvent.objects.filter(topic=topic).latest("pk")


def mail_text() -> str:
    folder = Path(settings.EMAIL_FILE_PATH)
    return "".join(p.read_text() for p in sorted(folder.iterdir())) if folder.is_dir() else ""


def snapshot(order: Order) -> dict[str, Any]:
    order = Order.objects.get(pk=order.pk)
    return {
        "amounts": [
            order.subtotal,
            order.discount_total,
            order.shipping_total,
            order.tax_total,
            order.total,
            order.refunded_total,
            order.currency,
        ],
        "states": [order.status, order.payment_status],
        "lines": list(
            order.lines.values_list(
                "sku",
                "channel_sku",
                "quantity",
                "unit_price",
                "discount_allocation",
                "tax_allocation",
            )
        ),
        "addresses": [order.shipping_address, order.billing_address],
        "customer": list(
            Customer.objects.filter(pk=order.customer_id).values_list("email", "name", "phone")
        ),
    }


def stored_text() -> str:
    """Every place personal data could sit, as one text to search."""
    parts = [
        *(
            json.dumps(
                [o.shipping_address, o.billing_address, o.source, o.risk_signals, o.status_reason]
            )
            for o in Order.objects.all()
        ),
        *(f"{c.email} {c.name} {c.phone}" for c in Customer.objects.all()),
        *(json.dumps(e.data) for e in OrderEvent.objects.all()),
        *(
            bytes(e.raw_body).decode() + json.dumps([e.headers, e.fetched, e.errors])
            for e in InboundEvent.objects.all()
        ),
        *(i.summary + json.dumps(i.details) for i in Incident.objects.all()),
    ]
    return "\n".join(parts).lower()


# --- signatures ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("customers/data_request", data_request_body()),
        ("customers/redact", customer_redact_body()),
        ("shop/redact", shop_redact_body()),
    ],
)
def test_a_compliance_webhook_with_a_bad_signature_is_refused_401_and_changes_nothing(
    orders, deliver, topic, payload
):
    bob, _alice = orders
    before = snapshot(bob)
    answer = deliver(payload, topic, secret="not-the-app-secret")
    assert answer.status_code == 401
    assert not InboundEvent.objects.filter(topic=topic).exists()
    assert snapshot(bob) == before


# --- customers/data_request ----------------------------------------------------------------------
def test_a_data_request_exports_everything_on_the_customer_and_opens_an_incident_with_the_due_date(
    orders, deliver
):
    bob, alice = orders
    answer = deliver(data_request_body(), "customers/data_request")
    assert answer.status_code == 202

    event = event_of("customers/data_request")
    assert event.status == InboundStatus.PROCESSED, event.errors
    assert event.outcome == "privacy_export"
    assert not Incident.objects.filter(category=IncidentCategory.SCHEMA_INVALID).exists()
    incident = Incident.objects.get(category=IncidentCategory.PRIVACY_REQUEST)
    due = event.received_at + timedelta(days=30)
    assert f"{due:%Y-%m-%d}" in incident.summary
    assert incident.details["due_at"] == due.isoformat()
    assert BOB not in incident.summary + json.dumps(incident.details)

    path = Path(settings.PRIVACY_EXPORT_DIR) / incident.details["export_file"]
    assert path.is_file() and not str(path).startswith(str(settings.MEDIA_ROOT))
    export = json.loads(path.read_text())
    assert [c["email"] for c in export["customers"]] == [BOB]
    (order,) = export["orders"]
    assert order["external_id"] == "450789469"
    assert order["total"] == str(bob.total)
    assert order["shipping_address"]["line1"] == "Chestnut Street 92"
    assert [ln["quantity"] for ln in order["lines"]] == [ln.quantity for ln in bob.lines.all()]
    assert {e["action"] for e in order["events"]} >= {"received"}
    assert "450789469" in json.dumps([e["body"] for e in export["inbound_events"]])
    assert [m["subject"] for m in export["emails"]] == ["Your order #1001 is confirmed"]
    assert "shipments" in export["fulfillment"] and export["review_cases"] == []
    assert ALICE not in path.read_text() and "Elm Road" not in path.read_text()


def test_only_the_data_steward_downloads_the_export(
    orders, deliver, client, ops_user, cs_user, steward_user
):
    deliver(data_request_body(), "customers/data_request")
    url = Incident.objects.get(category=IncidentCategory.PRIVACY_REQUEST).details["download_url"]
    assert url.startswith("/admin/privacy-exports/")

    assert client.get(url).status_code == 302  # to the login page
    for refused in (cs_user, ops_user):
        client.force_login(refused)
        assert client.get(url).status_code == 403
    client.force_login(steward_user)
    answer = client.get(url)
    assert answer.status_code == 200
    assert json.loads(b"".join(answer.streaming_content))["customers"][0]["email"] == BOB
    assert client.get("/admin/privacy-exports/..%2Fsecret_key").status_code == 404


# --- customers/redact ----------------------------------------------------------------------------
def test_a_customer_redact_removes_their_personal_data_and_keeps_the_finance_record(
    orders, deliver
):
    bob, alice = orders
    before, alice_before = snapshot(bob), snapshot(alice)
    assert "chestnut street" in stored_text()

    assert deliver(customer_redact_body(), "customers/redact").status_code == 202

    event = event_of("customers/redact")
    assert event.status == InboundStatus.PROCESSED, event.errors
    assert event.outcome == "redacted"
    after = snapshot(bob)
    assert after["amounts"] == before["amounts"] and after["states"] == before["states"]
    assert after["lines"] == before["lines"]
    ((email, name, phone),) = after["customer"]
    assert email == "" and phone == "" and name.startswith("redacted customer ")
    shipping, billing = after["addresses"]
    assert shipping == {"name": name, "country_code": "US", "region_code": "KY"}
    assert billing["name"] == name and "line1" not in billing
    text = stored_text()
    for value in (BOB, "bob norman", "chestnut street", "+557734881234", "40202"):
        assert value not in text, value
    assert snapshot(alice) == alice_before
    assert ALICE in text and "elm road" in text

    order_body = InboundEvent.objects.get(order=bob)
    assert bytes(order_body.raw_body) == b"" and order_body.headers == {}
    assert bytes(InboundEvent.objects.get(order=alice).raw_body) != b""
    (audit,) = OrderEvent.objects.filter(order=bob, action="privacy_redacted")
    assert audit.data == {"request": "customer_redact", "pseudonym": name}
    assert "Bob Norman" not in mail_text() and "Alice Other" in mail_text()


def test_a_second_redact_request_changes_nothing(orders, deliver):
    bob, _alice = orders
    deliver(customer_redact_body(), "customers/redact")
    once = rows()
    deliver(customer_redact_body(), "customers/redact")  # a new event id: processed again
    assert InboundEvent.objects.filter(topic="customers/redact").count() == 2
    assert event_of("customers/redact").outcome == "redacted"
    assert rows() == once


def rows() -> list[Any]:
    """Orders, customers, audit events and the inbox (but the redact requests themselves)."""
    return [
        list(Order.objects.order_by("pk").values()),
        list(Customer.objects.order_by("pk").values()),
        list(OrderEvent.objects.order_by("pk").values()),
        list(
            InboundEvent.objects.exclude(topic="customers/redact")
            .order_by("pk")
            .values("pk", "raw_body", "headers", "fetched", "errors", "status")
        ),
        list(Incident.objects.order_by("pk").values()),
    ]


def test_a_redact_scrubs_audit_snapshots_through_the_one_legal_exception(orders, deliver):
    bob, _alice = orders
    snap = order_event_record(
        order_id=bob.pk,
        action="address_corrected",
        actor=Actor.system("test"),
        data={
            "ship_to": {"name": "Bob Norman", "line1": "Chestnut Street 92"},
            "note": "customer called",
            "reason": "Bob Norman asked for a new street",
        },
    )
    deliver(customer_redact_body(), "customers/redact")
    snap = OrderEvent.objects.get(pk=snap.pk)
    assert snap.action == "address_corrected" and snap.at is not None
    assert snap.data["ship_to"] == {"name": "[redacted]", "line1": "[redacted]"}
    assert snap.data["reason"] == "[redacted] asked for a new street"

    # The trail is append-only as before: without a permit, and for any column but data.
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        OrderEvent.objects.filter(pk=snap.pk).update(data={})
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO orders_orderevent_scrub_permit (event_id) VALUES (%s)", [snap.pk]
            )
        OrderEvent.objects.filter(pk=snap.pk).update(action="rewritten")
    assert OrderEvent.objects.get(pk=snap.pk).action == "address_corrected"


def test_a_customer_with_orders_on_another_channel_keeps_them(orders, deliver):
    bob, _alice = orders
    other = make_order(customer=bob.customer, pipeline=False)  # the same person, another store
    deliver(customer_redact_body(), "customers/redact")
    other.refresh_from_db()
    bob.refresh_from_db()
    assert other.customer.email == BOB and other.shipping_address["line1"] == "1 Main St"
    assert bob.customer_id != other.customer_id
    assert bob.customer.email == "" and bob.customer.name.startswith("redacted customer ")


# --- shop/redact ---------------------------------------------------------------------------------
def test_a_shop_redact_removes_every_customer_of_that_channel_and_no_other(orders, deliver):
    bob, alice = orders
    elsewhere = make_order(
        customer=CustomerFactory(email="carl@example.com", name="Carl Third"), pipeline=False
    )
    amounts = snapshot(bob)["amounts"], snapshot(alice)["amounts"]
    assert deliver(shop_redact_body(), "shop/redact").status_code == 202

    assert event_of("shop/redact").outcome == "redacted"
    assert (snapshot(bob)["amounts"], snapshot(alice)["amounts"]) == amounts
    text = stored_text()
    for value in (BOB, ALICE, "chestnut street", "elm road", "alice other", "bob norman"):
        assert value not in text, value
    assert (
        "carl@example.com" in text
        and "Carl Third" == Order.objects.get(pk=elsewhere.pk).customer.name
    )
    assert not any(bytes(e.raw_body) for e in InboundEvent.objects.filter(channel=bob.channel))
    assert mail_text() == ""
    names = {snapshot(o)["customer"][0][1] for o in (bob, alice)}
    assert len(names) == 2  # one pseudonym per customer: finance can still tell them apart
    assert sum((o.total for o in Order.objects.filter(channel=bob.channel)), Decimal(0)) == (
        amounts[0][4] + amounts[1][4]
    )


def test_a_request_for_another_shop_is_quarantined_and_redacts_nothing(orders, deliver, shop):
    bob, _alice = orders
    shop.api_base_url = f"https://{DOMAIN}/admin/api/2026-07"
    shop.save()
    before = snapshot(bob)
    deliver({**shop_redact_body(), "shop_domain": "someone-else.myshopify.com"}, "shop/redact")
    event = event_of("shop/redact")
    assert event.status == InboundStatus.QUARANTINED
    assert "another shop" in event.errors[0]["message"]
    assert snapshot(bob) == before


# --- retention -----------------------------------------------------------------------------------
def age(event: InboundEvent, days: int) -> None:
    then = timezone.now() - timedelta(days=days)
    InboundEvent.objects.filter(pk=event.pk).update(received_at=then, processed_at=then)


def test_retention_blanks_processed_inbox_bodies_older_than_the_setting(orders, deliver, settings):
    bob, alice = orders
    settings.INBOX_RAW_RETENTION_DAYS = 30
    old, recent = InboundEvent.objects.get(order=bob), InboundEvent.objects.get(order=alice)
    age(old, 31)
    age(recent, 29)
    deliver({"id": "not an order"}, "orders/create")  # quarantined, long ago
    quarantined = event_of("orders/create")
    assert quarantined.status == InboundStatus.QUARANTINED
    age(quarantined, 10)
    pending = InboundEvent.objects.create(
        channel=bob.channel,
        topic="orders/create",
        dedup_key="pending",
        raw_body=b"{}",
        headers={"x": "y"},
        correlation_id="c-1",
        received_at=timezone.now() - timedelta(days=99),
    )

    assert inbound_raw_purge_task() == 1
    old.refresh_from_db()
    assert bytes(old.raw_body) == b"" and old.headers == {} and old.fetched is None
    assert old.status == InboundStatus.PROCESSED and old.order_id == bob.pk
    for kept in (recent, quarantined, pending):
        kept.refresh_from_db()
        assert bytes(kept.raw_body) != b""
    assert inbound_raw_purge_task() == 0  # nothing left to do

    age(quarantined, 31)  # a quarantined body is kept for N days after its last quarantine
    assert inbound_raw_purge_task() == 1


def test_retention_zero_keeps_bodies_forever_and_beat_runs_it_daily(orders, settings):
    bob, _alice = orders
    settings.INBOX_RAW_RETENTION_DAYS = 0
    age(InboundEvent.objects.get(order=bob), 3650)
    assert inbound_raw_purge_task() == 0
    entry = next(
        e
        for e in settings.CELERY_BEAT_SCHEDULE.values()
        if e["task"] == "channels.inbound_raw_purge"
    )
    assert entry["schedule"] == 24 * 3600.0


def test_a_redact_blanks_labels_and_review_notes_and_keeps_the_shipping_record(orders, deliver):
    from fulfillment.models import Shipment, Warehouse
    from reviews.models import ReviewCase

    bob, _alice = orders
    warehouse = Warehouse.objects.create(code="KY1", country="US")
    shipment = Shipment.objects.create(
        order=bob, warehouse=warehouse, carrier="local", tracking_number="LOC123",
        label_pdf=b"%PDF-1.4 Bob Norman Chestnut Street 92", label_zpl="^XA^FDBob Norman^FS^XZ",
    )  # fmt: skip
    case = ReviewCase.objects.create(
        order=bob, reasons=["high-value order"], decision_note="Bob Norman called to confirm"
    )
    deliver(data_request_body(), "customers/data_request")
    export = json.loads(
        (
            Path(settings.PRIVACY_EXPORT_DIR)
            / Incident.objects.get(category="privacy_request").details["export_file"]
        ).read_text()
    )
    assert export["fulfillment"]["shipments"][0]["tracking_number"] == "LOC123"
    assert export["review_cases"][0]["decision_note"] == "Bob Norman called to confirm"

    deliver(customer_redact_body(), "customers/redact")
    shipment.refresh_from_db()
    case.refresh_from_db()
    assert shipment.label_pdf is None and shipment.label_zpl == ""
    assert (shipment.carrier, shipment.tracking_number) == ("local", "LOC123")
    assert case.decision_note == "[redacted] called to confirm"
    assert case.reasons == ["high-value order"]


def test_the_privacy_request_command_runs_the_same_export_and_redaction(orders, capsys):
    from django.core.management import CommandError, call_command

    bob, alice = orders
    call_command("privacy_request", "data_request", "--channel", SLUG, "--customer-email", BOB)
    incident = Incident.objects.get(category=IncidentCategory.PRIVACY_REQUEST)
    assert incident.details["export_file"] in capsys.readouterr().out
    assert Customer.objects.get(pk=bob.customer_id).email == BOB

    for _twice in range(2):
        call_command("privacy_request", "customer_redact", "--channel", SLUG, "--customer-email",
                     BOB)  # fmt: skip
    assert BOB not in stored_text() and ALICE in stored_text()
    assert OrderEvent.objects.filter(order=bob, action="privacy_redacted").count() == 1
    with pytest.raises(CommandError, match="--yes"):
        call_command("privacy_request", "shop_redact", "--channel", SLUG)
    with pytest.raises(CommandError, match="No channel"):
        call_command("privacy_request", "customer_redact", "--channel", "nope", "--order", "1")
    assert ALICE in stored_text()
