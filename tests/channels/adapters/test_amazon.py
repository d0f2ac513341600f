"""Amazon SP-API adapter: LWA tokens, getOrders/getOrderItems polling with NextToken, rate
limits and retries over real HTTP (pytest-httpserver fed Amazon's published examples as they
are), and normalization checked against hand arithmetic."""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from pytest_httpserver import HTTPServer

from channels.adapters import amazon, get_adapter
from channels.adapters.base import AdapterError, ChannelConfig, NormalizationError, SignatureInvalid
from orders import jsonschemas

SAMPLES = Path(settings.BASE_DIR).parent / "shared" / "samples" / "amazon"
ORDERS_EXAMPLE = SAMPLES / "getOrders_v0_response_example.json"  # 1 Pending order, NextToken
ORDERS_SANDBOX = SAMPLES / "getOrders_v0_sandbox_TEST_CASE_200.json"  # 2 Unshipped, no token
ITEMS_EXAMPLE = SAMPLES / "getOrderItems_v0_response_example.json"  # JPY + GBP, NextToken
ITEMS_SANDBOX = SAMPLES / "getOrderItems_v0_sandbox_TEST_CASE_200.json"  # 1 USD item
NEXT_TOKEN = "2YgYW55IGNhcm5hbCBwbGVhc3VyZS4"  # the examples' NextToken (both files)
PENDING_ID = "902-3159896-1390916"
SANDBOX_IDS = ("902-1845936-5435065", "902-8745147-1934268")

adapter = get_adapter("amazon")
CHANNEL_ID = 41
ACCESS_TOKEN = "Atza|IwEBIExampleAccessToken"
SINCE = datetime(2024, 1, 1, tzinfo=UTC)


def _json(path: Path):
    return json.loads(path.read_bytes())


def _serve(httpserver: HTTPServer, path: str, sample: Path, **kwargs) -> None:
    query = kwargs.pop("query_string", None)
    headers = kwargs.pop("response_headers", None)
    httpserver.expect_request(
        path, headers={"x-amz-access-token": ACCESS_TOKEN}, query_string=query
    ).respond_with_data(sample.read_bytes(), content_type="application/json", headers=headers)


