"""Refunds as records: once per (order, source, id), the sum is the refunded total, never more
than was captured (per order and per payment method), the payment state follows the sums, and
two concurrent refunds that together exceed the captured money cannot both pass."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.actors import Actor
from orders.errors import DomainError, InvalidInput
from orders.models import Incident, OrderPayment, Refund
from orders.refunds import (
    LineRequest,
    OverRefund,
    PaymentInput,
    RefundInput,
    RefundLineInput,
    refund_issue,
    refund_record,
)
from tests.concurrency import race
from tests.factories import make_order

SYSTEM = Actor.system("test")


@pytest.fixture(autouse=True)
def quiet(settings):
    settings.ERP_TARGET = ""
    settings.NOTIFY_TARGETS = []


def paid_order(**kw):
    # 3 x 10.00 and 1 x 7.00, 4.00 discount, 2.70 tax, 5.00 shipping: total 40.70.
    return make_order(paid=True, lines=[("A", 3, "10.00"), ("B", 1, "7.00")], discount="4.00",
                      tax="2.70", shipping="5.00", **kw)  # fmt: skip


@pytest.mark.django_db
def test_refunding_every_unit_in_pieces_plus_shipping_is_exactly_the_total():
    order = paid_order()
    a, b = order.lines.order_by("line_no")
    for i, (line, qty) in enumerate([(a, 1), (a, 1), (b, 1), (a, 1)]):
        refund_issue(order_id=order.pk, actor=SYSTEM, key=f"k{i}",
                     lines=[LineRequest(line.pk, qty)])  # fmt: skip
    refund_issue(order_id=order.pk, actor=SYSTEM, key="ship", shipping=True)
    order.refresh_from_db()
    assert order.refunded_total == order.total == Decimal("40.70")
    assert order.payment_status == "refunded"
    assert sum(r.amount for r in order.refunds.all()) == order.total
    with pytest.raises(InvalidInput, match="cannot be refunded"):
        refund_issue(order_id=order.pk, actor=SYSTEM, key="again",
                     lines=[LineRequest(a.pk, 1)])  # fmt: skip


@pytest.mark.django_db
def test_the_same_key_twice_makes_one_refund_and_a_partial_one_leaves_it_partially_refunded():
    order = paid_order()
    first = refund_issue(order_id=order.pk, actor=SYSTEM, key="click", amount=Decimal("5.00"))
    second = refund_issue(order_id=order.pk, actor=SYSTEM, key="click", amount=Decimal("5.00"))
    assert first.created and not second.created and first.refund.pk == second.refund.pk
    order.refresh_from_db()
    assert (order.payment_status, order.refunded_total) == ("partially_refunded", Decimal("5"))
    assert order.refunds.count() == 1


@pytest.mark.django_db
def test_a_channel_refund_split_by_gateway_is_kept_per_method_and_compared_with_ours():
    order = paid_order()
    a, _b = order.lines.order_by("line_no")
    result = refund_record(order_id=order.pk, actor=SYSTEM, data=RefundInput(
        source="channel", external_id="R1", total=Decimal("9.00"),
        lines=[RefundLineInput(order_line_id=a.pk, quantity=1, amount=Decimal("8.00"),
                               tax=Decimal("0.50"))],
        payments=[PaymentInput("card", Decimal("4.00")), PaymentInput("gift_card",
                                                                       Decimal("5.00"))],
    ))  # fmt: skip
    refund = result.refund
    assert {(p.method, p.amount) for p in refund.payments.all()} == {
        ("card", Decimal("4.00")),
        ("gift_card", Decimal("5.00")),
    }
    assert dict(OrderPayment.objects.filter(order=order).values_list("method", "refunded")) == {
        "card": Decimal("4.00"),
        "gift_card": Decimal("5.00"),
    }
    # Ours for one unit of A: 10.00 less its 1.08 discount share, its tax share; the channel
    # said 8.00 goods: a refund_mismatch incident, the channel's numbers kept as they are.
    incident = Incident.objects.get(category="refund_mismatch")
    assert any(d["what"] == "amount" for d in incident.details["differences"])
    assert refund.lines.get().amount == Decimal("8.00")


@pytest.mark.django_db
def test_a_refund_beyond_a_payment_methods_capture_is_refused():
    order = paid_order()
    OrderPayment.objects.create(order=order, method="gift_card", currency="USD",
                                captured=Decimal("3.00"))  # fmt: skip
    with pytest.raises(OverRefund, match="gift_card"):
        refund_record(order_id=order.pk, actor=SYSTEM, data=RefundInput(
            source="channel", external_id="R2", total=Decimal("4.00"),
            payments=[PaymentInput("gift_card", Decimal("4.00"))],
        ))  # fmt: skip
    order.refresh_from_db()
    assert order.refunded_total == 0 and not order.refunds.exists()


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_refunds_that_together_exceed_the_capture_only_one_passes():
    order = paid_order()  # 40.70 captured

    def refund(key):
        return lambda: refund_issue(order_id=order.pk, actor=SYSTEM, key=key,
                                    amount=Decimal("30.00"))  # fmt: skip

    results = race([refund("one"), refund("two")])
    passed = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, DomainError)]
    assert len(passed) == 1 and len(refused) == 1, results
    assert isinstance(refused[0], OverRefund)
    order.refresh_from_db()
    assert order.refunded_total == Decimal("30.00")
    assert Refund.objects.filter(order=order).count() == 1
