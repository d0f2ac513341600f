"""The KPI API against figures computed here, independently, from the orders' own timelines
(``OrderEvent`` rows), their parcels, returns and outbound actions.

The world is built through the real code paths: orders through ``order_create`` and the full
validation pipeline, parcels labelled and shipped by the shipment services (each ship writes
the channel's first tracking write-back), the outbox drained against a loopback storefront,
a review decided by a reviewer, a dead write-back retried by a person, a delivery recorded
from the carrier, a return requested, and a hold and release by customer service. One order
is "received two days ago": the suite has no clock to turn, and audit rows are append-only,
so its ``created_at`` (the receipt time the KPIs read) is set back once, before anything else
happens to it.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import TestCase
from django.utils import timezone
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from fulfillment.models import OutboundAction, Return, Shipment
from fulfillment.outbox.services import action_retry_dead
from fulfillment.returns import ReturnLineRequest, return_request
from fulfillment.shipments import shipment_buy_label, shipment_ship, shipments_create_for_order
from orders.actors import Actor
from orders.models import Order, OrderEvent
from orders.services import order_transition
from reviews import kpis
from reviews.models import ReviewCase
from reviews.services import review_case_approve, review_case_start
from tests.channels.writeback.helpers import drain_now
from tests.factories import SalesChannelFactory, make_user
from tests.fulfillment.helpers import add_warehouse, stock
from tests.fulfillment.test_tracking import record
from tests.reviews.helpers import order_with

pytestmark = pytest.mark.django_db

OPS = Actor.system("test")
SECRET = "storefront-signing-secret"
CALLBACK = "/hooks/orderdesk/tracking"
DE = {"name": "Kim Käufer", "line1": "Unter den Linden 77", "city": "Berlin",
      "postal_code": "10117", "country_code": "DE"}  # fmt: skip


class Storefront:
    """A custom storefront's tracking callback: 204, or the next queued refusal."""

    def __init__(self) -> None:
        self.fail_with: list[int] = []

    def handler(self, request: Request) -> Response:
        if self.fail_with:
            body = json.dumps({"message": "order is archived"})
            return Response(body, status=self.fail_with.pop(0), content_type="application/json")
        return Response("", status=204)


def ship(order: Order) -> Order:
    for draft in shipments_create_for_order(order_id=order.pk, actor=OPS):
        shipment_ship(shipment_id=shipment_buy_label(shipment_id=draft.pk, actor=OPS).pk,
                      actor=OPS)  # fmt: skip
    order.refresh_from_db()
    assert order.status == "shipped", order.status
    return order


