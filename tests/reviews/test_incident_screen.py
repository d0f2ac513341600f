"""The incidents screen (``/admin/work/incidents/``): counts per category for today, 7 and 30
days with a per-day chart and the top 3; the list per category with acknowledge and resolve;
and the fixes next to the problems, each through the real services and the real pipeline
(tests/reviews runs every check, the allocator included): an unmapped SKU mapped and its held
orders allocated, a quarantined event replayed after its channel setting is fixed, a dead
outbound action retried, an address corrected and the order released. Roles other than
customer service and operations get a 403."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.db import transaction
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from channels.models import ChannelKind, InboundEvent, SalesChannel, SkuMapping
from channels.signatures import sign_custom
from fulfillment.models import ActionKind, ActionStatus, OutboundAction
from orders.actors import Actor
from orders.models import Incident, IncidentCategory, IncidentStatus, Order, OrderEvent, Product
from orders.services import LineInput, OrderInput, incident_raise, order_create, order_transition
from reviews.selectors import incident_overview
from tests.factories import CustomerFactory, SalesChannelFactory, make_user
from tests.fulfillment.helpers import add_warehouse, stock
from tests.fulfillment.outbox.helpers import FakeWMS, dispatch, fresh, make_due, write
from tests.reviews.helpers import US

pytestmark = pytest.mark.django_db

URL = "/admin/work/incidents/"
WENT_ON = ("allocated", "fulfilling", "partially_shipped", "shipped")


def shown(response) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


# --- a world where an order can flow: our product, stock, a paid order -----------------------
@pytest.fixture
def world(db) -> SalesChannel:
    Product.objects.create(sku="MUG-RED", title="Red mug")
    Product.objects.create(sku="MUG-BLUE", title="Blue mug")
    add_warehouse("EAST")
    stock("MUG-RED", "EAST", 50)
    stock("MUG-BLUE", "EAST", 50)
    return SalesChannelFactory(slug="shop")


_n = iter(range(1, 10**6))


def held_order(channel: SalesChannel, *lines: tuple[str, str], address: Any = None) -> Order:
    """A paid order whose lines came in without our SKU (channel SKU, variant), through
    ``order_create`` and its pipeline (after commit): the SKU check holds it."""
    with TestCase.captureOnCommitCallbacks(execute=True), transaction.atomic():
        order = order_create(
            data=OrderInput(
                channel_id=channel.pk, external_id=f"H{next(_n)}", currency="USD",
                customer_id=CustomerFactory().pk, placed_at=timezone.now(),
                lines=[LineInput(sku="", channel_sku=channel_sku, variant_ref=variant,
                                 quantity=1, unit_price=Decimal("12.00"))
                       for channel_sku, variant in (lines or [("CH-RED", "v-red")])],
                shipping_address=dict(US if address is None else address),
            ),
            actor=Actor.system("test"),
        )  # fmt: skip
        order_transition(order_id=order.pk, transition="capture_payment", actor=Actor.system())
    order.refresh_from_db()
    return order


def paid_order(channel: SalesChannel, *, address: dict[str, str]) -> Order:
    """A paid order of a mapped product (MUG-RED) to ``address``, through its pipeline."""
    with TestCase.captureOnCommitCallbacks(execute=True), transaction.atomic():
        order = order_create(
            data=OrderInput(
                channel_id=channel.pk, external_id=f"A{next(_n)}", currency="USD",
                customer_id=CustomerFactory().pk, placed_at=timezone.now(),
                lines=[LineInput(sku="MUG-RED", quantity=1, unit_price=Decimal("12.00"))],
                shipping_address=dict(address),
            ),
            actor=Actor.system("test"),
        )  # fmt: skip
        order_transition(order_id=order.pk, transition="capture_payment", actor=Actor.system())
    order.refresh_from_db()
    return order


def post(client, data: dict[str, Any]):
    """The screen's form, with what its commit rings run in-process (the pipeline, the outbox)."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(URL, data)


