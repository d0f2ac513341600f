"""The WMS is down: its actions wait in the outbox (attempts counted, none dead before their
last attempt) while ERP posting and emails for the same orders complete; when it is back,
``process_outbox`` (or the sweeper) drains everything exactly once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import call_command

from fulfillment.models import (
    ActionKind,
    ActionStatus,
    CircuitBreaker,
    CircuitState,
    OutboundAction,
)
from orders.models import Incident
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse
from tests.fulfillment.outbox.helpers import (
    FakeNetSuite,
    FakeWMS,
    closed_port,
    cool_down,
    make_due,
    sweep,
    write_all,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def orders(settings):
    settings.WMS_TARGET = "rest"
    add_warehouse("EAST")
    return [make_order(paid=True, pipeline=False) for _ in range(3)]


def by_kind(kind: str) -> list[OutboundAction]:
    return list(OutboundAction.objects.filter(kind=kind).order_by("pk"))


def test_wms_refusing_connections_waits_while_erp_and_email_complete_then_drains_once(
    orders, settings
):
    port = closed_port()
    settings.WMS_API_BASE = f"http://127.0.0.1:{port}"  # nobody listens: connection refused

    for order in orders:
        write_all(order)

    wms = by_kind(ActionKind.WMS_TASK)
    assert [(a.status, a.attempts) for a in wms] == [(ActionStatus.RETRY_SCHEDULED, 1)] * 3
    assert all("could not reach 127.0.0.1" in a.last_error for a in wms)
    assert {a.status for a in by_kind(ActionKind.ERP_POST)} == {ActionStatus.SUCCEEDED}
    assert {a.status for a in by_kind(ActionKind.NOTIFY_CUSTOMER)} == {ActionStatus.SUCCEEDED}
    assert sorted(m.to[0] for m in mail.outbox) == sorted(o.customer.email for o in orders)
    drops = sorted(Path(settings.ERP_DROP_DIR).iterdir())
    assert len(drops) == 3

    # Time passes; the sweeper tries again while the WMS stays down. After 5 consecutive
    # failures the breaker opens: the rest wait without using attempts.
    for _ in range(3):
        make_due()
        cool_down("rest")
        sweep()
    wms = by_kind(ActionKind.WMS_TASK)
    assert all(a.status == ActionStatus.RETRY_SCHEDULED for a in wms)
    assert all(1 <= a.attempts < a.max_attempts for a in wms), [a.attempts for a in wms]
    # 3 first attempts, 2 more until the 5th failure opened it, then one half-open trial per
    # cooldown (each failed and re-opened it); the others waited without using attempts.
    assert sum(a.attempts for a in wms) == 3 + 2 + 1 + 1
    assert CircuitBreaker.objects.get(target="rest").state == CircuitState.OPEN
    assert not Incident.objects.exists()

    # The WMS is back on its address.
    with FakeWMS(port) as fake:
        make_due()
        cool_down("rest")
        call_command("process_outbox", "--no-progress")

    wms = by_kind(ActionKind.WMS_TASK)
    assert {a.status for a in wms} == {ActionStatus.SUCCEEDED}
    assert fake.keys_created() == Counter({a.idempotency_key: 1 for a in wms})
    assert Counter(r["key"] for r in fake.requests) == Counter({a.idempotency_key: 1 for a in wms})
    assert CircuitBreaker.objects.get(target="rest").state == CircuitState.CLOSED
    # Nothing else happened twice.
    assert len(mail.outbox) == 3 and sorted(Path(settings.ERP_DROP_DIR).iterdir()) == drops
    assert OutboundAction.objects.filter(status=ActionStatus.SUCCEEDED).count() == 9


def test_wms_answering_503_waits_then_the_sweeper_drains_each_key_once(orders, settings):
    settings.OUTBOX_BREAKER_THRESHOLD = 10  # this test is about retries, not the breaker
    with FakeWMS(down=True) as wms_server, FakeNetSuite() as netsuite:
        settings.WMS_API_BASE = wms_server.url
        settings.ERP_TARGET = "netsuite"
        settings.NETSUITE_API_BASE, settings.NETSUITE_TOKEN = netsuite.url, "tok"
        for order in orders:
            write_all(order)
        assert netsuite.creates == 3 and len(mail.outbox) == 3

        make_due()
        sweep()  # still down
        wms = by_kind(ActionKind.WMS_TASK)
        assert [(a.status, a.attempts) for a in wms] == [(ActionStatus.RETRY_SCHEDULED, 2)] * 3
        assert all("HTTP 503" in a.last_error for a in wms)

        wms_server.down = False
        make_due()
        swept = sweep()

    assert swept == 3  # only the waiting WMS actions were due
    wms = by_kind(ActionKind.WMS_TASK)
    assert [(a.status, a.attempts) for a in wms] == [(ActionStatus.SUCCEEDED, 3)] * 3
    assert wms_server.keys_created() == Counter({a.idempotency_key: 1 for a in wms})
    ok = [r for r in wms_server.requests if r["key"] in wms_server.created]
    assert len(ok) == 9  # two 503s and one success per key, each with its own key
    assert all(r["headers"]["Idempotency-Key"] == r["key"] for r in ok)
    assert netsuite.creates == 3 and len(netsuite.posts) == 3 and len(mail.outbox) == 3
    body = wms_server.requests[-1]["body"]
    assert body["warehouse"] == "EAST" and body["lines"] == [{"sku": "SKU-1", "quantity": 2}]
    stored = OutboundAction.objects.get(idempotency_key=wms_server.requests[-1]["key"])
    assert "line1" not in str(stored.payload) + str(stored.result)  # the address is not stored
