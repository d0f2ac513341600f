"""A real Celery worker process takes a task from the configured broker (Redis in the
PostgreSQL pass of CI, the embedded filesystem broker otherwise), moves an order in the real
test database and writes its audit event with the correlation id that travelled in the message."""

import time

import pytest

from config import correlation
from config.celery import app
from tests.factories import make_order
from tests.workers import purge_queues, start_worker, stop_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(tmp_path):
    purge_queues()
    log = tmp_path / "worker.log"
    proc = start_worker(log, env={
        "ERP_DROP_DIR": str(tmp_path / "erp-drop"), "EMAIL_FILE_PATH": str(tmp_path / "mail"),
    })  # fmt: skip
    yield proc, log
    stop_worker(proc)


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
@pytest.mark.orchestration
def test_a_worker_process_validates_an_order_and_writes_its_audit_event(worker):
    from fulfillment.services import stock_restock, warehouse_upsert

    proc, log = worker
    warehouse_upsert(code="W1", country="US")
    stock_restock(sku="SKU-1", warehouse_code="W1", on_hand=5)
    order = make_order(pipeline=False, paid=True)
    assert order.status == "received"
    cid = correlation.sign(f"worker-test:{order.pk}")

    with correlation.bound(cid):
        app.send_task("orders.order_validate", kwargs={"order_id": order.pk})

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        order.refresh_from_db()
        if order.status != "received":
            break
        time.sleep(0.25)
    assert proc.poll() is None, f"worker died:\n{log.read_text()[-3000:]}"
    # The worker runs every check, as in production, reserves the stock, and (allocated with
    # a secured payment) plans the shipment and writes the outbox actions in that transaction.
    assert order.status == "fulfilling", f"worker log:\n{log.read_text()[-3000:]}"
    assert order.reservations.get().quantity == 2
    event = order.events.get(action="validate")
    assert (event.actor_kind, event.actor_id) == ("system", "pipeline")
    assert (event.from_state, event.to_state) == ("received", "validated")
    assert event.correlation_id == cid
    assert {e.correlation_id for e in order.events.filter(action="check")} == {cid}
    assert f'"correlation_id": "{cid}"' in log.read_text()

    # The same worker then performs every outbox action on its lane: the ERP file, the pick
    # task, the confirmation email and the label.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        statuses = set(order.outbound_actions.values_list("status", flat=True))
        if statuses == {"succeeded"}:
            break
        time.sleep(0.25)
    kinds = dict(order.outbound_actions.values_list("kind", "status"))
    assert kinds == {"erp_post": "succeeded", "notify_customer": "succeeded",
                     "wms_task": "succeeded", "label_purchase": "succeeded"}, (
        f"{kinds}\nworker log:\n{log.read_text()[-3000:]}"
    )  # fmt: skip
    shipment = order.shipments.get()
    assert shipment.status == "label_purchased" and shipment.tracking_number
    assert order.pick_tasks.count() == 1
    assert {a.correlation_id for a in order.outbound_actions.all()} == {order.correlation_id}


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
def test_a_worker_validates_the_order_an_inbox_event_made_within_the_same_task_run(
    worker, not_eager
):
    """Inbox processing and validation are both on ``ingest``: the worker that made the order
    validates it right after that commit (``INLINE_FOLLOW_UPS``), without a second message."""
    import json
    import re

    from django.conf import settings
    from django.db import transaction

    from channels.models import ChannelKind, InboundEvent
    from channels.services import body_dedup_key, inbound_event_store
    from orders.models import Order
    from tests.factories import SalesChannelFactory

    proc, log = worker
    shop = SalesChannelFactory(kind=ChannelKind.SHOPIFY, slug="shop", webhook_secret="s")
    samples = settings.BASE_DIR.parent / "shared" / "samples"
    sample = samples / "shopify" / "order_450789469_get.json"
    body = json.dumps(json.loads(sample.read_bytes())["order"]).encode()
    with transaction.atomic():
        event, created = inbound_event_store(
            channel=shop, source="webhook", topic="orders/create",
            dedup_key=body_dedup_key(body), headers={"x-shopify-topic": "orders/create"},
            body=body,
        )  # fmt: skip
    assert created and event is not None

    deadline = time.monotonic() + 90
    order = None
    while time.monotonic() < deadline and proc.poll() is None:
        order = Order.objects.filter(channel=shop).first()
        if order is not None and order.status != "received":
            break
        time.sleep(0.25)
    text = log.read_text()
    assert proc.poll() is None, f"worker died:\n{text[-3000:]}"
    assert order is not None and order.status != "received", text[-3000:]
    assert InboundEvent.objects.get(pk=event.pk).status == "processed"
    # Every check ran, under the inbox event's correlation id (the one the message carried).
    checks = order.events.filter(action="check")
    assert checks.count() >= 5
    assert set(checks.values_list("correlation_id", flat=True)) == {event.correlation_id}
    # One message, the inbox event's; validation ran in the same worker once that task had
    # returned (the event was marked processed first), without a message of its own.
    assert re.search(r"Task channels\.inbound_event_process\[[^]]+\] received", text)
    assert not re.search(r"Task orders\.order_validate\[[^]]+\] received", text), text[-3000:]
    assert text.index('"inbound.processed"') < text.index('"pipeline.done"')


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
def test_a_worker_keeps_its_database_connection_from_task_to_task(worker):
    """Twenty tasks, one after the other, on one worker process: PostgreSQL sees a handful of
    new sessions (the worker's own), not one or two per task (Celery's Django fix-up closes
    every connection around each task unless CELERY_DB_REUSE_MAX says otherwise)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("sessions are counted by PostgreSQL (pg_stat_database.sessions)")
    proc, log = worker

    def sessions() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = "
                           "current_database()")  # fmt: skip
            return int(cursor.fetchone()[0])

    # A first task: the worker's process connects (and the statistics see it).
    app.send_task("orders.order_validate", kwargs={"order_id": 10**9})
    deadline = time.monotonic() + 60
    while "succeeded" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # PostgreSQL's statistics are sent every second at most
    before = sessions()
    for n in range(20):
        app.send_task("orders.order_validate", kwargs={"order_id": 10**9 + n})
    while log.read_text().count("succeeded") < 21 and time.monotonic() < deadline + 60:
        time.sleep(0.2)
    assert log.read_text().count("succeeded") >= 21, log.read_text()[-3000:]
    time.sleep(1.5)
    assert sessions() - before <= 3
