"""The review workspace (reviews.workspace_views) through Django's test client: the queue's
order and filters, who may see and decide what, decisions and their guards, bulk approval of
low-risk cases only, and the case page's figures computed from real orders, parcels and
tracking events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from fulfillment.carriers.base import Tracking, TrackingEvent
from fulfillment.returns import ReturnLineRequest, return_request
from fulfillment.shipments import shipment_buy_label, shipment_ship, shipments_create_for_order
from fulfillment.tracking import tracking_record
from orders.actors import Actor
from orders.models import OrderEvent
from reconciliation.models import ProcessorTransaction, TxCategory
from reviews.models import ReviewCase
from reviews.services import review_case_assign, review_case_claim, review_case_decide
from tests.factories import CustomerFactory, SalesChannelFactory, make_user
from tests.fulfillment.helpers import add_warehouse, stock
from tests.reviews.helpers import US, order_with, paid_order

pytestmark = pytest.mark.django_db

QUEUE = "/admin/work/reviews/"
OPS = Actor.system("test")
HIGH_RISK = {"risk_level": "high"}  # the channel's own fraud analysis: weight 60


def case_of(order) -> ReviewCase:
    return ReviewCase.objects.get(order=order)


def flagged(**kwargs) -> ReviewCase:
    """A high-risk domestic order (score 70: channel risk 60 + first-time customer 10)."""
    kwargs.setdefault("source", HIGH_RISK)
    order = order_with(**kwargs)
    assert order.status == "in_review", order.status_reason
    return case_of(order)


def international() -> ReviewCase:
    """Reviewed by policy only: score 30 (first-time 10 + international 20), low risk."""
    return case_of(paid_order(country="DE"))


def client_for(client, user):
    client.force_login(user)
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def follow_messages(client, response) -> list[str]:
    page = client.get(response["Location"])
    return [str(m) for m in page.context["messages"]]


# --- the queue -----------------------------------------------------------------------------------
def test_the_queue_is_sorted_by_sla_then_highest_score_and_shows_the_row(client, reviewer_user):
    a, b, c = flagged(), flagged(), flagged()
    now = timezone.now()
    ReviewCase.objects.filter(pk=a.pk).update(sla_due_at=now + timedelta(hours=3), score=90)
    ReviewCase.objects.filter(pk=b.pk).update(sla_due_at=now + timedelta(hours=1), score=65)
    ReviewCase.objects.filter(pk=c.pk).update(sla_due_at=now + timedelta(hours=1), score=80)
    overdue = flagged()
    ReviewCase.objects.filter(pk=overdue.pk).update(sla_due_at=now - timedelta(minutes=5))

    page = client_for(client, reviewer_user).get(QUEUE)
    assert page.status_code == 200
    order = [r["case"].pk for r in page.context["rows"]]
    assert order == [overdue.pk, c.pk, b.pk, a.pk]
    html = page.content.decode()
    assert 'class="sla overdue"' in html and "(overdue)" in html
    assert "Risk score 70 &gt;= review threshold 60" in html  # the reasons in words
    first = page.context["rows"][0]
    assert first["number"] == overdue.order.external_id
    assert first["case"].order.channel.slug in html


def test_decided_cases_leave_the_queue(client, reviewer_user):
    kept, decided = flagged(), flagged()
    review_case_decide(case_id=decided.pk, actor=Actor.for_user(reviewer_user), decision="approve")
    page = client_for(client, reviewer_user).get(QUEUE)
    assert [r["case"].pk for r in page.context["rows"]] == [kept.pk]


def test_the_queue_filters_by_channel_reason_overdue_and_assignee(client, reviewer_user):
    other = SalesChannelFactory(slug="wholesale")
    risky = flagged()
    abroad = international()
    elsewhere = flagged(channel=other)
    late = flagged()
    ReviewCase.objects.filter(pk=late.pk).update(sla_due_at=timezone.now() - timedelta(hours=1))
    review_case_claim(case_id=risky.pk, actor=Actor.for_user(reviewer_user))
    c = client_for(client, reviewer_user)

    def ids(query):
        return {r["case"].pk for r in c.get(QUEUE, query).context["rows"]}

    assert ids({}) == {risky.pk, abroad.pk, elsewhere.pk, late.pk}
    assert ids({"channel": "wholesale"}) == {elsewhere.pk}
    assert ids({"reason": "international"}) == {abroad.pk}
    assert ids({"reason": "score"}) == {risky.pk, elsewhere.pk, late.pk}
    assert ids({"overdue": "1"}) == {late.pk}
    assert ids({"mine": "1"}) == {risky.pk}
    assert ids({"mine": "1", "channel": "wholesale"}) == set()
    assert ids({"reason": "nonsense"}) == ids({})  # an unknown reason filters nothing


def test_the_queue_reads_in_a_fixed_number_of_queries(
    client, reviewer_user, django_assert_max_num_queries
):
    for _ in range(2):
        flagged()
    c = client_for(client, reviewer_user)
    with django_assert_max_num_queries(12) as few:
        c.get(QUEUE)
    for _ in range(4):
        flagged()
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(c.get(QUEUE).context["rows"]) == 6


# --- who may do what -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("role", "status"),
    [("reviewer", 200), ("customer_service", 200), ("ops_admin", 200), ("finance", 403), ("", 403)],
)
def test_who_may_open_the_queue_and_a_case(client, role, status):
    case = flagged()
    user = make_user("someone", *([role] if role else []))
    c = client_for(client, user)
    assert c.get(QUEUE).status_code == status
    assert c.get(reverse("work:review_case", args=[case.pk])).status_code == status


def test_customer_service_reads_a_case_without_decision_buttons_and_cannot_post(client, cs_user):
    case = flagged()
    c = client_for(client, cs_user)
    page = c.get(reverse("work:review_case", args=[case.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="approve-form"' not in html and 'id="reject-form"' not in html
    assert "Read only" in html
    queue = c.get(QUEUE).content.decode()
    assert 'name="claim"' not in queue and 'id="bulk-approve"' not in queue
    url = reverse("work:review_case", args=[case.pk])
    assert c.post(url, {"decision": "approve", "seen_status": "open"}).status_code == 403
    assert c.post(url, {"action": "claim"}).status_code == 403
    assert c.post(QUEUE, {"action": "bulk_approve", "case": [case.pk]}).status_code == 403
    assert c.post(QUEUE, {"claim": case.pk}).status_code == 403
    case.refresh_from_db()
    assert (case.status, case.assignee_id) == ("open", None)


def test_the_street_is_shown_only_with_the_contact_details_permission(client, reviewer_user):
    case = flagged(billing={**US, "line1": "9 Elm Rd", "city": "Chicago"})
    url = reverse("work:review_case", args=[case.pk])
    assert "9 Elm Rd" in client_for(client, reviewer_user).get(url).content.decode()

    reader = make_user("reader")
    reader.user_permissions.add(Permission.objects.get(codename="view_reviewcase"))
    html = client_for(client, reader).get(url).content.decode()
    assert "9 Elm Rd" not in html and US["line1"] not in html
    assert "Chicago" in html and "Springfield" in html  # the cities stay
    assert "line1" in html  # the comparison still says the streets differ


# --- decisions -----------------------------------------------------------------------------------
def test_deciding_an_open_case_claims_it_audits_it_and_opens_the_next_case(client, reviewer_user):
    first, second = flagged(), flagged()
    ReviewCase.objects.filter(pk=second.pk).update(sla_due_at=first.sla_due_at + timedelta(1))
    c = client_for(client, reviewer_user)
    response = c.post(
        reverse("work:review_case", args=[first.pk]),
        {"decision": "approve", "seen_status": "open", "note": "known buyer"},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("work:review_case", args=[second.pk])
    assert follow_messages(c, response) == [
        f"Case {first.pk} (order {first.order.external_id}) approved."
    ]
    first.refresh_from_db()
    assert (first.status, first.decided_by, first.assignee) == (
        "approved", reviewer_user, reviewer_user,
    )  # fmt: skip
    trail = list(OrderEvent.objects.filter(order_id=first.order_id, field="review_case")
                 .values_list("action", "actor_id"))  # fmt: skip
    assert trail == [("review_started", "rita"), ("review_approved", "rita")]


def test_the_filters_carry_on_to_the_next_case(client, reviewer_user):
    other = SalesChannelFactory(slug="wholesale")
    first, _skipped, second = flagged(channel=other), flagged(), flagged(channel=other)
    c = client_for(client, reviewer_user)
    response = c.post(reverse("work:review_case", args=[first.pk]) + "?channel=wholesale",
                      {"decision": "approve", "seen_status": "open"})  # fmt: skip
    assert response["Location"] == (
        reverse("work:review_case", args=[second.pk]) + "?channel=wholesale"
    )


def test_the_last_decision_goes_back_to_the_queue(client, reviewer_user):
    only = flagged()
    c = client_for(client, reviewer_user)
    response = c.post(
        reverse("work:review_case", args=[only.pk]),
        {"decision": "reject", "seen_status": "open", "note": "stolen card"},
    )
    assert response["Location"] == QUEUE
    only.refresh_from_db()
    only.order.refresh_from_db()
    assert (only.status, only.order.status) == ("rejected", "cancelled")


@pytest.mark.parametrize("decision", ["reject", "escalate"])
def test_reject_and_escalate_are_refused_without_a_note(client, reviewer_user, decision):
    case = flagged()
    c = client_for(client, reviewer_user)
    url = reverse("work:review_case", args=[case.pk])
    response = c.post(url, {"decision": decision, "seen_status": "open", "note": "  "})
    assert response["Location"] == url
    word = "a reason" if decision == "reject" else "a note"
    assert any(word in m for m in follow_messages(c, response))
    case.refresh_from_db()
    # Refused before anything moved: not even claimed.
    assert (case.status, case.assignee_id) == ("open", None)


def test_escalating_keeps_the_case_in_the_queue_for_a_senior(client, reviewer_user):
    case = flagged()
    c = client_for(client, reviewer_user)
    c.post(
        reverse("work:review_case", args=[case.pk]),
        {"decision": "escalate", "seen_status": "open", "note": "B2B, check credit"},
    )
    case.refresh_from_db()
    assert (case.status, case.assignee_id, case.decision_note) == (
        "escalated", None, "B2B, check credit",
    )  # fmt: skip
    assert case.pk in [r["case"].pk for r in c.get(QUEUE).context["rows"]]


def test_the_second_reviewer_is_told_who_decided_first(client, reviewer_user):
    vera = make_user("vera", "reviewer")
    case = flagged()
    url = reverse("work:review_case", args=[case.pk])
    # Both opened the page while the case was open; Rita decides first.
    review_case_decide(case_id=case.pk, actor=Actor.for_user(reviewer_user), decision="approve",
                       expected_status="open")  # fmt: skip
    c = client_for(client, vera)
    response = c.post(url, {"decision": "reject", "seen_status": "open", "note": "fraud"})
    assert response["Location"] == url
    assert follow_messages(c, response) == [
        f"Case {case.pk} was already decided by rita (approved)."
    ]
    case.refresh_from_db()
    case.order.refresh_from_db()
    assert (case.status, case.decided_by, case.order.status) == (
        "approved", reviewer_user, case.order.status,
    )  # fmt: skip
    assert case.order.status != "cancelled"


def test_an_escalation_in_between_is_not_overridden_unseen(client, reviewer_user):
    vera = make_user("vera", "reviewer")
    case = flagged()
    review_case_decide(case_id=case.pk, actor=Actor.for_user(reviewer_user), decision="escalate",
                       note="senior please")  # fmt: skip
    c = client_for(client, vera)
    response = c.post(reverse("work:review_case", args=[case.pk]),
                      {"decision": "approve", "seen_status": "open"})  # fmt: skip
    assert follow_messages(c, response) == [
        f"Case {case.pk} was already escalated by rita; look at it again before deciding."
    ]
    case.refresh_from_db()
    assert case.status == "escalated"


def test_a_case_claimed_by_someone_else_is_theirs_until_assigned_over(client, reviewer_user):
    vera = make_user("vera", "reviewer")
    case = flagged()
    review_case_claim(case_id=case.pk, actor=Actor.for_user(reviewer_user))
    c = client_for(client, vera)
    url = reverse("work:review_case", args=[case.pk])
    response = c.post(url, {"decision": "approve", "seen_status": "in_review"})
    assert follow_messages(c, response) == [
        f"Case {case.pk} is being reviewed by rita; have it assigned to you to decide."
    ]
    response = c.post(url, {"action": "assign", "assignee": vera.pk})
    assert follow_messages(c, response) == [f"Case {case.pk} assigned to vera."]
    assigned = OrderEvent.objects.get(order_id=case.order_id, action="review_assigned")
    assert (assigned.actor_id, assigned.data["assignee"], assigned.data["previous"]) == (
        "vera", "vera", "rita",
    )  # fmt: skip
    c.post(url, {"decision": "approve", "seen_status": "in_review"})
    case.refresh_from_db()
    assert (case.status, case.decided_by) == ("approved", vera)


def test_a_case_can_only_be_assigned_to_a_reviewer(reviewer_user, cs_user):
    case = flagged()
    from orders.errors import InvalidInput

    with pytest.raises(InvalidInput, match="carol cannot review orders"):
        review_case_assign(case_id=case.pk, actor=Actor.for_user(reviewer_user),
                           assignee_id=cs_user.pk)  # fmt: skip


def test_claim_from_the_queue(client, reviewer_user):
    case = flagged()
    c = client_for(client, reviewer_user)
    response = c.post(QUEUE, {"claim": case.pk})
    assert follow_messages(c, response) == [f"Case {case.pk} is yours now."]
    case.refresh_from_db()
    assert (case.status, case.assignee) == ("in_review", reviewer_user)
    assert OrderEvent.objects.filter(order_id=case.order_id, action="review_started").exists()


# --- bulk approval -------------------------------------------------------------------------------
def test_bulk_approve_takes_the_low_risk_cases_and_names_the_others(client, reviewer_user):
    low_a, low_b = international(), international()
    risky = flagged()
    c = client_for(client, reviewer_user)
    response = c.post(QUEUE, {"action": "bulk_approve", "case": [low_a.pk, risky.pk, low_b.pk]})
    said = follow_messages(c, response)
    assert said == [
        f"Approved 2 case(s): {low_a.pk}, {low_b.pk}.",
        "Not approved (only low-risk cases are approved in bulk): "
        f"case {risky.pk}: its score 70 is not below the review threshold 60.",
    ]
    statuses = dict(ReviewCase.objects.values_list("pk", "status"))
    assert statuses == {low_a.pk: "approved", low_b.pk: "approved", risky.pk: "open"}


def test_bulk_approve_refuses_high_value_and_first_time_mismatch(reviewer_user):
    from reviews.services import review_cases_bulk_approve

    big = flagged(source={}, lines=[("SKU-1", 1, "1500.00")])  # high value, score 30
    mismatch = flagged(source={}, billing={**US, "country_code": "CA", "city": "Ottawa"})
    approved, refused = review_cases_bulk_approve(
        case_ids=[big.pk, mismatch.pk], actor=Actor.for_user(reviewer_user)
    )
    assert approved == []
    assert refused == [
        (big.pk, "it is a high-value order"),
        (mismatch.pk, "a first-time customer's billing and shipping addresses differ"),
    ]


# --- the case page's figures -------------------------------------------------------------------
def _parcel(*steps, customer=None, postal="62701", units=1):
    """An order of the customer shipped to ``postal`` (US) and the carrier's events on it."""
    order = order_with(customer=customer or CustomerFactory(), lines=[("MUG", units, "10.00")],
                       shipping={**US, "postal_code": postal})  # fmt: skip
    assert order.status == "allocated", (order.status, order.status_reason)
    [draft] = shipments_create_for_order(order_id=order.pk, actor=OPS)
    shipment = shipment_buy_label(shipment_id=draft.pk, actor=OPS)
    shipment = shipment_ship(shipment_id=shipment.pk, actor=OPS)
    if steps:
        events = [
            TrackingEvent(
                at=shipment.shipped_at + timedelta(hours=h),
                status=s,
                description=s,
                carrier_status=s,
            )
            for h, s in enumerate(steps, 1)
        ]
        tracking_record(shipment_id=shipment.pk, source="webhook",
                        tracking=Tracking(tracking_number=shipment.tracking_number,
                                          status=steps[-1], events=events))  # fmt: skip
    shipment.refresh_from_db()
    return order, shipment


