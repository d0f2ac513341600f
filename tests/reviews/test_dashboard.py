"""The operations dashboard and the per-step metrics behind it: only an operations admin sees
it; a real order through validation, allocation, routing, label and the outbox leaves non-zero
latencies in ``pipeline_step_seconds`` and on the page; the business uptime counts orders
labelled within ``PROCESSING_SLA_MINUTES``; queue depth is read from the real broker (Redis when
``CELERY_BROKER_URL`` is Redis, else the filesystem broker); the Grafana dashboard names only
metrics that exist."""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone
from kombu import Connection
from prometheus_client import REGISTRY

from config.metrics import CHECK_OUTCOMES, STEP_SECONDS
from config.settings import filesystem_broker_options
from orders.actors import Actor
from orders.models import Order
from orders.services import order_transition
from reviews import dashboard
from reviews.dashboard import Buckets, business_uptime, histogram_buckets, queue_depths
from tests.factories import make_order, make_user
from tests.fulfillment.helpers import add_warehouse, stock

pytestmark = [pytest.mark.django_db]

URL = "/admin/work/dashboard/"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def downstream(settings, tmp_path):
    """Downstream systems as the orchestration tests configure them (files, local WMS, email)."""
    settings.ERP_TARGET = "filedrop"
    settings.ERP_DROP_DIR = str(tmp_path / "erp")
    settings.WMS_TARGET = "local"
    settings.NOTIFY_TARGETS = ["email"]
    add_warehouse("A")
    stock("MUG", "A", 50)


def step_count(step: str) -> int:
    return histogram_buckets("pipeline_step_seconds", by="step").get(step, Buckets()).observations


def test_the_url_is_named_work_dashboard():
    assert reverse("work:dashboard") == URL


@pytest.mark.parametrize(
    ("role", "status"),
    [("customer_service", 403), ("reviewer", 403), ("finance", 403), ("ops_admin", 200)],
)
def test_only_an_operations_admin_sees_the_dashboard(client, role, status):
    client.force_login(make_user("pat", role))
    assert client.get(URL).status_code == status
    assert client.get(URL, headers={"HX-Request": "true"}).status_code == status


def test_a_user_without_a_role_gets_403_and_a_visitor_the_login_page(client):
    assert client.get(URL).status_code == 302  # anonymous: to the admin's login
    client.force_login(make_user("nobody"))
    assert client.get(URL).status_code == 403


def test_the_quantile_interpolates_within_buckets_as_promql_does():
    b = Buckets(counts={0.1: 10, 0.5: 30, 1.0: 30, math.inf: 40})
    assert b.quantile(0.5) == pytest.approx(0.3)  # rank 20 of 40: halfway into (0.1, 0.5]
    assert b.quantile(0.25) == pytest.approx(0.1)  # rank 10: the first bucket's top
    assert b.quantile(0.1) == pytest.approx(0.04)  # the lowest bucket starts at 0
    assert b.quantile(0.95) == pytest.approx(1.0)  # in +Inf: the highest finite bound
    assert Buckets().quantile(0.5) is None


@pytest.mark.orchestration
def test_an_order_through_the_pipeline_records_every_step_and_the_page_shows_them(
    client, downstream
):
    steps = ["allocation", "routing", "label", "downstream:filedrop", "downstream:local",
             "downstream:email"]  # fmt: skip
    checks = [f"check:{name}" for name in ("address", "payment", "fraud")]
    before = {s: step_count(s) for s in steps + checks}
    passed_before = CHECK_OUTCOMES.labels("address", "passed")._value.get()

    order = make_order(paid=True, lines=[("MUG", 2, "10.00")])
    assert order.status == "fulfilling"
    assert order.shipments.get().status == "label_purchased"

    for step in steps + checks:
        assert step_count(step) > before[step], step
    assert CHECK_OUTCOMES.labels("address", "passed")._value.get() == passed_before + 1
    assert STEP_SECONDS.labels("label")._sum.get() > 0

    client.force_login(make_user("olga", "ops_admin"))
    page = client.get(URL)
    assert page.status_code == 200
    rows = {s.step: s for s in page.context["latencies"]}
    for step in ("allocation", "routing", "label", "check:address", "downstream:filedrop"):
        assert rows[step].observations > 0 and rows[step].p50_ms and rows[step].p95_ms, step
        assert rows[step].p50_ms <= rows[step].p95_ms
    html = page.content.decode()
    assert 'data-step="label"' in html and "<svg" in html
    assert page.context["last_hour"].received_total >= 1
    assert page.context["all_checks"].runs >= 3
    # No personal data on the page: the customer's email and street are nowhere.
    assert order.customer.email not in html and "1 Main St" not in html
    targets = {t.target: t for t in page.context["targets"]}
    assert targets["filedrop"].actions == 1 and targets["filedrop"].dead == 0