class FakeClock:
    """Monotonic time that only moves when something sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(autouse=True)
def no_backoff_and_no_cached_tokens(settings):
    settings.CHANNEL_HTTP_BACKOFF_FACTOR = 0
    amazon.forget_token(CHANNEL_ID)
    yield
    amazon.forget_token(CHANNEL_ID)


@pytest.fixture
def channel(httpserver: HTTPServer) -> ChannelConfig:
    return ChannelConfig(
        id=CHANNEL_ID,
        slug="amzn-us",
        kind="amazon",
        api_base_url=httpserver.url_for("/").rstrip("/"),
        credentials={
            "client_id": "amzn1.application-oa2-client.example",
            "client_secret": "lwa-client-secret",
            "refresh_token": "Atzr|IwEBIExampleRefreshToken",
            "lwa_token_url": httpserver.url_for("/auth/o2/token"),
            "marketplace_ids": ["ATVPDKIKX0DER"],
        },
    )


def _token_endpoint(httpserver: HTTPServer, token: str = ACCESS_TOKEN, *, ordered=False):
    expect = httpserver.expect_ordered_request if ordered else httpserver.expect_request
    expect("/auth/o2/token", method="POST").respond_with_json(
        {"access_token": token, "token_type": "bearer", "expires_in": 3600,
         "refresh_token": "Atzr|IwEBIExampleRefreshToken"}
    )  # fmt: skip


def _token_posts(httpserver: HTTPServer) -> int:
    return sum(1 for r, _ in httpserver.log if r.path == "/auth/o2/token")


# --- verify ------------------------------------------------------------------------------------
def test_amazon_refuses_every_push(channel):
    with pytest.raises(SignatureInvalid, match="polled, not pushed"):
        adapter.verify(channel, {}, ORDERS_SANDBOX.read_bytes(), now=SINCE)


# --- LWA -----------------------------------------------------------------------------------------
def test_lwa_exchange_posts_the_refresh_token_form_and_caches_the_token(httpserver, channel):
    _token_endpoint(httpserver, "Atza|one", ordered=True)
    _token_endpoint(httpserver, "Atza|two", ordered=True)
    clock = FakeClock()
    client = amazon.SpApiClient(channel, sleep=clock.sleep, clock=clock)

    assert client.access_token() == "Atza|one"
    request, _ = httpserver.log[0]
    assert request.method == "POST"
    assert request.mimetype == "application/x-www-form-urlencoded"
    assert request.form.to_dict() == {
        "grant_type": "refresh_token",
        "refresh_token": "Atzr|IwEBIExampleRefreshToken",
        "client_id": "amzn1.application-oa2-client.example",
        "client_secret": "lwa-client-secret",
    }
    clock.now += 3539  # expires_in 3600 - 60 s of margin = 3540 s of use
    assert client.access_token() == "Atza|one"
    assert _token_posts(httpserver) == 1
    clock.now += 2
    assert client.access_token() == "Atza|two"
    assert _token_posts(httpserver) == 2
    client.close()


def test_the_cached_token_is_per_channel_and_per_refresh_token(httpserver, channel):
    _token_endpoint(httpserver)
    amazon.SpApiClient(channel).access_token()
    amazon.SpApiClient(channel).access_token()  # a new client, the same cache
    assert _token_posts(httpserver) == 1
    rotated = dataclasses.replace(
        channel, credentials={**channel.credentials, "refresh_token": "Atzr|2"}
    )
    amazon.SpApiClient(rotated).access_token()
    assert _token_posts(httpserver) == 2


def test_a_refused_refresh_token_is_not_retryable(httpserver, channel):
    httpserver.expect_request("/auth/o2/token", method="POST").respond_with_json(
        {"error": "invalid_grant"}, status=400
    )
    with pytest.raises(AdapterError) as caught:
        amazon.SpApiClient(channel).access_token()
    assert caught.value.retryable is False
    assert "Atzr|" not in str(caught.value) and "lwa-client-secret" not in str(caught.value)


def test_missing_credentials_are_not_retryable_and_call_nobody(httpserver, channel):
    bare = ChannelConfig(id=CHANNEL_ID, slug="x", kind="amazon", api_base_url="http://x.invalid")
    with pytest.raises(AdapterError, match="no marketplace_ids") as caught:
        list(adapter.poll(bare, updated_after=SINCE))
    assert caught.value.retryable is False
    no_refresh = dataclasses.replace(
        bare, credentials={"marketplace_ids": "ATVPDKIKX0DER", "client_id": "c"}
    )
    with pytest.raises(AdapterError, match="no refresh_token") as caught:
        list(adapter.poll(no_refresh, updated_after=SINCE))
    assert caught.value.retryable is False
    assert httpserver.log == []


# --- polling ---------------------------------------------------------------------------------
def _serve_two_pages(httpserver: HTTPServer, *, orders_limit=None, items_limit=None) -> None:
    """getOrders: the documented example (1 Pending order, NextToken), then the sandbox (2
    orders, no NextToken). getOrderItems: the documented example (NextToken) then the sandbox
    items for the Pending order; the sandbox items for each sandbox order."""
    _token_endpoint(httpserver)
    o_headers = {"x-amzn-RateLimit-Limit": orders_limit} if orders_limit else None
    i_headers = {"x-amzn-RateLimit-Limit": items_limit} if items_limit else None
    first_page = {"MarketplaceIds": "ATVPDKIKX0DER", "LastUpdatedAfter": "2024-01-01T00:00:00Z"}
    _serve(
        httpserver, "/orders/v0/orders", ORDERS_EXAMPLE, response_headers=o_headers,
        query_string=first_page,
    )  # fmt: skip
    _serve(
        httpserver, "/orders/v0/orders", ORDERS_SANDBOX, response_headers=o_headers,
        query_string={"MarketplaceIds": "ATVPDKIKX0DER", "NextToken": NEXT_TOKEN},
    )  # fmt: skip
    items = f"/orders/v0/orders/{PENDING_ID}/orderItems"
    _serve(httpserver, items, ITEMS_EXAMPLE, query_string="", response_headers=i_headers)
    _serve(
        httpserver, items, ITEMS_SANDBOX, query_string={"NextToken": NEXT_TOKEN},
        response_headers=i_headers,
    )  # fmt: skip
    for order_id in SANDBOX_IDS:
        _serve(
            httpserver, f"/orders/v0/orders/{order_id}/orderItems", ITEMS_SANDBOX,
            query_string="", response_headers=i_headers,
        )  # fmt: skip


def test_poll_follows_next_token_for_orders_and_items(httpserver, channel):
    _serve_two_pages(httpserver)
    clock = FakeClock()
    polled = list(adapter.poll(channel, updated_after=SINCE, sleep=clock.sleep, clock=clock))
    httpserver.check_assertions()

    assert [p["order"]["AmazonOrderId"] for p, _ in polled] == [PENDING_ID, *SANDBOX_IDS]
    pending, first, second = (p for p, _ in polled)
    assert pending["order"] == _json(ORDERS_EXAMPLE)["payload"]["Orders"][0]
    # Two pages of items: the example's two, then the sandbox's one.
    assert [i["OrderItemId"] for i in pending["items"]] == [
        "68828574383266", "79039765272157", "05015851154158",
    ]  # fmt: skip
    assert first == {
        "order": _json(ORDERS_SANDBOX)["payload"]["Orders"][0],
        "items": _json(ITEMS_SANDBOX)["payload"]["OrderItems"],
    }
    assert [i["OrderItemId"] for i in second["items"]] == ["05015851154158"]
    assert [when for _, when in polled] == [
        datetime(2017, 1, 20, 19, 49, 35, tzinfo=UTC),
        datetime(1970, 1, 19, 3, 58, 32, tzinfo=UTC),
        datetime(1970, 1, 19, 3, 58, 32, tzinfo=UTC),
    ]
    for payload, _ in polled:
        assert jsonschemas.errors("channels", adapter.payload_schema("", ""), payload) == []
    assert _token_posts(httpserver) == 1  # one token for the seven SP-API calls
    assert clock.sleeps == []  # no rate limit stated, no pacing
    assert [r.path for r, _ in httpserver.log] == [
        "/auth/o2/token",
        "/orders/v0/orders",
        f"/orders/v0/orders/{PENDING_ID}/orderItems",
        f"/orders/v0/orders/{PENDING_ID}/orderItems",
        "/orders/v0/orders",
        f"/orders/v0/orders/{SANDBOX_IDS[0]}/orderItems",
        f"/orders/v0/orders/{SANDBOX_IDS[1]}/orderItems",
    ]


def test_poll_paces_each_operation_by_its_stated_rate_limit(httpserver, channel, caplog):
    _serve_two_pages(httpserver, orders_limit="0.0167", items_limit="0.5")
    clock = FakeClock()
    list(adapter.poll(channel, updated_after=SINCE, sleep=clock.sleep, clock=clock))
    # t=1000 getOrders (limit 0.0167/s -> 59.88 s apart); t=1000 items p1 (0.5/s -> 2 s apart);
    # items p2 waits 2 s (t=1002); getOrders p2 waits 59.88 - 2 = 57.88 s (t=1059.88);
    # items of sandbox order 1: 57.88 s since the last items call, no wait; items of sandbox
    # order 2 right after: waits 2 s.
    assert clock.sleeps == [
        pytest.approx(2.0),
        pytest.approx(1 / 0.0167 - 2.0),
        pytest.approx(2.0),
    ]
    logged = [r.msg for r in caplog.records if isinstance(r.msg, dict)]
    limits = {(m["operation"], m["limit_per_second"]) for m in logged
              if m.get("event") == "amazon.rate_limit"}  # fmt: skip
    assert limits == {("getOrders", 0.0167), ("getOrderItems", 0.5)}


def test_poll_waits_out_a_429_with_retry_after_then_succeeds(httpserver, channel):
    _token_endpoint(httpserver)
    httpserver.expect_oneshot_request("/orders/v0/orders").respond_with_data(
        '{"errors": [{"code": "QuotaExceeded"}]}', status=429, headers={"Retry-After": "1"}
    )
    _serve(httpserver, "/orders/v0/orders", ORDERS_SANDBOX)
    for order_id in SANDBOX_IDS:
        _serve(httpserver, f"/orders/v0/orders/{order_id}/orderItems", ITEMS_SANDBOX)
    started = time.monotonic()
    polled = list(adapter.poll(channel, updated_after=SINCE))
    assert time.monotonic() - started >= 0.9  # Retry-After: 1 was honoured
    assert [p["order"]["AmazonOrderId"] for p, _ in polled] == list(SANDBOX_IDS)
    # token, getOrders 429, getOrders 200, then the two orders' items
    assert [response.status_code for _, response in httpserver.log] == [200, 429, 200, 200, 200]


def test_poll_gives_up_on_a_persistent_503_with_a_retryable_error(httpserver, channel):
    _token_endpoint(httpserver)
    httpserver.expect_request("/orders/v0/orders").respond_with_data("", status=503)
    with pytest.raises(AdapterError) as caught:
        list(adapter.poll(channel, updated_after=SINCE))
    assert caught.value.retryable is True
    assert sum(1 for r, _ in httpserver.log if r.path == "/orders/v0/orders") == 5


def test_a_403_drops_the_cached_token(httpserver, channel):
    _token_endpoint(httpserver)
    httpserver.expect_request("/orders/v0/orders").respond_with_json(
        {"errors": [{"code": "Unauthorized"}]}, status=403
    )
    for _ in range(2):
        with pytest.raises(AdapterError) as caught:
            list(adapter.poll(channel, updated_after=SINCE))
        assert caught.value.retryable is False
    assert _token_posts(httpserver) == 2  # the second poll asked for a fresh token


def test_poll_wants_an_aware_cursor(channel):
    with pytest.raises(ValueError, match="timezone-aware"):
        next(adapter.poll(channel, updated_after=datetime(2024, 1, 1)))  # noqa: DTZ001


# --- normalize ---------------------------------------------------------------------------------
def _sandbox(index: int = 0) -> dict:
    return {
        "order": _json(ORDERS_SANDBOX)["payload"]["Orders"][index],
        "items": _json(ITEMS_SANDBOX)["payload"]["OrderItems"],
    }


SANDBOX_LINE = {
    "external_line_id": "05015851154158",
    "channel_sku": "NABetaASINB00551Q3CS",
    "variant_ref": "B00551Q3CS",  # the ASIN
    "sku": "",
    "title": "B00551Q3CS [Card Book]",
    "quantity": 1,
    "unit_price": "10.00",  # ItemPrice 10.00 is the line total; / 1
    "discount": "0.00",  # PromotionDiscount 0.00
    "tax": "1.01",  # ItemTax 1.01
}


@pytest.mark.parametrize("index", [0, 1])
def test_normalize_sandbox_orders_field_by_field(channel, index):
    payload = _sandbox(index)
    canonical = adapter.normalize(payload, channel, "orders/poll")
    assert jsonschemas.errors("orders", "canonical_order.v1.json", canonical) == []
    assert canonical == {
        "schema_version": 1,
        "external_id": SANDBOX_IDS[index],
        "order_number": SANDBOX_IDS[index],
        "currency": "USD",
        "placed_at": "1970-01-19T03:58:30+00:00",
        "updated_at": "1970-01-19T03:58:32+00:00",
        "cancelled": False,
        "financial_status": "paid",  # Unshipped
        "payment_method": "Other",
        "customer": None,  # no BuyerInfo
        "shipping_address": None,  # no ShippingAddress (restricted data)
        "billing_address": None,
        "lines": [SANDBOX_LINE],
        "subtotal": "10.00",  # sum ItemPrice
        "discount_total": "0.00",  # sum PromotionDiscount
        "shipping_total": "0.00",  # no ShippingPrice, no ShippingDiscount
        "shipping_tax": "0.00",
        "tax_total": "1.01",  # ItemTax 1.01 + ShippingTax 0
        "total": "11.01",  # OrderTotal; ties out: 10.00 - 0.00 + 0.00 + 1.01 = 11.01
        "taxes_included": False,  # ATVPDKIKX0DER (US) prices exclude tax
        "source": {
            "order_status": "Unshipped",
            "fulfillment_channel": "MFN",
            "sales_channel": "Amazon.com",
            "marketplace_id": "ATVPDKIKX0DER",
            "acquisition_source": "amazon.com",  # the marketplace the buyer came from
            "total_from": "OrderTotal",
        },
    }


def test_normalize_without_order_total_computes_it_and_says_so(channel):
    # The documented Pending order (no OrderTotal) with the sandbox items (USD).
    payload = {
        "order": _json(ORDERS_EXAMPLE)["payload"]["Orders"][0],
        "items": _json(ITEMS_SANDBOX)["payload"]["OrderItems"],
    }
    canonical = adapter.normalize(payload, channel, "orders/poll")
    assert jsonschemas.errors("orders", "canonical_order.v1.json", canonical) == []
    assert canonical == {
        "schema_version": 1,
        "external_id": PENDING_ID,
        "order_number": PENDING_ID,
        "currency": "USD",  # no OrderTotal: the items' ItemPrice currency
        "placed_at": "2017-01-20T19:49:35+00:00",
        "updated_at": "2017-01-20T19:49:35+00:00",
        "cancelled": False,
        "financial_status": "pending",
        "payment_method": "Other",
        "customer": {"email": "user@example.com", "name": "John Doe", "accepts_marketing": False},
        "shipping_address": {
            "name": "Michigan address",
            "line1": "1 Cross St.",
            "city": "Canton",
            "region": "MI",
            "postal_code": "48817",
            "country_code": "US",
        },
        "billing_address": None,
        "lines": [SANDBOX_LINE],
        "subtotal": "10.00",
        "discount_total": "0.00",
        "shipping_total": "0.00",
        "shipping_tax": "0.00",
        "tax_total": "1.01",
        "total": "11.01",  # computed: 10.00 - 0.00 + 0.00 + 1.01
        "taxes_included": False,
        "source": {
            "order_status": "Pending",
            "fulfillment_channel": "MFN",
            "sales_channel": "",
            "marketplace_id": "ATVPDKIKX0DER",
            "acquisition_source": "atvpdkikx0der",  # no SalesChannel: the marketplace id
            "total_from": "computed from the items: Amazon sent no OrderTotal",
        },
    }


def test_the_documented_example_mixes_gbp_gift_wrap_into_a_jpy_order(channel):
    payload = {
        "order": _json(ORDERS_EXAMPLE)["payload"]["Orders"][0],
        "items": _json(ITEMS_EXAMPLE)["payload"]["OrderItems"],
    }
    assert jsonschemas.errors("channels", "amazon_order.v0.json", payload) == []
    with pytest.raises(NormalizationError) as caught:
        adapter.normalize(payload, channel, "orders/poll")
    assert [(e["pointer"], e["value"]) for e in caught.value.errors] == [
        ("/items/0/BuyerInfo/GiftWrapPrice/CurrencyCode", "GBP")
    ]
    assert "JPY" in caught.value.errors[0]["message"]


def test_a_line_total_that_does_not_divide_by_the_quantity_is_refused(channel):
    payload = copy.deepcopy(_sandbox())
    payload["items"][0]["QuantityOrdered"] = 3  # 10.00 / 3 = 3.333...
    with pytest.raises(NormalizationError) as caught:
        adapter.normalize(payload, channel, "orders/poll")
    assert caught.value.errors[0]["pointer"] == "/items/0/ItemPrice/Amount"
    assert "does not divide into 3" in caught.value.errors[0]["message"]

    payload["items"][0]["QuantityOrdered"] = 2  # 10.00 / 2 = 5.00
    line = adapter.normalize(payload, channel, "orders/poll")["lines"][0]
    assert (line["quantity"], line["unit_price"]) == (2, "5.00")


def test_shipping_is_net_of_its_discount_and_its_tax_is_in_the_total(channel):
    payload = copy.deepcopy(_sandbox())
    payload["items"][0].update(
        ShippingPrice={"CurrencyCode": "USD", "Amount": "4.99"},
        ShippingDiscount={"CurrencyCode": "USD", "Amount": "1.00"},
        ShippingTax={"CurrencyCode": "USD", "Amount": "0.40"},
    )
    canonical = adapter.normalize(payload, channel, "orders/poll")
    assert canonical["shipping_total"] == "3.99"  # 4.99 - 1.00
    assert canonical["shipping_tax"] == "0.40"
    assert canonical["tax_total"] == "1.41"  # ItemTax 1.01 + ShippingTax 0.40


def test_a_canceled_order_is_voided_and_cancelled(channel):
    payload = copy.deepcopy(_sandbox())
    payload["order"]["OrderStatus"] = "Canceled"
    canonical = adapter.normalize(payload, channel, "orders/poll")
    assert (canonical["financial_status"], canonical["cancelled"]) == ("voided", True)
    assert adapter.cancelled_external_id(payload, "orders/poll") is None  # it has a line


def test_a_canceled_order_with_nothing_ordered_is_a_thin_cancellation(channel):
    payload = copy.deepcopy(_sandbox())
    payload["order"]["OrderStatus"] = "Canceled"
    payload["items"][0]["QuantityOrdered"] = 0
    assert adapter.cancelled_external_id(payload, "orders/poll") == SANDBOX_IDS[0]
    assert adapter.cancelled_external_id(_sandbox(), "orders/poll") is None


# --- through the inbox ------------------------------------------------------------------------
def test_a_polled_order_is_stored_and_normalized(
    db, httpserver, django_capture_on_commit_callbacks
):
    from channels.models import ChannelKind, InboundEvent, InboundStatus
    from channels.polling import channel_poll
    from orders.models import Order
    from tests.factories import SalesChannelFactory

    _token_endpoint(httpserver)
    _serve(httpserver, "/orders/v0/orders", ORDERS_SANDBOX)
    for order_id in SANDBOX_IDS:
        _serve(httpserver, f"/orders/v0/orders/{order_id}/orderItems", ITEMS_SANDBOX)
    amazon_channel = SalesChannelFactory(
        kind=ChannelKind.AMAZON, slug="amzn-us",
        api_base_url=httpserver.url_for("/").rstrip("/"),
        credentials={
            "client_id": "c", "client_secret": "s", "refresh_token": "r",
            "lwa_token_url": httpserver.url_for("/auth/o2/token"),
            "marketplace_ids": "ATVPDKIKX0DER",
        },
    )  # fmt: skip
    amazon.forget_token(amazon_channel.pk)
    with django_capture_on_commit_callbacks(execute=True):
        result = channel_poll(channel_id=amazon_channel.pk)
    assert result.new == 2
    events = InboundEvent.objects.filter(channel=amazon_channel)
    assert [(e.status, e.errors) for e in events] == [(InboundStatus.PROCESSED, [])] * 2
    for order_id in SANDBOX_IDS:
        order = Order.objects.get(channel=amazon_channel, external_id=order_id)
        amounts = (order.currency, order.subtotal, order.tax_total, order.total)
        assert amounts == ("USD", Decimal("10.00"), Decimal("1.01"), Decimal("11.01"))
    amazon.forget_token(amazon_channel.pk)