@pytest.fixture
def world(httpserver: HTTPServer, settings):
    settings.TIME_ZONE = "UTC"
    storefront = Storefront()
    httpserver.expect_request(CALLBACK, method="POST").respond_with_handler(storefront.handler)
    sf = SalesChannelFactory(kind="custom", slug="storefront", webhook_secret=SECRET,
                             tracking_callback_url=httpserver.url_for(CALLBACK))  # fmt: skip
    shop = SalesChannelFactory(slug="shop")  # no write-back configured: no actions
    add_warehouse("A", time_zone="America/New_York", cutoff_time=time(14, 0))
    stock("SKU-1", "A", 100)
    ops = make_user("otto", "ops_admin")
    reviewer = make_user("rita", "reviewer")
    o: dict[str, Order] = {}

    # Untouched, shipped, its write-back told the storefront.
    o["auto"] = ship(order_with(channel=sf, source={"acquisition_source": "google"}))
    assert drain_now()["succeeded"] == 1
    # The storefront refuses its write-back: dead; nobody retries it.
    o["failed"] = ship(order_with(channel=sf, source={"acquisition_source": "google"}))
    storefront.fail_with = [422]
    assert drain_now()["dead"] == 1
    # Refused too, then a person retries it and it goes through: touched by that retry only.
    o["retried"] = ship(order_with(channel=sf, source={"acquisition_source": "newsletter"}))
    storefront.fail_with = [422]
    assert drain_now()["dead"] == 1
    [dead] = OutboundAction.objects.filter(order=o["retried"], status="dead")
    with TestCase.captureOnCommitCallbacks(execute=True):
        action_retry_dead(action_id=dead.pk, actor=Actor.for_user(ops))
    drain_now()
    dead.refresh_from_db()
    assert dead.status == "succeeded"
    # Received "two days ago" (see the module docstring), shipped now: late.
    late = order_with(channel=sf)
    Order.objects.filter(pk=late.pk).update(created_at=timezone.now() - timedelta(days=2))
    o["late"] = ship(late)
    drain_now()
    # Shipped, delivered by the carrier, then a return: the customer asked on the status page.
    returned = ship(order_with(channel=sf, source={"acquisition_source": "google"}))
    [parcel] = Shipment.objects.filter(order=returned)
    record(parcel, ("delivered", 8, "Delivered"))
    drain_now()
    line = returned.lines.get()
    return_request(order_id=returned.pk, via="status_page", actor=Actor.system("status_page"),
                   lines=[ReturnLineRequest(line.pk, 1, "damaged")])  # fmt: skip
    o["returned"] = returned
    # International: the fraud check sends it to review; a reviewer approves; then shipped.
    reviewed = order_with(channel=shop, shipping=DE)
    assert reviewed.status == "in_review"
    case = ReviewCase.objects.get(order=reviewed)
    with TestCase.captureOnCommitCallbacks(execute=True):
        review_case_start(case_id=case.pk, actor=Actor.for_user(reviewer))
    with TestCase.captureOnCommitCallbacks(execute=True), transaction.atomic():
        review_case_approve(case_id=case.pk, actor=Actor.for_user(reviewer), note="ok")
    reviewed.refresh_from_db()
    o["reviewed"] = ship(reviewed)
    # Held by customer service (the customer called), released, then shipped: touched.
    held = order_with(channel=shop)
    cs = Actor.for_user(make_user("carol", "customer_service"))
    with TestCase.captureOnCommitCallbacks(execute=True):
        order_transition(order_id=held.pk, transition="hold", actor=cs, reason="customer call")
    with TestCase.captureOnCommitCallbacks(execute=True):
        order_transition(order_id=held.pk, transition="release_hold", actor=cs)
    held.refresh_from_db()
    assert held.status == "allocated", held.status
    o["held"] = ship(held)
    # Received and allocated, not shipped yet.
    o["waiting"] = order_with(channel=shop)
    assert o["waiting"].status == "allocated"
    return o


# --- the independent computation --------------------------------------------------------------
def expected(orders: list[Order]) -> dict:
    """The KPIs of ``orders`` from their timelines, written without ``reviews.kpis``."""
    rows = []
    for order in orders:
        order = Order.objects.get(pk=order.pk)
        events = list(OrderEvent.objects.filter(order=order).order_by("at", "id"))
        shipped = next((e.at for e in events if e.field == "status" and e.to_state == "shipped"),
                       None)  # fmt: skip
        parcel = (Shipment.objects.filter(order=order, shipped_at__isnull=False)
                  .order_by("shipped_at", "id").first())  # fmt: skip
        same_day = None
        if shipped is not None and parcel is not None:
            zone = ZoneInfo(parcel.warehouse.time_zone)
            came = order.created_at.astimezone(zone)
            due = came.date() + timedelta(days=0 if came.time() < parcel.warehouse.cutoff_time
                                          else 1)  # fmt: skip
            same_day = shipped.astimezone(zone).date() <= due
        actions = list(OutboundAction.objects.filter(order=order, kind="channel_tracking_sync"))
        rows.append({
            "touched": any(e.actor_kind == "user" for e in events)
            or ReviewCase.objects.filter(order=order).exists(),
            "hours": None if shipped is None
            else Decimal((shipped - order.created_at).total_seconds()) / 3600,
            "same_day": same_day,
            "ok": sum(a.status == "succeeded" for a in actions),
            "dead": sum(a.status == "dead" for a in actions),
            "returned": shipped is not None
            and Return.objects.filter(order=order).exclude(status="rejected").exists(),
        })  # fmt: skip

    def pct(part: int, whole: int) -> str | None:
        return None if not whole else str((Decimal(part) * 100 / whole).quantize(Decimal("0.01")))

    def two(value: Decimal) -> str:
        return str(value.quantize(Decimal("0.01")))

    shipped = [r for r in rows if r["hours"] is not None]
    durations = sorted(Decimal(two(r["hours"])) for r in shipped)
    counted = [r for r in shipped if r["same_day"] is not None]
    ok, dead = sum(r["ok"] for r in rows), sum(r["dead"] for r in rows)
    no_touch = sum(not r["touched"] for r in rows)
    returned = sum(r["returned"] for r in shipped)
    same = sum(bool(r["same_day"]) for r in counted)
    return {
        "orders_received": len(rows), "orders_no_touch": no_touch,
        "no_touch_percent": pct(no_touch, len(rows)),
        "orders_shipped": len(shipped),
        "avg_hours_to_ship": two(sum(durations) / len(durations)) if durations else None,
        "p90_hours_to_ship": str(durations[math.ceil(len(durations) * 0.9) - 1])
        if durations else None,
        "same_day_counted": len(counted), "same_day_shipped": same,
        "same_day_percent": pct(same, len(counted)),
        "writebacks_succeeded": ok, "writebacks_dead": dead,
        "writeback_success_percent": pct(ok, ok + dead),
        "orders_returned": returned, "return_rate_percent": pct(returned, len(shipped)),
    }  # fmt: skip


