"""Shopify tracking write-back against a loopback Admin API fed Shopify's own samples: one
fulfillment per parcel mapped to the fulfillment orders' lines, adopted on a retry, tracking
updated in place, carrier news as fulfillment events, refusals dead with Shopify's reason."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from pytest_httpserver import HTTPServer

from channels.adapters.base import AdapterError
from channels.writeback.shopify import EVENT_STATUSES, ShopifyWriteback
from fulfillment.carriers.base import Tracking, TrackingEvent
from fulfillment.models import ActionStatus, OutboundAction
from fulfillment.outbox.services import action_dispatch, outbox_drain
from fulfillment.tracking import tracking_record
from orders import feedback
from orders.feedback import ShipmentUpdate, ShipmentUpdateLine
from orders.models import Incident
from tests.channels.writeback.helpers import (
    API_VERSION,
    FO_LIST,
    FULFILLMENT_CREATE,
    TOKEN,
    FakeShopify,
    sample,
    shipped_order,
)
from tests.factories import SalesChannelFactory
from tests.fulfillment.helpers import add_warehouse, stock

pytestmark = [pytest.mark.django_db, pytest.mark.pipeline]

ORDER_ID = "450789469"  # the samples' order
LINE_ID = "518995019"  # its line item still fulfillable in the fulfillment order sample
SAMPLE_TRACKING = "MS1562678"
SAMPLE_URL = "https://www.my-shipping-company.com?tracking_number=MS1562678"
SHIPPED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
writeback = ShopifyWriteback()


def shopify_channel(base_url: str, **fields):
    fields = {"api_version": API_VERSION, "credentials": {"access_token": TOKEN}, **fields}
    return SalesChannelFactory(kind="shopify", api_base_url=base_url, **fields)


def parcel_update(channel, *lines, status="pre_transit", channel_ref="", tracking=SAMPLE_TRACKING,
                  url=SAMPLE_URL, at=SHIPPED, **extra) -> ShipmentUpdate:  # fmt: skip
    return ShipmentUpdate(
        channel_id=channel.pk, order_external_id=ORDER_ID, order_number="#1001", order_source={},
        reference="shipment-1", channel_ref=channel_ref,
        lines=tuple(ShipmentUpdateLine(external_line_id=line_id, sku="SKU", quantity=qty)
                    for line_id, qty in (lines or [(LINE_ID, 1)])),
        carrier="easypost", carrier_name="USPS", service="Priority", tracking_number=tracking,
        tracking_url=url, status=status, occurred_at=at, **extra,
    )  # fmt: skip


def path(suffix: str) -> str:
    return f"/shop/admin/api/{API_VERSION}/{suffix}"


# --- registration, configuration --------------------------------------------------------------
def test_registered_for_shopify_and_configured_only_with_api_settings(httpserver):
    assert isinstance(feedback.writeback_for("shopify"), ShopifyWriteback)
    demo = SalesChannelFactory(kind="shopify")
    assert writeback.configured(demo.pk) is False  # a demo channel without API settings
    live = shopify_channel(httpserver.url_for("/shop"))
    assert writeback.configured(live.pk) is True
    off = shopify_channel(httpserver.url_for("/shop"), tracking_writeback=False)
    inactive = shopify_channel(httpserver.url_for("/shop"), is_active=False)
    no_version = shopify_channel(httpserver.url_for("/shop"), api_version="")
    assert [writeback.configured(c.pk) for c in (off, inactive, no_version)] == [False] * 3
    assert writeback.configured(10**9) is False


def test_tells_the_statuses_shopify_has_fulfillment_events_for():
    assert EVENT_STATUSES == {
        "in_transit": "in_transit", "out_for_delivery": "out_for_delivery",
        "available_for_pickup": "ready_for_pickup", "failed_attempt": "attempted_delivery",
        "delivered": "delivered", "exception": "failure", "return_to_sender": "failure",
    }  # fmt: skip
    statuses = ("pre_transit", "unknown", "cancelled", "delivered")
    assert [s for s in statuses if writeback.tells(s)] == ["delivered"]


def test_a_channel_switched_off_after_the_action_was_written_is_skipped_not_failed(httpserver):
    channel = shopify_channel(httpserver.url_for("/shop"))
    channel.tracking_writeback = False
    channel.save()
    assert writeback.push(parcel_update(channel)) == {
        "channel_ref": "", "outcome": "skipped",
        "reason": "tracking write-back is off for this channel",
    }  # fmt: skip
    assert httpserver.log == []
    channel.tracking_writeback, channel.credentials = True, {}
    channel.save()
    with pytest.raises(AdapterError) as unconfigured:
        writeback.push(parcel_update(channel))
    assert unconfigured.value.retryable is False and "access_token" in str(unconfigured.value)


# --- the first write-back: one fulfillment ----------------------------------------------------
def test_first_push_maps_the_parcel_to_the_fulfillment_order_and_creates_one_fulfillment(
    httpserver: HTTPServer,
):
    """The samples served byte for byte: the order's fulfillment orders, then the create."""
    channel = shopify_channel(httpserver.url_for("/shop"), writeback_notify_customer=True)
    headers = {"X-Shopify-Access-Token": TOKEN}
    httpserver.expect_ordered_request(
        path(f"orders/{ORDER_ID}/fulfillments.json"), method="GET", headers=headers
    ).respond_with_json({"fulfillments": []})
    httpserver.expect_ordered_request(
        path(f"orders/{ORDER_ID}/fulfillment_orders.json"), method="GET", headers=headers
    ).respond_with_data(FO_LIST.read_bytes(), content_type="application/json")
    httpserver.expect_ordered_request(
        path("fulfillments.json"), method="POST", headers=headers,
        json={"fulfillment": {
            "line_items_by_fulfillment_order": [{
                "fulfillment_order_id": 1046000780,
                "fulfillment_order_line_items": [{"id": 1072503277, "quantity": 1}],
            }],
            "tracking_info": {"number": SAMPLE_TRACKING, "url": SAMPLE_URL, "company": "USPS"},
            "notify_customer": True,
        }},
    ).respond_with_data(FULFILLMENT_CREATE.read_bytes(), status=201,
                        content_type="application/json")  # fmt: skip

    result = writeback.push(parcel_update(channel))

    httpserver.check_assertions()
    assert result == {
        "channel_ref": "1069019877", "fulfillment_id": 1069019877, "outcome": "created",
        "tracking_updated": False,
    }  # fmt: skip
    assert len(httpserver.log) == 3  # pre_transit: the fulfillment itself, no event


