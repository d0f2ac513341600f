"""Every allowed transition of the order and payment machines, a table of what each state
offers, forbidden moves with their messages, and the audit event of each move."""

from decimal import Decimal

import pytest

from config import correlation
from orders.actors import Actor
from orders.errors import InvalidInput, StaleState, TransitionRefused
from orders.models import Order
from orders.services import ORDER_TRANSITIONS, order_transition
from tests.factories import BusinessCustomerFactory, advance, make_order

# How to reach each state from a validated order (payment first where a condition needs it).
STATUS_PATHS = {
    "received": None,
    "validated": [],
    "in_review": ["send_to_review"],
    "on_hold": ["hold"],
    "allocated": ["allocate"],
    "backordered": ["backorder"],
    "fulfilling": ["capture_payment", "allocate", "start_fulfillment"],
    "partially_shipped": ["capture_payment", "allocate", "start_fulfillment", "ship_partially"],
    "shipped": ["capture_payment", "allocate", "start_fulfillment", "ship"],
    "delivered": ["capture_payment", "allocate", "start_fulfillment", "ship", "deliver"],
    "closed": ["capture_payment", "allocate", "start_fulfillment", "ship", "deliver", "close"],
    "cancelled": ["cancel"],
}
PAYMENT_PATHS = {
    "pending": [],
    "authorized": ["authorize_payment"],
    "paid": ["capture_payment"],
    "net_terms": ["grant_net_terms"],
    "partially_refunded": ["capture_payment", "refund_partially"],
    "refunded": ["capture_payment", "refund"],
}

# What each status offers (conditions met on the paths above), as the business expects it.
EXPECTED_STATUS_TRANSITIONS = {
    "received": {"validate", "hold", "cancel"},
    "validated": {"hold", "send_to_review", "allocate", "backorder", "cancel"},
    "in_review": {"hold", "approve_review", "cancel"},
    "on_hold": {"release_hold", "cancel"},
    # start_fulfillment waits for payment (see below); backorder when its reservations lapse
    "allocated": {"hold", "backorder", "cancel"},
    "backordered": {"hold", "allocate", "cancel"},
    "fulfilling": {"ship_partially", "ship", "cancel"},
    "partially_shipped": {"ship_partially", "ship"},
    "shipped": {"deliver"},
    "delivered": {"close"},
    "closed": set(),
    "cancelled": set(),
}
EXPECTED_PAYMENT_TRANSITIONS = {
    "pending": {"authorize_payment", "capture_payment"},  # net terms only for approved B2B
    "authorized": {"capture_payment"},
    "paid": {"refund_partially", "refund"},
    "net_terms": {"settle_invoice"},
    "partially_refunded": {"refund_partially", "refund"},
    "refunded": set(),
}


def order_in(status: str, *, business: bool = False) -> Order:
    kwargs = {"customer": BusinessCustomerFactory()} if business else {}
    if STATUS_PATHS[status] is None:
        return make_order(pipeline=False, **kwargs)
    return advance(make_order(**kwargs), *STATUS_PATHS[status])


def order_paying(payment: str) -> Order:
    business = payment == "net_terms"
    return advance(order_in("validated", business=business), *PAYMENT_PATHS[payment])


def transition_table():
    """(transition, field, source, target) for every allowed move declared on the model."""
    rows = []
    for field in ("status", "payment_status"):
        for t in Order._meta.get_field(field).get_all_transitions(Order):
            rows.append((t.name, field, t.source, t.target))
    return rows