def login(client, username: str) -> None:
    client.force_login(get_user_model().objects.get(username=username))


def get_kpis(client, **params):
    return client.get("/api/v1/kpis/", params)


def today() -> date:
    return timezone.now().date()


def _range() -> dict[str, str]:
    return {"from": (today() - timedelta(days=3)).isoformat(),
            "to": (today() + timedelta(days=1)).isoformat()}  # fmt: skip


def test_api_figures_equal_the_ones_from_the_timelines(world, client):
    login(client, "otto")
    response = get_kpis(client, **_range())
    assert response.status_code == 200, response.content
    body = response.json()
    everything = list(world.values())

    overall = {k: v for k, v in body["overall"].items() if k != "writebacks_open"}
    assert overall == expected(everything)
    by_slug = {c["slug"]: c for c in body["channels"]}
    assert set(by_slug) == {"storefront", "shop"}
    sf = [o for o in everything if o.channel.slug == "storefront"]
    shop = [o for o in everything if o.channel.slug == "shop"]
    for slug, group in (("storefront", sf), ("shop", shop)):
        figures = {k: v for k, v in by_slug[slug]["figures"].items() if k != "writebacks_open"}
        assert figures == expected(group), slug

    # What the world was built to show, spelled out (so the comparison above cannot pass by
    # both sides being wrong the same way).
    o = body["overall"]
    assert (o["orders_received"], o["orders_no_touch"], o["orders_shipped"]) == (8, 5, 7)
    assert o["no_touch_percent"] == "62.50"  # retried, reviewed and held are touched
    assert (o["same_day_counted"], o["same_day_shipped"]) == (7, 6)  # the late one
    assert (o["writebacks_succeeded"], o["writebacks_dead"]) == (5, 1)
    assert o["writeback_success_percent"] == "83.33"
    assert (o["orders_returned"], o["return_rate_percent"]) == (1, "14.29")
    assert Decimal(o["p90_hours_to_ship"]) >= Decimal("47.9")  # the late order, two days
    assert by_slug["shop"]["figures"]["writebacks_succeeded"] == 0
    assert by_slug["shop"]["figures"]["orders_no_touch"] == 1  # waiting; reviewed, held touched

    sources = {s["acquisition_source"]: s for s in body["returns_by_source"]}
    assert sources["google"] == {"acquisition_source": "google", "orders_shipped": 3,
                                 "orders_returned": 1, "return_rate_percent": "33.33"}  # fmt: skip
    assert sources["newsletter"]["return_rate_percent"] == "0.00"
    assert sources[kpis.NO_SOURCE]["orders_shipped"] == 3  # late, reviewed and held
    assert body["start"].startswith(_range()["from"]) and body["channel"] is None