# --- the overview ----------------------------------------------------------------------------
def raised(category: str, key: str, *, days_ago: int = 0, repeats: int = 0) -> Incident:
    """An incident through ``incident_raise`` (each repeat bumps it), first seen ``days_ago``
    (the test moves its first-seen time back: the clock is the one thing it cannot wait for)."""
    for _ in range(repeats + 1):
        incident = incident_raise(category=category, summary=f"{category} {key}", key=key)
    Incident.objects.filter(pk=incident.pk).update(
        first_seen_at=timezone.now() - timedelta(days=days_ago)
    )
    return incident


def test_overview_counts_incidents_and_occurrences_per_window_with_the_top_3(client, ops_user):
    sku, addr, down, dup = ("sku_unmapped", "address_format_invalid", "downstream_failed",
                            "duplicate_suspected")  # fmt: skip
    raised(sku, "a", repeats=2)  # today: 1 incident, 3 occurrences
    raised(sku, "b", days_ago=3)  # 7 days: 2 incidents, 4 occurrences
    raised(sku, "c", days_ago=10, repeats=1)  # previous 7 days: 2 occurrences
    raised(addr, "a", days_ago=1, repeats=4)  # 7 days: 5 occurrences
    raised(addr, "b", days_ago=12, repeats=9)  # previous 7 days: 10 occurrences
    raised(down, "a", days_ago=20)  # 30 days only
    raised(down, "b", days_ago=40)  # outside every window
    raised(dup, "a", days_ago=6)
    raised(dup, "b", days_ago=2)
    client.force_login(ops_user)

    response = client.get(URL)

    assert response.status_code == 200
    by = {f.category: f for f in response.context["overview"].categories}
    assert by[sku].counts == {"today": (1, 3), "7d": (2, 4), "30d": (3, 6)}
    assert by[addr].counts == {"today": (0, 0), "7d": (1, 5), "30d": (2, 15)}
    assert by[down].counts == {"today": (0, 0), "7d": (0, 0), "30d": (1, 1)}
    assert by[down].open == 2  # the one of 40 days ago is still open
    assert by[dup].counts == {"today": (0, 0), "7d": (2, 2), "30d": (2, 2)}
    top = response.context["overview"].top
    assert [(f.category, f.last7, f.prev7, f.delta, f.delta_percent) for f in top] == [
        (addr, 5, 10, -5, -50), (sku, 4, 2, 2, 100), (dup, 2, 0, 2, None),
    ]  # fmt: skip
    html = response.content.decode()
    assert '<tr data-category="sku_unmapped">' in html
    assert '<td class="num" data-window="30d-occurrences">15</td>' in html
    assert 'class="trend down">-5, -50%</span>' in html
    assert 'class="trend up">+2, new</span>' in html
    assert "<svg" in html and "Incident occurrences per day" in html
    svg = html.split('<div class="chart">', 1)[1].split("</svg>", 1)[0]
    assert "kozea.github.io" not in svg and 'xlink:href="//' not in svg  # js=[]: no remote JS


def test_overview_per_day_series_puts_occurrences_on_their_first_seen_day(db):
    raised("sku_unmapped", "a", repeats=1)
    raised("sku_unmapped", "b", days_ago=29)
    raised("sku_unmapped", "c", days_ago=30)  # a day too old for the chart

    overview = incident_overview()

    series = overview.per_day["sku_unmapped"]
    assert len(series) == len(overview.days) == 30
    assert overview.days[-1] == overview.today
    assert (series[-1], series[0], sum(series)) == (2, 1, 3)


def test_the_overview_reads_in_a_fixed_number_of_queries(
    client, ops_user, django_assert_max_num_queries
):
    for n in range(6):
        raised(IncidentCategory.values[n], f"k{n}", days_ago=n)
    client.force_login(ops_user)
    with django_assert_max_num_queries(12):  # session, user, permissions, the 2 reads
        assert client.get(URL).status_code == 200