@pytest.mark.parametrize(
    "name,field,source,target", transition_table(), ids=lambda v: str(v) if v else "-"
)
def test_every_allowed_transition_moves_the_order_and_writes_one_audit_event(
    db, name, field, source, target
):
    if field == "status":
        order = order_in(source)
        if name in ("start_fulfillment", "close") and order.payment_status == "pending":
            order = advance(order, "capture_payment")
    elif name == "grant_net_terms":
        order = order_in("validated", business=True)
    else:
        order = order_paying(source)
    events_before = order.events.count()
    amount = "1.00" if name == "refund_partially" else None

    with correlation.bound("c-test-correlation"):
        moved = order_transition(
            order_id=order.pk, transition=name, actor=Actor.system("tester"),
            reason="because" if name in ("hold", "cancel") else "", amount=amount,
        )  # fmt: skip

    moved.refresh_from_db()
    assert getattr(moved, field) == target
    new_events = list(moved.events.order_by("id")[events_before:])
    moves = [(e.action, e.field, e.from_state, e.to_state) for e in new_events]
    if name in ("refund", "refund_partially"):
        # The money goes back as a refund record (the payment state follows from the sums);
        # this test channel cannot be asked to refund, so a person is told to do it there.
        assert moves == [
            (name, field, source, target), ("refund_recorded", "", "", ""),
            ("refund_hand_over", "refund", "pending", "manual"),
            ("refund_needs_person", "", "", ""),
        ]  # fmt: skip
    else:
        assert moves == [(name, field, source, target)]
    event = new_events[0]
    assert event.actor_kind == "system" and event.actor_id == "tester"
    assert event.correlation_id == "c-test-correlation"


@pytest.mark.parametrize("status", list(STATUS_PATHS))
def test_each_status_offers_exactly_the_expected_transitions(db, status):
    order = order_in(status)
    offered = {t.name for t in order.get_available_status_transitions()}
    assert offered == EXPECTED_STATUS_TRANSITIONS[status]


@pytest.mark.parametrize("payment", list(PAYMENT_PATHS))
def test_each_payment_status_offers_exactly_the_expected_transitions(db, payment):
    order = order_paying(payment)
    offered = {t.name for t in order.get_available_payment_status_transitions()}
    assert offered == EXPECTED_PAYMENT_TRANSITIONS[payment]


def test_an_approved_business_customer_may_be_invoiced_on_net_terms(db):
    order = order_in("validated", business=True)
    offered = {t.name for t in order.get_available_payment_status_transitions()}
    assert "grant_net_terms" in offered
    assert advance(order, "grant_net_terms").payment_status == "net_terms"


@pytest.mark.parametrize(
    "status,name,message",
    [
        ("validated", "ship", "its status is 'validated' (allowed from: fulfilling, partially"),
        ("received", "allocate", "status is 'received' (allowed from: backordered, validated)"),
        ("shipped", "cancel", "its status is 'shipped'"),
        ("partially_shipped", "cancel", "status is 'partially_shipped'"),
        ("closed", "hold", "status is 'closed'"),
        ("cancelled", "release_hold", "status is 'cancelled' (allowed from: on_hold)"),
        ("on_hold", "validate", "status is 'on_hold' (allowed from: received)"),
        ("delivered", "ship", "status is 'delivered'"),
        ("in_review", "allocate", "status is 'in_review'"),
    ],
)
def test_a_forbidden_transition_is_refused_with_the_current_state_and_changes_nothing(
    db, status, name, message
):
    order = order_in(status)
    events_before = order.events.count()
    with pytest.raises(TransitionRefused) as refused:
        order_transition(order_id=order.pk, transition=name, actor=Actor.system(), reason="x")
    assert str(refused.value).startswith(f"Cannot {name.replace('_', ' ')} order {order.pk}: ")
    assert message in str(refused.value)
    assert refused.value.code == "transition_not_allowed"
    order.refresh_from_db()
    assert order.status == status
    assert order.events.count() == events_before


def test_fulfilment_waits_for_a_secured_payment(db):
    order = order_in("allocated")
    with pytest.raises(TransitionRefused) as refused:
        order_transition(order_id=order.pk, transition="start_fulfillment", actor=Actor.system())
    assert refused.value.code == "condition_not_met"
    assert "payment must first be authorized, paid or on approved net terms" in str(refused.value)
    assert advance(order, "authorize_payment", "start_fulfillment").status == "fulfilling"


def test_closing_waits_for_a_settled_payment(db):
    order = advance(order_in("allocated"), "authorize_payment", "start_fulfillment", "ship",
                    "deliver")  # fmt: skip
    with pytest.raises(TransitionRefused, match="the payment is not settled yet"):
        order_transition(order_id=order.pk, transition="close", actor=Actor.system())
    assert advance(order, "capture_payment", "close").status == "closed"


