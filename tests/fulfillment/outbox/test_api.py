"""``/api/v1/outbound-actions/``: read-only list and detail with filters, paginated like the
rest of the API, and ``retry`` for a dead action (409 when it is not dead)."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command
from django.test import TestCase

from fulfillment.models import ActionKind, ActionStatus
from tests.factories import make_order
from tests.fulfillment.helpers import add_warehouse
from tests.fulfillment.outbox.helpers import FakeWMS, dispatch, fresh, make_due, write

pytestmark = [pytest.mark.django_db]

LIST = "/api/v1/outbound-actions/"


@pytest.fixture
def actions(settings):
    add_warehouse("EAST")
    first, second = make_order(paid=True, pipeline=False), make_order(paid=True, pipeline=False)
    made = [
        write(first, ActionKind.WMS_TASK, "local", {"warehouse": "EAST"}),
        write(first, ActionKind.NOTIFY_CUSTOMER, "email", {"template": "order_confirmation"}),
        write(second, ActionKind.ERP_POST, "filedrop"),
    ]
    settings.NETSUITE_API_BASE = ""
    made.append(write(second, ActionKind.ERP_POST, "netsuite"))  # not configured: dead
    return made


def test_ops_admin_lists_filters_and_pages_actions(api_client, ops_user, actions):
    api_client.force_authenticate(ops_user)

    everything = api_client.get(LIST)
    by_order = api_client.get(LIST, {"order": actions[0].order_id})
    dead = api_client.get(LIST, {"status": "dead"})
    erp = api_client.get(LIST, {"kind": "erp_post", "page_size": 1})
    detail = api_client.get(f"{LIST}{actions[1].pk}/")

    assert everything.status_code == 200 and everything.json()["count"] == 4
    assert {r["id"] for r in by_order.json()["results"]} == {actions[0].pk, actions[1].pk}
    assert [r["id"] for r in dead.json()["results"]] == [actions[3].pk]
    assert erp.json()["count"] == 2 and len(erp.json()["results"]) == 1 and erp.json()["next"]
    body = detail.json()
    assert body["status"] == "succeeded" and body["kind"] == "notify_customer"
    assert body["idempotency_key"] == actions[1].idempotency_key
    # What was sent and answered is a raw payload: the data steward's, not operations'.
    assert (body["payload"], body["result"]) == (None, None)
    assert actions[1].order.customer.email not in str(body)


def test_reading_needs_the_view_permission_and_retrying_the_change_permission(
    api_client, cs_user, actions
):
    from tests.factories import make_user

    assert api_client.get(LIST).status_code in (401, 403)
    api_client.force_authenticate(make_user("nobody"))  # staff without any role
    assert api_client.get(LIST).status_code == 403
    api_client.force_authenticate(cs_user)  # customer service sees what was sent, may not retry
    assert api_client.get(LIST).status_code == 200
    assert api_client.post(f"{LIST}{actions[3].pk}/retry/").status_code == 403


def test_retry_revives_a_dead_action_and_dispatches_it(api_client, ops_user, actions):
    api_client.force_authenticate(ops_user)
    dead = actions[3]
    with TestCase.captureOnCommitCallbacks(execute=False) as callbacks:
        response = api_client.post(f"{LIST}{dead.pk}/retry/")
    assert response.status_code == 200
    assert response.json()["status"] == "pending" and response.json()["attempts"] == 0
    assert len(callbacks) == 1  # dispatched after commit
    assert fresh(dead).status == ActionStatus.PENDING


def test_retry_of_an_action_that_is_not_dead_is_a_409(api_client, ops_user, actions):
    api_client.force_authenticate(ops_user)
    response = api_client.post(f"{LIST}{actions[0].pk}/retry/")
    assert response.status_code == 409
    assert response.json()["code"] == "not_dead"
    assert "not dead" in response.json()["detail"]
    assert api_client.post(f"{LIST}999999/retry/").status_code == 404


def test_retry_through_the_api_reaches_the_downstream_system(api_client, ops_user, settings):
    settings.WMS_TARGET = "rest"
    add_warehouse("EAST")
    order = make_order(paid=True, pipeline=False)
    with FakeWMS(down=True) as wms:
        settings.WMS_API_BASE = wms.url
        action = write(order, ActionKind.WMS_TASK, "rest", {"warehouse": "EAST"}, max_attempts=1)
        assert action.status == ActionStatus.DEAD
        wms.down = False
        api_client.force_authenticate(ops_user)
        with TestCase.captureOnCommitCallbacks(execute=True):
            response = api_client.post(f"{LIST}{action.pk}/retry/")
        make_due(action)
        assert dispatch(action) == "done"
    assert response.status_code == 200
    assert fresh(action).status == ActionStatus.SUCCEEDED and len(wms.created) == 1


def test_the_schema_documents_the_outbox_api_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = yaml.safe_load(target.read_text())
    assert "/api/v1/outbound-actions/" in schema["paths"]
    retry = schema["paths"]["/api/v1/outbound-actions/{id}/retry/"]["post"]
    assert set(retry["responses"]) >= {"200", "409"}


def test_the_list_costs_the_same_queries_however_many_actions(
    api_client, ops_user, actions, django_assert_max_num_queries
):
    api_client.force_authenticate(ops_user)
    with django_assert_max_num_queries(6) as few:
        api_client.get(LIST)
    order = make_order(paid=True, pipeline=False)
    for version in range(1, 6):
        write(order, ActionKind.WMS_TASK, "local", {"warehouse": "EAST"}, version=version)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert api_client.get(LIST).json()["count"] == 9
