"""The customer's order status page: a signed link that opens one order and nothing else, the
parcels in words with their tracking history, the return policy as the shop wrote it, schema.org
markup that names every parcel, private headers, no personal data beyond the first name and the
city, and a bounded number of queries. The emails link to it."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta

import pytest
from django.core import mail, signing
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fulfillment.downstream import get_handler
from fulfillment.models import ActionKind, OutboundAction, ReturnPolicy
from fulfillment.returns import ReturnLineRequest, return_request
from fulfillment.selectors import return_policy_for
from fulfillment.status_page import (
    SALT,
    jsonld_script_text,
    order_schema_status,
    status_path,
    status_token,
    status_token_order_id,
    status_url,
)
from orders.actors import Actor
from tests.factories import SalesChannelFactory, make_order
from tests.fulfillment.status_world import (
    CITY,
    EMAIL,
    LAST_NAME,
    PHONE,
    POSTAL_CODE,
    STREET,
    status_order,
)

pytestmark = pytest.mark.django_db

JSONLD = re.compile(rb'<script type="application/ld\+json">(.*?)</script>', re.DOTALL)


def jsonld_of(response) -> dict:
    [raw] = JSONLD.findall(response.content)
    return json.loads(raw)


def nodes(data: dict, kind: str) -> list[dict]:
    return [n for n in data["@graph"] if n["@type"] == kind]


# --- the link ------------------------------------------------------------------------------------
def test_a_token_gives_back_the_order_id_it_was_made_for():
    token = status_token(42)

    assert status_token_order_id(token) == 42
    assert token.startswith("42.")  # <id>.<timestamp>.<signature>


def test_status_url_is_absolute_on_the_public_base_url(settings):
    settings.PUBLIC_BASE_URL = "https://orders.example.com/"
    order = make_order(pipeline=False)

    url = status_url(order)

    assert url.startswith("https://orders.example.com/status/")
    token = url.removeprefix("https://orders.example.com/status/").rstrip("/")
    assert status_token_order_id(token) == order.pk


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t, other: t[:-1] + ("A" if t[-1] != "A" else "B"), id="tampered"),
        pytest.param(lambda t, other: other + t[t.index(".") :], id="other-order-id"),
        pytest.param(lambda t, other: other, id="bare-id"),
        pytest.param(lambda t, other: "not-a-token", id="garbage"),
        pytest.param(
            lambda t, other: signing.TimestampSigner(salt="other", sep=".").sign(other),
            id="other-salt",
        ),
        pytest.param(lambda t, other: "9" * 300, id="too-long"),
    ],
)
def test_a_wrong_token_opens_nothing(mangle):
    order = make_order(pipeline=False)
    other = make_order(pipeline=False)

    assert status_token_order_id(mangle(status_token(order.pk), str(other.pk))) is None


class SignedDaysAgo(signing.TimestampSigner):
    """The status page's signer as it was ``days`` ago (the token carries its signing time)."""

    def __init__(self, days: float) -> None:
        super().__init__(salt=SALT, sep=".")
        self.days = days

    def timestamp(self) -> str:
        return signing.b62_encode(int(time.time() - self.days * 86400))


def test_a_token_older_than_the_max_age_opens_nothing(settings):
    settings.STATUS_LINK_MAX_AGE_DAYS = 180

    assert status_token_order_id(SignedDaysAgo(179).sign("7")) == 7
    assert status_token_order_id(SignedDaysAgo(181).sign("7")) is None
    settings.STATUS_LINK_MAX_AGE_DAYS = 200
    assert status_token_order_id(SignedDaysAgo(181).sign("7")) == 7


