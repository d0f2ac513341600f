"""``/api/v1/refunds/``: a person's refund through the role limit, confirm_manual, filters, and
the refunds on the order detail."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from orders.models import Refund, RefundLimit
from tests.fulfillment.test_close_orders import delivered

pytestmark = [pytest.mark.django_db, pytest.mark.pipeline]

URL = "/api/v1/refunds/"


@pytest.fixture(autouse=True)
def quiet(settings):
    settings.CRM_TARGETS = []


def _limit(amount: str) -> None:
    RefundLimit.objects.update_or_create(group=Group.objects.get(name="customer_service"),
                                         currency="USD",
                                         defaults={"max_amount": Decimal(amount)})  # fmt: skip


def test_customer_service_above_its_limit_is_refused_403_and_finance_may(
    api_client, cs_user, finance_user
):
    _limit("5")
    order, _parcel = delivered()
    line = order.lines.get()
    body = {"order": order.pk, "lines": [{"order_line_id": line.pk, "quantity": 1}],
            "reason": "goodwill", "key": "k-1"}  # fmt: skip
    api_client.force_authenticate(cs_user)
    refused = api_client.post(URL, body, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "refund_limit_exceeded"
    assert not Refund.objects.exists()

    api_client.force_authenticate(finance_user)
    made = api_client.post(URL, body, format="json")
    assert made.status_code == 201, made.json()
    data = made.json()
    assert data["amount"] == "11.50" and data["source"] == "person"
    assert [ln["quantity"] for ln in data["lines"]] == [1]
    again = api_client.post(URL, body, format="json")
    assert again.status_code == 200 and again.json()["id"] == data["id"]
    assert Refund.objects.count() == 1


def test_customer_service_within_its_limit_refunds_an_amount_and_the_order_shows_it(
    api_client, cs_user
):
    _limit("20")
    order, _parcel = delivered()
    api_client.force_authenticate(cs_user)
    made = api_client.post(URL, {"order": order.pk, "amount": "3.00", "key": "gw-1"},
                           format="json")  # fmt: skip
    assert made.status_code == 201, made.json()
    assert made.json()["amount"] == "3.00"

    listed = api_client.get(URL, {"order": order.pk, "source": "person"})
    assert listed.status_code == 200 and listed.json()["count"] == 1
    assert api_client.get(URL, {"source": "rma"}).json()["count"] == 0

    detail = api_client.get(f"/api/v1/orders/{order.pk}/").json()
    [shown] = detail["refunds"]
    assert shown["amount"] == "3.00" and shown["reference"].startswith("RF-")
    assert sum(Decimal(p["amount"]) for p in shown["payments"]) == Decimal("3.00")


def test_a_user_without_issue_refund_is_refused(api_client, reviewer_user):
    order, _parcel = delivered()
    api_client.force_authenticate(reviewer_user)
    response = api_client.post(URL, {"order": order.pk, "amount": "1.00", "key": "x"},
                               format="json")  # fmt: skip
    assert response.status_code == 403


def test_confirm_manual_only_for_a_refund_waiting_for_a_person(api_client, finance_user):
    order, _parcel = delivered()
    api_client.force_authenticate(finance_user)
    made = api_client.post(URL, {"order": order.pk, "amount": "2.00", "key": "m-1"},
                           format="json").json()  # fmt: skip
    refund = Refund.objects.get(pk=made["id"])
    if refund.status == "pending":
        conflict = api_client.post(f"{URL}{refund.pk}/confirm_manual/")
        assert conflict.status_code == 409
        Refund.objects.filter(pk=refund.pk).update(status="manual")
    else:
        Refund.objects.filter(pk=refund.pk).update(status="manual")
    done = api_client.post(f"{URL}{refund.pk}/confirm_manual/")
    assert done.status_code == 200, done.json()
    assert done.json()["status"] == "succeeded"
