"""The polling fallback: quiet parcels are asked about through the carrier interface's track(),
with the local carrier's simulator (the whole story at once, and step by step) and EasyPost
against a loopback server serving its own tracker sample."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from prometheus_client import REGISTRY
from pytest_httpserver import HTTPServer

from fulfillment.carriers.local import story_for
from fulfillment.models import Shipment
from fulfillment.models import TrackingEvent as TrackingEventRow
from fulfillment.shipments import shipment_buy_label, shipment_ship, shipments_create_for_order
from fulfillment.tasks import tracking_poll_task
from fulfillment.tracking_poll import shipment_track_poll, tracking_poll_round
from orders.actors import Actor
from orders.models import Incident
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse, stock

pytestmark = pytest.mark.django_db

OPS = Actor.system("test")
SAMPLES = Path(django_settings.BASE_DIR).parent / "shared" / "samples" / "easypost"


def shipped_parcels(count: int = 1) -> list[Shipment]:
    add_warehouse("A")
    stock("MUG", "A", 50)
    parcels = []
    for _ in range(count):
        order = make_order(paid=True, lines=[("MUG", 1, "10.00")])
        for draft in shipments_create_for_order(order_id=order.pk, actor=OPS):
            bought = shipment_buy_label(shipment_id=draft.pk, actor=OPS)
            parcels.append(shipment_ship(shipment_id=bought.pk, actor=OPS))
    return parcels


def handed_over(parcel: Shipment, *, hours_ago: float, **fields: Any) -> Shipment:
    """Test data: the parcel left ``hours_ago`` and has heard nothing since."""
    then = timezone.now() - timedelta(hours=hours_ago)
    Shipment.objects.filter(pk=parcel.pk).update(
        shipped_at=then, last_event_at=then, last_tracked_at=then, **fields
    )
    parcel.refresh_from_db()
    return parcel


def polls(carrier: str, outcome: str) -> float:
    return (
        REGISTRY.get_sample_value("tracking_polls_total", {"carrier": carrier, "outcome": outcome})
        or 0.0
    )


# --- the local carrier's simulator -----------------------------------------------------------
def test_with_step_zero_one_poll_delivers_the_parcel_and_its_order(settings):
    settings.LOCAL_CARRIER_TRACKING_STEP_SECONDS = 0
    settings.LOCAL_CARRIER_EXCEPTION_RATE = 0
    [parcel] = shipped_parcels()
    before = polls("local", "changed")

    summary = tracking_poll_round(all_in_flight=True)
    assert (summary["polled"], summary["changed"]) == (1, 1)
    assert polls("local", "changed") == before + 1
    parcel.refresh_from_db()
    assert (parcel.status, parcel.tracking_status) == ("delivered", "delivered")
    assert parcel.order.status == "delivered"
    told = TrackingEventRow.objects.filter(shipment=parcel, source="poll")
    assert [e.status for e in told.order_by("occurred_at", "pk")] == [
        "pre_transit", "in_transit", "out_for_delivery", "delivered",
    ]  # fmt: skip
    assert parcel.estimated_delivery_from == parcel.shipped_at
    # Delivered: no longer on its way, never polled again.
    assert tracking_poll_round(all_in_flight=True)["polled"] == 0
    assert shipment_track_poll(shipment_id=parcel.pk) == "skipped"


def test_a_stepped_schedule_moves_the_parcel_round_by_round(settings):
    settings.LOCAL_CARRIER_TRACKING_STEP_SECONDS = 3600
    settings.LOCAL_CARRIER_EXCEPTION_RATE = 0
    settings.TRACKING_POLL_QUIET_SECONDS = 1800
    [parcel] = shipped_parcels()
    assert tracking_poll_round()["polled"] == 0  # just handed over: not quiet yet

    parcel = handed_over(parcel, hours_ago=1.5)
    assert tracking_poll_round() == {
        "polled": 1, "changed": 1, "unchanged": 0, "retry": 0, "failed": 0, "skipped": 0,
    }  # fmt: skip
    parcel.refresh_from_db()
    assert (parcel.status, parcel.tracking_status) == ("in_transit", "in_transit")
    assert tracking_poll_round()["polled"] == 0  # it just heard: quiet again in 30 minutes

    # Asked again before the next scan: nothing new, nothing recorded twice.
    assert shipment_track_poll(shipment_id=parcel.pk) == "unchanged"
    assert TrackingEventRow.objects.filter(shipment=parcel, source="poll").count() == 2


def test_every_simulated_exception_raises_its_incident_then_ends_as_its_story_says(settings):
    step = 1.0  # seconds: the test waits one real step between the two rounds
    settings.LOCAL_CARRIER_TRACKING_STEP_SECONDS = step
    settings.LOCAL_CARRIER_EXCEPTION_RATE = 1.0  # every parcel has a failed attempt
    parcels = [handed_over(p, hours_ago=3.5 * step / 3600) for p in shipped_parcels(4)]
    assert tracking_poll_round(all_in_flight=True)["changed"] == 4
    for parcel in parcels:
        parcel.refresh_from_db()
        assert (parcel.status, parcel.tracking_status) == ("exception", "failed_attempt")
        incident = Incident.objects.get(category="delivery_exception", order=parcel.order)
        assert "Delivery attempted" in incident.summary

    time.sleep(step)  # the next scan is due
    assert tracking_poll_round(all_in_flight=True)["changed"] == 4
    expected = {"failed_then_delivered": "delivered", "failed_then_returned": "returned"}
    for parcel in parcels:
        parcel.refresh_from_db()
        assert parcel.status == expected[story_for(parcel.tracking_number, exception_rate=1.0)]
        assert TrackingEventRow.objects.filter(shipment=parcel, source="poll").count() == 5


def test_the_beat_task_rings_one_poll_per_quiet_parcel(settings):
    settings.LOCAL_CARRIER_TRACKING_STEP_SECONDS = 0
    settings.LOCAL_CARRIER_EXCEPTION_RATE = 0
    settings.TRACKING_POLL_QUIET_SECONDS = 3600
    quiet, fresh = shipped_parcels(2)
    handed_over(quiet, hours_ago=2)
    assert tracking_poll_task() == 1  # eager: the per-parcel task runs here
    quiet.refresh_from_db()
    fresh.refresh_from_db()
    assert (quiet.status, fresh.status) == ("delivered", "shipped")


def test_a_parcel_never_tracked_before_is_polled_first(settings):
    settings.TRACKING_POLL_QUIET_SECONDS = 3600
    older, legacy = shipped_parcels(2)
    handed_over(older, hours_ago=2)
    Shipment.objects.filter(pk=legacy.pk).update(last_tracked_at=None)  # shipped before tracking
    summary = tracking_poll_round(limit=1)
    assert summary["polled"] == 1
    legacy.refresh_from_db()
    assert legacy.last_tracked_at is not None


# --- EasyPost against a loopback server ------------------------------------------------------
@pytest.fixture
def easypost(httpserver: HTTPServer, settings) -> HTTPServer:
    settings.EASYPOST_API_BASE = httpserver.url_for("/v2")
    settings.EASYPOST_API_KEY = "EZTK_test_0123456789"
    settings.EASYPOST_BACKOFF = 0
    settings.EASYPOST_RETRIES = 1
    settings.EASYPOST_TIMEOUT = (2.0, 5.0)
    return httpserver


def easypost_parcel() -> Shipment:
    [parcel] = shipped_parcels()
    # Test data: EasyPost's test tracker EZ1000000001, bought before its first scan.
    then = datetime(2025, 2, 6, 12, 0, tzinfo=UTC)
    Shipment.objects.filter(pk=parcel.pk).update(
        carrier="easypost", tracking_number="EZ1000000001", shipped_at=then, last_event_at=then,
        last_tracked_at=then,
    )  # fmt: skip
    parcel.refresh_from_db()
    return parcel


def serve_tracker(server: HTTPServer) -> None:
    tracker = json.loads((SAMPLES / "tracker_create_response.json").read_bytes())
    # DERIVED envelope: GET /trackers answers {"trackers": [...], "has_more": ...}.
    server.expect_request(
        "/v2/trackers", method="GET", query_string={"tracking_code": "EZ1000000001"}
    ).respond_with_json({"trackers": [tracker], "has_more": False})


def test_easypost_parcels_are_polled_through_the_carrier_interface(easypost):
    parcel = easypost_parcel()
    serve_tracker(easypost)
    before = polls("easypost", "unchanged")
    assert shipment_track_poll(shipment_id=parcel.pk) == "unchanged"  # pre_transit: no move
    assert polls("easypost", "unchanged") == before + 1
    parcel.refresh_from_db()
    assert parcel.tracking_status == "pre_transit" and parcel.carrier_name == "USPS"
    assert parcel.last_tracked_at > timezone.now() - timedelta(minutes=1)
    events = TrackingEventRow.objects.filter(shipment=parcel, source="poll").order_by("occurred_at")
    assert [e.message for e in events] == ["Pre-Shipment Info Sent to USPS",
                                           "Shipping Label Created"]  # fmt: skip
    assert "/v2/trackers" in [request.path for request, _ in easypost.log]


def test_an_easypost_outage_is_counted_and_retried_next_round(easypost):
    parcel = easypost_parcel()
    easypost.expect_request("/v2/trackers").respond_with_data("", status=503)
    before = polls("easypost", "retry")
    assert tracking_poll_round(all_in_flight=True)["retry"] == 1
    assert polls("easypost", "retry") == before + 1
    parcel.refresh_from_db()
    assert parcel.last_tracked_at.year == 2025  # still quiet: the next round asks again

    easypost.clear_all_handlers()
    serve_tracker(easypost)
    assert tracking_poll_round()["unchanged"] == 1
    assert TrackingEventRow.objects.filter(shipment=parcel, source="poll").count() == 2


def test_a_tracking_number_easypost_does_not_know_waits_a_quiet_period(easypost):
    parcel = easypost_parcel()
    easypost.expect_request("/v2/trackers").respond_with_json({"trackers": [], "has_more": False})
    assert shipment_track_poll(shipment_id=parcel.pk) == "failed"
    parcel.refresh_from_db()
    assert parcel.last_tracked_at > timezone.now() - timedelta(minutes=1)
    assert parcel.status == "shipped"


# --- the command -----------------------------------------------------------------------------
def test_poll_tracking_command(settings, easypost, capsys):
    settings.LOCAL_CARRIER_TRACKING_STEP_SECONDS = 0
    settings.LOCAL_CARRIER_EXCEPTION_RATE = 0
    _first, second = shipped_parcels(2)
    out = io.StringIO()
    call_command("poll_tracking", stdout=out)
    assert "Polled 0 parcel(s)" in out.getvalue()  # both just handed over

    call_command("poll_tracking", "--all", "--limit", "1", stdout=out)
    assert "Polled 1 parcel(s): 1 changed" in out.getvalue()
    assert "tracking: 100%" in capsys.readouterr().err  # the progress bar, on stderr

    # A carrier refusal is a non-zero exit with the reason.
    Shipment.objects.filter(pk=second.pk).update(carrier="easypost", tracking_number="EZ9")
    easypost.expect_request("/v2/trackers").respond_with_json({"trackers": [], "has_more": False})
    with pytest.raises(CommandError) as refused:
        call_command("poll_tracking", "--all", "--no-progress", stdout=io.StringIO())
    assert refused.value.returncode == 1 and "refused by the carrier" in str(refused.value)

    with pytest.raises(CommandError, match="--limit must be at least 1"):
        call_command("poll_tracking", "--limit", "0")


def test_beat_polls_sweeps_and_purges_with_registered_tasks(settings):
    from config.celery import app

    schedule = {e["task"]: e["schedule"] for e in settings.CELERY_BEAT_SCHEDULE.values()}
    assert schedule["fulfillment.tracking_poll"] == 900.0
    assert schedule["fulfillment.carrier_event_sweep"] == 60.0
    assert schedule["fulfillment.carrier_event_raw_purge"] == 24 * 3600.0
    for name in ("fulfillment.tracking_poll", "fulfillment.shipment_track_poll",
                 "fulfillment.carrier_event_process", "fulfillment.carrier_event_sweep",
                 "fulfillment.carrier_event_raw_purge"):  # fmt: skip
        assert name in app.tasks, name
        assert app.amqp.router.route({}, name)["queue"].name == "fulfillment"
