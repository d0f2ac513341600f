"""EasyPost tracker webhooks, end to end: POST /webhooks/carriers/easypost/ -> the carriers'
inbox -> tracking. Every test drives the real endpoint with Django's test client and lets the
after-commit doorbells ring (tasks run in-process in tests), fed EasyPost's own sample body and
HMAC test vector as they are."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import OperationalError, connection
from django.test import Client
from django.utils import timezone

from fulfillment.carrier_events import (
    carrier_event_process,
    carrier_event_raw_purge,
    carrier_event_replay,
)
from fulfillment.models import CarrierInboundEvent, Shipment
from fulfillment.models import TrackingEvent as TrackingEventRow
from fulfillment.shipments import shipment_buy_label, shipment_ship, shipments_create_for_order
from fulfillment.tasks import carrier_event_sweep_task
from orders.actors import Actor
from orders.models import Incident
from tests.channels.test_concurrency import sessions_at_once
from tests.concurrency import race
from tests.factories import make_order, make_user
from tests.fulfillment.helpers import add_warehouse, stock

pytestmark = pytest.mark.django_db

SAMPLES = Path(django_settings.BASE_DIR).parent / "shared" / "samples" / "easypost"
URL = "/webhooks/carriers/easypost/"
OPS = Actor.system("test")
# The sample's parcel: EasyPost's tracker for tracking code "1", handed over before its first
# scan (2024-07-31 15:00 UTC).
HANDED_OVER = datetime(2024, 7, 31, 14, 0, tzinfo=UTC)


def sample_bytes(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def vector() -> dict[str, Any]:
    return json.loads(sample_bytes("webhook_hmac_test_vector.json"))


def signed_body() -> bytes:
    # SOURCES.md: EasyPost signed the fixture's bytes without the newline the copy ends with.
    raw = sample_bytes("event_tracker_updated_webhook_body.json")
    assert raw.endswith(b"}\n")
    return raw[:-1]


@pytest.fixture
def secret(settings) -> str:
    settings.EASYPOST_WEBHOOK_SECRET = vector()["secret"]
    return settings.EASYPOST_WEBHOOK_SECRET


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    def post(body: bytes, signature: str | None = None, **headers: str) -> Any:
        if signature is None:
            signature = vector()["hmac_signature"]
        if signature:
            headers["HTTP_X_HMAC_SIGNATURE"] = signature
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(URL, data=body, content_type="application/json", **headers)

    return post


def easypost_parcel() -> Shipment:
    """A shipped parcel that EasyPost tracks under the sample's tracking code."""
    add_warehouse("A")
    stock("MUG", "A", 5)
    order = make_order(paid=True, lines=[("MUG", 1, "10.00")])
    [draft] = shipments_create_for_order(order_id=order.pk, actor=OPS)
    parcel = shipment_ship(shipment_id=shipment_buy_label(shipment_id=draft.pk, actor=OPS).pk,
                           actor=OPS)  # fmt: skip
    # Test data: the label was EasyPost's, sold before the sample's first scan.
    Shipment.objects.filter(pk=parcel.pk).update(
        carrier="easypost", tracking_number="1", shipped_at=HANDED_OVER, last_event_at=HANDED_OVER
    )
    parcel.refresh_from_db()
    return parcel


# --- signature -------------------------------------------------------------------------------
def test_the_vendor_vector_is_accepted_and_drives_the_parcel_in_transit(secret, deliver):
    parcel = easypost_parcel()
    response = deliver(signed_body())
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["status"] == "accepted"
    event = CarrierInboundEvent.objects.get(pk=answer["event_id"])
    assert answer["correlation_id"] == event.correlation_id
    assert event.dedup_key == "easypost:evt_1@2024-08-02T19:26:52.000Z"
    assert (event.topic, event.tracking_number) == ("tracker.updated", "1")
    assert bytes(event.body) == signed_body()  # the raw body, as it came
    assert event.status == "processed" and event.shipment_id == parcel.pk
    assert "shipped -> in_transit" in event.outcome

    parcel.refresh_from_db()
    assert (parcel.status, parcel.tracking_status) == ("in_transit", "in_transit")
    assert parcel.carrier_status == "in_transit/arrived_at_facility"
    assert parcel.carrier_name == "FedEx"
    assert parcel.estimated_delivery_from == datetime(2024, 8, 5, tzinfo=UTC)
    kept = TrackingEventRow.objects.filter(shipment=parcel, source="webhook").order_by(
        "occurred_at"
    )
    assert kept.count() == 7  # every one of the sample's scans
    assert all(row.inbound_id == event.pk for row in kept)
    assert [r.status for r in kept][:2] == ["pre_transit", "in_transit"]
    last = kept.last()
    assert (last.message, last.location, last.raw_status) == (
        "Arrived at FedEx location", "EDISON, NJ, US", "AR",
    )  # fmt: skip
    assert last.applied and last.effect == "advanced shipped -> in_transit"


