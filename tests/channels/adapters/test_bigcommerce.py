"""BigCommerce adapter: webhook verification, fetching over real HTTP (pytest-httpserver fed the
vendor's documented examples, unchanged) and normalization checked against hand arithmetic.

The three REST examples belong to different orders (218 order, 149 products, 229 shipping
addresses), so the normalized order does not tie out; that is what the totals check is for.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from pytest_httpserver import HTTPServer

from channels.adapters import get_adapter
from channels.adapters.base import AdapterError, ChannelConfig, Delivery, SignatureInvalid
from orders import jsonschemas

SAMPLES = Path(settings.BASE_DIR).parent / "shared" / "samples" / "bigcommerce"
ORDER = SAMPLES / "v2_get_order_218.json"
PRODUCTS = SAMPLES / "v2_get_order_products.json"
ADDRESSES = SAMPLES / "v2_get_order_shipping_addresses.json"
CREATED = SAMPLES / "webhook_store_order_created.json"
STATUS_UPDATED = SAMPLES / "webhook_store_order_statusUpdated.json"
REFUND_CREATED = SAMPLES / "webhook_store_order_refund_created.json"

adapter = get_adapter("bigcommerce")
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
SECRET = "bc-client-secret"
TOKEN = "bc-access-token"


def _json(path: Path):
    return json.loads(path.read_bytes())


@pytest.fixture(autouse=True)
def no_backoff(settings):
    settings.CHANNEL_HTTP_BACKOFF_FACTOR = 0


@pytest.fixture
def channel(httpserver: HTTPServer) -> ChannelConfig:
    return ChannelConfig(
        id=31,
        slug="bc",
        kind="bigcommerce",
        secret=SECRET,
        api_base_url=httpserver.url_for("/stores/abc123"),
        credentials={"access_token": TOKEN},
    )


def _sign(body: bytes, *, msg_id: str, timestamp: int, secret: str = SECRET) -> dict[str, str]:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    sig = base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{sig}",
    }


# --- verify: Standard Webhooks ----------------------------------------------------------------
def test_standard_webhooks_signature_is_accepted_and_keyed_by_webhook_id(channel):
    body = CREATED.read_bytes()
    ts = int(NOW.timestamp()) - 10
    delivery = adapter.verify(
        channel, _sign(body, msg_id="msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", timestamp=ts), body, now=NOW
    )
    assert delivery == Delivery(
        dedup_key="webhook:msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        topic="store/order/created",
        event_at=datetime.fromtimestamp(ts, tz=UTC),
    )


def test_one_good_signature_among_several_is_enough(channel):
    body = CREATED.read_bytes()
    ts = int(NOW.timestamp())
    headers = _sign(body, msg_id="msg_1", timestamp=ts)
    old = _sign(body, msg_id="msg_1", timestamp=ts, secret="old-secret")["webhook-signature"]
    headers["webhook-signature"] = f"{old} {headers['webhook-signature']}"
    assert adapter.verify(channel, headers, body, now=NOW).dedup_key == "webhook:msg_1"


def test_stale_timestamp_is_refused(channel):
    body = CREATED.read_bytes()
    ts = int((NOW - timedelta(minutes=5, seconds=1)).timestamp())
    with pytest.raises(SignatureInvalid, match="tolerance"):
        adapter.verify(channel, _sign(body, msg_id="msg_1", timestamp=ts), body, now=NOW)


def test_wrong_signature_is_refused(channel):
    body = CREATED.read_bytes()
    headers = _sign(body, msg_id="msg_1", timestamp=int(NOW.timestamp()), secret="not-ours")
    with pytest.raises(SignatureInvalid, match="mismatch"):
        adapter.verify(channel, headers, body, now=NOW)


def test_tampered_body_is_refused(channel):
    body = CREATED.read_bytes()
    headers = _sign(body, msg_id="msg_1", timestamp=int(NOW.timestamp()))
    with pytest.raises(SignatureInvalid):
        adapter.verify(channel, headers, body.replace(b"250", b"251"), now=NOW)


def test_signed_but_malformed_json_is_kept_under_its_body_hash(channel):
    body = b'{"scope": "store/order/created", "data": '
    headers = _sign(body, msg_id="msg_9", timestamp=int(NOW.timestamp()))
    delivery = adapter.verify(channel, headers, body, now=NOW)
    assert delivery.topic == ""
    assert delivery.dedup_key == "sha256:" + hashlib.sha256(body).hexdigest()


# --- verify: shared header ---------------------------------------------------------------------
@pytest.fixture
def header_channel(channel) -> ChannelConfig:
    return ChannelConfig(
        id=32, slug="bc-h", kind="bigcommerce",
        auth_header_name="x-orderdesk-token", auth_header_value="h-3f9a",
        api_base_url=channel.api_base_url, credentials=channel.credentials,
    )  # fmt: skip


def test_shared_header_mode_keys_by_hash_and_created_at(header_channel):
    body = CREATED.read_bytes()
    delivery = adapter.verify(header_channel, {"x-orderdesk-token": "h-3f9a"}, body, now=NOW)
    assert delivery == Delivery(
        dedup_key="hash:dd70c0976e06b67aaf671e73f49dcb79230ebf9d:1561479335",
        topic="store/order/created",
        # 1561479335 = 18072 days (2019-06-25) + 58535 s (16:15:35)
        event_at=datetime(2019, 6, 25, 16, 15, 35, tzinfo=UTC),
    )


def test_shared_header_mode_tells_events_with_the_same_created_at_apart(header_channel):
    # created and statusUpdated for order 250 share created_at 1561479335, not their hash.
    keys = {
        adapter.verify(
            header_channel, {"x-orderdesk-token": "h-3f9a"}, p.read_bytes(), now=NOW
        ).dedup_key
        for p in (CREATED, STATUS_UPDATED)
    }
    assert len(keys) == 2


def test_shared_header_mode_tells_repeated_updates_of_one_order_apart(header_channel):
    # Every store/order/updated of one order has the same data, hence (if the hash covers only
    # the data) the same hash: created_at keeps a later update from passing for a duplicate.
    first = _json(CREATED)
    later = {**first, "created_at": first["created_at"] + 60}
    keys = {
        adapter.verify(
            header_channel, {"x-orderdesk-token": "h-3f9a"}, json.dumps(e).encode(), now=NOW
        ).dedup_key
        for e in (first, later)
    }
    assert len(keys) == 2


def test_the_same_firing_twice_has_the_same_key(header_channel):
    body = STATUS_UPDATED.read_bytes()
    headers = {"x-orderdesk-token": "h-3f9a"}
    assert (
        adapter.verify(header_channel, headers, body, now=NOW).dedup_key
        == adapter.verify(header_channel, headers, body, now=NOW + timedelta(hours=1)).dedup_key
    )


@pytest.mark.parametrize("headers", [{}, {"x-orderdesk-token": "h-3f9b"}, {"other": "h-3f9a"}])
def test_shared_header_missing_or_wrong_is_refused(header_channel, headers):
    with pytest.raises(SignatureInvalid):
        adapter.verify(header_channel, headers, CREATED.read_bytes(), now=NOW)


def test_a_channel_with_neither_secret_nor_header_refuses_everything():
    bare = ChannelConfig(id=33, slug="bare", kind="bigcommerce")
    with pytest.raises(SignatureInvalid):
        adapter.verify(bare, {"x-orderdesk-token": "h-3f9a"}, CREATED.read_bytes(), now=NOW)


# --- schemas -------------------------------------------------------------------------------------
@pytest.mark.parametrize("sample", [CREATED, STATUS_UPDATED, REFUND_CREATED])
def test_order_webhook_samples_fit_the_envelope_schema(sample):
    schema = adapter.payload_schema("store/order/created", "")
    assert schema == "bigcommerce_webhook.v1.json"
    assert jsonschemas.errors("channels", schema, _json(sample)) == []


def test_a_non_order_scope_does_not_fit_the_envelope_schema():
    envelope = {**_json(CREATED), "scope": "store/product/created"}
    envelope["data"] = {"type": "product", "id": 250}
    problems = jsonschemas.errors("channels", "bigcommerce_webhook.v1.json", envelope)
    assert {p["pointer"] for p in problems} == {"/scope", "/data/type"}


# --- fetch over HTTP ------------------------------------------------------------------------------
def _serve_order_218(httpserver: HTTPServer) -> None:
    headers = {"X-Auth-Token": TOKEN, "Accept": "application/json"}
    base = "/stores/abc123/v2/orders/250"
    page = {"page": "1", "limit": "250"}
    httpserver.expect_request(base, headers=headers).respond_with_data(
        ORDER.read_bytes(), content_type="application/json"
    )
    httpserver.expect_request(
        f"{base}/products", headers=headers, query_string=page
    ).respond_with_data(PRODUCTS.read_bytes(), content_type="application/json")
    httpserver.expect_request(
        f"{base}/shipping_addresses", headers=headers, query_string=page
    ).respond_with_data(ADDRESSES.read_bytes(), content_type="application/json")


def test_fetch_pulls_the_order_its_products_and_its_shipping_addresses(httpserver, channel):
    # The webhook is for order 250; the server answers with the vendor's examples as they are.
    _serve_order_218(httpserver)
    fetched = adapter.fetch(channel, _json(CREATED))
    httpserver.check_assertions()
    assert fetched == {
        "order": _json(ORDER),
        "products": _json(PRODUCTS),
        "shipping_addresses": _json(ADDRESSES),
    }
    assert adapter.fetched_schema() == "bigcommerce_order.v2.json"
    assert jsonschemas.errors("channels", adapter.fetched_schema(), fetched) == []
    assert [r.path for r, _ in httpserver.log] == [
        "/stores/abc123/v2/orders/250",
        "/stores/abc123/v2/orders/250/products",
        "/stores/abc123/v2/orders/250/shipping_addresses",
    ]


def test_fetch_treats_204_no_content_as_no_shipping_addresses(httpserver, channel):
    base = "/stores/abc123/v2/orders/250"
    httpserver.expect_request(base).respond_with_data(
        ORDER.read_bytes(), content_type="application/json"
    )
    httpserver.expect_request(f"{base}/products").respond_with_data(
        PRODUCTS.read_bytes(), content_type="application/json"
    )
    httpserver.expect_request(f"{base}/shipping_addresses").respond_with_data("", status=204)
    assert adapter.fetch(channel, _json(CREATED))["shipping_addresses"] == []


@pytest.mark.parametrize("first_status", [429, 500])
def test_fetch_retries_a_429_or_500_then_succeeds(httpserver, channel, first_status):
    base = "/stores/abc123/v2/orders/250"
    httpserver.expect_ordered_request(base).respond_with_data("", status=first_status)
    httpserver.expect_ordered_request(base).respond_with_data(
        ORDER.read_bytes(), content_type="application/json"
    )
    httpserver.expect_ordered_request(f"{base}/products").respond_with_data(
        PRODUCTS.read_bytes(), content_type="application/json"
    )
    httpserver.expect_ordered_request(f"{base}/shipping_addresses").respond_with_data(
        ADDRESSES.read_bytes(), content_type="application/json"
    )
    fetched = adapter.fetch(channel, _json(CREATED))
    httpserver.check_assertions()
    assert fetched["order"]["id"] == 218
    assert [r.status_code for _, r in httpserver.log] == [first_status, 200, 200, 200]


def test_fetch_gives_up_on_a_persistent_500_with_a_retryable_error(httpserver, channel):
    httpserver.expect_request("/stores/abc123/v2/orders/250").respond_with_data("", status=500)
    with pytest.raises(AdapterError) as caught:
        adapter.fetch(channel, _json(CREATED))
    assert caught.value.retryable is True
    assert len(httpserver.log) == 5


def test_fetch_of_an_unknown_order_is_not_retryable(httpserver, channel):
    httpserver.expect_request("/stores/abc123/v2/orders/250").respond_with_json(
        [{"status": 404, "message": "The requested resource was not found."}], status=404
    )
    with pytest.raises(AdapterError) as caught:
        adapter.fetch(channel, _json(CREATED))
    assert caught.value.retryable is False
    assert "HTTP 404" in str(caught.value)
    assert len(httpserver.log) == 1


def test_fetch_without_an_access_token_is_not_retryable_and_calls_nobody(httpserver, channel):
    with pytest.raises(AdapterError, match="access_token") as caught:
        adapter.fetch(dataclasses.replace(channel, credentials={}), _json(CREATED))
    assert caught.value.retryable is False
    assert httpserver.log == []


# --- normalize ---------------------------------------------------------------------------------
def _fetched() -> dict:
    return {
        "order": _json(ORDER),
        "products": _json(PRODUCTS),
        "shipping_addresses": _json(ADDRESSES),
    }


def test_normalize_order_218_field_by_field(channel):
    canonical = adapter.normalize(_fetched(), channel, "store/order/created")
    assert jsonschemas.errors("orders", "canonical_order.v1.json", canonical) == []
    assert canonical == {
        "schema_version": 1,
        "external_id": "218",
        "order_number": "218",
        "currency": "USD",
        # "Tue, 05 Mar 2019 21:40:11 +0000" / "Mon, 11 Mar 2019 15:17:25 +0000"
        "placed_at": "2019-03-05T21:40:11+00:00",
        "updated_at": "2019-03-11T15:17:25+00:00",
        "cancelled": False,  # status_id 7, Awaiting Payment
        "financial_status": "authorized",  # payment_status "authorized"
        "payment_method": "Cash",
        "customer": {
            "external_id": "11",
            "email": "janedoe@example.com",
            "name": "Jane Doe",
            "phone": "1234567890",
            "accepts_marketing": False,  # is_email_opt_in false
        },
        "billing_address": {
            "name": "Jane Doe",
            "line1": "555 East Street",
            "city": "Austin",
            "region": "Texas",
            "postal_code": "78108",
            "phone": "1234567890",
            "country_code": "US",
        },
        # The first of the two shipping addresses (id 132, order 229's example).
        "shipping_address": {
            "name": "Trishy Smith",
            "company": "Acme Pty Ltd",
            "line1": "666 Sussex St",
            "city": "San Antonio",
            "region": "Texas",
            "postal_code": "78251",
            "country_code": "US",
        },
        "lines": [
            {
                "external_line_id": "65",
                "channel_sku": "S-ORAN",
                "variant_ref": "77",  # no variant_id in the example: product_id
                "sku": "",
                "title": "Fog Linen Chambray Towel - Beige Stripe",
                "quantity": 1,
                "unit_price": "55.99",  # price_ex_tax 55.9900
                "discount": "1.59",  # applied_discounts: manual-discount 1.5900
                "tax": "9.24",  # total_tax 9.2400 = (65.2300 - 55.9900) x 1
            },
            {
                # the bundled pick-list item: free, but it has to be picked
                "external_line_id": "66",
                "channel_sku": "ABS",
                "variant_ref": "86",
                "sku": "",
                "title": "Able Brewing System",
                "quantity": 1,
                "unit_price": "0.00",
                "discount": "0.00",
                "tax": "0.00",
            },
        ],
        "subtotal": "62.68",  # subtotal_ex_tax 62.6793, half-up to cents
        "discount_total": "10.00",  # discount_amount 5.0000 + coupon_discount 5.0000
        "shipping_total": "11.09",  # shipping 11.0900 + handling 0 + wrapping 0 (ex tax)
        "shipping_tax": "0.91",  # shipping_cost_tax 0.9100 + 0 + 0
        "tax_total": "5.31",  # total_tax 5.3100 (= subtotal_tax 4.40 + shipping tax 0.91)
        "total": "69.84",  # total_inc_tax 69.8400
        "taxes_included": False,
        "refunded_total": "0.00",
        "source": {
            "status": "Awaiting Payment",
            "status_id": 7,
            "payment_status": "authorized",
            "order_source": "external",
            "shipping_address_count": 2,
            "acquisition_source": "external",  # external_source is null: order_source
            "fees_ex_tax": "16.30",  # 12.3000 (as cost_exc_tax) + 4.0000 (cost_ex_tax)
            # For the tracking write-back's shipments: the addresses' ids (132, 133) and each
            # product's own order_address_id (the three examples are of different orders).
            "shipping_address_id": 132,
            "shipping_address_ids": [132, 133],
            "line_address_ids": {"65": 51, "66": 51},
        },
    }


def test_normalized_sample_does_not_tie_out_because_the_examples_are_three_orders(channel):
    c = adapter.normalize(_fetched(), channel, "store/order/created")
    amount = {k: Decimal(c[k]) for k in ("subtotal", "discount_total", "shipping_total",
                                         "shipping_tax", "tax_total", "total")}  # fmt: skip
    # The order alone ties out on the inc-tax side: 67.84 + 12.00 - 5.00 - 5.00 = 69.84.
    # On the ex-tax side 62.68 - 10.00 + 11.09 + 5.31 = 69.08, 0.76 short of 69.84: the
    # example's subtotal_ex_tax (62.6793) is not subtotal_inc_tax - subtotal_tax (63.44).
    computed = (
        amount["subtotal"] - amount["discount_total"] + amount["shipping_total"]
        + amount["tax_total"]
    )  # fmt: skip
    assert (computed, amount["total"]) == (Decimal("69.08"), Decimal("69.84"))
    # Lines (order 149) against the order (218): 55.99 + 0.00 vs subtotal 62.68; line
    # discounts 1.59 vs 10.00; line tax 9.24 + 0.00 + shipping tax 0.91 = 10.15 vs 5.31.
    lines = c["lines"]
    assert sum(Decimal(ln["unit_price"]) * ln["quantity"] for ln in lines) == Decimal("55.99")
    assert sum(Decimal(ln["discount"]) for ln in lines) == Decimal("1.59")
    assert sum(Decimal(ln["tax"]) for ln in lines) + amount["shipping_tax"] == Decimal("10.15")


def test_status_5_is_cancelled(channel):
    fetched = _fetched()
    fetched["order"] = {**fetched["order"], "status_id": 5, "status": "Cancelled"}
    assert adapter.normalize(fetched, channel, "store/order/statusUpdated")["cancelled"] is True


@pytest.mark.parametrize(
    ("payment_status", "expected"),
    [
        ("", "pending"),
        ("authorized", "authorized"),
        ("captured", "paid"),
        ("paid", "paid"),
        ("partially refunded", "partially_refunded"),
        ("refunded", "refunded"),
        ("something new", "unknown"),
    ],
)
def test_payment_status_maps_to_financial_status(channel, payment_status, expected):
    fetched = _fetched()
    fetched["order"] = {**fetched["order"], "payment_status": payment_status}
    canonical = adapter.normalize(fetched, channel, "store/order/updated")
    assert canonical["financial_status"] == expected


def test_rounding_follows_the_channel(channel):
    fetched = copy.deepcopy(_fetched())
    fetched["order"]["subtotal_ex_tax"] = "62.6750"
    half_even = dataclasses.replace(channel, rounding="ROUND_HALF_EVEN")
    assert adapter.normalize(fetched, channel, "")["subtotal"] == "62.68"
    assert adapter.normalize(fetched, half_even, "")["subtotal"] == "62.68"
    fetched["order"]["subtotal_ex_tax"] = "62.6850"
    assert adapter.normalize(fetched, channel, "")["subtotal"] == "62.69"
    assert adapter.normalize(fetched, half_even, "")["subtotal"] == "62.68"


def test_cancellations_come_through_the_fetched_order_not_a_thin_path():
    assert adapter.cancelled_external_id(_json(STATUS_UPDATED), "store/order/statusUpdated") is None


# --- through the inbox ------------------------------------------------------------------------
def test_an_order_webhook_is_fetched_normalized_and_stored(
    db, httpserver, django_capture_on_commit_callbacks
):
    from channels.models import ChannelKind, InboundSource, InboundStatus
    from channels.services import inbound_event_process, inbound_event_store
    from orders.models import Order
    from tests.factories import SalesChannelFactory

    store = SalesChannelFactory(
        kind=ChannelKind.BIGCOMMERCE, slug="bc-store", webhook_secret=SECRET,
        api_base_url=httpserver.url_for("/stores/abc123"), credentials={"access_token": TOKEN},
    )  # fmt: skip
    _serve_order_218(httpserver)
    with django_capture_on_commit_callbacks(execute=False):
        event, created = inbound_event_store(
            channel=store, source=InboundSource.WEBHOOK, topic="store/order/created",
            dedup_key="webhook:msg_1", headers={}, body=CREATED.read_bytes(),
        )  # fmt: skip
    assert created
    with django_capture_on_commit_callbacks(execute=True):
        inbound_event_process(event_id=event.pk)
    event.refresh_from_db()
    assert (event.status, event.errors) == (InboundStatus.PROCESSED, [])
    assert event.fetched["order"]["id"] == 218
    order = Order.objects.get(pk=event.order_id)
    assert (order.external_id, order.currency, order.total) == ("218", "USD", Decimal("69.84"))
    assert order.lines.count() == 2
