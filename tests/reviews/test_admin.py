"""The review queue and the fraud settings in the admin."""

from datetime import timedelta

import pytest
from django.utils import timezone

from reviews.models import FraudSettings, ReviewCase
from tests.reviews.helpers import paid_order

LIST = "/admin/reviews/reviewcase/"


@pytest.fixture
def rita(client, reviewer_user):
    client.force_login(reviewer_user)
    return client


@pytest.fixture
def case(db):
    return ReviewCase.objects.get(order=paid_order(country="DE"))


def _act(client, action, case, note=""):
    return client.post(LIST, {"action": action, "_selected_action": [case.pk], "note": note},
                       follow=True)  # fmt: skip


def test_the_queue_lists_cases_and_highlights_overdue_ones(rita, case):
    ReviewCase.objects.filter(pk=case.pk).update(sla_due_at=timezone.now() - timedelta(hours=1))
    page = rita.get(LIST).content.decode()
    assert case.order.external_id in page
    assert "International order (ships to DE)" in page
    assert "(overdue)" in page
    assert rita.get(f"{LIST}{case.pk}/change/").status_code == 200


def test_the_sla_filter_returns_the_overdue_or_the_due_unresolved_cases(rita, case):
    now = timezone.now()
    due = ReviewCase.objects.get(order=paid_order(country="DE"))
    decided = ReviewCase.objects.get(order=paid_order(country="DE"))
    ReviewCase.objects.filter(pk=case.pk).update(sla_due_at=now - timedelta(hours=1))
    ReviewCase.objects.filter(pk=due.pk).update(sla_due_at=now + timedelta(hours=1))
    # Late, but already decided: no longer anybody's overdue work.
    ReviewCase.objects.filter(pk=decided.pk).update(
        sla_due_at=now - timedelta(hours=2), status="approved"
    )

    def listed(**params):
        response = rita.get(LIST, params)
        assert response.status_code == 200
        return sorted(c.pk for c in response.context["cl"].result_list)

    assert listed(sla="overdue") == [case.pk]
    assert listed(sla="due") == [due.pk]
    assert listed() == sorted([case.pk, due.pk, decided.pk])


def test_actions_start_and_approve_through_the_services(rita, case):
    page = _act(rita, "start_cases", case).content.decode()
    assert f"Started: case(s) {case.pk}" in page
    _act(rita, "approve_cases", case)
    case.refresh_from_db()
    assert case.status == "approved"


def test_reject_without_a_reason_is_refused_in_words(rita, case):
    _act(rita, "start_cases", case)
    page = _act(rita, "reject_cases", case).content.decode()
    assert "Rejecting needs a reason" in page
    case.refresh_from_db()
    assert case.status == "in_review"
    _act(rita, "reject_cases", case, note="fraud ring")
    case.refresh_from_db()
    assert (case.status, case.order.status) == ("rejected", "cancelled")


def test_a_refused_move_shows_the_reason(rita, case):
    page = _act(rita, "approve_cases", case).content.decode()
    assert f"Case {case.pk}: Cannot approve review case {case.pk}: it is &#x27;open&#x27;" in page


def test_fraud_settings_is_one_editable_row(client, ops_user):
    client.force_login(ops_user)
    response = client.get("/admin/reviews/fraudsettings/")
    assert response.status_code == 302 and response.url.endswith("/fraudsettings/1/change/")
    form = client.get(response.url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data.update({k: ("on" if v else "") for k, v in data.items() if isinstance(v, bool)})
    data = {k: v for k, v in data.items() if v != ""}
    data["review_threshold"] = 40
    assert client.post(response.url, data).status_code == 302
    assert FraudSettings.load().review_threshold == 40
    assert FraudSettings.objects.count() == 1