@pytest.mark.parametrize(
    "signature",
    [
        "",  # missing
        "hmac-sha256-hex=" + "0" * 64,  # wrong
        "38f3f53c103713df81616a0a186d77141957323ec21d5fe9363db93840f527db",  # no prefix
    ],
)
def test_a_missing_or_wrong_signature_is_refused_401_and_nothing_is_kept(
    secret, deliver, signature
):
    response = deliver(signed_body(), signature=signature)
    assert response.status_code == 401
    assert response.json()["code"] == "signature_invalid"
    assert not CarrierInboundEvent.objects.exists()


def test_a_tampered_body_is_refused(secret, deliver):
    response = deliver(signed_body().replace(b"in_transit", b"delivered", 1))
    assert response.status_code == 401


def test_without_a_configured_secret_every_delivery_is_refused(settings, deliver):
    settings.EASYPOST_WEBHOOK_SECRET = ""
    response = deliver(signed_body())
    assert response.status_code == 401
    assert response.json()["code"] == "not_configured"
    assert not CarrierInboundEvent.objects.exists()


def test_only_post_is_accepted_and_unknown_carriers_are_404(secret, client):
    response = client.get(URL)
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert response.json()["code"] == "method_not_allowed"
    assert client.post("/webhooks/carriers/ups/", data=b"{}",
                       content_type="application/json").status_code == 404  # fmt: skip