def test_a_category_list_reads_in_the_same_queries_for_one_or_many_incidents(
    client, cs_user, world, django_assert_num_queries, django_assert_max_num_queries
):
    def acknowledged_held_order() -> None:
        order = held_order(world, ("CH-RED", f"v-{next(_n)}"))
        [incident] = order.incidents.all()
        post(client, {"action": "acknowledge", "incident_id": incident.pk})

    client.force_login(cs_user)
    acknowledged_held_order()
    client.get(URL, {"category": "sku_unmapped"})  # warm: session, content types
    with django_assert_max_num_queries(30) as one:
        client.get(URL, {"category": "sku_unmapped"})
    queries = len(one.captured_queries)  # a lazy view of the connection's log: keep the number
    for _ in range(4):
        acknowledged_held_order()
    with django_assert_num_queries(queries):
        response = client.get(URL, {"category": "sku_unmapped"})
    assert len(response.context["rows"]) == 5


# --- who may see it ----------------------------------------------------------------------------
@pytest.mark.parametrize("role,status", [
    ("customer_service", 200), ("ops_admin", 200), ("reviewer", 403), ("finance", 403),
    ("data_steward", 403),
])  # fmt: skip
def test_only_customer_service_and_operations_see_the_incidents(client, role, status):
    raised("sku_unmapped", "a")
    client.force_login(make_user(f"user-{role}", role))

    assert client.get(URL).status_code == status
    assert client.get(URL, {"category": "sku_unmapped"}).status_code == status
    answer = client.post(URL, {"action": "acknowledge", "incident_id": "1",
                               "category": "sku_unmapped"})  # fmt: skip
    assert answer.status_code == (302 if status == 200 else 403)


def test_a_staff_user_without_a_role_gets_403_and_anonymous_the_login(client):
    client.force_login(make_user("nobody"))
    assert client.get(URL).status_code == 403
    client.logout()
    response = client.get(URL)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_an_unknown_category_says_so(client, cs_user):
    client.force_login(cs_user)

    response = client.get(URL, {"category": "nonsense"}, follow=True)

    assert ("error", "There is no incident category 'nonsense'.") in shown(response)


# --- acknowledge and resolve -----------------------------------------------------------------
def test_acknowledge_then_resolve_with_a_note(client, cs_user):
    incident = raised("sku_unmapped", "a", repeats=1)
    client.force_login(cs_user)
    page = client.get(URL, {"category": "sku_unmapped"})
    html = page.content.decode()
    assert f'<tr id="incident-{incident.pk}" data-status="open">' in html
    assert '<td class="num">2</td>' in html  # its occurrences

    response = post(client, {"action": "acknowledge", "incident_id": incident.pk,
                             "category": "sku_unmapped"})  # fmt: skip
    assert response.status_code == 302
    assert response["Location"] == f"{URL}?category=sku_unmapped"
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.ACKNOWLEDGED and incident.acknowledged_by == cs_user

    refused = client.post(URL, {"action": "resolve", "incident_id": incident.pk,
                                "category": "sku_unmapped"}, follow=True)  # fmt: skip
    assert ("error", "Say how it was resolved: a note is required") in shown(refused)
    post(client, {"action": "resolve", "incident_id": incident.pk, "note": "Duplicate report",
                  "category": "sku_unmapped"})  # fmt: skip
    incident.refresh_from_db()
    assert (incident.status, incident.resolution_note) == ("resolved", "Duplicate report")
    assert (
        f"incident-{incident.pk}"
        not in client.get(URL, {"category": "sku_unmapped"}).content.decode()
    )