def test_tampered_expired_and_unknown_tokens_get_the_same_plain_404(client, settings):
    order, _parcels = status_order(settings=settings)
    good = status_token(order.pk)
    answers = {
        "tampered": client.get(f"/status/{good[:-2]}xx/"),
        "unknown order": client.get(status_path(order.pk + 1000)),
        "garbage": client.get("/status/hello/"),
        "signed elsewhere": client.get(
            f"/status/{signing.TimestampSigner(sep='.').sign(str(order.pk))}/"
        ),
        "expired": client.get(f"/status/{SignedDaysAgo(181).sign(str(order.pk))}/"),
    }
    assert client.get(f"/status/{good}/").status_code == 200

    bodies = {r.content for r in answers.values()}
    assert {r.status_code for r in answers.values()} == {404}
    assert len(bodies) == 1, "every refusal must look the same"
    body = bodies.pop().decode()
    assert "expired" not in body.lower() and "signature" not in body.lower()
    for response in answers.values():
        assert response["X-Robots-Tag"] == "noindex, nofollow"
        assert response["Referrer-Policy"] == "no-referrer"
        assert response["Cache-Control"] == "private, no-store"
    # The same 404 with DEBUG on: no technical page naming the token or the reason.
    settings.DEBUG = True
    assert client.get(f"/status/{good[:-2]}xx/").content.decode() == body


def test_only_get_and_head_are_answered(client, settings):
    order, _parcels = status_order(settings=settings, events=2)

    assert client.post(status_path(order.pk)).status_code == 405
    assert client.head(status_path(order.pk)).status_code == 200


# --- the page ------------------------------------------------------------------------------------
def test_the_page_shows_items_parcels_history_arrival_and_what_has_not_shipped(client, settings):
    order, (first, second) = status_order(settings=settings, events=10)

    response = client.get(status_path(order.pk))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Order #1042" in html and "Hello Ada," in html and CITY in html
    assert "20 November 2026" in html
    assert "Mug white" in html and "Cap navy" in html
    # Titles are text, never markup.
    assert "T-shirt &lt;b&gt;black&lt;/b&gt;" in html and "<b>black</b>" not in html
    assert "Parcel 1 of 2" in html and "Parcel 2 of 2" in html
    assert first.tracking_number in html and second.tracking_number in html
    assert '<span class="parcel-state" data-status="OrderDelivered">Delivered</span>' in html
    assert '<span class="parcel-state" data-status="OrderInTransit">Out for delivery</span>' in html
    assert "Speedy Parcel" in html and "Local courier" in html
    # The history, newest first, with the facility's city.
    parcel_two = html[html.index('id="parcel-2"') :]
    assert parcel_two.index("Out for delivery") < parcel_two.index("Arrived at facility 9")
    assert parcel_two.index("Arrived at facility 9") < parcel_two.index("Arrived at facility 1<")
    assert "Denver, CO" in parcel_two
    # The estimate is shown for the parcel still on its way only.
    assert html.count('class="eta"') == 1
    # CAP x1 has not left.
    not_shipped = html[html.index('aria-label="Not shipped yet"') :]
    assert "1 &times; Cap navy" in not_shipped.split("</section>")[0]
    assert "On its way" in html  # the order as a whole


def test_the_return_section_is_the_active_policy_as_written(client, settings):
    order, _parcels = status_order(settings=settings, events=2, policy=False)
    ReturnPolicy.objects.create(name="Old", window_days=14, is_active=False,
                                conditions="OLD CONDITIONS")  # fmt: skip
    ReturnPolicy.objects.create(name="Shop", window_days=30, conditions="Shop-wide terms",
                                how_to_start="Write to us")  # fmt: skip
    ReturnPolicy.objects.create(name="Channel", channel=order.channel, window_days=60,
                                conditions="Tags on.\nIn the original box.",
                                how_to_start="Use the <returns portal>.")  # fmt: skip

    html = client.get(status_path(order.pk)).content.decode()

    section = html[html.index('aria-label="Returns"') :]
    assert "within <strong>60 days</strong> of delivery" in section
    assert "<p>Tags on.<br>In the original box.</p>" in section
    assert "Use the &lt;returns portal&gt;." in section
    assert "Shop-wide terms" not in html and "OLD CONDITIONS" not in html


def test_the_shop_wide_policy_applies_to_a_channel_without_its_own():
    other = SalesChannelFactory()
    mine = SalesChannelFactory()
    ReturnPolicy.objects.create(name="Shop", window_days=30)
    own = ReturnPolicy.objects.create(name="Own", window_days=10, channel=other)

    assert return_policy_for(channel_id=mine.pk).name == "Shop"
    assert return_policy_for(channel_id=other.pk) == own