def test_notify_customer_follows_the_channel_setting(httpserver):
    store = FakeShopify(httpserver)
    channel = shopify_channel(store.base_url, writeback_notify_customer=False)
    writeback.push(parcel_update(channel))
    [body] = store.bodies("POST", "fulfillments.json")
    assert body["fulfillment"]["notify_customer"] is False


def test_a_split_shipment_makes_two_fulfillments_with_the_right_lines_and_quantities(httpserver):
    """The sample's fulfillment order, with a second line item of 2 units (the order's
    466157049) beside the sample's one: parcel 1 ships 518995019 x1 + 466157049 x1, parcel 2
    the other 466157049."""
    fos = copy.deepcopy(sample(FO_LIST)["fulfillment_orders"])
    fos[0]["line_items"].append({**fos[0]["line_items"][0], "id": 1072503278,
                                 "line_item_id": 466157049, "quantity": 2,
                                 "fulfillable_quantity": 2})  # fmt: skip
    store = FakeShopify(httpserver, fulfillment_orders=fos)
    channel = shopify_channel(store.base_url)

    first = writeback.push(parcel_update(channel, (LINE_ID, 1), ("466157049", 1), tracking="T1"))
    second = writeback.push(parcel_update(channel, ("466157049", 1), tracking="T2"))

    one, two = store.bodies("POST", "fulfillments.json")
    assert one["fulfillment"]["line_items_by_fulfillment_order"] == [{
        "fulfillment_order_id": 1046000780,
        "fulfillment_order_line_items": [{"id": 1072503277, "quantity": 1},
                                         {"id": 1072503278, "quantity": 1}],
    }]  # fmt: skip
    assert two["fulfillment"]["line_items_by_fulfillment_order"] == [{
        "fulfillment_order_id": 1046000780,
        "fulfillment_order_line_items": [{"id": 1072503278, "quantity": 1}],
    }]  # fmt: skip
    assert (one["fulfillment"]["tracking_info"]["number"],
            two["fulfillment"]["tracking_info"]["number"]) == ("T1", "T2")  # fmt: skip
    assert first["channel_ref"] != second["channel_ref"]
    assert [f["tracking_number"] for f in store.fulfillments] == ["T1", "T2"]
    assert store.fulfillment_orders[0]["status"] == "closed"


