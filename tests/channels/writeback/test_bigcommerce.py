"""BigCommerce tracking write-back against a loopback V2 API: one shipment per parcel with the
order address and product ids the normalizer kept from BigCommerce's own samples, adopted on a
retry, tracking changed in place with PUT, refusals not retryable with BigCommerce's reason."""

from __future__ import annotations

import pytest

from channels.adapters import get_adapter
from channels.adapters.base import AdapterError, ChannelConfig
from channels.writeback.bigcommerce import BigCommerceWriteback, carrier_fields
from fulfillment.models import ActionStatus, OutboundAction
from fulfillment.outbox.services import outbox_drain
from orders import feedback
from orders.feedback import ShipmentUpdate, ShipmentUpdateLine
from tests.channels.writeback.helpers import (
    BC_TOKEN,
    BIGCOMMERCE,
    FakeBigCommerce,
    sample,
    shipped_order,
)
from tests.factories import SalesChannelFactory
from tests.fulfillment.helpers import add_warehouse, stock

pytestmark = [pytest.mark.django_db, pytest.mark.pipeline]

writeback = BigCommerceWriteback()
ORDER_ID = "149"  # the products sample's order


def normalized_source() -> dict:
    """``order.source`` as our BigCommerce normalizer keeps it from the samples."""
    fetched = {
        "order": sample(BIGCOMMERCE / "v2_get_order_218.json"),
        "products": sample(BIGCOMMERCE / "v2_get_order_products.json"),
        "shipping_addresses": sample(BIGCOMMERCE / "v2_get_order_shipping_addresses.json"),
    }
    config = ChannelConfig(id=1, slug="bc", kind="bigcommerce")
    return get_adapter("bigcommerce").normalize(fetched, config, "store/order/created")["source"]


def bc_channel(base_url: str, **fields):
    fields = {"credentials": {"access_token": BC_TOKEN}, **fields}
    return SalesChannelFactory(kind="bigcommerce", api_base_url=base_url, **fields)


def parcel_update(channel, *lines, source=None, channel_ref="", tracking="9400111899223100000001",
                  url="https://tools.usps.com/go/TrackConfirmAction?tLabels=9400111899223100000001",
                  carrier_name="USPS", status="pre_transit") -> ShipmentUpdate:  # fmt: skip
    return ShipmentUpdate(
        channel_id=channel.pk, order_external_id=ORDER_ID, order_number=ORDER_ID,
        order_source=normalized_source() if source is None else source, reference="shipment-7",
        channel_ref=channel_ref,
        lines=tuple(ShipmentUpdateLine(external_line_id=line_id, sku="SKU", quantity=qty)
                    for line_id, qty in (lines or [("65", 1), ("66", 1)])),
        carrier="easypost", carrier_name=carrier_name, service="Priority",
        tracking_number=tracking, tracking_url=url, status=status,
    )  # fmt: skip


def test_registered_configured_with_api_settings_and_tells_no_delivery_events(httpserver):
    assert isinstance(feedback.writeback_for("bigcommerce"), BigCommerceWriteback)
    assert writeback.configured(SalesChannelFactory(kind="bigcommerce").pk) is False
    assert writeback.configured(bc_channel(httpserver.url_for("/stores/abc123")).pk) is True
    off = bc_channel(httpserver.url_for("/x"), tracking_writeback=False)
    no_token = bc_channel(httpserver.url_for("/x"), credentials={})
    assert [writeback.configured(c.pk) for c in (off, no_token)] == [False, False]
    statuses = ("in_transit", "out_for_delivery", "delivered", "exception", "failed_attempt")
    assert not any(writeback.tells(s) for s in statuses)


def test_the_normalizer_keeps_the_shipping_address_ids_in_source():
    source = normalized_source()
    assert source["shipping_address_id"] == 132
    assert source["shipping_address_ids"] == [132, 133]
    assert source["line_address_ids"] == {"65": 51, "66": 51}


def test_first_push_creates_one_shipment_with_the_address_products_quantities_and_tracking(
    httpserver,
):
    store = FakeBigCommerce(httpserver)
    channel = bc_channel(store.base_url)

    result = writeback.push(parcel_update(channel, ("65", 1), ("66", 1)))

    assert [(m, p) for m, p, _ in store.calls] == [
        ("GET", "149/shipments"), ("POST", "149/shipments"),
    ]  # fmt: skip
    [body] = store.bodies("POST", "149/shipments")
    assert body == {
        "order_address_id": 51,  # the products' own order_address_id
        "items": [{"order_product_id": 65, "quantity": 1}, {"order_product_id": 66, "quantity": 1}],
        "tracking_number": "9400111899223100000001",
        "tracking_link": "https://tools.usps.com/go/TrackConfirmAction?tLabels=9400111899223100000001",
        "shipping_provider": "usps",
        "tracking_carrier": "usps",
    }
    assert result == {"channel_ref": "1", "shipment_id": 1, "outcome": "created"}


