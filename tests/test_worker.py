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