def test_a_parcel_goes_to_the_fulfillment_order_of_its_location(httpserver):
    fos = copy.deepcopy(sample(FO_LIST)["fulfillment_orders"])
    other = copy.deepcopy(fos[0])
    other.update(id=1046000781, assigned_location_id=487838322)
    other["line_items"] = [
        {
            **fos[0]["line_items"][0],
            "id": 1072503279,
            "fulfillment_order_id": 1046000781,
            "line_item_id": 703073504,
        }
    ]
    store = FakeShopify(httpserver, fulfillment_orders=[*fos, other])
    channel = shopify_channel(store.base_url)

    with pytest.raises(AdapterError) as mixed:
        writeback.push(parcel_update(channel, (LINE_ID, 1), ("703073504", 1), tracking="T4"))
    assert mixed.value.retryable is False
    assert "cannot mix" in str(mixed.value) and "24826418, 487838322" in str(mixed.value)
    assert store.bodies("POST", "fulfillments.json") == []

    writeback.push(parcel_update(channel, ("703073504", 1), tracking="T3"))
    [body] = store.bodies("POST", "fulfillments.json")
    assert body["fulfillment"]["line_items_by_fulfillment_order"] == [{
        "fulfillment_order_id": 1046000781,
        "fulfillment_order_line_items": [{"id": 1072503279, "quantity": 1}],
    }]  # fmt: skip


def test_a_line_shopify_has_nothing_left_of_is_refused_in_words(httpserver):
    store = FakeShopify(httpserver)
    channel = shopify_channel(store.base_url)
    with pytest.raises(AdapterError) as refused:
        writeback.push(parcel_update(channel, ("466157049", 1)))  # fulfilled in the sample
    assert refused.value.retryable is False
    assert "line item 466157049: 1 shipped, 0 left to fulfil" in str(refused.value)
    assert store.bodies("POST", "fulfillments.json") == []


def test_a_retry_after_a_timeout_adopts_the_fulfillment_the_first_attempt_made(
    httpserver, settings
):
    settings.CHANNEL_HTTP_TIMEOUT = (2.0, 0.3)
    store = FakeShopify(httpserver)
    store.create_delay = 0.8  # Shopify creates it, the answer misses our read timeout
    channel = shopify_channel(store.base_url)

    with pytest.raises(AdapterError) as timed_out:
        writeback.push(parcel_update(channel))
    assert (timed_out.value.retryable, timed_out.value.ambiguous) == (True, True)
    assert len(store.bodies("POST", "fulfillments.json")) == 1  # never repeated in-session

    store.create_delay = 0
    again = writeback.push(parcel_update(channel))
    assert again["outcome"] == "adopted"
    assert again["channel_ref"] == str(store.fulfillments[0]["id"]) == "1069019877"
    assert len(store.bodies("POST", "fulfillments.json")) == 1
    assert len(store.fulfillments) == 1


