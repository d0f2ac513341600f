"""Review routing through the real pipeline, and the reviewer's decisions."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from orders.actors import Actor
from orders.errors import InvalidInput, PermissionRefused, TransitionRefused
from orders.models import Incident
from orders.services import order_transition
from reviews.models import ReviewCase
from reviews.services import (
    review_case_approve,
    review_case_escalate,
    review_case_open,
    review_case_reject,
    review_case_start,
)
from tests.factories import make_order
from tests.reviews.helpers import WENT_ON, paid_order


@pytest.fixture
def flagged(db):
    """An international order: always reviewed."""
    return paid_order(country="DE")


def _case(order):
    return ReviewCase.objects.get(order=order)


def test_an_international_order_goes_in_review_with_an_open_case(flagged, settings):
    assert flagged.status == "in_review"
    case = _case(flagged)
    assert case.status == "open"
    assert case.reasons == ["International order (ships to DE)"]
    assert [s["name"] for s in case.signals] == ["first_time_customer", "international"]
    assert case.sla_due_at == case.created_at + timedelta(hours=4)
    sent = flagged.events.get(action="send_to_review")
    assert (sent.actor_kind, sent.actor_id, sent.to_state) == ("system", "fraud", "in_review")
    opened = flagged.events.get(action="review_opened")
    assert opened.data["case_id"] == case.pk


def test_the_sla_is_a_setting(db, settings):
    settings.REVIEW_SLA_HOURS = 1
    case = _case(paid_order(country="DE"))
    assert case.sla_due_at == case.created_at + timedelta(hours=1)


def test_start_then_approve_lets_the_order_go_on_and_audits_the_reviewer(
    flagged, reviewer_user, django_capture_on_commit_callbacks
):
    actor = Actor.for_user(reviewer_user)
    case = review_case_start(case_id=_case(flagged).pk, actor=actor)
    assert (case.status, case.assignee) == ("in_review", reviewer_user)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        case = review_case_approve(case_id=case.pk, actor=actor, note="called the buyer")
    assert len(callbacks) >= 1  # orders.order_allocate, after commit
    assert (case.status, case.decided_by) == ("approved", reviewer_user)
    assert case.decided_at is not None

    flagged.refresh_from_db()
    assert flagged.review_approved_at is not None
    # Allocation ran after commit: with no allocator registered the order stays validated.
    assert flagged.status in WENT_ON
    approve = flagged.events.get(action="approve_review")
    assert (approve.actor_id, approve.from_state, approve.to_state) == (
        "rita", "in_review", "validated",
    )  # fmt: skip
    trail = [(e.action, e.actor_id) for e in flagged.events.filter(field="review_case")]
    assert trail == [("review_started", "rita"), ("review_approved", "rita")]
    assert flagged.events.get(action="review_approved").data["note"] == "called the buyer"


def test_reject_cancels_the_order_with_the_reason(flagged, reviewer_user):
    actor = Actor.for_user(reviewer_user)
    review_case_start(case_id=_case(flagged).pk, actor=actor)
    case = review_case_reject(case_id=_case(flagged).pk, actor=actor, reason="stolen card")
    flagged.refresh_from_db()
    assert (case.status, flagged.status) == ("rejected", "cancelled")
    assert flagged.status_reason == "Rejected in review: stolen card"
    cancel = flagged.events.get(action="cancel")
    assert (cancel.actor_kind, cancel.actor_id) == ("user", "rita")
    rejected = flagged.events.get(action="review_rejected")
    assert (rejected.actor_id, rejected.data["reason"]) == ("rita", "stolen card")


def test_reject_needs_a_reason(flagged, reviewer_user):
    actor = Actor.for_user(reviewer_user)
    review_case_start(case_id=_case(flagged).pk, actor=actor)
    with pytest.raises(InvalidInput, match="needs a reason"):
        review_case_reject(case_id=_case(flagged).pk, actor=actor, reason="  ")


def test_customer_service_cannot_review(flagged, cs_user):
    actor = Actor.for_user(cs_user)
    with pytest.raises(PermissionRefused, match="orders.review_order"):
        review_case_start(case_id=_case(flagged).pk, actor=actor)
    with pytest.raises(PermissionRefused):
        review_case_approve(case_id=_case(flagged).pk, actor=actor)
    assert _case(flagged).status == "open"


def test_the_system_cannot_decide_a_review(flagged):
    with pytest.raises(PermissionRefused, match="needs a person"):
        review_case_start(case_id=_case(flagged).pk, actor=Actor.system("bot"))


def test_an_open_case_must_be_started_before_a_decision(flagged, reviewer_user):
    with pytest.raises(TransitionRefused, match="it is 'open'"):
        review_case_approve(case_id=_case(flagged).pk, actor=Actor.for_user(reviewer_user))
    flagged.refresh_from_db()
    assert flagged.status == "in_review"
    assert not flagged.events.filter(action="approve_review").exists()


def test_escalate_keeps_the_order_in_review_and_raises_an_incident_until_decided(
    flagged, reviewer_user, ops_user
):
    rita, otto = Actor.for_user(reviewer_user), Actor.for_user(ops_user)
    case_id = _case(flagged).pk
    review_case_start(case_id=case_id, actor=rita)
    with pytest.raises(InvalidInput):
        review_case_escalate(case_id=case_id, actor=rita, note="")
    case = review_case_escalate(case_id=case_id, actor=rita, note="big B2B buyer, check credit")
    assert (case.status, case.assignee) == ("escalated", None)
    incident = Incident.objects.get(category="fraud_review")
    assert (incident.severity, incident.status, incident.order_id) == ("high", "open", flagged.pk)

    case = review_case_start(case_id=case_id, actor=otto)
    assert (case.status, case.assignee) == ("in_review", ops_user)
    review_case_approve(case_id=case_id, actor=otto)
    incident.refresh_from_db()
    assert incident.status == "resolved"


def test_rerunning_the_pipeline_opens_no_second_case(
    flagged, reviewer_user, django_capture_on_commit_callbacks
):
    case = _case(flagged)
    review_case_start(case_id=case.pk, actor=Actor.for_user(reviewer_user))
    for _ in range(2):
        order_transition(order_id=flagged.pk, transition="hold", actor=Actor.system(),
                         reason="address check")  # fmt: skip
        with django_capture_on_commit_callbacks(execute=True):
            order_transition(order_id=flagged.pk, transition="release_hold", actor=Actor.system())
    flagged.refresh_from_db()
    assert flagged.status == "in_review"
    assert list(ReviewCase.objects.filter(order=flagged).values_list("pk", "status")) == [
        (case.pk, "in_review")
    ]
    assert flagged.events.filter(action="review_opened").count() == 1


def test_an_approved_order_is_not_sent_back_to_review_on_a_rerun(
    flagged, reviewer_user, django_capture_on_commit_callbacks
):
    actor = Actor.for_user(reviewer_user)
    review_case_start(case_id=_case(flagged).pk, actor=actor)
    with django_capture_on_commit_callbacks(execute=True):
        review_case_approve(case_id=_case(flagged).pk, actor=actor)
    flagged.refresh_from_db()
    order_transition(order_id=flagged.pk, transition="hold", actor=Actor.system(), reason="x",
                     expected_status=flagged.status)  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        order_transition(order_id=flagged.pk, transition="release_hold", actor=Actor.system())
    flagged.refresh_from_db()
    assert flagged.status in WENT_ON
    assert ReviewCase.objects.filter(order=flagged).count() == 1
    fraud = flagged.events.filter(action="check", data__check="fraud").last()
    assert fraud.data["message"].startswith("Review already approved")


def test_opening_twice_reuses_the_unresolved_case(flagged):
    again = review_case_open(order_id=flagged.pk, reasons=["again"], risk=None)
    assert again.pk == _case(flagged).pk
    flagged.refresh_from_db()
    assert flagged.status == "in_review"


def test_a_review_opens_only_for_a_validated_or_reviewed_order(db):
    received = make_order(pipeline=False)
    with pytest.raises(TransitionRefused, match="it is 'received'"):
        review_case_open(order_id=received.pk, reasons=["?"], risk=None)
    assert not ReviewCase.objects.exists()


def test_the_database_allows_one_unresolved_case_per_order(flagged):
    with pytest.raises(IntegrityError), transaction.atomic():
        ReviewCase.objects.create(order=flagged, reasons=["dup"])


def test_a_decided_case_does_not_block_a_new_one(flagged, reviewer_user):
    actor = Actor.for_user(reviewer_user)
    review_case_start(case_id=_case(flagged).pk, actor=actor)
    review_case_reject(case_id=_case(flagged).pk, actor=actor, reason="fraud")
    ReviewCase.objects.create(order=flagged, reasons=["later"])
    assert ReviewCase.objects.filter(order=flagged).count() == 2


def test_the_status_cannot_be_assigned_directly(flagged):
    case = _case(flagged)
    with pytest.raises(AttributeError):
        case.status = "approved"