# --- fix: map an unmapped SKU and release its held orders -----------------------------------------
def test_mapping_an_sku_releases_every_order_held_for_it_and_they_are_allocated(
    client, cs_user, world
):
    first, second = held_order(world), held_order(world)
    both = held_order(world, ("CH-RED", "v-red"), ("CH-BLUE", "v-blue"))  # needs two mappings
    other = SalesChannelFactory(slug="other-shop")
    elsewhere = held_order(other)  # the same reference on another channel is another product
    assert {o.status for o in (first, second, both, elsewhere)} == {"on_hold"}
    client.force_login(cs_user)

    page = client.get(URL, {"category": "sku_unmapped"})
    html = page.content.decode()
    assert '<tr data-ref="v-red">' in html and "CH-RED (variant v-red)" in html
    assert '<option value="MUG-RED">Red mug</option>' in html
    assert "Map and release" in html

    response = post(client, {"action": "map_sku", "channel_id": world.pk,
                             "external_ref": "v-red", "sku": "MUG-RED",
                             "category": "sku_unmapped"})  # fmt: skip

    assert response.status_code == 302
    [(level, message)] = shown(client.get(URL))
    assert level == "success"
    assert message == (f"Mapped v-red on shop to MUG-RED; 2 held order(s) released "
                       f"({first.pk}, {second.pk}); 1 stay held for other unmapped lines "
                       f"({both.pk}).")  # fmt: skip
    for order in (first, second):
        order.refresh_from_db()
        assert order.status in WENT_ON, order.status_reason
        assert list(order.lines.values_list("sku", flat=True)) == ["MUG-RED"]
        [incident] = order.incidents.filter(category="sku_unmapped")
        assert incident.status == IncidentStatus.RESOLVED
        release = OrderEvent.objects.get(order=order, action="release_hold")
        assert (release.actor_kind, release.actor_id) == ("user", "carol")
        assert release.data["sku_mapping"] == {"channel": "shop", "external_ref": "v-red",
                                               "sku": "MUG-RED", "created": True}  # fmt: skip
    assert Order.objects.get(pk=both.pk).status == "on_hold"
    assert Order.objects.get(pk=elsewhere.pk).status == "on_hold"
    assert SkuMapping.objects.get(channel=world, external_ref="v-red").product.sku == "MUG-RED"

    # The second reference of the order that waited: mapped, it flows on too.
    post(client, {"action": "map_sku", "channel_id": world.pk, "external_ref": "v-blue",
                  "sku": "MUG-BLUE", "category": "sku_unmapped"})  # fmt: skip
    assert Order.objects.get(pk=both.pk).status in WENT_ON

    # The same click again: nothing new is created or released.
    post(client, {"action": "map_sku", "channel_id": world.pk, "external_ref": "v-red",
                  "sku": "MUG-RED", "category": "sku_unmapped"})  # fmt: skip
    assert shown(client.get(URL))[-1] == (
        "success",
        "Already mapped v-red on shop to MUG-RED; 0 held order(s) released.",
    )
    assert SkuMapping.objects.filter(external_ref="v-red").count() == 1


def test_mapping_to_a_sku_we_do_not_have_changes_nothing_and_says_why(client, cs_user, world):
    order = held_order(world)
    client.force_login(cs_user)

    response = client.post(URL, {"action": "map_sku", "channel_id": world.pk,
                                 "external_ref": "v-red", "sku": "NOPE",
                                 "category": "sku_unmapped"}, follow=True)  # fmt: skip

    assert ("error", "No product with SKU 'NOPE' in the catalogue") in shown(response)
    assert not SkuMapping.objects.exists()
    assert Order.objects.get(pk=order.pk).status == "on_hold"


def test_a_reference_mapped_to_another_product_is_refused(client, cs_user, world):
    held_order(world)
    SkuMapping.objects.create(channel=world, external_ref="v-red",
                              product=Product.objects.get(sku="MUG-BLUE"))  # fmt: skip
    client.force_login(cs_user)

    response = client.post(URL, {"action": "map_sku", "channel_id": world.pk,
                                 "external_ref": "v-red", "sku": "MUG-RED",
                                 "category": "sku_unmapped"}, follow=True)  # fmt: skip

    [(level, message)] = shown(response)
    assert level == "error" and "already mapped to MUG-BLUE" in message