# --- later changes: tracking in place, events -------------------------------------------------
def test_a_later_change_updates_tracking_instead_of_a_second_fulfillment_then_posts_the_event(
    httpserver,
):
    store = FakeShopify(httpserver)
    channel = shopify_channel(store.base_url, writeback_notify_customer=True)
    ref = writeback.push(parcel_update(channel))["channel_ref"]

    relabelled = parcel_update(
        channel, status="in_transit", channel_ref=ref, tracking="9400111899223100000000",
        url="https://tools.usps.com/go/TrackConfirmAction?tLabels=9400111899223100000000",
        at=SHIPPED + timedelta(hours=3, microseconds=250_000), message="Departed USPS facility",
        estimated_delivery_until=SHIPPED + timedelta(days=2),
    )  # fmt: skip
    result = writeback.push(relabelled)

    assert result["outcome"] == "updated" and result["tracking_updated"] is True
    assert len(store.bodies("POST", "fulfillments.json")) == 1
    [tracking] = store.bodies("POST", f"fulfillments/{ref}/update_tracking.json")
    assert tracking == {"fulfillment": {
        "tracking_info": {"number": "9400111899223100000000", "company": "USPS",
                          "url": relabelled.tracking_url},
        "notify_customer": True,
    }}  # fmt: skip
    events = f"orders/{ORDER_ID}/fulfillments/{ref}/events.json"
    assert store.bodies("POST", events) == [{"event": {
        "status": "in_transit", "happened_at": "2026-11-02T12:00:00Z",
        "message": "Departed USPS facility", "estimated_delivery_at": "2026-11-04T09:00:00Z",
    }}]  # fmt: skip
    assert (result["event_status"], result["event_created"]) == ("in_transit", True)

    # The same change again (a retry): nothing new is made (Shopify keeps whole seconds).
    repeat = writeback.push(relabelled)
    assert (repeat["tracking_updated"], repeat["event_created"]) == (False, False)
    assert repeat["event_id"] == result["event_id"]
    assert len(store.bodies("POST", events)) == 1
    assert len(store.bodies("POST", f"fulfillments/{ref}/update_tracking.json")) == 1

    delivered = writeback.push(parcel_update(channel, status="delivered", channel_ref=ref,
                                             tracking="9400111899223100000000",
                                             url=relabelled.tracking_url,
                                             at=SHIPPED + timedelta(days=1)))  # fmt: skip
    assert delivered["event_status"] == "delivered" and not delivered["tracking_updated"]
    failed = writeback.push(parcel_update(channel, status="failed_attempt", channel_ref=ref,
                                          tracking="9400111899223100000000", url="",
                                          at=SHIPPED + timedelta(hours=20)))  # fmt: skip
    assert failed["event_status"] == "attempted_delivery"
    assert [e["status"] for e in store.events[int(ref)]] == [
        "in_transit", "delivered", "attempted_delivery",
    ]  # fmt: skip


def test_refusals_are_not_retryable_and_carry_shopifys_reason_without_personal_data(httpserver):
    store = FakeShopify(httpserver)
    channel = shopify_channel(store.base_url)
    store.fail_next("POST", "fulfillments.json", 422, {"errors": {"base": [
        "Fulfillment order 1046000780 has an unfulfillable status= closed.",
        "Contact bob.norman@mail.example.com",
    ]}})  # fmt: skip
    with pytest.raises(AdapterError) as refused:
        writeback.push(parcel_update(channel))
    error = refused.value
    assert (error.retryable, error.status) == (False, 422)
    assert "HTTP 422 from localhost" in str(error)
    assert "unfulfillable status= closed" in str(error)
    assert "bob.norman" not in str(error) and "[email]" in str(error)
    assert "Chestnut" not in str(error)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_busy_or_failing_shopify_is_retryable_and_the_post_is_not_repeated(httpserver, status):
    store = FakeShopify(httpserver)
    channel = shopify_channel(store.base_url)
    store.fail_next("POST", "fulfillments.json", status)
    with pytest.raises(AdapterError) as failed:
        writeback.push(parcel_update(channel))
    assert (failed.value.retryable, failed.value.status) == (True, status)
    assert len(store.bodies("POST", "fulfillments.json")) == 1


# --- through the real outbox ------------------------------------------------------------------
@pytest.fixture
def store_channel(httpserver, settings):
    settings.OUTBOX_BACKOFF_BASE_SECONDS = 0  # a retry is due at once
    add_warehouse("A", priority=1)
    add_warehouse("B", priority=2)
    store = FakeShopify(httpserver)
    return store, shopify_channel(store.base_url, writeback_notify_customer=True)


def sync_actions(order):
    return list(
        OutboundAction.objects.filter(order=order, kind="channel_tracking_sync").order_by("pk")
    )


