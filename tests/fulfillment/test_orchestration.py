"""Once an order holds its stock and its payment is secured, nobody touches it: it is routed,
its parcels planned, and ERP, WMS, confirmation and label actions written in the same
transaction and performed through the outbox (eagerly here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core import mail
from django.db import connection, transaction
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from fulfillment.models import OutboundAction, PickTask
from fulfillment.orchestration import order_orchestrate
from orders.actors import Actor
from orders.services import order_transition
from orders.validation import order_validate
from tests.factories import BusinessCustomerFactory, make_order
from tests.fulfillment.helpers import add_warehouse, levels, stock

pytestmark = [pytest.mark.django_db, pytest.mark.orchestration]


@pytest.fixture(autouse=True)
def downstream(settings, tmp_path):
    settings.ERP_TARGET = "filedrop"
    settings.ERP_DROP_DIR = str(tmp_path / "erp")
    settings.WMS_TARGET = "local"
    settings.NOTIFY_TARGETS = ["email"]
    add_warehouse("A")
    stock("MUG", "A", 20)
    return tmp_path


def kinds(order):
    return sorted(OutboundAction.objects.filter(order=order).values_list("kind", "status"))


def test_an_allocated_paid_order_is_routed_planned_and_its_downstream_work_done(downstream):
    order = make_order(paid=True, lines=[("MUG", 2, "10.00")])
    assert order.status == "fulfilling"
    assert kinds(order) == [
        ("erp_post", "succeeded"), ("label_purchase", "succeeded"),
        ("notify_customer", "succeeded"), ("wms_task", "succeeded"),
    ]  # fmt: skip
    actions = [e.action for e in order.events.order_by("id")]
    assert actions.index("allocate") < actions.index("routed") < actions.index("shipment_created")
    shipment = order.shipments.get()
    assert shipment.status == "label_purchased" and shipment.tracking_number
    assert PickTask.objects.get(order=order).lines == [{"sku": "MUG", "quantity": 2}]
    assert len(list(Path(downstream / "erp").glob("*.csv"))) == 1
    # One confirmation, to the customer, naming the order by the number the customer sees.
    number = order.order_number or order.external_id
    assert number
    assert [(m.subject, m.to) for m in mail.outbox] == [
        (f"Your order {number} is confirmed", [order.customer.email])
    ]

    # A duplicate trigger writes nothing and sends nothing again.
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert order_orchestrate(order_id=order.pk) == []
    assert OutboundAction.objects.filter(order=order).count() == 4
    assert len(mail.outbox) == 1 and PickTask.objects.count() == 1


def test_validation_allocation_and_orchestration_write_their_timeline_in_one_insert():
    # One transaction: the checks, validate, the allocation and its transition, routing, the
    # shipment, start_fulfillment and the outbox actions queued (orders.transitions'
    # atomic_audited); the actions' own work runs after commit, not here.
    order = make_order(paid=True, lines=[("MUG", 2, "10.00")], pipeline=False)
    with CaptureQueriesContext(connection) as ctx:
        order_validate(order_id=order.pk)
    order.refresh_from_db()
    assert order.status == "fulfilling"
    written = [e.action for e in order.events.order_by("id")]
    assert written.index("validate") < written.index("allocate") < written.index("routed")
    assert written.index("routed") < written.index("shipment_created")
    assert "outbound_queued" in written
    event_inserts = [q for q in ctx.captured_queries
                     if q["sql"].startswith('INSERT INTO "orders_orderevent"')]  # fmt: skip
    assert len(event_inserts) == 1


def test_with_auto_ship_the_parcel_leaves_and_the_customer_is_told(settings):
    settings.FULFILLMENT_AUTO_SHIP = True
    order = make_order(paid=True, lines=[("MUG", 3, "10.00")])
    order.refresh_from_db()
    assert order.status == "shipped"
    assert levels("MUG") == {"A": (17, 0)}
    notices = OutboundAction.objects.filter(order=order, kind="notify_customer").order_by("version")
    assert [(a.version, a.payload["template"], a.status) for a in notices] == [
        (1, "order_confirmation", "succeeded"), (2, "shipping_confirmation", "succeeded"),
    ]  # fmt: skip
    assert len(mail.outbox) == 2


def test_a_b2b_order_waits_allocated_until_finance_grants_net_terms():
    customer = BusinessCustomerFactory(net_terms_approved=True, credit_limit="1000")
    order = make_order(customer=customer, lines=[("MUG", 1, "10.00")])
    assert (order.status, order.payment_status) == ("allocated", "pending")
    assert not OutboundAction.objects.filter(order=order).exists()

    with TestCase.captureOnCommitCallbacks(execute=True):
        order_transition(order_id=order.pk, transition="grant_net_terms", actor=Actor.system())
    order.refresh_from_db()
    assert order.status == "fulfilling"
    assert {k for k, _ in kinds(order)} == {"erp_post", "label_purchase", "notify_customer",
                                            "wms_task"}  # fmt: skip


def test_a_split_order_gets_a_label_and_a_pick_task_per_warehouse(settings):
    settings.ALLOCATION_ALLOW_SPLIT = True
    add_warehouse("B", priority=200)
    stock("CUP", "A", 1)
    stock("CUP", "B", 1)
    order = make_order(paid=True, lines=[("CUP", 2, "10.00")])
    assert order.status == "fulfilling"
    assert order.shipments.count() == 2
    labels = OutboundAction.objects.filter(order=order, kind="label_purchase")
    assert sorted(a.version for a in labels) == sorted(order.shipments.values_list("pk", flat=True))
    picks = PickTask.objects.filter(order=order).values_list("warehouse__code", flat=True)
    assert sorted(picks) == ["A", "B"]


def test_the_order_page_shows_its_shipments_and_downstream_actions(client, cs_user):
    order = make_order(paid=True, lines=[("MUG", 1, "10.00")])
    shipment = order.shipments.get()
    client.force_login(cs_user)
    page = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert "Shipments" in page and shipment.tracking_number in page
    assert "Downstream actions (outbox)" in page
    for kind in ("erp_post", "wms_task", "notify_customer", "label_purchase"):
        assert kind in page
    assert page.count("Succeeded") >= 4


def _cancel(order):
    order_transition(order_id=order.pk, transition="cancel", actor=Actor.system("test"),
                     data={"reason": "customer asked"})  # fmt: skip


def test_a_label_bought_for_an_order_cancelled_meanwhile_is_voided_not_retried(settings):
    # Found by the soak: the channel's cancel arrived while the label was being bought; the
    # ship step then refused, and the action crashed and retried until it went dead.
    from fulfillment.downstream.label_purchase import LabelPurchaseAdapter

    order = make_order(paid=True, lines=[("MUG", 2, "10.00")])
    shipment = order.shipments.get()
    assert shipment.status == "label_purchased"
    _cancel(order)
    settings.FULFILLMENT_AUTO_SHIP = True
    action = OutboundAction.objects.get(order=order, kind="label_purchase")

    result = LabelPurchaseAdapter("local").perform(action)

    shipment.refresh_from_db()
    assert result == {"shipment_id": shipment.pk, "voided": True, "reason": "order_cancelled"}
    assert shipment.status == "voided"
    voided = order.events.get(action="shipment_voided")
    assert voided.data["label_refunded"] is True  # the carrier was asked for the refund
    assert levels("MUG") == {"A": (20, 0)}  # nothing consumed, the reservation released


def test_no_label_is_bought_for_a_draft_shipment_whose_order_was_cancelled(settings):
    from fulfillment.downstream.label_purchase import LabelPurchaseAdapter
    from fulfillment.models import Shipment

    order = make_order(paid=True, lines=[("MUG", 1, "10.00")])
    shipment = order.shipments.get()
    # As if the label action had not run yet (the queryset update skips the FSM, on purpose).
    Shipment.objects.filter(pk=shipment.pk).update(status="draft", label_pdf=b"",
                                                   tracking_number="")  # fmt: skip
    _cancel(order)
    action = OutboundAction.objects.get(order=order, kind="label_purchase")

    result = LabelPurchaseAdapter("local").perform(action)

    shipment.refresh_from_db()
    assert result == {"shipment_id": shipment.pk, "voided": True}
    assert shipment.status == "voided"
    assert not shipment.label_pdf and not shipment.tracking_number  # no label was bought


def test_a_payment_captured_before_allocation_costs_orchestration_no_read(settings):
    """Orchestration hears every payment capture; for an order still ``received`` its hook is
    skipped on the row the transition left (no savepoint, no second read of the order), and
    the order is orchestrated once it is allocated."""
    order = make_order(pipeline=False, lines=[("MUG", 1, "10.00")])
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        order_transition(order_id=order.pk, transition="capture_payment", actor=Actor.system())
    reads = [q["sql"] for q in queries if q["sql"].startswith('SELECT "orders_order"')]
    assert len(reads) == 1, reads  # the transition's own row lock; the hook's would be a 2nd
    assert not OutboundAction.objects.filter(order=order).exists()

    with TestCase.captureOnCommitCallbacks(execute=True):
        order_validate(order_id=order.pk)
    order.refresh_from_db()
    assert order.status == "fulfilling"
    assert {k for k, _ in kinds(order)} == {"erp_post", "label_purchase", "notify_customer",
                                            "wms_task"}  # fmt: skip


def test_a_hook_with_when_runs_only_for_orders_that_pass_it():
    from orders import hooks

    seen: list[tuple[str, int]] = []

    def always(order_id: int) -> None:
        seen.append(("always", order_id))

    def paid_only(order_id: int) -> None:
        seen.append(("paid_only", order_id))

    hooks.on_transition("probe", always)
    hooks.on_transition("probe", paid_only, when=lambda o: o.payment_status == "paid")
    order = make_order(pipeline=False)
    try:
        hooks.fire("probe", order.pk, order=order)  # pending: the guarded hook is skipped
        paid = order_transition(order_id=order.pk, transition="capture_payment",
                                actor=Actor.system())  # fmt: skip
        hooks.fire("probe", order.pk, order=paid)
        hooks.fire("probe", order.pk)  # no row given: every hook runs and reads its own
    finally:
        hooks._HOOKS.pop("probe")
        hooks._WHEN.pop(("probe", paid_only))
    assert seen == [("always", order.pk), ("always", order.pk), ("paid_only", order.pk),
                    ("always", order.pk), ("paid_only", order.pk)]  # fmt: skip


def test_orchestration_reads_the_order_once_for_routing_and_the_shipment_plan():
    """The transition locks the row, orchestration locks it once more with what routing's
    rules read (channel, customer, lines), and start_fulfillment moves that row in place: two
    reads of the order, however many steps (routing, the plan, each shipment) use it."""
    customer = BusinessCustomerFactory(net_terms_approved=True, credit_limit="1000")
    order = make_order(customer=customer, lines=[("MUG", 1, "10.00")])
    assert order.status == "allocated"

    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        order_transition(order_id=order.pk, transition="grant_net_terms", actor=Actor.system())
    reads = [q["sql"] for q in queries if q["sql"].startswith('SELECT "orders_order"')]
    assert len(reads) == 2, reads
    order.refresh_from_db()
    assert order.status == "fulfilling" and order.shipments.count() == 1
    assert order.events.filter(action="routed").count() == 1
