"""Returns (RMA): request, policy, receipt with restock by condition, exact refund, close."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fulfillment.models import ReturnPolicy, StockLevel
from fulfillment.returns import (
    ReturnLineRequest,
    return_authorize,
    return_receive,
    return_refund,
    return_request,
)
from orders.actors import Actor
from orders.errors import InvalidInput
from orders.models import Refund
from orders.refunds import refund_transition
from tests.fulfillment.test_close_orders import delivered

pytestmark = pytest.mark.django_db

CS = Actor.system("cs")


@pytest.fixture(autouse=True)
def quiet(settings):
    settings.CRM_TARGETS = []
    settings.RETURN_WINDOW_DAYS_DEFAULT = 30


def _policy(**kw):
    defaults = {"name": "Standard", "window_days": 30, "auto_authorize_limit": Decimal("100")}
    return ReturnPolicy.objects.create(**{**defaults, **kw})


def test_a_delivered_order_returned_by_policy_is_received_restocked_refunded_and_closed():
    _policy()
    order, parcel = delivered()
    line = order.lines.get()
    ret = return_request(order_id=order.pk, via="status_page", actor=CS,
                         lines=[ReturnLineRequest(line.pk, 1, "damaged")])  # fmt: skip
    assert ret.status == "authorized" and ret.auto_authorized
    before = StockLevel.objects.get(sku="MUG").on_hand
    [rl] = ret.lines.all()
    ret = return_receive(return_id=ret.pk, actor=CS, conditions={rl.pk: "restock"})
    assert ret.status == "refunded"
    assert StockLevel.objects.get(sku="MUG").on_hand == before + 1
    refund = Refund.objects.get(order=order)
    # 10.00 goods + 1.50 tax + 5.00 shipping back (damaged: our fault) = the whole total.
    assert refund.amount == order.total == Decimal("16.50")
    assert refund.source == "rma" and refund.external_id == ret.rma_number
    order.refresh_from_db()
    assert order.payment_status == "refunded" and order.refunded_total == Decimal("16.50")
    parcel.refresh_from_db()
    assert parcel.status == "returned"
    refund_transition(refund_id=refund.pk, transition="confirm_manual", actor=CS)
    ret.refresh_from_db()
    assert ret.status == "closed"


def test_a_return_over_the_policy_limit_waits_for_customer_service():
    _policy(auto_authorize_limit=Decimal("5"))
    order, _parcel = delivered()
    line = order.lines.get()
    ret = return_request(order_id=order.pk, via="admin", actor=CS,
                         lines=[ReturnLineRequest(line.pk, 1, "changed_mind")])  # fmt: skip
    assert ret.status == "requested"
    assert any("limit" in why for why in ret.policy_verdict["why_not"])
    ret = return_authorize(return_id=ret.pk, actor=CS)
    assert ret.status == "authorized"


def test_the_same_units_cannot_be_returned_twice():
    _policy()
    order, _parcel = delivered()
    line = order.lines.get()
    return_request(order_id=order.pk, via="admin", actor=CS,
                   lines=[ReturnLineRequest(line.pk, 1, "damaged")])  # fmt: skip
    with pytest.raises(InvalidInput, match="can be returned"):
        return_request(order_id=order.pk, via="admin", actor=CS,
                       lines=[ReturnLineRequest(line.pk, 1, "damaged")])  # fmt: skip


def test_a_return_a_person_authorized_is_refunded_on_receipt_only_within_their_limit():
    from tests.factories import make_user
    from tests.fulfillment.returns_world import cs_limit, delivered_order, review_policy

    review_policy()
    cs_limit("100")
    cs = Actor.for_user(make_user("desk", "customer_service"))
    finance = Actor.for_user(make_user("books", "finance"))
    order = delivered_order([("COAT", 1, "180.00")])
    line = order.lines.get()
    ret = return_request(order_id=order.pk, via="admin", actor=cs,
                         lines=[ReturnLineRequest(line.pk, 1, "changed_mind")])  # fmt: skip
    ret = return_authorize(return_id=ret.pk, actor=cs)
    [rl] = ret.lines.all()

    ret = return_receive(return_id=ret.pk, actor=cs, conditions={rl.pk: "restock"})

    # Received (the coat is back on hand), but 180.00 is above customer service's 100.00.
    assert ret.status == "received" and ret.refund_id is None
    assert not Refund.objects.filter(order=order).exists()
    waiting = order.events.get(action="return_refund_waiting")
    assert "above your limit of 100.00 USD" in waiting.data["reason"]
    assert (waiting.actor_kind, waiting.actor_id) == ("user", "desk")
    ret = return_refund(return_id=ret.pk, actor=finance)
    assert ret.status == "refunded" and ret.refund.amount > Decimal("100")


def test_a_return_the_policy_authorized_is_refunded_by_the_policy_whoever_receives_it():
    from tests.factories import make_user
    from tests.fulfillment.returns_world import cs_limit, delivered_order

    _policy(auto_authorize_limit=Decimal("500"))
    cs_limit("100")
    cs = Actor.for_user(make_user("desk", "customer_service"))
    order = delivered_order([("COAT", 1, "180.00")])
    line = order.lines.get()
    ret = return_request(order_id=order.pk, via="status_page", actor=CS,
                         lines=[ReturnLineRequest(line.pk, 1, "changed_mind")])  # fmt: skip
    assert ret.auto_authorized
    [rl] = ret.lines.all()

    ret = return_receive(return_id=ret.pk, actor=cs, conditions={rl.pk: "restock"})

    assert ret.status == "refunded"
    event = order.events.get(action="return_mark_refunded")
    assert (event.actor_kind, event.actor_id) == ("system", "return_policy")