def test_a_refusal_makes_the_action_dead_with_shopifys_reason_and_a_channel_sync_incident(
    store_channel,
):
    store, channel = store_channel
    stock("RED", "A", 3)
    order, [parcel] = shipped_order(channel, external_id=ORDER_ID, lines=[("RED", LINE_ID, 1)])
    [action] = sync_actions(order)
    store.fail_next("POST", "fulfillments.json", 422, {"errors": {"base": [
        "Line items are already fulfilled"]}})  # fmt: skip

    assert action_dispatch(action_id=action.pk) == "dead"

    action.refresh_from_db()
    assert action.status == ActionStatus.DEAD
    assert "shopify refused the tracking update" in action.last_error
    assert "Line items are already fulfilled" in action.last_error
    incident = Incident.objects.get(order=order, category="channel_sync_failed")
    assert "Line items are already fulfilled" in incident.summary


@pytest.mark.parametrize("status", [429, 503])
def test_a_5xx_or_429_is_retried_by_the_outbox_and_makes_one_fulfillment(store_channel, status):
    store, channel = store_channel
    stock("RED", "A", 3)
    order, [parcel] = shipped_order(channel, external_id=ORDER_ID, lines=[("RED", LINE_ID, 1)])
    [action] = sync_actions(order)
    store.fail_next("POST", "fulfillments.json", status)

    assert action_dispatch(action_id=action.pk) == "rescheduled"
    action.refresh_from_db()
    assert action.status == ActionStatus.RETRY_SCHEDULED and action.attempts == 1
    assert action_dispatch(action_id=action.pk) == "succeeded"

    parcel.refresh_from_db()
    assert parcel.channel_ref == str(store.fulfillments[0]["id"])
    assert len(store.fulfillments) == 1
    assert len(store.bodies("POST", "fulfillments.json")) == 2  # the 5xx, then the one made


def test_end_to_end_ship_split_order_drain_outbox_then_delivered_becomes_an_event(
    store_channel, settings
):
    """A split order of the Shopify channel: two parcels, two fulfillments with the right
    lines, then the carrier's delivered scan reaches Shopify as a fulfillment event."""
    store, channel = store_channel
    fos = store.fulfillment_orders
    fos[0]["line_items"][0].update(quantity=2, fulfillable_quantity=2)  # 2 units of the line
    stock("RED", "A", 1)
    stock("RED", "B", 1)
    order, parcels = shipped_order(
        channel, external_id=ORDER_ID, lines=[("RED", LINE_ID, 2)], split_settings=settings
    )
    assert len(parcels) == 2 and order.status == "shipped"

    summary = outbox_drain()
    assert summary["succeeded"] >= 2 and summary["dead"] == 0

    creates = store.bodies("POST", "fulfillments.json")
    assert [c["fulfillment"]["line_items_by_fulfillment_order"] for c in creates] == [
        [{"fulfillment_order_id": 1046000780,
          "fulfillment_order_line_items": [{"id": 1072503277, "quantity": 1}]}],
    ] * 2  # fmt: skip
    assert sorted(c["fulfillment"]["tracking_info"]["number"] for c in creates) == sorted(
        p.tracking_number for p in parcels
    )
    for parcel in parcels:
        parcel.refresh_from_db()
        assert parcel.channel_ref
    assert len({p.channel_ref for p in parcels}) == 2

    for parcel in parcels:
        event = TrackingEvent(
            at=parcel.shipped_at + timedelta(hours=30),
            status="delivered",
            description="Delivered, front door",
            carrier_status="delivered",
        )
        tracking_record(
            shipment_id=parcel.pk, source="webhook",
            tracking=Tracking(tracking_number=parcel.tracking_number, status="delivered",
                              events=[event]),
        )  # fmt: skip
    outbox_drain()

    order.refresh_from_db()
    assert order.status == "delivered"
    for parcel in parcels:
        events = store.events[int(parcel.channel_ref)]
        assert [e["status"] for e in events] == ["delivered"]
        assert events[0]["message"] == "Delivered, front door"
    assert len(store.fulfillments) == 2
    assert all(a.status == ActionStatus.SUCCEEDED for a in sync_actions(order))
    for action in sync_actions(order):
        assert "Chestnut" not in str(action.result) and "@" not in str(action.result)
