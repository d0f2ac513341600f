"""What the full validation pipeline reads and writes per order: the checks share one read of
the order, its customer, channel and lines; every check result is audited in one INSERT, in
run order; the fraud score's velocity counts come from one query and stay apart per
identifier."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders import validation
from orders.models import Order, OrderEvent
from reviews.fraud import FraudScorer
from reviews.models import FraudSettings
from tests.factories import make_order
from tests.reviews.helpers import order_with


def _selects_from(ctx: CaptureQueriesContext, table: str) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries
            if q["sql"].startswith("SELECT") and f'FROM "{table}"' in q["sql"]]  # fmt: skip


def test_the_checks_share_one_read_of_the_lines_customer_and_channel(db):
    order = make_order(pipeline=False, paid=True, lines=[("A", 1, "10.00"), ("B", 2, "3.00")])
    names = [check.name for check in validation.registered()]
    assert {"totals", "duplicate", "payment", "sku_mapped", "fraud"} <= set(names)

    with CaptureQueriesContext(connection) as ctx:
        validation.order_validate(order_id=order.pk)

    assert not _selects_from(ctx, "orders_customer")  # joined to the order's read
    assert not _selects_from(ctx, "channels_saleschannel")
    line_reads = [s for s in _selects_from(ctx, "orders_orderline") if "LIMIT" not in s]
    # The pipeline's prefetch for every check, and the allocator's own locked read.
    assert len(line_reads) == 2, line_reads


def test_every_check_result_is_audited_in_one_insert_in_run_order(db):
    order = make_order(pipeline=False, paid=True)
    before = set(OrderEvent.objects.values_list("pk", flat=True))

    with CaptureQueriesContext(connection) as ctx:
        validation.order_validate(order_id=order.pk)

    written = OrderEvent.objects.exclude(pk__in=before).filter(order=order).order_by("pk")
    checks = [e for e in written if e.action == "check"]
    assert [e.data["check"] for e in checks] == [c.name for c in validation.registered()]
    assert len({e.at for e in checks}) == 1  # one statement, one moment
    assert [e.pk for e in checks] == list(range(checks[0].pk, checks[0].pk + len(checks)))
    assert all(e.correlation_id == order.correlation_id and e.actor_id == "pipeline"
               for e in checks)  # fmt: skip
    inserts = [q for q in ctx.captured_queries
               if q["sql"].startswith('INSERT INTO "orders_orderevent"')]  # fmt: skip
    # The run's transaction writes its whole timeline (checks, validate, allocation and its
    # transition) in one INSERT, in the order the events were recorded.
    assert len(inserts) == 1 and len(written) > len(checks)
    assert [e.action for e in written][len(checks) :] == ["validate", "allocation", "backorder"]


def test_velocity_counts_each_identifier_apart_in_one_query(db):
    # One card, four buyers, four addresses: only the card is over the limit.
    source = lambda i: {"card_fingerprint": "fp_shared", "browser_ip": f"198.51.100.{i}"}  # noqa: E731
    orders = [order_with(source=source(i)) for i in range(4)]
    last = Order.objects.select_related("customer").get(pk=orders[3].pk)  # as the pipeline has it
    scorer = FraudScorer(FraudSettings.load())

    with CaptureQueriesContext(connection) as ctx:
        found: list = []
        scorer._velocity(last, found)

    assert [s.name for s in found] == ["velocity_card"]
    assert found[0].evidence.startswith("4 orders with one card (card#")
    assert len(ctx.captured_queries) == 1