def test_one_channel_and_the_range_edges(world, client):
    login(client, "otto")
    body = get_kpis(client, channel="shop", **_range()).json()
    assert body["channel"] == "shop" and [c["slug"] for c in body["channels"]] == ["shop"]
    assert {k: v for k, v in body["overall"].items() if k != "writebacks_open"} == expected(
        [world["reviewed"], world["held"], world["waiting"]]
    )
    # Today only: the late order came in two days ago, so it is not in this range.
    body = get_kpis(client, **{"from": today().isoformat(), "to": today().isoformat()}).json()
    assert body["overall"]["orders_received"] == 7
    assert body["overall"]["same_day_shipped"] == body["overall"]["same_day_counted"] == 6
    # The day it came in: only the late order.
    two_days_ago = (today() - timedelta(days=2)).isoformat()
    body = get_kpis(client, **{"from": two_days_ago, "to": two_days_ago}).json()
    assert body["overall"]["orders_received"] == 1
    assert body["overall"]["same_day_percent"] == "0.00"


def test_the_same_day_rule_on_the_warehouses_clock(db):
    warehouse = add_warehouse("NY", time_zone="America/New_York", cutoff_time=time(14, 0))
    # 13:59 in New York (18:59 UTC in winter): due that day; shipped 23:30 local still counts.
    before = datetime(2026, 12, 1, 18, 59, tzinfo=UTC)
    assert kpis.due_day(before, warehouse) == date(2026, 12, 1)
    assert kpis.shipped_same_day(before, datetime(2026, 12, 2, 4, 30, tzinfo=UTC), warehouse)
    assert not kpis.shipped_same_day(before, datetime(2026, 12, 2, 5, 30, tzinfo=UTC), warehouse)
    # 14:00 local is after the cut-off: due the next local day.
    after = datetime(2026, 12, 1, 19, 0, tzinfo=UTC)
    assert kpis.due_day(after, warehouse) == date(2026, 12, 2)
    assert kpis.shipped_same_day(after, datetime(2026, 12, 3, 4, 59, tzinfo=UTC), warehouse)
    assert not kpis.shipped_same_day(after, datetime(2026, 12, 3, 5, 0, tzinfo=UTC), warehouse)


def test_p90_is_the_nearest_rank():
    values = [Decimal(n) for n in range(1, 11)]
    assert kpis.p90(values) == Decimal(9)
    assert kpis.p90([Decimal(5)]) == Decimal(5)
    assert kpis.p90([]) is None


def test_a_warehouse_time_zone_must_be_a_real_zone(db):
    from orders.errors import InvalidInput

    with pytest.raises(InvalidInput, match="not an IANA time zone"):
        add_warehouse("X", time_zone="Mars/Olympus")
    assert add_warehouse("Y", time_zone="Europe/Berlin").time_zone == "Europe/Berlin"


@pytest.mark.parametrize(
    ("role", "status"),
    [("ops_admin", 200), ("finance", 200), ("customer_service", 403), ("reviewer", 403)],
)
def test_who_may_read_the_kpis(db, client, role, status):
    make_user("someone", role)
    login(client, "someone")
    assert get_kpis(client, **_range()).status_code == status


def test_anonymous_is_refused(db, client):
    assert get_kpis(client, **_range()).status_code in (401, 403)


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"from": "2026-13-01", "to": "2026-12-07"}, "from", "YYYY-MM-DD"),
        ({"from": "2026-12-01"}, "to", "required"),
        ({"from": "2026-12-07", "to": "2026-12-01"}, "to", "on or after"),
        ({"from": "2024-01-01", "to": "2026-12-01"}, "to", "at most 366 days"),
    ],
)
def test_bad_dates_are_a_400_that_says_why(db, client, params, field, words):
    make_user("otto", "ops_admin")
    login(client, "otto")
    response = get_kpis(client, **params)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and words in " ".join(body["errors"][field])


def test_an_unknown_channel_is_a_400(db, client):
    make_user("otto", "ops_admin")
    login(client, "otto")
    response = get_kpis(client, channel="nope", **_range())
    assert response.status_code == 400
    assert response.json() == {"code": "unknown_channel",
                               "detail": "There is no sales channel 'nope'."}  # fmt: skip


def test_an_empty_range_has_no_rates(db, client):
    make_user("otto", "ops_admin")
    login(client, "otto")
    body = get_kpis(client, **_range()).json()
    assert body["overall"]["orders_received"] == 0
    assert body["overall"]["no_touch_percent"] is None and body["channels"] == []


