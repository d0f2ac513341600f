"""``/api/v1/reviews/``: the queue with its filters, the case detail, and the decisions."""

import pytest

from reviews.models import ReviewCase
from tests.factories import make_user
from tests.reviews.helpers import WENT_ON, paid_order

pytestmark = [pytest.mark.django_db]

URL = "/api/v1/reviews/"


@pytest.fixture
def case(db):
    return ReviewCase.objects.get(order=paid_order(country="DE"))


@pytest.fixture
def rita(api_client, reviewer_user):
    api_client.force_authenticate(reviewer_user)
    return api_client


def test_the_queue_needs_a_login_and_view_rights(api_client, case, finance_user):
    assert api_client.get(URL).status_code in (401, 403)
    api_client.force_authenticate(finance_user)
    assert api_client.get(URL).status_code == 403


def test_the_detail_has_the_order_reasons_score_signals_and_sla(rita, case):
    body = rita.get(f"{URL}{case.pk}/").json()
    assert body["order"] == case.order_id
    assert body["order_status"] == "in_review"
    assert body["status"] == "open"
    assert body["reasons"] == ["International order (ships to DE)"]
    assert body["score"] == "30.00"
    assert body["signals"][1] == {
        "name": "international", "weight": 20, "evidence": "ships to DE (home US)",
    }  # fmt: skip
    assert body["sla_due_at"] and body["overdue"] is False


def test_the_list_filters_by_status_and_assignee(rita, case, reviewer_user):
    paid_order(country="FR")
    assert rita.get(URL).json()["count"] == 2
    assert rita.post(f"{URL}{case.pk}/start/").status_code == 200
    by_rita = rita.get(URL, {"assignee": "rita"}).json()
    assert [c["id"] for c in by_rita["results"]] == [case.pk]
    assert rita.get(URL, {"status": "open"}).json()["count"] == 1
    assert rita.get(URL, {"status": ["open", "in_review"]}).json()["count"] == 2


def test_start_then_approve(rita, case):
    started = rita.post(f"{URL}{case.pk}/start/")
    assert (started.status_code, started.json()["assignee"]) == (200, "rita")
    approved = rita.post(f"{URL}{case.pk}/approve/", {"note": "ok"}, format="json")
    assert approved.status_code == 200
    body = approved.json()
    assert (body["status"], body["decided_by"], body["decision_note"]) == ("approved", "rita", "ok")
    assert body["order_status"] in WENT_ON


def test_reject_needs_a_reason_and_cancels_the_order(rita, case):
    rita.post(f"{URL}{case.pk}/start/")
    missing = rita.post(f"{URL}{case.pk}/reject/", {}, format="json")
    assert (missing.status_code, missing.json()["code"]) == (400, "invalid")
    rejected = rita.post(f"{URL}{case.pk}/reject/", {"reason": "chargeback risk"}, format="json")
    assert rejected.status_code == 200
    assert (rejected.json()["status"], rejected.json()["order_status"]) == (
        "rejected", "cancelled",
    )  # fmt: skip


def test_escalate(rita, case):
    rita.post(f"{URL}{case.pk}/start/")
    response = rita.post(f"{URL}{case.pk}/escalate/", {"note": "senior look"}, format="json")
    assert (response.status_code, response.json()["status"]) == (200, "escalated")


def test_a_refused_move_is_409_with_the_reason(rita, case):
    response = rita.post(f"{URL}{case.pk}/approve/", {}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "transition_not_allowed"
    assert "it is 'open'" in response.json()["detail"]


def test_customer_service_may_look_but_not_decide(api_client, case, cs_user):
    api_client.force_authenticate(cs_user)
    assert api_client.get(f"{URL}{case.pk}/").status_code == 200
    response = api_client.post(f"{URL}{case.pk}/start/")
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")


def test_actions_need_view_rights_first(api_client, case):
    api_client.force_authenticate(make_user("nobody"))
    assert api_client.post(f"{URL}{case.pk}/start/").status_code == 403