@pytest.fixture
def world(db, settings):
    """A returning customer with history, our parcels to ZIP3 627 and elsewhere, and a new
    high-risk order of theirs (to 62704) with its stock reserved."""
    settings.CRM_TARGETS = []
    settings.RETURN_WINDOW_DAYS_DEFAULT = 30
    add_warehouse("A", name="Newark")
    stock("MUG", "A", 50)
    stock("SKU-1", "A", 50)
    buyer = CustomerFactory()
    returned_order, _ = _parcel("in_transit", "delivered", customer=buyer)
    line = returned_order.lines.get()
    return_request(order_id=returned_order.pk, via="admin", actor=OPS,
                   lines=[ReturnLineRequest(line.pk, 1, "damaged")])  # fmt: skip
    # A second order of theirs (two units: not a duplicate of the first) with a chargeback.
    disputed, _ = _parcel("in_transit", "failed_attempt", "delivered", customer=buyer,
                          postal="62702", units=2)  # fmt: skip
    ProcessorTransaction.objects.create(
        source="shopify_payments", external_id="dp_1", category=TxCategory.DISPUTE,
        currency="USD", amount=Decimal("-16.50"), fee=Decimal("15.00"), net=Decimal("-31.50"),
        occurred_at=datetime(2026, 11, 20, tzinfo=UTC), order=disputed,
    )  # fmt: skip
    _parcel("in_transit", "exception")  # ZIP3 627, failed
    _parcel("in_transit", "return_to_sender")  # ZIP3 627, failed (returned)
    _parcel("in_transit")  # ZIP3 627, still on its way: not counted
    _parcel("in_transit", "delivered", postal="60601")  # another area (ZIP3 606)
    _parcel("in_transit", "exception", postal="61801")  # another area (ZIP3 618)
    case = flagged(customer=buyer, shipping={**US, "postal_code": "62704"},
                   lines=[("SKU-1", 3, "10.00")])  # fmt: skip
    return case, buyer