def test_net_terms_are_refused_for_a_consumer(db):
    order = order_in("validated")
    with pytest.raises(TransitionRefused, match="not a business account approved for net terms"):
        order_transition(order_id=order.pk, transition="grant_net_terms", actor=Actor.system())


def test_net_terms_are_refused_for_a_business_not_yet_approved(db):
    customer = BusinessCustomerFactory(net_terms_approved=False)
    order = make_order(customer=customer)
    with pytest.raises(TransitionRefused, match="approved for net terms"):
        order_transition(order_id=order.pk, transition="grant_net_terms", actor=Actor.system())


def test_a_hold_needs_a_reason_which_is_kept_on_the_order_and_in_the_event(db):
    order = order_in("validated")
    with pytest.raises(InvalidInput, match="A hold needs a reason"):
        order_transition(order_id=order.pk, transition="hold", actor=Actor.system(), reason=" ")
    held = order_transition(
        order_id=order.pk, transition="hold", actor=Actor.system(), reason="Address check"
    )
    assert held.status_reason == "Address check"
    assert held.events.last().data == {"reason": "Address check"}
    released = advance(held, "release_hold")
    assert released.status_reason == ""


def test_releasing_a_hold_runs_the_pipeline_again(db, django_capture_on_commit_callbacks):
    order = order_in("on_hold")
    with django_capture_on_commit_callbacks(execute=True):
        order_transition(order_id=order.pk, transition="release_hold", actor=Actor.system())
    order.refresh_from_db()
    assert order.status == "validated"
    assert [e.action for e in order.events.order_by("id")][-4:] == [
        "release_hold", "check", "check", "validate",
    ]  # fmt: skip


def test_partial_refunds_add_up_and_a_full_refund_refunds_the_rest(db):
    order = advance(order_in("validated"), "capture_payment")  # total 26.50 USD
    assert order.total == Decimal("26.50")
    order = advance(order, "refund_partially", amount="6.50")
    order = advance(order, "refund_partially", amount="10")
    assert order.refunded_total == Decimal("16.50")
    assert order.payment_status == "partially_refunded"
    order = advance(order, "refund")
    assert (order.payment_status, order.refunded_total) == ("refunded", Decimal("26.50"))


@pytest.mark.parametrize(
    "amount,message",
    [
        (None, "needs an amount"),
        ("0", "must be positive"),
        ("-1", "must be positive"),
        ("1.005", "at most 2 decimals for USD"),
        ("26.50", "use a full refund instead"),
        ("30", "use a full refund instead"),
        ("abc", "Not an amount"),
    ],
)
def test_a_bad_partial_refund_amount_is_refused_clearly(db, amount, message):
    order = advance(order_in("validated"), "capture_payment")
    with pytest.raises(InvalidInput, match=message):
        order_transition(
            order_id=order.pk, transition="refund_partially", actor=Actor.system(), amount=amount
        )
    order.refresh_from_db()
    assert (order.payment_status, order.refunded_total) == ("paid", Decimal("0"))


def test_a_stale_expected_state_is_refused(db):
    order = order_in("validated")
    advance(order, "hold")
    with pytest.raises(StaleState, match="is now 'on_hold', not 'validated'"):
        order_transition(order_id=order.pk, transition="cancel", actor=Actor.system(),
                         expected_status="validated")  # fmt: skip
    order.refresh_from_db()
    assert order.status == "on_hold"


def test_unknown_transitions_and_orders_are_refused(db):
    order = order_in("validated")
    with pytest.raises(InvalidInput, match="Unknown order transition 'teleport'"):
        order_transition(order_id=order.pk, transition="teleport", actor=Actor.system())
    with pytest.raises(Exception, match="Order 999999 does not exist"):
        order_transition(order_id=999999, transition="cancel", actor=Actor.system())


def test_protected_state_fields_cannot_be_assigned(db):
    order = order_in("validated")
    with pytest.raises(AttributeError):
        order.status = "shipped"
    with pytest.raises(AttributeError):
        order.payment_status = "paid"
    order.refresh_from_db()  # works on a protected field (FSMModelMixin)
    assert order.status == "validated"


def test_the_transition_table_and_the_service_agree(db):
    assert set(ORDER_TRANSITIONS) == {name for name, *_ in transition_table()}