def test_without_an_active_policy_there_is_no_return_section(client, settings):
    order, _parcels = status_order(settings=settings, events=2, policy=False)
    ReturnPolicy.objects.create(name="Off", window_days=30, is_active=False,
                                conditions="Never shown")  # fmt: skip

    html = client.get(status_path(order.pk)).content.decode()

    assert 'aria-label="Returns"' not in html and "Never shown" not in html


def test_once_every_parcel_is_delivered_the_window_is_counted_from_the_last_delivery(
    client, settings
):
    from fulfillment.tracking import tracking_record
    from tests.fulfillment.status_world import carrier_history

    order, (_first, second) = status_order(settings=settings, events=3)
    tracking_record(shipment_id=second.pk, source="webhook",
                    tracking=carrier_history(second, 4, delivered=True))  # fmt: skip
    second.refresh_from_db()

    html = client.get(status_path(order.pk)).content.decode()

    deadline = second.delivered_at + timedelta(days=30)
    assert f"You can start a return until <strong>{deadline:%-d %B %Y}</strong>" in html


def test_no_personal_data_beyond_the_first_name_and_the_city(client, settings):
    order, _parcels = status_order(settings=settings)

    html = client.get(status_path(order.pk)).content.decode()

    for secret in (STREET, POSTAL_CODE, EMAIL, PHONE, LAST_NAME, "Amphitheatre", "650 555"):
        assert secret not in html, secret
    assert "Ada" in html and CITY in html


def test_private_headers_and_meta_noindex(client, settings):
    order, _parcels = status_order(settings=settings, events=2)

    response = client.get(status_path(order.pk))

    assert response["X-Robots-Tag"] == "noindex, nofollow"
    assert response["Referrer-Policy"] == "no-referrer"
    assert response["Cache-Control"] == "private, no-store"
    assert b'<meta name="robots" content="noindex">' in response.content
    assert not response.cookies  # no session, no CSRF cookie for a customer's visit


def test_a_carrier_link_is_shown_only_when_it_is_https(client, settings):
    order, (first, second) = status_order(settings=settings, events=2)
    type(first).objects.filter(pk=first.pk).update(tracking_url="https://track.example/LC1")
    type(second).objects.filter(pk=second.pk).update(tracking_url="javascript:alert(1)")

    html = client.get(status_path(order.pk)).content.decode()

    assert html.count("Track it on the carrier's site") == 1
    assert 'href="https://track.example/LC1"' in html and "javascript:" not in html


def test_the_page_reads_in_a_bounded_number_of_queries(client, settings):
    order, _parcels = status_order(settings=settings, events=20)
    path = status_path(order.pk)

    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200

    # order (+channel, customer), lines, parcels, their lines, their events, return policy,
    # and (the order has shipped) its returns with their lines and refunds in one join.
    assert len(queries) <= 7, [q["sql"] for q in queries]


def test_the_returns_of_an_order_cost_one_query_however_many_there_are(client, settings):
    order, _parcels = status_order(settings=settings, events=2)
    path = status_path(order.pk)
    with CaptureQueriesContext(connection) as before:
        client.get(path)
    mug, tee = order.lines.get(sku="MUG"), order.lines.get(sku="TEE")
    for line, reason in ((mug, "damaged"), (mug, "size_or_fit"), (tee, "changed_mind")):
        return_request(order_id=order.pk, via="admin", actor=Actor.system("cs"),
                       lines=[ReturnLineRequest(line.pk, 1, reason)])  # fmt: skip

    with CaptureQueriesContext(connection) as after:
        html = client.get(path).content.decode()

    assert len(after) == len(before) <= 7
    assert html.count("/return/RMA-") == 3  # one link per return
    assert "Arrived damaged" not in html  # reasons are on each return's own page