# --- fix: replay a quarantined event after its channel setting is fixed -------------------------
STOREFRONT = "acme"
SECRET = "acme-signing-secret"
CANONICAL = {
    "schema_version": 1, "external_id": "W-4001", "order_number": "#4001", "currency": "USD",
    "placed_at": "2026-11-02T09:30:00+00:00", "updated_at": "2026-11-02T10:00:00+00:00",
    "financial_status": "pending", "payment_method": "card",
    "shipping_address": {"line1": "1 Main St", "city": "Springfield", "country_code": "US"},
    "lines": [{"external_line_id": "L1", "channel_sku": "MUG-RED", "title": "Red mug",
               "quantity": 2, "unit_price": "12.50", "discount": "0.00", "tax": "2.00"}],
    "subtotal": "25.00", "discount_total": "0.00", "shipping_total": "5.00", "tax_total": "2.00",
    "total": "32.00",
}  # fmt: skip


def deliver(client, event_id: str, order: Any) -> InboundEvent:
    body = json.dumps({"id": event_id, "topic": "order.created", "order": order}).encode()
    signature = sign_custom(secret=SECRET, body=body, timestamp=int(time.time()))
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(
            f"/webhooks/{STOREFRONT}/", data=body, content_type="application/json",
            HTTP_X_SIGNATURE=signature,
        )  # fmt: skip
    assert response.status_code == 202, response.content
    return InboundEvent.objects.get(pk=response.json()["event_id"])


@pytest.fixture
def quarantined(client, world) -> InboundEvent:
    """An event quarantined by its channel's mistyped rounding rule."""
    channel = SalesChannelFactory(kind=ChannelKind.CUSTOM, slug=STOREFRONT, webhook_secret=SECRET)
    SalesChannel.objects.filter(pk=channel.pk).update(rounding="HALF_UP")
    event = deliver(client, "evt-1", CANONICAL)
    assert event.status == "quarantined"
    return event


def test_a_quarantined_event_shows_its_errors_and_replays_once_its_channel_is_fixed(
    client, ops_user, quarantined
):
    [incident] = Incident.objects.filter(category="schema_invalid")
    client.force_login(ops_user)

    html = client.get(URL, {"category": "schema_invalid"}).content.decode()
    assert f"Inbound event {quarantined.pk} (acme, order.created): Quarantined." in html
    assert "HALF_UP" in html  # the readable error names the bad setting
    channel_url = reverse("admin:channels_saleschannel_change", args=[quarantined.channel_id])
    assert f'<a href="{channel_url}">channel\'s settings</a>' in html
    assert 'value="replay"' in html

    # Replayed before the fix: it stays quarantined and the person is told.
    still = client.post(URL, {"action": "replay", "event_id": quarantined.pk,
                              "category": "schema_invalid"}, follow=True)  # fmt: skip
    assert ("error", f"Inbound event {quarantined.pk} is still invalid: see its errors") in shown(
        still
    )
    SalesChannel.objects.filter(pk=quarantined.channel_id).update(rounding="ROUND_HALF_UP")
    post(client, {"action": "replay", "event_id": quarantined.pk, "category": "schema_invalid"})

    quarantined.refresh_from_db()
    assert quarantined.status == "replayed" and quarantined.order_id is not None
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED


def test_customer_service_sees_the_errors_but_may_not_replay(client, cs_user, quarantined):
    client.force_login(cs_user)

    html = client.get(URL, {"category": "schema_invalid"}).content.decode()
    assert "Replaying needs channels.replay_inboundevent" in html
    assert 'value="replay"' not in html
    answer = client.post(URL, {"action": "replay", "event_id": quarantined.pk,
                               "category": "schema_invalid"})  # fmt: skip
    assert answer.status_code == 403
    assert InboundEvent.objects.get(pk=quarantined.pk).status == "quarantined"


