"""`setup_demo` gives a new user something to look at, and is safe to run twice."""

from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.test import RequestFactory

from fulfillment.carriers.local import STORY_FAILED_THEN_RETURNED, story_for
from fulfillment.models import Shipment
from orders.models import Incident, Order, OrderEvent

# setup_demo runs what production runs: every check, the allocator and the review router
# (`pipeline`; under tests/reviews/ the suite's path gave it that), orchestration included.
pytestmark = [pytest.mark.pipeline, pytest.mark.orchestration]


@pytest.fixture(autouse=True)
def carrier_at_once(settings):
    """The local carrier's simulator tells every parcel's whole story at once (the demo itself
    runs it at a 2 s step and waits): no test waits for its clock."""
    settings.LOCAL_CARRIER_TRACKING_STEP_SECONDS = 0


def run_demo():
    out = StringIO()
    call_command("setup_demo", stdout=out)
    return out.getvalue()


def test_setup_demo_creates_role_users_and_orders_in_several_states(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    output = run_demo()

    statuses = set(Order.objects.values_list("status", flat=True))
    assert {"received", "allocated", "on_hold", "in_review", "fulfilling", "delivered",
            "cancelled", "backordered", "partially_shipped"} <= statuses  # fmt: skip
    payments = set(Order.objects.values_list("payment_status", flat=True))
    assert {"pending", "authorized", "paid", "net_terms", "partially_refunded"} <= payments
    assert Incident.objects.filter(category="schema_invalid").exists()
    users = get_user_model().objects.in_bulk(field_name="username")
    for name, role in [("cs", "customer_service"), ("reviewer", "reviewer"),
                       ("finance", "finance"), ("ops", "ops_admin"),
                       ("steward", "data_steward")]:  # fmt: skip
        assert list(users[name].groups.values_list("name", flat=True)) == [role]
        assert users[name].is_staff and not users[name].is_superuser
    assert users["admin"].is_superuser
    # The printed passwords work.
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in users:
            request = RequestFactory().post("/admin/login/")
            assert authenticate(request, username=parts[0], password=parts[1]) is not None
    assert "Demo data ready: 19 new order(s)." in output
    # A reorder point on a SKU whose stock runs low: the replenishment screen is not empty.
    assert "Replenishment: 1 suggestion(s), e.g. HOODIE-GRY-M at NJ1" in output


def test_setup_demo_run_twice_changes_nothing_and_keeps_the_passwords(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    first = run_demo()
    counts = (Order.objects.count(), OrderEvent.objects.count(), Incident.objects.count(),
              get_user_model().objects.count())  # fmt: skip
    second = run_demo()
    assert counts == (Order.objects.count(), OrderEvent.objects.count(),
                      Incident.objects.count(), get_user_model().objects.count())  # fmt: skip
    assert "Demo data ready: 0 new order(s)." in second
    users = {"admin", "cs", "reviewer", "finance", "ops", "steward"}

    def password_lines(output):
        return [ln for ln in output.splitlines() if ln.split()[:1] and ln.split()[0] in users]

    assert len(password_lines(first)) == len(users)
    assert password_lines(first) == password_lines(second)
    assert (tmp_path / "demo-credentials.txt").stat().st_mode & 0o077 == 0


def test_setup_demo_delivers_every_channel_kinds_samples_through_the_real_paths(
    db, settings, tmp_path
):
    from channels.models import InboundEvent

    settings.VAR_DIR = tmp_path
    output = run_demo()

    kinds = set(Order.objects.values_list("channel__kind", flat=True))
    assert kinds == {"shopify", "woocommerce", "bigcommerce", "amazon", "custom"}
    by_status = {}
    for event in InboundEvent.objects.all():
        by_status.setdefault(event.status, []).append(event)
    [quarantined] = by_status["quarantined"]
    assert quarantined.errors[0]["pointer"] == "/order/lines/0/quantity"
    assert "must be of type integer" in quarantined.errors[0]["message"]
    assert '200 {"duplicate": true}' in output
    assert sum(e.duplicate_deliveries for e in InboundEvent.objects.all()) == 1
    assert {e.source for e in InboundEvent.objects.all()} == {"webhook", "poll"}
    # Shopify's cancel delivery cancelled the order its create delivery made.
    assert Order.objects.get(channel__slug="demo-shopify", external_id="450789469").status == (
        "cancelled"
    )
    # The sandbox is gone after the demo: the Amazon channel is not polled any more.
    assert not InboundEvent.objects.filter(channel__slug="demo-amazon").first().channel.is_active

    again = run_demo()
    assert again.count("duplicate") >= 8
    assert InboundEvent.objects.filter(status="quarantined").count() == 1


def test_setup_demo_shows_an_order_of_each_validation_outcome(db, settings, tmp_path):
    from fulfillment.models import Reservation, StockLevel
    from reviews.models import ReviewCase

    settings.VAR_DIR = tmp_path
    settings.ERP_DROP_DIR = str(tmp_path / "erp-drop")
    output = run_demo()
    # The worker's part (the test's transaction never commits, so no doorbell rang).
    drained = StringIO()
    call_command("process_outbox", stdout=drained, stderr=StringIO())
    demo = {o.external_id: o for o in Order.objects.filter(channel__slug="demo-webstore")}

    def categories(external_id):
        return set(demo[external_id].incidents.values_list("category", flat=True))

    # Clean: every check passed, its stock is reserved, its parcel planned and the downstream
    # work done through the outbox (eager here; the worker does it under `make run`).
    assert demo["1002"].status == "fulfilling"
    assert demo["1002"].address_deliverability == "unknown"  # offline rules only
    assert Reservation.objects.filter(order=demo["1002"], status="active").count() == 2
    assert dict(demo["1002"].outbound_actions.values_list("kind", "status")) == {
        "erp_post": "succeeded", "notify_customer": "succeeded", "wms_task": "succeeded",
        "label_purchase": "succeeded",
    }  # fmt: skip
    assert demo["1002"].shipments.get().tracking_number
    # B2B within its limit whose net terms finance has not granted yet: held stock, no parcel.
    assert (demo["1013"].status, demo["1013"].payment_status) == ("allocated", "pending")
    assert not demo["1013"].shipments.exists()
    # Partly shipped: half of its 80 units left, the rest still reserved.
    assert demo["1007"].status == "partially_shipped"
    assert Reservation.objects.get(order=demo["1007"], status="active").quantity == 40
    # Backordered: no stock of the SKU anywhere.
    assert demo["1009"].status == "backordered"
    assert categories("1009") == {"inventory_unavailable"}
    # Address problem: a four-digit ZIP code.
    assert demo["1012"].status == "on_hold"
    assert categories("1012") == {"address_format_invalid"}
    assert "postal_code is not valid" in demo["1012"].status_reason
    # B2B over its credit limit: 800.00 open on net terms + 4810.00 > 5000.00.
    assert demo["1011"].status == "on_hold"
    assert categories("1011") == {"payment_ineligible"}
    assert "exceeds the credit limit 5000.00 USD" in demo["1011"].status_reason
    # In review: international, with its stock still reserved.
    assert demo["1008"].status == "in_review"
    case = ReviewCase.objects.get(order=demo["1008"])
    assert case.status == "open"
    assert case.reasons == ["International order (ships to JP)"]
    assert Reservation.objects.filter(order=demo["1008"], status="active").exists()
    # Approved reviews went on to stock and the rest of their steps.
    assert demo["1004"].status in ("delivered", "shipped")  # shipped: its parcel came back
    assert ReviewCase.objects.get(order=demo["1004"]).status == "approved"
    # The carrier's scans (the local simulator) decided every demo parcel, as its story says:
    # delivered, or returned to sender with a delivery_exception incident; nobody clicked.
    # (1018 and 1019 are delivered for their returns: see the returns test below.)
    parcels = (
        Shipment.objects.filter(order__channel__slug="demo-webstore")
        .exclude(status__in=["draft", "label_purchased", "voided"])
        .exclude(order__external_id__in=["1018", "1019"])
    )
    assert parcels.count() == 7
    for parcel in parcels:
        rate = settings.LOCAL_CARRIER_EXCEPTION_RATE
        story = story_for(parcel.tracking_number, exception_rate=rate)
        expected = "returned" if story == STORY_FAILED_THEN_RETURNED else "delivered"
        assert parcel.status == expected, (parcel.tracking_number, story)
        assert Incident.objects.filter(
            category="delivery_exception", order=parcel.order
        ).exists() == (expected == "returned")
    for order in Order.objects.filter(status="delivered", channel__slug="demo-webstore"):
        assert order.events.get(action="deliver").actor_kind == "carrier"
    assert Shipment.objects.filter(order__external_id__in=["1018", "1019"]).count() == 2
    assert "Carrier scans (local carrier simulator):" in output
    # Stock is never oversold.
    assert all(s.reserved <= s.on_hand for s in StockLevel.objects.all())
    for external_id in ("1002", "1009", "1012", "1011", "1008"):
        assert f"order {external_id}" in output


def test_setup_demo_without_loopback_calls_skips_the_sandbox_channels_and_says_why(
    db, settings, tmp_path
):
    """The sandbox is plain http on 127.0.0.1: without INTEGRATIONS_ALLOW_LOOPBACK_HTTP (which
    `make demo` sets) the outbound URL guard would refuse it, so the demo does not try."""
    settings.VAR_DIR = tmp_path
    settings.INTEGRATIONS_ALLOW_LOOPBACK_HTTP = False
    output = run_demo()

    assert "INTEGRATIONS_ALLOW_LOOPBACK_HTTP=1 to fetch their orders" in output
    kinds = set(Order.objects.values_list("channel__kind", flat=True))
    assert {"shopify", "woocommerce", "custom"} <= kinds
    assert not kinds & {"bigcommerce", "amazon"}


def test_setup_demo_prints_a_status_page_link_that_opens_with_the_return_policy(
    db, settings, tmp_path, client
):
    from fulfillment.models import ReturnPolicy

    settings.VAR_DIR = tmp_path
    output = run_demo()

    lines = output.splitlines()
    [at] = [i for i, line in enumerate(lines) if "as its customer sees it" in line]
    assert lines[at].startswith("Order 1007 ")
    url = lines[at + 1].strip()
    assert url.startswith(f"{settings.PUBLIC_BASE_URL}/status/")
    page = client.get(url.removeprefix(settings.PUBLIC_BASE_URL))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Order 1007" in html and "Parcel 1 of 1" in html and "Not shipped yet" in html
    assert ReturnPolicy.objects.get().conditions[:40] in html
    run_demo()
    assert ReturnPolicy.objects.count() == 1  # safe to run twice


def test_setup_demo_shows_a_returned_order_with_its_refund_and_a_return_waiting(
    db, settings, tmp_path
):
    from decimal import Decimal

    from fulfillment.models import Return, StockLevel
    from orders.models import Refund

    settings.VAR_DIR = tmp_path
    output = run_demo()

    returned = Return.objects.select_related("refund").get(order__external_id="1018")
    assert (returned.requested_via, returned.auto_authorized) == ("status_page", True)
    assert returned.status == "refunded" and returned.label_pdf  # its label was bought
    assert sorted(returned.lines.values_list("sku", "condition", "restocked_quantity")) == [
        ("HOODIE-GRY-M", "restock", 1), ("MUG-WHT", "damaged", 0)]  # fmt: skip
    refund = returned.refund
    # 49.00 + 12.50 goods, 5.54 tax, and the 5.00 shipping back (a damaged mug is our fault).
    assert refund.amount == Decimal("72.04") == refund.order.total
    assert refund.status == "manual"  # the demo storefront takes no refund over an API
    assert f"order 1018: return {returned.rma_number} refunded: refund {refund.reference}" in output
    waiting = Return.objects.get(order__external_id="1019")
    assert waiting.status == "requested" and not waiting.auto_authorized
    assert (
        f"order 1019: return {waiting.rma_number} requested: waits for customer service" in output
    )
    assert Refund.objects.filter(order__external_id="1019").count() == 0
    hoodies = StockLevel.objects.get(sku="HOODIE-GRY-M", warehouse__code="NJ1")

    run_demo()  # again: nothing new
    assert Return.objects.count() == 2 and Refund.objects.filter(source="rma").count() == 1
    hoodies_after = StockLevel.objects.get(sku="HOODIE-GRY-M", warehouse__code="NJ1")
    assert hoodies_after.on_hand == hoodies.on_hand


def test_setup_demo_reconciles_last_month_with_one_unexplained_item_to_resolve(
    db, settings, tmp_path
):
    from demo.finance import demo_period
    from reconciliation.models import Payout, ProcessorTransaction, VarianceItem

    settings.VAR_DIR = tmp_path
    output = run_demo()
    period = demo_period()

    assert f"Reconciliation {period}" in output
    [usd] = [
        ln for ln in output.splitlines() if ln.strip().startswith("demo-finance") and " USD " in ln
    ]
    items = VarianceItem.objects.filter(period=period, channel__slug="demo-finance")
    [open_item] = items.filter(category="unexplained")
    assert open_item.comparison == "payouts_bank" and "no bank deposit" in open_item.description
    assert open_item.amount > 0 and usd.split()[-1] == str(open_item.amount)
    assert f"to resolve: [Payouts vs bank deposits] {open_item.description}" in output
    explained = set(items.exclude(category="unexplained").values_list("category", flat=True))
    assert {"fees", "chargebacks", "reserves", "gift_cards", "duplicated_in_erp",
            "timing"} <= explained  # fmt: skip
    kept = (Payout.objects.count(), ProcessorTransaction.objects.count(),
            sorted(items.values_list("key", "amount")))  # fmt: skip

    again = run_demo()

    assert "(0 new rows)" in again
    assert kept == (Payout.objects.count(), ProcessorTransaction.objects.count(),
                    sorted(items.values_list("key", "amount")))  # fmt: skip


def test_the_demos_weekly_summary_is_emailed_and_its_kpis_are_the_apis_for_its_week(
    db, settings, tmp_path, api_client
):
    from reviews.models import WeeklySummary
    from reviews.summary import Week
    from tests.factories import make_user

    settings.VAR_DIR = tmp_path
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    output = run_demo()
    week = Week.containing()
    summary = WeeklySummary.objects.get(week=week.label)
    api_client.force_authenticate(make_user("leader", "ops_admin"))

    answer = api_client.get("/api/v1/kpis/", {"from": week.monday.isoformat(),
                                              "to": week.sunday.isoformat()})  # fmt: skip

    assert f"Automation health {week.label}:" in output
    assert summary.emailed_to == ["leadership@demo.invalid"]
    mails = [p.read_text() for p in (tmp_path / "mail").iterdir()]
    assert any(f"Subject: Automation health {week.label}:" in m for m in mails)
    overall = summary.figures["kpis"]["overall"]
    assert overall["orders_received"] > 0
    # The demo's worker has moved nothing on since (tasks ran in-process): the same figures.
    assert answer.json()["overall"] == overall