# --- schema.org ----------------------------------------------------------------------------------
def test_jsonld_parses_and_names_every_parcel(client, settings):
    order, (first, second) = status_order(settings=settings)
    path = status_path(order.pk)

    data = jsonld_of(client.get(path))

    [order_node] = nodes(data, "Order")
    assert data["@context"] == "https://schema.org"
    assert order_node["orderNumber"] == "#1042"
    assert order_node["orderDate"] == "2026-11-20T09:30:00+00:00"
    assert order_node["orderStatus"] == "https://schema.org/OrderInTransit"
    assert order_node["merchant"] == {"@type": "Organization", "name": "Demo Store"}
    assert [(i["orderedItem"]["name"], i["orderQuantity"]) for i in order_node["orderedItem"]] == [
        ("Mug white", 2), ("T-shirt <b>black</b>", 1), ("Cap navy", 1),
    ]  # fmt: skip
    parcels = {p["trackingNumber"]: p for p in nodes(data, "ParcelDelivery")}
    assert set(parcels) == {first.tracking_number, second.tracking_number}
    delivered, moving = parcels[first.tracking_number], parcels[second.tracking_number]
    assert delivered["deliveryStatus"]["identifier"] == "https://schema.org/OrderDelivered"
    assert delivered["deliveryStatus"]["name"] == "Delivered"
    assert moving["deliveryStatus"]["identifier"] == "https://schema.org/OrderInTransit"
    assert moving["deliveryStatus"]["name"] == "Out for delivery"
    assert moving["provider"] == {"@type": "Organization", "name": "Speedy Parcel"}
    assert delivered["provider"] == {"@type": "Organization", "name": "Local courier"}
    assert moving["expectedArrivalFrom"] == second.estimated_delivery_from.isoformat()
    assert moving["expectedArrivalUntil"] == second.estimated_delivery_until.isoformat()
    for parcel in parcels.values():
        assert parcel["hasDeliveryMethod"] == "https://schema.org/ParcelService"
        assert parcel["partOfOrder"]["@id"] == order_node["@id"]
        assert parcel["partOfOrder"]["orderNumber"] == "#1042"
        # The local carrier has no tracking page of its own: this page is it.
        assert parcel["trackingUrl"].startswith(f"http://127.0.0.1:8000{path}#parcel-")
        assert parcel["deliveryAddress"] == {
            "@type": "PostalAddress",
            "addressLocality": CITY,
            "addressCountry": "US",
        }
    assert [i["name"] for i in moving["itemShipped"]] == ["Mug white", "T-shirt <b>black</b>"]
    assert {d["@id"] for d in order_node["orderDelivery"]} == {p["@id"] for p in parcels.values()}


def test_jsonld_is_escaped_for_a_script_element(client, settings):
    text = jsonld_script_text({"name": "</script><script>alert(1)</script> & <!--"})

    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"name": "</script><script>alert(1)</script> & <!--"}
    order, _parcels = status_order(settings=settings, events=2)
    raw = JSONLD.findall(client.get(status_path(order.pk)).content)[0]
    assert b"<b>" not in raw and b"\\u003Cb\\u003E" in raw


@pytest.mark.parametrize(
    ("order_status", "payment", "parcels", "not_shipped", "expected"),
    [
        ("cancelled", "refunded", [], [], "OrderCancelled"),
        ("validated", "pending", [], ["x"], "OrderPaymentDue"),
        ("allocated", "paid", [], ["x"], "OrderProcessing"),
        ("shipped", "paid", ["OrderProcessing"], [], "OrderProcessing"),
        ("shipped", "paid", ["OrderInTransit", "OrderDelivered"], [], "OrderInTransit"),
        ("shipped", "paid", ["OrderPickupAvailable", "OrderInTransit"], [], "OrderPickupAvailable"),
        ("shipped", "paid", ["OrderProblem", "OrderDelivered"], [], "OrderProblem"),
        ("shipped", "paid", ["OrderReturned", "OrderReturned"], [], "OrderReturned"),
        ("shipped", "paid", ["OrderDelivered", "OrderDelivered"], [], "OrderDelivered"),
        ("partially_shipped", "paid", ["OrderDelivered"], ["x"], "OrderProcessing"),
        ("closed", "paid", [], [], "OrderDelivered"),
    ],
)
def test_the_order_status_crosswalk(order_status, payment, parcels, not_shipped, expected):
    from types import SimpleNamespace

    order = SimpleNamespace(status=order_status, payment_status=payment)
    parcel_rows = [SimpleNamespace(schema_status=s) for s in parcels]

    assert order_schema_status(order, parcel_rows, not_shipped) == expected  # type: ignore[arg-type]


