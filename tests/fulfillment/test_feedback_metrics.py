"""The feedback loop's per-step figures: carrier events recorded (by carrier, source, status,
applied), duplicates, the time to record, and the write-backs per channel kind and outcome,
read from the Prometheus registry the /metrics endpoint serves."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from pytest_httpserver import HTTPServer

from fulfillment.carriers.base import Tracking, TrackingEvent
from fulfillment.tracking import tracking_record
from tests.channels.writeback.helpers import drain_now, shipped_order
from tests.factories import SalesChannelFactory

pytestmark = pytest.mark.django_db

CALLBACK = "/hooks/tracking"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_tracking_and_write_back_figures_count_what_happened(httpserver: HTTPServer):
    httpserver.expect_request(CALLBACK, method="POST").respond_with_data("", status=204)
    channel = SalesChannelFactory(kind="custom", slug="metrics-shop", webhook_secret="s3cret",
                                  tracking_callback_url=httpserver.url_for(CALLBACK))  # fmt: skip
    before = {
        "pushed": value("tracking_writebacks_total", channel_kind="custom", outcome="succeeded"),
        "timed": value("tracking_writeback_seconds_count", channel_kind="custom"),
        "applied": value("tracking_events_total", carrier="local", source="webhook",
                         status="delivered", applied="true"),
        "dup": value("tracking_events_duplicate_total", carrier="local", source="webhook"),
        "recorded": value("tracking_record_seconds_count", source="webhook"),
    }  # fmt: skip
    _order, [parcel] = shipped_order(channel, external_id="M-1", lines=[("MUG", "l-1", 1)],
                                     in_stock=True)  # fmt: skip
    delivered = Tracking(
        tracking_number=parcel.tracking_number, status="delivered",
        events=[TrackingEvent(at=parcel.shipped_at, status="delivered", description="Delivered")],
    )  # fmt: skip
    tracking_record(shipment_id=parcel.pk, tracking=delivered, source="webhook")
    tracking_record(shipment_id=parcel.pk, tracking=delivered, source="webhook")  # a repeat
    drain_now()

    assert value("tracking_events_total", carrier="local", source="webhook", status="delivered",
                 applied="true") == before["applied"] + 1  # fmt: skip
    assert value("tracking_events_duplicate_total", carrier="local",
                 source="webhook") == before["dup"] + 1  # fmt: skip
    assert value("tracking_record_seconds_count", source="webhook") == before["recorded"] + 2
    # Two write-backs: the hand-over (pre_transit) and the delivery, each timed.
    assert value("tracking_writebacks_total", channel_kind="custom",
                 outcome="succeeded") == before["pushed"] + 2  # fmt: skip
    assert value("tracking_writeback_seconds_count", channel_kind="custom") == before["timed"] + 2
    assert len(httpserver.log) == 2
