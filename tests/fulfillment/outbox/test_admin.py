"""The outbox in the admin: actions (read-only, filters, "Retry dead actions" with a message per
action), circuit breakers (read-only) and the local WMS's pick tasks."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.test import TestCase

from fulfillment.models import (
    ActionKind,
    ActionStatus,
    CircuitBreaker,
    CircuitState,
    PickTask,
    PickTaskStatus,
)
from orders.models import OrderEvent
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse
from tests.fulfillment.outbox.helpers import fresh, write

pytestmark = [pytest.mark.django_db]

ACTIONS = "/admin/fulfillment/outboundaction/"


@pytest.fixture
def outbox(settings):
    add_warehouse("EAST")
    order = make_order(paid=True, pipeline=False)
    settings.NETSUITE_API_BASE = ""
    return {
        "ok": write(order, ActionKind.WMS_TASK, "local", {"warehouse": "EAST"}),
        "dead": write(order, ActionKind.ERP_POST, "netsuite"),  # not configured: dead
    }


def test_ops_admin_sees_actions_with_filters_and_a_read_only_page(client, ops_user, outbox):
    client.force_login(ops_user)

    listing = client.get(ACTIONS)
    dead = client.get(ACTIONS, {"status__exact": "dead"})
    page = client.get(f"{ACTIONS}{outbox['dead'].pk}/change/")

    assert listing.status_code == 200
    html = listing.content.decode()
    assert "Retry dead actions" in html and "1/8" in html and "NetSuite is not configured" in html
    assert f"/admin/orders/order/{outbox['ok'].order_id}/change/" in html
    assert dead.status_code == 200 and "1 outbound action" in dead.content.decode()
    assert page.status_code == 200
    assert b'name="status"' not in page.content and b"NetSuite is not configured" in page.content
    assert client.get(f"{ACTIONS}add/").status_code == 403
    assert client.get(f"{ACTIONS}{outbox['ok'].pk}/delete/").status_code == 403


def test_retry_dead_actions_revives_the_dead_and_says_so_for_each(client, ops_user, outbox):
    client.force_login(ops_user)
    with TestCase.captureOnCommitCallbacks(execute=False) as callbacks:
        response = client.post(ACTIONS, {
            "action": "retry_dead", "_selected_action": [outbox["ok"].pk, outbox["dead"].pk],
        }, follow=True)  # fmt: skip

    assert response.status_code == 200
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert (
        f"Action {outbox['ok'].pk}: Outbound action {outbox['ok'].pk} is 'succeeded', not dead"
        in (texts[0])
    )
    assert texts[1] == (
        f"Action {outbox['dead'].pk} (erp_post -> netsuite): revived, dispatching again."
    )
    assert fresh(outbox["dead"]).status == ActionStatus.PENDING and len(callbacks) == 1
    event = OrderEvent.objects.get(action="outbound_retried")
    assert (event.actor_kind, event.actor_id) == ("user", ops_user.username)


def test_without_change_permission_there_is_no_retry(client, cs_user, outbox):
    from django.contrib.auth.models import Permission

    cs_user.user_permissions.add(Permission.objects.get(codename="view_outboundaction"))
    client.force_login(cs_user)
    listing = client.get(ACTIONS)
    assert listing.status_code == 200 and b"Retry dead actions" not in listing.content
    client.post(ACTIONS, {"action": "retry_dead", "_selected_action": [outbox["dead"].pk]})
    assert fresh(outbox["dead"]).status == ActionStatus.DEAD


def test_breakers_are_listed_read_only(client, ops_user, db):
    CircuitBreaker.objects.create(target="rest", state=CircuitState.OPEN, consecutive_failures=5)
    client.force_login(ops_user)
    listing = client.get("/admin/fulfillment/circuitbreaker/")
    assert listing.status_code == 200 and b"rest" in listing.content
    assert client.get("/admin/fulfillment/circuitbreaker/add/").status_code == 403


def test_pick_tasks_are_listed_and_their_status_can_be_moved_on(client, ops_user, outbox):
    task = PickTask.objects.get()
    client.force_login(ops_user)
    listing = client.get("/admin/fulfillment/picktask/")
    assert listing.status_code == 200 and b"EAST" in listing.content
    response = client.post("/admin/fulfillment/picktask/", {
        "form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "form-MIN_NUM_FORMS": "0",
        "form-MAX_NUM_FORMS": "1000", "form-0-id": str(task.pk), "form-0-status": "picked",
        "_save": "Save",
    })  # fmt: skip
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.status == PickTaskStatus.PICKED
    assert client.get("/admin/fulfillment/picktask/add/").status_code == 403