# --- the emails link to it -----------------------------------------------------------------------
def _send_notices(order):
    """What the email adapter sends for each of the order's notify_customer actions."""
    adapter = get_handler(ActionKind.NOTIFY_CUSTOMER, "email")
    for action in OutboundAction.objects.filter(order=order, kind="notify_customer",
                                                target="email").order_by("pk"):  # fmt: skip
        adapter.perform(action)


@pytest.mark.orchestration  # the confirmations are written by the orchestration hooks
def test_the_confirmation_and_shipping_emails_link_to_the_status_page(settings):
    settings.PUBLIC_BASE_URL = "https://orders.example.com"
    order, _parcels = status_order(settings=settings, events=2)
    mail.outbox.clear()

    _send_notices(order)

    templates = {m.subject: m for m in mail.outbox}
    assert any("confirmed" in s for s in templates) and any("shipped" in s for s in templates)
    for message in mail.outbox:
        [link] = re.findall(r"https://orders\.example\.com/status/([^/\s]+)/", message.body)
        assert status_token_order_id(link) == order.pk
        html = message.alternatives[0][0]
        assert f'href="https://orders.example.com/status/{link}/"' in html


def test_the_salt_is_the_status_pages_own():
    # A value signed for anything else with the same key never opens a status page.
    assert SALT == "fulfillment.status_page.order"
    assert status_token_order_id(signing.TimestampSigner(sep=".").sign("1")) is None


# --- the admin -----------------------------------------------------------------------------------
def test_the_order_page_shows_customer_service_the_customers_status_link(client, cs_user):
    order = make_order(pipeline=False)
    client.force_login(cs_user)

    page = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()

    assert 'aria-label="Customer status page"' in page
    [token] = re.findall(r'href="http://127\.0\.0\.1:8000/status/([^/"]+)/"', page)
    assert status_token_order_id(token) == order.pk


def test_return_policies_are_listed_and_edited_in_the_admin(client, ops_user, cs_user, settings):
    order, _parcels = status_order(settings=settings, events=2, policy=False)
    client.force_login(ops_user)

    added = client.post("/admin/fulfillment/returnpolicy/add/", {
        "name": "Holiday returns", "is_active": "on", "channel": "", "window_days": "45",
        "conditions": "Unopened items only.", "how_to_start": "Email returns@shop.example.",
        "excluded_reasons": "[]", "auto_authorize_limit": "",
    })  # fmt: skip
    assert added.status_code == 302, added.content.decode()[:2000]
    listing = client.get("/admin/fulfillment/returnpolicy/").content.decode()
    assert "Holiday returns" in listing and "45" in listing
    html = client.get(status_path(order.pk)).content.decode()
    assert "<strong>45 days</strong>" in html and "Unopened items only." in html
    policy = ReturnPolicy.objects.get(name="Holiday returns")
    client.post(
        f"/admin/fulfillment/returnpolicy/{policy.pk}/change/",
        {
            "name": "Holiday returns",
            "channel": "",
            "window_days": "45",
            "conditions": "Unopened items only.",
            "how_to_start": "",
            "excluded_reasons": "[]",
            "auto_authorize_limit": "",
        },
    )  # fmt: skip  (is_active left out: switched off)
    assert 'aria-label="Returns"' not in client.get(status_path(order.pk)).content.decode()
    # Customer service reads the policies, cannot change them.
    client.force_login(cs_user)
    assert client.get("/admin/fulfillment/returnpolicy/").status_code == 200
    assert client.get("/admin/fulfillment/returnpolicy/add/").status_code == 403


def test_a_redacted_customer_has_no_name_on_the_page():
    from fulfillment.status_page import first_name

    assert first_name("Ada Lovelace") == "Ada"
    assert first_name("  Grace  ") == "Grace"
    assert first_name("redacted customer 7f3a9c01b2d4") == ""
    assert first_name("") == ""