def test_an_oversized_body_is_refused_413_before_the_signature(secret, deliver, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 1000
    response = deliver(signed_body())
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_a_content_length_that_is_not_a_number_is_400(secret, client):
    response = client.post(URL, data=signed_body(), content_type="application/json",
                           CONTENT_LENGTH="12abc")  # fmt: skip
    assert response.status_code == 400
    assert response.json()["code"] == "bad_content_length"


def test_a_chunked_body_without_a_length_needs_a_server_that_can_read_it(secret, client):
    response = client.generic(
        "POST", URL, data=b"", content_type="application/json", HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
    )  # fmt: skip
    assert response.status_code == 411


def test_a_database_that_cannot_take_the_row_answers_503(secret, deliver):
    # The database unreachable, as a dropped connection makes it: every query fails.
    def refuse(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    with connection.execute_wrapper(refuse):
        response = deliver(signed_body())
    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
    assert not CarrierInboundEvent.objects.exists()
    assert deliver(signed_body()).json()["status"] == "accepted"  # the carrier's retry


# --- duplicates, quarantine, replay ----------------------------------------------------------
def test_a_redelivery_is_answered_duplicate_and_not_processed_again(secret, deliver):
    parcel = easypost_parcel()
    first = deliver(signed_body()).json()
    rows = TrackingEventRow.objects.filter(shipment=parcel).count()
    again = deliver(signed_body())
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "event_id": first["event_id"]}
    event = CarrierInboundEvent.objects.get()
    assert (event.duplicate_deliveries, event.attempts) == (1, 1)
    assert TrackingEventRow.objects.filter(shipment=parcel).count() == rows


def test_an_unknown_parcel_is_quarantined_then_replayed_once_the_shipment_exists(secret, deliver):
    answer = deliver(signed_body())
    assert answer.status_code == 200  # signed: the carrier gets its 200 all the same
    event = CarrierInboundEvent.objects.get(pk=answer.json()["event_id"])
    assert event.status == "quarantined"
    [error] = event.errors
    assert error["pointer"] == "/result/tracking_code"
    assert "no easypost shipment has tracking number '1'" in error["message"]
    assert "replay" in error["message"]
    incident = Incident.objects.get(category="schema_invalid")
    assert incident.summary.startswith("easypost tracker.updated #")
    assert "no easypost shipment has tracking number '1'" in incident.summary
    assert incident.details["carrier_event_id"] == event.pk

    # Replaying before the fix changes nothing but the errors; the same incident is bumped.
    assert carrier_event_replay(event_id=event.pk, actor=OPS).status == "quarantined"
    assert Incident.objects.get(pk=incident.pk).occurrence_count == 2

    parcel = easypost_parcel()
    replayed = carrier_event_replay(event_id=event.pk, actor=OPS)
    assert replayed.status == "processed" and replayed.errors == []
    assert replayed.shipment_id == parcel.pk
    parcel.refresh_from_db()
    assert parcel.status == "in_transit"
    assert Incident.objects.get(pk=incident.pk).status == "resolved"
    # Idempotent: a second replay of a processed event leaves it as it is.
    assert carrier_event_replay(event_id=event.pk, actor=OPS).status == "processed"
    assert TrackingEventRow.objects.filter(shipment=parcel, source="webhook").count() == 7


def test_a_signed_body_that_is_not_json_is_quarantined_with_the_reason(settings, deliver):
    import hashlib
    import hmac

    settings.EASYPOST_WEBHOOK_SECRET = "s3cret"
    body = b'{"description": "tracker.updated", "result": '
    signature = "hmac-sha256-hex=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    answer = deliver(body, signature=signature)
    assert answer.status_code == 200
    event = CarrierInboundEvent.objects.get()
    assert event.dedup_key.startswith("easypost:sha256:")
    assert event.status == "quarantined"
    assert event.errors[0]["message"].startswith("the body is not valid JSON (line 1")


def test_another_event_type_is_processed_with_a_note(settings, deliver):
    import hashlib
    import hmac

    settings.EASYPOST_WEBHOOK_SECRET = "s3cret"
    body = json.dumps({"id": "evt_2", "description": "batch.updated", "result": {}}).encode()
    signature = "hmac-sha256-hex=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert deliver(body, signature=signature).json()["status"] == "accepted"
    event = CarrierInboundEvent.objects.get()
    assert event.status == "processed"
    assert event.outcome.startswith("noted: 'batch.updated' is not a tracker event")


def test_the_sweeper_rings_events_whose_message_was_lost(secret, client):
    parcel = easypost_parcel()
    # No on-commit capture: the doorbell is lost, the row stays received.
    client.post(URL, data=signed_body(), content_type="application/json",
                HTTP_X_HMAC_SIGNATURE=vector()["hmac_signature"])  # fmt: skip
    event = CarrierInboundEvent.objects.get()
    assert event.status == "received"
    assert carrier_event_sweep_task() == 0  # too fresh: its own message may still come
    CarrierInboundEvent.objects.filter(pk=event.pk).update(
        received_at=timezone.now() - timedelta(minutes=5)
    )
    assert carrier_event_sweep_task() == 1
    event.refresh_from_db()
    assert event.status == "processed"
    parcel.refresh_from_db()
    assert parcel.status == "in_transit"
    assert carrier_event_process(event_id=event.pk) is None  # done: a late message is a no-op


def test_a_poison_event_is_quarantined_after_the_last_attempt(secret, client, settings):
    settings.CARRIER_EVENT_MAX_ATTEMPTS = 2
    client.post(URL, data=signed_body(), content_type="application/json",
                HTTP_X_HMAC_SIGNATURE=vector()["hmac_signature"])  # fmt: skip
    event = CarrierInboundEvent.objects.get()
    # Two deliveries that died with their worker (counted, never finished).
    CarrierInboundEvent.objects.filter(pk=event.pk).update(attempts=2)
    assert carrier_event_process(event_id=event.pk).status == "quarantined"
    event.refresh_from_db()
    assert event.errors[0]["message"].startswith("gave up after 2 attempts")


@pytest.mark.django_db(transaction=True)
def test_concurrent_redeliveries_keep_one_event_and_record_its_scans_once(secret):
    """The inbox's unique key decides, never a read before the insert; processing (in the
    request thread: eager tasks) races the other deliveries too. SQLite and PostgreSQL."""
    parcel = easypost_parcel()

    def post() -> tuple[int, dict[str, Any]]:
        response = Client().post(URL, data=signed_body(), content_type="application/json",
                                 HTTP_X_HMAC_SIGNATURE=vector()["hmac_signature"])  # fmt: skip
        return response.status_code, response.json()

    answers = race([post] * 12, at_most=sessions_at_once(12))
    assert all(isinstance(a, tuple) and a[0] == 200 for a in answers), answers
    assert Counter(body["status"] for _, body in answers) == {"accepted": 1, "duplicate": 11}
    event = CarrierInboundEvent.objects.get()
    assert (event.status, event.duplicate_deliveries) == ("processed", 11)
    assert TrackingEventRow.objects.filter(shipment=parcel, source="webhook").count() == 7
    parcel.refresh_from_db()
    assert parcel.status == "in_transit"


# --- the replay command, the API and the admin -----------------------------------------------
def test_replay_carrier_event_command_exit_codes(secret, deliver):
    event_id = deliver(signed_body()).json()["event_id"]
    err = io.StringIO()
    with pytest.raises(SystemExit) as still:
        call_command("replay_carrier_event", str(event_id), stderr=err, stdout=io.StringIO())
    assert still.value.code == 1
    assert "still quarantined" in err.getvalue() and "tracking number '1'" in err.getvalue()

    easypost_parcel()
    out = io.StringIO()
    call_command("replay_carrier_event", str(event_id), stdout=out)
    assert f"Carrier event {event_id}: processed" in out.getvalue()
    out = io.StringIO()
    call_command("replay_carrier_event", str(event_id), stdout=out)
    assert "nothing to replay" in out.getvalue()

    from django.core.management.base import CommandError

    with pytest.raises(CommandError) as missing:
        call_command("replay_carrier_event", "999999")
    assert missing.value.returncode == 2 and "does not exist" in str(missing.value)


def test_the_api_lists_and_replays_carrier_events_the_body_only_for_raw_viewers(
    secret, deliver, api_client, ops_user, cs_user, steward_user
):
    event_id = deliver(signed_body()).json()["event_id"]
    api_client.force_authenticate(cs_user)
    assert api_client.get("/api/v1/carrier-events/").status_code == 403  # not theirs to read

    api_client.force_authenticate(ops_user)
    listing = api_client.get("/api/v1/carrier-events/", {"status": "quarantined"}).json()
    assert listing["count"] == 1
    [row] = listing["results"]
    assert row["id"] == event_id and row["tracking_number"] == "1" and "body" not in row
    assert "body" not in api_client.get(f"/api/v1/carrier-events/{event_id}/").json()
    api_client.force_authenticate(steward_user)
    detail = api_client.get(f"/api/v1/carrier-events/{event_id}/").json()
    assert json.loads(detail["body"])["id"] == "evt_1"
    api_client.force_authenticate(ops_user)

    easypost_parcel()
    replayed = api_client.post(f"/api/v1/carrier-events/{event_id}/replay/")
    assert replayed.status_code == 200
    assert replayed.json()["status"] == "processed"


def test_viewers_without_the_raw_permission_see_no_body(secret, deliver, api_client, db):
    from django.contrib.auth.models import Permission

    event_id = deliver(signed_body()).json()["event_id"]
    viewer = make_user("vera")
    viewer.user_permissions.add(Permission.objects.get(codename="view_carrierinboundevent"))
    api_client.force_authenticate(viewer)
    detail = api_client.get(f"/api/v1/carrier-events/{event_id}/").json()
    assert "body" not in detail
    refused = api_client.post(f"/api/v1/carrier-events/{event_id}/replay/")
    assert refused.status_code == 403


def test_the_admin_lists_carrier_events_and_replays_them(
    secret, deliver, client, ops_user, steward_user
):
    event_id = deliver(signed_body()).json()["event_id"]
    client.force_login(steward_user)
    change = client.get(f"/admin/fulfillment/carrierinboundevent/{event_id}/change/")
    assert change.status_code == 200
    assert "Shipment information sent to FedEx" in change.content.decode()  # the body
    client.force_login(ops_user)
    page = client.get("/admin/fulfillment/carrierinboundevent/")
    assert page.status_code == 200
    assert "no easypost shipment has tracking number" in page.content.decode()
    change = client.get(f"/admin/fulfillment/carrierinboundevent/{event_id}/change/")
    assert change.status_code == 200
    assert "Shipment information sent to FedEx" not in change.content.decode()

    easypost_parcel()
    response = client.post(
        "/admin/fulfillment/carrierinboundevent/",
        {"action": "replay", "_selected_action": [event_id]}, follow=True,
    )  # fmt: skip
    assert response.status_code == 200
    assert "processed" in response.content.decode()
    assert CarrierInboundEvent.objects.get(pk=event_id).status == "processed"


def test_viewers_without_the_raw_permission_see_the_event_in_the_admin_but_no_body(
    secret, deliver, client
):
    from django.contrib.auth.models import Permission

    event_id = deliver(signed_body()).json()["event_id"]
    viewer = make_user("vera")
    viewer.user_permissions.add(Permission.objects.get(codename="view_carrierinboundevent"))
    client.force_login(viewer)
    change = client.get(f"/admin/fulfillment/carrierinboundevent/{event_id}/change/")
    assert change.status_code == 200
    page = change.content.decode()
    assert "no easypost shipment has tracking number" in page
    assert "Shipment information sent to FedEx" not in page  # the body


def test_the_shipment_admin_and_api_show_the_tracking(secret, deliver, client, api_client, cs_user):
    parcel = easypost_parcel()
    deliver(signed_body())
    client.force_login(cs_user)
    page = client.get(f"/admin/fulfillment/shipment/{parcel.pk}/change/").content.decode()
    assert "Arrived at FedEx location" in page and "EDISON, NJ, US" in page
    assert "advanced shipped -&gt; in_transit" in page

    api_client.force_authenticate(cs_user)
    data = api_client.get(f"/api/v1/shipments/{parcel.pk}/").json()
    assert data["tracking_status"] == "in_transit"
    assert data["estimated_delivery_from"].startswith("2024-08-05T00:00:00")
    assert data["estimated_delivery_until"].startswith("2024-08-05T23:59:59")
    webhook_events = [e for e in data["tracking_events"] if e["source"] == "webhook"]
    assert len(webhook_events) == 7
    assert webhook_events[-1]["message"] == "Arrived at FedEx location"


# --- retention, privacy, metrics -------------------------------------------------------------
def test_bodies_are_purged_after_the_retention_period(secret, deliver, settings):
    easypost_parcel()
    event_id = deliver(signed_body()).json()["event_id"]
    settings.INBOX_RAW_RETENTION_DAYS = 30
    assert carrier_event_raw_purge() == 0  # processed just now: kept
    CarrierInboundEvent.objects.filter(pk=event_id).update(
        processed_at=timezone.now() - timedelta(days=31)
    )
    assert carrier_event_raw_purge() == 1
    event = CarrierInboundEvent.objects.get(pk=event_id)
    assert bytes(event.body) == b"" and event.status == "processed"
    assert carrier_event_raw_purge() == 0


def test_a_redaction_blanks_the_orders_carrier_bodies_and_tracking_messages(secret, deliver):
    from orders import privacy

    parcel = easypost_parcel()
    event_id = deliver(signed_body()).json()["event_id"]
    order = parcel.order
    scope = privacy.Scope(subject=privacy.Subject(channel_id=order.channel_id,
                                                  channel_slug=order.channel.slug),
                          order_ids=[order.pk], customer_ids=[], known={"EDISON"})  # fmt: skip
    from fulfillment.privacy import _export, _redact

    exported = _export(scope)
    assert [e["id"] for e in exported["carrier_events"]] == [event_id]
    assert exported["carrier_events"][0]["body"]["result"]["tracking_code"] == "1"
    assert len([e for e in exported["tracking_events"] if e["source"] == "webhook"]) == 7
    assert _redact(scope) >= 1
    assert bytes(CarrierInboundEvent.objects.get(pk=event_id).body) == b""
    assert not TrackingEventRow.objects.filter(location__icontains="EDISON").exists()


def test_a_customer_redaction_blanks_the_carrier_bodies_of_their_parcels(secret, deliver):
    from orders import privacy

    parcel = easypost_parcel()
    event_id = deliver(signed_body()).json()["event_id"]
    order = parcel.order
    assert order.customer.email
    subject = privacy.Subject(channel_id=order.channel_id, channel_slug=order.channel.slug,
                              email=order.customer.email)  # fmt: skip
    privacy.subject_redact(subject=subject, request="customer_redact", actor=OPS)
    event = CarrierInboundEvent.objects.get(pk=event_id)
    assert bytes(event.body) == b"" and event.status == "processed"
    # The shipping record stays: its tracking events keep their status and time.
    assert TrackingEventRow.objects.filter(shipment=parcel, source="webhook").count() == 7


def metric(client, name: str, **labels: str) -> float:
    text = client.get("/metrics").content.decode()
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_received_duplicates_refusals_quarantines_and_processed(
    secret, deliver, client
):
    carrier = {"carrier": "easypost"}
    names = {
        "received": ("carrier_webhooks_received_total", carrier),
        "duplicate": ("carrier_webhooks_duplicate_total", carrier),
        "refused": ("carrier_webhooks_refused_total", {**carrier, "code": "signature_invalid"}),
        "quarantined": ("carrier_events_quarantined_total", carrier),
        "processed": ("carrier_events_processed_total", {**carrier, "outcome": "tracking"}),
    }
    before = {key: metric(client, name, **labels) for key, (name, labels) in names.items()}
    event_id = deliver(signed_body()).json()["event_id"]  # quarantined: no parcel yet
    deliver(signed_body())  # duplicate
    deliver(signed_body(), signature="hmac-sha256-hex=" + "1" * 64)  # refused
    easypost_parcel()
    carrier_event_replay(event_id=event_id, actor=OPS)  # processed
    after = {key: metric(client, name, **labels) for key, (name, labels) in names.items()}
    assert {key: after[key] - before[key] for key in names} == {
        "received": 1, "duplicate": 1, "refused": 1, "quarantined": 1, "processed": 1,
    }  # fmt: skip