def test_the_case_page_shows_the_delivery_confidence_of_our_parcels_to_that_area(
    client, reviewer_user, world
):
    case, _buyer = world
    page = client_for(client, reviewer_user).get(reverse("work:review_case", args=[case.pk]))
    delivery = page.context["ctx"].delivery
    assert (delivery.country, delivery.area) == ("US", "627")
    [local] = delivery.carriers
    # Two delivered (one after a failed attempt), one exception, one returned to sender.
    assert (local.delivered, local.failed, local.troubled, local.sample) == (2, 2, 1, 4)
    assert local.rate == Decimal("50.0")
    assert local.thin  # fewer than 5 parcels
    html = page.content.decode()
    assert "50.0%" in html and "postal area <strong>627</strong>" in html


def test_the_case_page_shows_history_signals_addresses_reservation_and_timeline(
    client, reviewer_user, world
):
    case, buyer = world
    page = client_for(client, reviewer_user).get(reverse("work:review_case", args=[case.pk]))
    ctx = page.context["ctx"]
    history = ctx.history
    assert (history.orders, history.cancelled, history.returns, history.chargebacks) == (2, 0, 1, 1)
    assert history.value == [("USD", Decimal("30.00"))]  # 10.00 + 2 x 10.00
    assert history.chargeback_value == [("USD", Decimal("16.50"))]
    assert history.cities == ["Springfield (US)"]

    words = {s.name: (s.words, s.weight) for s in ctx.signals}
    assert words == {"channel_risk": ("The sales channel's own fraud analysis rates the order "
                                      "risky.", 60)}  # fmt: skip

    [held] = ctx.reservations
    assert (held.sku, held.quantity, held.warehouse, held.active) == (
        "SKU-1",
        3,
        "A (Newark)",
        True,
    )
    assert ctx.verdict["deliverability"]
    assert ctx.billing_same
    actions = [row.action for row in ctx.timeline]
    assert "send_to_review" in actions and "review_opened" in actions
    html = page.content.decode()
    for text in (
        "Reserved stock",
        "SKU-1",
        "A (Newark)",
        "The sales channel&#x27;s own fraud",
        "Springfield (US)",
        "review_opened",
        'id="history-chargebacks">1',
    ):
        assert text in html, text


# --- a real race (PostgreSQL) --------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_reviewers_deciding_one_open_case_at_once_one_wins_the_other_is_told(reviewer_user):
    from tests.concurrency import race

    vera = make_user("vera", "reviewer")
    case = flagged()
    results = race([
        lambda: review_case_decide(case_id=case.pk, actor=Actor.for_user(reviewer_user),
                                   decision="approve", expected_status="open"),
        lambda: review_case_decide(case_id=case.pk, actor=Actor.for_user(vera),
                                   decision="reject", note="fraud", expected_status="open"),
    ])  # fmt: skip
    won = [r for r in results if isinstance(r, ReviewCase)]
    lost = [r for r in results if isinstance(r, Exception)]
    assert len(won) == 1 and len(lost) == 1, results
    case.refresh_from_db()
    winner = case.decided_by.get_username()
    assert str(lost[0]) == f"Case {case.pk} was already decided by {winner} ({case.status})."
    decisions = OrderEvent.objects.filter(
        order_id=case.order_id, action__in=("review_approved", "review_rejected")
    )
    assert decisions.count() == 1