def test_a_carrier_bigcommerce_does_not_know_is_a_custom_provider_with_its_name():
    assert carrier_fields("Local Courier", "local") == {
        "shipping_provider": "", "tracking_carrier": "", "shipping_method": "Local Courier",
    }  # fmt: skip
    assert carrier_fields("Canada Post") == {
        "shipping_provider": "canadapost", "tracking_carrier": "canada-post",
    }  # fmt: skip
    assert carrier_fields("FedEx")["shipping_provider"] == "fedex"


def test_an_order_without_address_ids_in_source_reads_them_from_its_products(httpserver):
    store = FakeBigCommerce(httpserver)
    channel = bc_channel(store.base_url)
    writeback.push(parcel_update(channel, ("66", 1), source={"status": "Shipped"}))
    [body] = store.bodies("POST", "149/shipments")
    assert body["order_address_id"] == 51 and body["items"] == [
        {"order_product_id": 66, "quantity": 1}
    ]
    assert ("GET", "149/products") in [(m, p) for m, p, _ in store.calls]


def test_a_parcel_shipping_to_two_addresses_is_refused(httpserver):
    store = FakeBigCommerce(httpserver)
    channel = bc_channel(store.base_url)
    source = {**normalized_source(), "line_address_ids": {"65": 51, "66": 52}}
    with pytest.raises(AdapterError) as refused:
        writeback.push(parcel_update(channel, ("65", 1), ("66", 1), source=source))
    assert refused.value.retryable is False and "2 different order addresses" in str(refused.value)
    assert store.bodies("POST", "149/shipments") == []


def test_a_retry_adopts_the_shipment_that_carries_our_tracking_number(httpserver):
    store = FakeBigCommerce(httpserver)
    channel = bc_channel(store.base_url)
    first = writeback.push(parcel_update(channel))
    again = writeback.push(parcel_update(channel))  # the first answer was lost, say
    assert again == {**first, "outcome": "adopted"}
    assert len(store.shipments) == 1 and len(store.bodies("POST", "149/shipments")) == 1


def test_a_tracking_change_is_a_put_on_the_same_shipment(httpserver):
    store = FakeBigCommerce(httpserver)
    channel = bc_channel(store.base_url)
    ref = writeback.push(parcel_update(channel))["channel_ref"]

    same = writeback.push(parcel_update(channel, channel_ref=ref, status="in_transit"))
    assert same["outcome"] == "unchanged" and store.bodies("PUT", f"149/shipments/{ref}") == []

    changed = writeback.push(
        parcel_update(channel, channel_ref=ref, tracking="1Z999AA10123456784", url="",
                      carrier_name="UPS")
    )  # fmt: skip
    assert changed == {"channel_ref": ref, "shipment_id": int(ref), "outcome": "updated"}
    assert store.bodies("PUT", f"149/shipments/{ref}") == [{
        "tracking_number": "1Z999AA10123456784", "shipping_provider": "ups",
        "tracking_carrier": "ups",
    }]  # fmt: skip
    assert len(store.shipments) == 1 and store.shipments[0]["tracking_number"] == (
        "1Z999AA10123456784"
    )


def test_refusals_carry_bigcommerces_reason_and_outages_are_retryable(httpserver):
    store = FakeBigCommerce(httpserver)
    channel = bc_channel(store.base_url)
    store.fail_next("POST", "149/shipments", 400, [{
        "status": 400, "message": "The field 'order_address_id' is invalid.",
    }])  # fmt: skip
    with pytest.raises(AdapterError) as refused:
        writeback.push(parcel_update(channel))
    assert (refused.value.retryable, refused.value.status) == (False, 400)
    assert "The field 'order_address_id' is invalid." in str(refused.value)

    store.fail_next("POST", "149/shipments", 502)
    with pytest.raises(AdapterError) as down:
        writeback.push(parcel_update(channel))
    assert (down.value.retryable, down.value.status) == (True, 502)
    assert len(store.bodies("POST", "149/shipments")) == 2  # one per push, none repeated
    assert store.shipments == []


def test_end_to_end_a_shipped_bigcommerce_order_gets_one_shipment_per_parcel(httpserver):
    store = FakeBigCommerce(httpserver)
    channel = bc_channel(store.base_url)
    add_warehouse("A")
    stock("ORAN", "A", 2)
    stock("ABS", "A", 2)
    order, [parcel] = shipped_order(
        channel,
        external_id=ORDER_ID,
        lines=[("ORAN", "65", 1), ("ABS", "66", 1)],
        source=normalized_source(),
    )

    assert outbox_drain()["succeeded"] >= 1
    [body] = store.bodies("POST", "149/shipments")
    assert body["order_address_id"] == 51  # from order.source: no products read
    assert ("GET", "149/products") not in [(m, p) for m, p, _ in store.calls]
    assert body["items"] == [{"order_product_id": 65, "quantity": 1},
                             {"order_product_id": 66, "quantity": 1}]  # fmt: skip
    assert body["tracking_number"] == parcel.tracking_number
    assert body["shipping_provider"] == "" and body["shipping_method"] == "Local Courier"
    parcel.refresh_from_db()
    assert parcel.channel_ref == str(store.shipments[0]["id"])
    [action] = OutboundAction.objects.filter(order=order, kind="channel_tracking_sync")
    assert action.status == ActionStatus.SUCCEEDED
    assert action.result["outcome"] == "created"