# --- fix: retry a dead outbound action ------------------------------------------------------
def test_a_dead_outbound_action_is_retried_from_its_incident(client, ops_user, world, settings):
    settings.WMS_TARGET = "rest"
    settings.OUTBOX_BREAKER_THRESHOLD = 100
    order = paid_order(world, address=US)
    with FakeWMS(down=True) as wms:
        settings.WMS_API_BASE = wms.url
        action = write(order, ActionKind.WMS_TASK, "rest", {"warehouse": "EAST"},
                       max_attempts=2)  # fmt: skip
        while fresh(action).status != ActionStatus.DEAD:
            make_due(action)
            dispatch(action)
        [incident] = Incident.objects.filter(category="downstream_failed")
        client.force_login(ops_user)
        html = client.get(URL, {"category": "downstream_failed"}).content.decode()
        assert (
            f"Outbound action {action.pk}: Task the warehouse / 3PL via rest, Dead (a person "
            "must look) after 2 attempts."
        ) in html
        assert 'value="retry"' in html

        wms.down = False
        post(client, {"action": "retry", "action_id": action.pk,
                      "category": "downstream_failed"})  # fmt: skip

        assert OutboundAction.objects.get(pk=action.pk).status == ActionStatus.SUCCEEDED
        assert len(wms.created) == 1
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED
    assert OrderEvent.objects.filter(order=order, action="outbound_retried",
                                     actor_id="otto").exists()  # fmt: skip


def test_retrying_an_action_that_is_not_dead_says_so(client, ops_user, world, settings):
    settings.WMS_TARGET = "local"
    order = paid_order(world, address=US)
    action = write(order, ActionKind.WMS_TASK, "local", {"warehouse": "EAST"})
    client.force_login(ops_user)

    response = client.post(URL, {"action": "retry", "action_id": action.pk,
                                 "category": "downstream_failed"}, follow=True)  # fmt: skip

    [(level, message)] = shown(response)
    assert level == "error" and "only a dead action can be retried" in message


# --- fix: correct an address and release ---------------------------------------------------------
NO_POSTCODE = {"name": "Pat Buyer", "line1": "1 Main St", "city": "Springfield",
               "region_code": "IL", "country_code": "US", "phone": "+1 217 555 0100"}  # fmt: skip


def test_a_corrected_address_is_saved_audited_and_the_order_released(client, cs_user, world):
    order = paid_order(world, address=NO_POSTCODE)
    assert order.status == "on_hold"
    [incident] = order.incidents.filter(category="address_format_invalid")
    client.force_login(cs_user)
    html = client.get(URL, {"category": "address_format_invalid"}).content.decode()
    assert f'id="line1-{incident.pk}" value="1 Main St"' in html
    assert "postal_code: required" in html or "postal_code" in html

    response = post(client, {"action": "fix_address", "order_id": order.pk,
                             "category": "address_format_invalid", "line1": "1 Main Street",
                             "line2": "", "city": "Springfield", "region_code": "il",
                             "postal_code": "62701", "country_code": "us"})  # fmt: skip

    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status in WENT_ON, order.status_reason
    assert order.shipping_address == {**NO_POSTCODE, "line1": "1 Main Street", "line2": "",
                                      "postal_code": "62701"}  # fmt: skip
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.RESOLVED
    event = OrderEvent.objects.get(order=order, action="shipping_address_corrected")
    assert event.actor_id == "carol"
    assert (
        event.data["before"]["postal_code"] == "" and event.data["after"]["postal_code"] == "62701"
    )
    assert event.data["changed"] == ["line1", "postal_code"]


def test_finance_may_not_correct_an_address(client, world):
    order = paid_order(world, address=NO_POSTCODE)
    client.force_login(make_user("fred", "finance"))

    assert client.post(URL, {"action": "fix_address", "order_id": order.pk}).status_code == 403


def test_an_incomplete_address_is_refused_with_what_is_missing(client, cs_user, world):
    order = paid_order(world, address=NO_POSTCODE)
    client.force_login(cs_user)

    form = {"action": "fix_address", "order_id": order.pk, "category": "address_format_invalid",
            "line1": "", "city": "Springfield", "country_code": "USA"}  # fmt: skip
    response = client.post(URL, form, follow=True)

    [(level, message)] = shown(response)
    assert level == "error"
    assert message == ("The corrected address is incomplete: line1 is required; country_code "
                       "must be a two-letter ISO country code (US, DE)")  # fmt: skip
    assert Order.objects.get(pk=order.pk).status == "on_hold"