def test_htmx_gets_the_figures_alone_and_a_plain_get_the_whole_page(client):
    client.force_login(make_user("olga", "ops_admin"))
    full = client.get(URL).content.decode()
    assert "<html" in full and 'id="dashboard-figures"' in full and "htmx" in full
    assert 'http-equiv="refresh"' in full  # without JavaScript the page reloads itself
    part = client.get(URL, headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in part and part.lstrip().startswith('<div id="dashboard-figures"')
    assert 'hx-trigger="every 15s"' in part


@pytest.mark.orchestration
def test_business_uptime_is_the_share_labelled_within_the_sla(settings, downstream):
    settings.PROCESSING_SLA_MINUTES = 60
    now = timezone.now()
    on_time = make_order(paid=True, lines=[("MUG", 1, "10.00")])
    late = make_order(paid=True, lines=[("MUG", 1, "10.00")])
    for labelled in (on_time, late):
        assert labelled.events.filter(action="label_purchased").exists()
    # Received two hours ago, labelled now: the label came an hour too late.
    Order.objects.filter(pk=late.pk).update(created_at=now - timedelta(hours=2))
    make_order(pipeline=False)  # received now, no label yet: still within its SLA
    overdue = make_order(pipeline=False)
    Order.objects.filter(pk=overdue.pk).update(created_at=now - timedelta(hours=3))
    cancelled = make_order(pipeline=False)
    order_transition(order_id=cancelled.pk, transition="cancel", actor=Actor.system("test"),
                     data={"reason": "test"})  # fmt: skip
    Order.objects.filter(pk=cancelled.pk).update(created_at=now - timedelta(hours=5))

    now = timezone.now()
    day = business_uptime(since=now - timedelta(hours=24), now=now)
    assert (day.met, day.missed, day.pending) == (1, 2, 1)
    assert day.percent == pytest.approx(33.3)

    # A longer SLA: the late one met it, the overdue one is still within it.
    settings.PROCESSING_SLA_MINUTES = 240
    day = business_uptime(since=now - timedelta(hours=24), now=now)
    assert (day.met, day.missed, day.pending) == (2, 0, 2)
    assert day.percent == 100.0
    # Older than the window: not counted at all.
    assert business_uptime(since=now - timedelta(minutes=30), now=now).decided == 1


def test_queue_depth_counts_the_messages_waiting_on_the_broker(settings, tmp_path):
    queue = f"dash-test-{uuid.uuid4().hex[:8]}"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_TASK_QUEUES_NAMES = (queue, "empty-" + queue)
    settings.CELERY_TASK_ROUTES = {}
    url = django_settings.CELERY_BROKER_URL
    if url.startswith("redis"):
        conn = Connection(url)
        expected_kind = "redis"
    else:
        settings.CELERY_BROKER_URL = "filesystem://"
        options = filesystem_broker_options(tmp_path / "broker")
        settings.CELERY_BROKER_TRANSPORT_OPTIONS = options
        conn = Connection("filesystem://", transport_options=options)
        expected_kind = "filesystem"
    with conn:
        simple = conn.SimpleQueue(queue)
        try:
            for n in range(3):
                simple.put({"n": n})
            kind, depths = queue_depths()
            assert kind == expected_kind
            assert [(q.queue, q.depth) for q in depths] == [(queue, 3), ("empty-" + queue, 0)]
            simple.get(timeout=5).ack()
            assert queue_depths()[1][0].depth == 2
        finally:
            simple.clear()
            simple.close()


def test_an_unreachable_redis_is_shown_not_raised(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    kind, depths = queue_depths()
    assert kind == "redis"
    assert depths and all(q.depth is None and "unreachable" in q.error for q in depths)


def test_the_oldest_order_in_flight_leaves_out_orders_waiting_on_a_person():
    held = make_order(lines=[("SKU-1", 1, "10.00")], total="999.00")  # totals do not add up
    assert held.status == "on_hold"
    fresh = make_order(pipeline=False)
    now = timezone.now()
    oldest = dashboard.oldest_in_flight(now=now)
    assert oldest is not None and oldest.order_id == fresh.pk and oldest.status == "received"
    waiting = dashboard.oldest_in_flight(now=now, statuses=dashboard.WAITING)
    assert waiting is not None and waiting.order_id == held.pk


def _grafana_metric_names(doc: dict) -> set[str]:
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    assert exprs
    return {m for e in exprs for m in re.findall(r"\b([a-z_][a-z0-9_]*)\{", e)}


def test_the_grafana_dashboard_parses_and_names_only_metrics_that_exist():
    # The modules that define the metrics (imported by the code paths that record them).
    import channels.metrics  # noqa: F401
    import config.metrics  # noqa: F401
    import fulfillment.downstream.channel_tracking  # noqa: F401
    import fulfillment.outbox.services  # noqa: F401

    doc = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    assert doc["title"] and doc["panels"]
    titles = " ".join(p["title"].lower() for p in doc["panels"])
    for part in ("ingest", "p95", "dispatch", "dead"):
        assert part in titles
    families = {f.name for f in REGISTRY.collect()}
    suffixes = ("_bucket", "_count", "_sum", "_total", "_created")
    for name in _grafana_metric_names(doc):
        base = next((name[: -len(s)] for s in suffixes if name.endswith(s)), name)
        assert name in families or base in families, name
    exprs = " ".join(t["expr"] for p in doc["panels"] for t in p.get("targets", []))
    assert "histogram_quantile(0.95" in exprs and "pipeline_step_seconds_bucket" in exprs


def test_with_a_multiprocess_dir_the_latencies_of_other_processes_are_summed(tmp_path, monkeypatch):
    """As under ``make run`` and gunicorn: a worker process writes its samples into
    ``PROMETHEUS_MULTIPROC_DIR`` and the web process's dashboard reads them from there."""
    import subprocess
    import sys

    folder = tmp_path / "prometheus"
    folder.mkdir()
    worker = (
        "from config.metrics import observe\n"
        "for seconds in (0.02, 0.03, 0.04, 0.2):\n"
        "    observe('label', seconds)\n"
    )
    for _ in range(2):  # two worker processes
        subprocess.run(
            [sys.executable, "-c", worker], cwd=ROOT, check=True, timeout=60,
            env={**__import__("os").environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)},
        )  # fmt: skip
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    label = histogram_buckets("pipeline_step_seconds", by="step")["label"]
    assert label.observations == 8  # both processes, and none of this test process's own
    assert 0.025 < label.quantile(0.5) <= 0.05
    rows = {s.step: s for s in dashboard.step_latencies()}
    assert rows["label"].observations == 8 and rows["allocation"].observations == 0