def test_variance_reads_reconciliation_for_the_days_the_orders_were_placed(world, client):
    """The fixture's orders were placed on 2026-11-01: reconciliation counts them there."""
    from reconciliation.variance import Period, compute_row

    login(client, "otto")
    body = get_kpis(client, **{"from": "2026-11-01", "to": "2026-11-01"}).json()
    period = Period(date(2026, 11, 1), date(2026, 11, 1), "2026-11-01..2026-11-01")
    rows = {(v["channel"], v["currency"]): v for v in body["variance"]}
    assert set(rows) == {("shop", "USD"), ("storefront", "USD")}
    for slug in ("shop", "storefront"):
        placed = Order.objects.filter(channel__slug=slug).exclude(status="cancelled")
        assert Decimal(rows[(slug, "USD")]["sales"]) == sum(o.total for o in placed)
        row, _ = compute_row(period, placed[0].channel, "USD")
        assert Decimal(rows[(slug, "USD")]["unexplained"]) == row.unexplained_total
    # Nothing received that day, so no other figure.
    assert body["overall"]["orders_received"] == 0


# --- the KPI page ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("role", "status"),
    [("ops_admin", 200), ("finance", 200), ("customer_service", 403), ("reviewer", 403)],
)
def test_who_may_open_the_kpi_page(db, client, role, status):
    make_user("someone", role)
    login(client, "someone")
    assert client.get("/admin/work/kpis/").status_code == status


def test_the_page_shows_the_week_against_the_last_with_deltas(world, client):
    from reviews.kpi_views import week_label

    login(client, "otto")
    response = client.get("/admin/work/kpis/")
    assert response.status_code == 200
    html = response.content.decode()
    monday = kpis.week_of(today())
    assert f'value="{week_label(monday)}"' in html
    start, end = kpis.local_days(monday, monday + timedelta(days=6))
    report = kpis.kpi_report(start=start, end=end)
    # The overall table's first row: orders received this week, with its change.
    overall = response.context["overall"]
    assert (
        overall[0][0] == "Orders received" and overall[0][1].now == report.overall.orders_received
    )
    assert 'data-channel="storefront"' in html and 'data-channel="shop"' in html
    assert "<svg" in html and "No human touch %" in html
    # No personal data: the full name and street, not a fragment a random CSRF token can hold.
    assert DE["name"] not in html and DE["line1"] not in html and "Käufer" not in html


def test_the_page_says_so_when_the_week_is_not_a_week(db, client):
    make_user("otto", "ops_admin")
    login(client, "otto")
    response = client.get("/admin/work/kpis/", {"week": "2026-W60"}, follow=True)
    assert response.status_code == 200
    assert "year 2026 has no week 60; showing this week." in response.content.decode()
    response = client.get("/admin/work/kpis/", {"channel": "nope"})
    assert "There is no sales channel &#x27;nope&#x27;" in response.content.decode()


def test_deltas_are_green_when_better_and_red_when_worse():
    from reviews.kpi_views import delta

    assert (delta(Decimal("80"), Decimal("70"), "up").tone, delta(80, 70, "up").arrow) == (
        "good", "▲")  # fmt: skip
    assert delta(Decimal("30"), Decimal("20"), "down").tone == "bad"
    assert delta(Decimal("20"), Decimal("30"), "down").arrow == "▼"
    assert delta(5, 5, "up").tone == "flat" and delta(None, 5, "up").change is None


def test_the_facts_take_the_same_eight_queries_however_many_orders(
    world, django_assert_num_queries
):
    start, end = kpis.local_days(today() - timedelta(days=3), today() + timedelta(days=1))
    with django_assert_num_queries(8):
        facts = kpis.order_facts(start=start, end=end)
    assert len(facts) == len(world)


def test_history_recorded_without_its_pipeline_is_no_part_of_the_kpis(db):
    from orders.selectors import PIPELINE_SKIPPED
    from orders.transitions import order_event_record
    from tests.factories import make_order

    ours = make_order(pipeline=False)
    history = make_order(pipeline=False)
    order_event_record(order_id=history.pk, action=PIPELINE_SKIPPED, actor=Actor.system("gen"))
    start, end = ours.created_at - timedelta(minutes=1), timezone.now() + timedelta(minutes=1)

    report = kpis.kpi_report(start=start, end=end, with_variance=False)

    assert report.overall.orders_received == 1
    assert [o.order_id for o in kpis.order_facts(start=start, end=end)] == [ours.pk]
