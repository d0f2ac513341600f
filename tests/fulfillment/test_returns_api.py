"""``/api/v1/returns/``: customer service starts, authorizes, rejects, receives and refunds
returns through the fulfillment.returns services; the role's refund limit applies."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from fulfillment.models import ReturnPolicy, StockLevel
from orders.models import Refund, RefundLimit
from tests.fulfillment.test_close_orders import delivered

pytestmark = pytest.mark.django_db

URL = "/api/v1/returns/"


@pytest.fixture(autouse=True)
def quiet(settings):
    settings.CRM_TARGETS = []
    settings.RETURN_WINDOW_DAYS_DEFAULT = 30


@pytest.fixture
def policy(db):
    return ReturnPolicy.objects.create(name="Standard", window_days=30,
                                       auto_authorize_limit=Decimal("5"))  # fmt: skip


def _start(api_client, order, **kw):
    line = order.lines.get()
    body = {
        "order": order.pk,
        "lines": [{"order_line_id": line.pk, "quantity": 1, "reason": "changed_mind"}],
        "key": "r-1",
        **kw,
    }
    return api_client.post(URL, body, format="json")


def test_customer_service_starts_authorizes_and_receives_a_return(api_client, cs_user, policy):
    RefundLimit.objects.update_or_create(group=Group.objects.get(name="customer_service"),
                                         currency="USD",
                                         defaults={"max_amount": Decimal("100")})  # fmt: skip
    order, _parcel = delivered()
    api_client.force_authenticate(cs_user)
    made = _start(api_client, order)
    assert made.status_code == 201, made.json()
    ret = made.json()
    assert ret["status"] == "requested" and ret["rma_number"].startswith("RMA-")
    assert _start(api_client, order).json()["id"] == ret["id"]  # same key: same return

    authorized = api_client.post(f"{URL}{ret['id']}/authorize/", {"note": "ok"}, format="json")
    assert authorized.status_code == 200, authorized.json()
    assert authorized.json()["status"] == "authorized"

    before = StockLevel.objects.get(sku="MUG").on_hand
    [line] = ret["lines"]
    received = api_client.post(
        f"{URL}{ret['id']}/receive/", {"conditions": {str(line["id"]): "restock"}}, format="json"
    )
    assert received.status_code == 200, received.json()
    assert received.json()["status"] == "refunded"
    assert received.json()["refund_reference"].startswith("RF-")
    assert StockLevel.objects.get(sku="MUG").on_hand == before + 1

    listed = api_client.get(URL, {"order": order.pk, "status": "refunded"}).json()
    assert listed["count"] == 1
    assert api_client.get(URL, {"status": "requested"}).json()["count"] == 0


def test_reject_needs_a_note(api_client, cs_user, policy):
    order, _parcel = delivered()
    api_client.force_authenticate(cs_user)
    ret = _start(api_client, order).json()
    assert api_client.post(f"{URL}{ret['id']}/reject/", {}, format="json").status_code == 400
    done = api_client.post(f"{URL}{ret['id']}/reject/", {"note": "Worn"}, format="json")
    assert done.status_code == 200 and done.json()["status"] == "rejected"
    again = api_client.post(f"{URL}{ret['id']}/authorize/", {}, format="json")
    assert again.status_code == 409


def test_refund_action_above_the_cs_limit_is_403_finance_cannot_work_returns(
    api_client, cs_user, policy
):
    order, _parcel = delivered()
    api_client.force_authenticate(cs_user)
    ret = _start(api_client, order).json()
    api_client.post(f"{URL}{ret['id']}/authorize/", {}, format="json")
    RefundLimit.objects.update_or_create(group=Group.objects.get(name="customer_service"),
                                         currency="USD",
                                         defaults={"max_amount": Decimal("1")})  # fmt: skip
    refused = api_client.post(f"{URL}{ret['id']}/refund/")
    assert refused.status_code == 403 and refused.json()["code"] == "refund_limit_exceeded"
    assert not Refund.objects.exists()


def test_reading_needs_view_return(api_client, db):
    from tests.factories import make_user

    api_client.force_authenticate(make_user("nobody"))
    assert api_client.get(URL).status_code == 403
