"""WooCommerce adapter: webhook verification (with the unsigned activation ping) and
normalization of the vendor's own REST order examples, checked field by field against values
worked out by hand from the sample files.

An order.created/updated body is exactly the REST order object, so the samples are used as
webhook bodies unchanged.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from channels.adapters import get_adapter
from channels.adapters.base import ChannelConfig, Delivery, NormalizationError, SignatureInvalid
from orders import jsonschemas

SAMPLES = Path(settings.BASE_DIR).parent / "shared" / "samples" / "woocommerce"
ORDER_727 = SAMPLES / "order_727_get.json"
ORDERS_LIST = SAMPLES / "orders_list.json"

adapter = get_adapter("woocommerce")
SECRET = "wc-webhook-secret"
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
CHANNEL = ChannelConfig(id=9, slug="woo", kind="woocommerce", secret=SECRET)
VENDOR_SCHEMA = "woocommerce_order.v1.json"
DELETED_SCHEMA = "woocommerce_order_deleted.v1.json"
DELIVERY_ID = "0e5b6c2a4f1d4c6e9d2b7f3a8c1e5d90"


def _order_727() -> dict[str, Any]:
    return json.loads(ORDER_727.read_bytes())


def _listed(index: int) -> dict[str, Any]:
    return json.loads(ORDERS_LIST.read_bytes())[index]


def _sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _headers(body: bytes, **extra: str) -> dict[str, str]:
    headers = {
        "x-wc-webhook-signature": _sign(body),
        "x-wc-webhook-topic": "order.created",
        "x-wc-webhook-resource": "order",
        "x-wc-webhook-event": "created",
        "x-wc-webhook-id": "12",
        "x-wc-webhook-delivery-id": DELIVERY_ID,
        "x-wc-webhook-source": "https://example.com/",
    }
    headers.update(extra)
    return headers


def _tie_out(canonical: dict[str, Any]) -> dict[str, tuple[Decimal, Decimal]]:
    """What orders.validation.TotalsCheck compares, on the canonical order: {field: (from the
    parts, as stated)} for every figure that does not add up."""
    lines = canonical["lines"]
    parts = {
        "subtotal": sum((Decimal(ln["unit_price"]) * ln["quantity"] for ln in lines), Decimal(0)),
        "discount_total": sum((Decimal(ln["discount"]) for ln in lines), Decimal(0)),
        "tax_total": sum(
            (Decimal(ln["tax"]) for ln in lines), Decimal(canonical.get("shipping_tax", "0"))
        ),
        "total": Decimal(canonical["subtotal"])
        - Decimal(canonical["discount_total"])
        + Decimal(canonical["shipping_total"])
        + (Decimal(0) if canonical["taxes_included"] else Decimal(canonical["tax_total"])),
    }
    return {
        name: (computed, Decimal(canonical[name]))
        for name, computed in parts.items()
        if computed != Decimal(canonical[name])
    }


# --- what normalize must return, worked out by hand from the samples ---------------------------
# order_727_get.json (USD, status processing, prices_include_tax false):
#   line 315 "Woo Single #1": product 93, variation 0 -> variant_ref "93", sku "" ;
#     quantity 2, subtotal 6.00 -> unit price 6.00 / 2 = 3.00, total 6.00 -> discount
#     6.00 - 6.00 = 0.00, total_tax 0.45, taxes [rate id 75: 0.45] -> "State Tax"
#   line 316 "Ship Your Idea &ndash; Color: Black, Size: M Test" (entity unescaped to an en
#     dash): product 22, variation 23 -> variant_ref "23", sku "Bar3"; quantity 1, subtotal
#     12.00 -> unit price 12.00, total 12.00 -> discount 0.00, total_tax 0.90, taxes
#     [75: "0.9" -> 0.90]
#   subtotal = 6.00 + 12.00 = 18.00; discount_total 0.00; shipping_total 10.00 (Flat Rate);
#   shipping_tax 0.00; total_tax 1.35; total 29.35.
#   Order tax line 75 "State Tax" (rate_code US-CA-STATE TAX, no rate_percent in these
#   3.0-era docs -> rate null): tax_total 1.35 + shipping_tax_total 0.00 = 1.35.
#   No refunds -> 0.00. Dates: date_created_gmt 2017-03-22T19:28:02 and date_modified_gmt
#   2017-03-22T19:28:08, UTC. customer_id 0 (guest): no external id.
#   Billing: John Doe, 969 Market, address_2 "" and company "" dropped, San Francisco,
#   state "CA" (a code), 94103, US, phone (555) 555-5555, email john.doe@example.com.
#   Shipping: the same without phone or email.
TAX_75 = "State Tax"
EXPECTED_727 = {
    "schema_version": 1,
    "external_id": "727",
    "order_number": "727",
    "currency": "USD",
    "placed_at": "2017-03-22T19:28:02+00:00",
    "updated_at": "2017-03-22T19:28:08+00:00",
    "cancelled": False,
    "financial_status": "paid",
    "payment_method": "bacs",
    "customer": {
        "email": "john.doe@example.com",
        "name": "John Doe",
        "phone": "(555) 555-5555",
        "accepts_marketing": False,
    },  # fmt: skip
    "shipping_address": {
        "name": "John Doe",
        "line1": "969 Market",
        "city": "San Francisco",
        "region_code": "CA",
        "postal_code": "94103",
        "country_code": "US",
    },
    "billing_address": {
        "name": "John Doe",
        "line1": "969 Market",
        "city": "San Francisco",
        "region_code": "CA",
        "postal_code": "94103",
        "country_code": "US",
        "phone": "(555) 555-5555",
    },
    "lines": [
        {
            "external_line_id": "315",
            "channel_sku": "",
            "variant_ref": "93",
            "sku": "",
            "title": "Woo Single #1",
            "quantity": 2,
            "unit_price": "3.00",
            "discount": "0.00",
            "tax": "0.45",
            "tax_lines": [{"title": TAX_75, "rate": None, "amount": "0.45"}],
        },
        {
            "external_line_id": "316",
            "channel_sku": "Bar3",
            "variant_ref": "23",
            "sku": "",
            "title": "Ship Your Idea \u2013 Color: Black, Size: M Test",
            "quantity": 1,
            "unit_price": "12.00",
            "discount": "0.00",
            "tax": "0.90",
            "tax_lines": [{"title": TAX_75, "rate": None, "amount": "0.90"}],
        },
    ],
    "subtotal": "18.00",
    "discount_total": "0.00",
    "shipping_total": "10.00",
    "shipping_tax": "0.00",
    "tax_total": "1.35",
    "total": "29.35",
    "tax_lines": [{"title": TAX_75, "rate": None, "amount": "1.35"}],
    "taxes_included": False,
    "refunded_total": "0.00",
    "refunds": [],
    "risk_signals": {},
    "source": {
        "status": "processing",
        "payment_method_title": "Direct Bank Transfer",
        "created_via": "rest-api",
        "prices_include_tax": False,
        "coupon_codes": [],
    },
}
# orders_list.json[1], order 723 (USD, status completed, prices_include_tax false):
#   line 311 "Woo Album #2": product 87, variation 0 -> "87", sku ""; 1 x subtotal 9.00,
#     total 9.00 -> discount 0.00, total_tax 0.00, taxes [] -> no tax lines
#   line 313 "Woo Ninja": product 34 -> "34"; 1 x 20.00, total 20.00, tax 0.00, taxes []
#   subtotal = 9.00 + 20.00 = 29.00; discount 0.00; shipping 10.00 (Flat rate); shipping tax
#   0.00; total_tax 0.00; total 39.00; no order tax lines.
#   refunds 726 "-10.00" and 724 "-9.00" -> refunded 10.00 + 9.00 = 19.00; "completed" is
#   paid, with refunds -> partially_refunded. customer_id 26.
#   Billing: João Silva, Av. Brasil, 432, Rio de Janeiro, state "RJ", 12345-000, BR,
#   (11) 1111-1111, joao.silva@example.com. Shipping: the same without phone and email.
EXPECTED_723 = {
    "schema_version": 1,
    "external_id": "723",
    "order_number": "723",
    "currency": "USD",
    "placed_at": "2017-03-21T19:16:00+00:00",
    "updated_at": "2017-03-21T19:54:51+00:00",
    "cancelled": False,
    "financial_status": "partially_refunded",
    "payment_method": "bacs",
    "customer": {
        "external_id": "26",
        "email": "joao.silva@example.com",
        "name": "Jo\u00e3o Silva",
        "phone": "(11) 1111-1111",
        "accepts_marketing": False,  # WooCommerce's order does not say
    },
    "shipping_address": {
        "name": "Jo\u00e3o Silva",
        "line1": "Av. Brasil, 432",
        "city": "Rio de Janeiro",
        "region_code": "RJ",
        "postal_code": "12345-000",
        "country_code": "BR",
    },
    "billing_address": {
        "name": "Jo\u00e3o Silva",
        "line1": "Av. Brasil, 432",
        "city": "Rio de Janeiro",
        "region_code": "RJ",
        "postal_code": "12345-000",
        "country_code": "BR",
        "phone": "(11) 1111-1111",
    },
    "lines": [
        {
            "external_line_id": "311",
            "channel_sku": "",
            "variant_ref": "87",
            "sku": "",
            "title": "Woo Album #2",
            "quantity": 1,
            "unit_price": "9.00",
            "discount": "0.00",
            "tax": "0.00",
            "tax_lines": [],
        },
        {
            "external_line_id": "313",
            "channel_sku": "",
            "variant_ref": "34",
            "sku": "",
            "title": "Woo Ninja",
            "quantity": 1,
            "unit_price": "20.00",
            "discount": "0.00",
            "tax": "0.00",
            "tax_lines": [],
        },
    ],
    "subtotal": "29.00",
    "discount_total": "0.00",
    "shipping_total": "10.00",
    "shipping_tax": "0.00",
    "tax_total": "0.00",
    "total": "39.00",
    "tax_lines": [],
    "taxes_included": False,
    "refunded_total": "19.00",
    # The order lists its two refunds by id and amount only (WooCommerce signs them negative).
    "refunds": [
        {"external_id": "726", "currency": "USD", "total": "10.00", "raw": {"total": "-10.00"}},
        {"external_id": "724", "currency": "USD", "total": "9.00", "raw": {"total": "-9.00"}},
    ],
    "risk_signals": {},
    "source": {
        "status": "completed",
        "payment_method_title": "Direct bank transfer",
        "created_via": "checkout",
        "prices_include_tax": False,
        "coupon_codes": [],
    },
}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (_order_727(), EXPECTED_727),
        (_listed(0), EXPECTED_727),  # 727 again; the listed copy differs only in meta_data
        (_listed(1), EXPECTED_723),
    ],
    ids=["727_get", "list_727", "list_723"],
)
def test_sample_normalizes_to_the_hand_worked_canonical_order(payload, expected):
    assert jsonschemas.errors("channels", VENDOR_SCHEMA, payload) == []

    canonical = adapter.normalize(payload, CHANNEL, "order.created")

    for field in sorted(set(expected) | set(canonical)):
        assert canonical.get(field, "<absent>") == expected.get(field, "<absent>"), field
    for i, (line, want) in enumerate(zip(canonical["lines"], expected["lines"], strict=True)):
        assert line == want, f"line {i}"
    assert canonical == expected
    assert jsonschemas.errors("orders", "canonical_order.v1.json", canonical) == []


# --- tie-out verdicts: these decide which orders get a "totals do not add up" incident --------
def test_727_ties_out():
    # lines 3.00 x 2 + 12.00 x 1 = 18.00 = subtotal (the sum of the line subtotals)
    # discounts 0.00 + 0.00 = 0.00 = discount_total
    # taxes 0.45 + 0.90 + shipping tax 0.00 = 1.35 = total_tax
    # 18.00 - 0.00 + 10.00 + 1.35 = 29.35 = total
    assert _tie_out(adapter.normalize(_order_727(), CHANNEL, "order.created")) == {}


def test_listed_727_ties_out():
    # the same figures as order_727_get.json: 18.00 - 0.00 + 10.00 + 1.35 = 29.35
    assert _tie_out(adapter.normalize(_listed(0), CHANNEL, "order.created")) == {}


def test_723_ties_out():
    # lines 9.00 x 1 + 20.00 x 1 = 29.00; discounts 0.00; taxes 0.00 + 0.00 + 0.00 = 0.00
    # 29.00 - 0.00 + 10.00 + 0.00 = 39.00 = total (the refunds, 19.00, do not change it)
    assert _tie_out(adapter.normalize(_listed(1), CHANNEL, "order.updated")) == {}


def test_stated_totals_are_kept_as_stated_even_when_they_do_not_add_up():
    payload = _order_727()
    payload["fee_lines"] = [{"id": 1, "name": "Surcharge", "total": "2.00", "total_tax": "0.15"}]
    payload["total"], payload["total_tax"] = "31.50", "1.50"  # as WooCommerce states them
    canonical = adapter.normalize(payload, CHANNEL, "order.updated")
    # fees have no canonical field: the mismatch is flagged, and source says why
    assert (canonical["total"], canonical["tax_total"]) == ("31.50", "1.50")
    assert (canonical["source"]["fee_total"], canonical["source"]["fee_tax"]) == ("2.00", "0.15")
    assert _tie_out(canonical) == {
        "tax_total": (Decimal("1.35"), Decimal("1.50")),  # 0.45 + 0.90 + 0.00
        "total": (Decimal("29.50"), Decimal("31.50")),  # 18.00 - 0.00 + 10.00 + 1.50
    }


# --- other normalization rules -----------------------------------------------------------------
def test_prices_include_tax_does_not_make_the_rest_amounts_tax_inclusive():
    # WooCommerce's REST line/shipping amounts are net of tax whatever the store setting, and
    # its total adds the taxes on top: counting them as included would break every such order.
    payload = _order_727()
    payload["prices_include_tax"] = True
    canonical = adapter.normalize(payload, CHANNEL, "order.created")
    assert canonical["taxes_included"] is False
    assert canonical["source"]["prices_include_tax"] is True
    assert _tie_out(canonical) == {}


@pytest.mark.parametrize(
    ("status", "financial_status", "cancelled"),
    [
        ("pending", "pending", False),
        ("on-hold", "pending", False),
        ("failed", "pending", False),
        ("processing", "paid", False),
        ("completed", "paid", False),
        ("cancelled", "voided", True),
        ("refunded", "refunded", False),
        ("some-plugin-status", "unknown", False),
    ],
)
def test_status_mapping(status, financial_status, cancelled):
    payload = _order_727()  # no refunds
    payload["status"] = status
    canonical = adapter.normalize(payload, CHANNEL, "order.updated")
    assert (canonical["financial_status"], canonical["cancelled"]) == (financial_status, cancelled)


def test_a_discounted_line_keeps_its_pre_discount_unit_price():
    payload = _order_727()
    payload["line_items"][0]["total"] = "5.00"  # a 1.00 coupon on the 2 x 3.00 line
    line = adapter.normalize(payload, CHANNEL, "order.updated")["lines"][0]
    assert (line["unit_price"], line["discount"]) == ("3.00", "1.00")


@pytest.mark.parametrize(
    ("rounding", "unit_price"), [("ROUND_HALF_UP", "3.33"), ("ROUND_UP", "3.34")]
)
def test_a_subtotal_that_does_not_divide_is_rounded_with_the_channels_rule(rounding, unit_price):
    payload = _order_727()
    payload["line_items"][0].update(quantity=3, subtotal="10.00", total="10.00")
    channel = ChannelConfig(id=9, slug="woo", kind="woocommerce", rounding=rounding)
    canonical = adapter.normalize(payload, channel, "order.updated")
    assert canonical["lines"][0]["unit_price"] == unit_price
    # the lost or gained cent is not hidden: 3 x 3.33 + 12.00 = 21.99 against 22.00
    assert canonical["subtotal"] == "22.00"
    assert "subtotal" in _tie_out(canonical)


def test_free_text_state_is_a_region_not_a_code():
    payload = _order_727()
    payload["shipping"].update(state="Bavaria", country="de")
    address = adapter.normalize(payload, CHANNEL, "order.created")["shipping_address"]
    assert (address.get("region"), address.get("region_code"), address["country_code"]) == (
        "Bavaria",
        None,
        "DE",
    )


def test_an_empty_shipping_block_is_no_address():
    payload = _order_727()
    payload["shipping"] = {k: "" for k in payload["shipping"]}  # a virtual-goods order
    assert adapter.normalize(payload, CHANNEL, "order.created")["shipping_address"] is None


@pytest.mark.parametrize(
    ("change", "pointer", "value"),
    [
        (lambda o: o.update(currency="XYZ"), "/currency", "XYZ"),
        (lambda o: o["line_items"][0].update(quantity=0), "/line_items/0/quantity", 0),
        (lambda o: o["line_items"][1].pop("subtotal"), "/line_items/1/subtotal", None),
        (lambda o: o["line_items"][1].update(total="twelve"), "/line_items/1/total", "twelve"),
        (lambda o: o.update(total=29.35), "/total", 29.35),
        (lambda o: o.update(date_created_gmt="22/03/2017"), "/date_created_gmt", "22/03/2017"),
        (lambda o: o.update(line_items=[]), "/line_items", "array of 0 item(s)"),
        (
            lambda o: o["shipping"].update(country=""),
            "/shipping/country",
            "[redacted]",  # nothing under an address is shown
        ),
    ],
    ids=[
        "currency",
        "quantity",
        "no_subtotal",
        "bad_total",
        "float_total",
        "bad_date",
        "no_lines",
        "country",
    ],  # fmt: skip
)
def test_payload_that_cannot_be_normalized_raises_normalization_error(change, pointer, value):
    payload = _order_727()
    change(payload)
    with pytest.raises(NormalizationError) as exc:
        adapter.normalize(payload, CHANNEL, "order.created")
    [error] = exc.value.errors
    assert error["pointer"] == pointer
    assert error["value"] == value
    for personal in ("John", "Doe", "969 Market", "94103", "555-5555", "john.doe"):
        assert personal not in str(exc.value.errors)


# --- vendor schemas ----------------------------------------------------------------------------
def test_vendor_schema_refuses_what_normalize_relies_on_being_missing_or_mistyped():
    payload = _order_727()
    del payload["date_created_gmt"]
    payload["line_items"][0]["subtotal"] = 6.0
    payload["refunds"] = [{"id": 1, "total": -10}]
    pointers = {e["pointer"] for e in jsonschemas.errors("channels", VENDOR_SCHEMA, payload)}
    assert pointers == {"", "/line_items/0/subtotal", "/refunds/0/total"}


def test_vendor_schema_allows_fields_it_does_not_know():
    payload = _listed(1)
    payload.update(payment_url="https://example.com/pay", is_editable=False, needs_payment=False)
    assert jsonschemas.errors("channels", VENDOR_SCHEMA, payload) == []


def test_order_deleted_has_its_own_small_schema_and_cancels_by_id():
    assert adapter.payload_schema("order.deleted", "") == DELETED_SCHEMA
    assert jsonschemas.errors("channels", DELETED_SCHEMA, {"id": 727}) == []
    assert jsonschemas.errors("channels", DELETED_SCHEMA, {"id": "727"}) != []
    assert jsonschemas.errors("channels", DELETED_SCHEMA, {}) != []
    assert adapter.cancelled_external_id({"id": 727}, "order.deleted") == "727"


@pytest.mark.parametrize("topic", ["order.created", "order.updated", "order.restored"])
def test_full_order_topics_use_the_order_schema_and_are_not_thin_cancels(topic):
    assert adapter.payload_schema(topic, "") == VENDOR_SCHEMA
    assert adapter.cancelled_external_id(_order_727(), topic) is None
    assert adapter.fetch(CHANNEL, _order_727()) is None


# --- verify ------------------------------------------------------------------------------------
def test_correct_signature_passes_and_the_delivery_id_is_the_dedup_key():
    body = ORDER_727.read_bytes()
    delivery = adapter.verify(CHANNEL, _headers(body), body, now=NOW)
    assert delivery == Delivery(
        dedup_key=f"delivery:{DELIVERY_ID}", topic="order.created", is_ping=False
    )


def test_without_a_delivery_id_the_body_hash_is_the_dedup_key():
    body = ORDERS_LIST.read_bytes()
    headers = _headers(body, **{"x-wc-webhook-topic": "order.updated"})
    del headers["x-wc-webhook-delivery-id"]
    delivery = adapter.verify(CHANNEL, headers, body, now=NOW)
    assert delivery.dedup_key == "sha256:" + hashlib.sha256(body).hexdigest()
    assert delivery.topic == "order.updated"


def test_wrong_signature_is_refused():
    body = ORDER_727.read_bytes()
    headers = _headers(body, **{"x-wc-webhook-signature": _sign(body, "another-secret")})
    with pytest.raises(SignatureInvalid, match="mismatch"):
        adapter.verify(CHANNEL, headers, body, now=NOW)


def test_signature_over_other_bytes_is_refused():
    body = ORDER_727.read_bytes()
    headers = _headers(body)
    with pytest.raises(SignatureInvalid):
        adapter.verify(CHANNEL, headers, body.rstrip(b"\n") + b" \n", now=NOW)


def test_missing_signature_header_is_refused():
    body = ORDER_727.read_bytes()
    headers = _headers(body)
    del headers["x-wc-webhook-signature"]
    with pytest.raises(SignatureInvalid, match="missing"):
        adapter.verify(CHANNEL, headers, body, now=NOW)


def test_channel_without_a_secret_refuses_signed_deliveries():
    body = ORDER_727.read_bytes()
    unsigned = ChannelConfig(id=9, slug="woo", kind="woocommerce", secret="")
    with pytest.raises(SignatureInvalid, match="secret"):
        adapter.verify(unsigned, _headers(body, **{"x-wc-webhook-signature": _sign(body, "")}),
                       body, now=NOW)  # fmt: skip


def test_the_activation_ping_is_answered_without_a_signature():
    # WC_Webhook::deliver_ping(): body 'webhook_id=' . $this->get_id(), only a user agent.
    headers = {"user-agent": "WooCommerce/9.0.0 Hookshot (WordPress/6.5)"}
    delivery = adapter.verify(CHANNEL, headers, b"webhook_id=12", now=NOW)
    assert delivery == Delivery(dedup_key="ping:12", topic="ping", is_ping=True)
    no_secret = ChannelConfig(id=9, slug="woo", kind="woocommerce", secret="")
    assert adapter.verify(no_secret, headers, b"webhook_id=12", now=NOW).is_ping is True


@pytest.mark.parametrize(
    "body",
    [
        b"webhook_id=12&status=active",
        b"webhook_id=",
        b"webhook_id=abc",
        b"webhook_id=12\n",
        b" webhook_id=12",
        b'{"webhook_id": 12}',
        b"",
        b'{"id": 727}',
    ],
)
def test_anything_else_unsigned_is_refused(body):
    with pytest.raises(SignatureInvalid):
        adapter.verify(CHANNEL, {"x-wc-webhook-topic": "order.deleted"}, body, now=NOW)


def test_normalize_does_not_change_the_payload():
    payload = _listed(1)
    before = copy.deepcopy(payload)
    adapter.normalize(payload, CHANNEL, "order.updated")
    assert payload == before
