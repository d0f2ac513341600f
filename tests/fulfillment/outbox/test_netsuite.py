"""ERP posting to NetSuite's REST Record API (a loopback NetSuite that keeps external ids
unique, answers creates with 204 + Location and finds records by ``eid:``)."""

from __future__ import annotations

import json
import re

import pytest
from werkzeug import Response

from fulfillment.models import ActionKind, ActionStatus
from orders.models import Incident, IncidentCategory
from tests.factories import make_order
from tests.fulfillment.outbox.helpers import (
    SALES_ORDER,
    FakeNetSuite,
    dispatch,
    fresh,
    make_due,
    wait_for,
    write,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def order():
    return make_order(paid=True, pipeline=False, lines=[("MUG", 2, "12.50"), ("TEE", 1, "20.00")])


def configure(settings, netsuite: FakeNetSuite, **extra) -> None:
    settings.NETSUITE_API_BASE = netsuite.url
    settings.NETSUITE_TOKEN = "ns-token"
    settings.NETSUITE_CUSTOMER_ID = "77"
    for name, value in extra.items():
        setattr(settings, name, value)


def test_a_sales_order_is_created_with_the_correlation_id_as_external_id(order, settings):
    with FakeNetSuite() as netsuite:
        configure(settings, netsuite)
        action = write(order, ActionKind.ERP_POST, "netsuite")

    assert action.status == ActionStatus.SUCCEEDED
    external_id = order.correlation_id
    assert action.correlation_id == order.correlation_id
    assert action.result == {"record_id": "1001", "external_id": external_id, "created": True}
    [post] = netsuite.posts
    body, headers = post["body"], post["headers"]
    assert re.fullmatch(r"[A-Za-z0-9_-]+", body["externalId"]) and body["externalId"] == external_id
    assert body["entity"] == {"id": "77"}
    assert [(i["item"], i["quantity"]) for i in body["item"]["items"]] == [
        ({"externalId": "MUG"}, 2), ({"externalId": "TEE"}, 1)
    ]  # fmt: skip
    assert headers["Authorization"] == "Bearer ns-token"
    assert headers["X-Correlation-Id"] == order.correlation_id
    assert headers["Content-Type"] == "application/json"
    assert netsuite.gets == []  # a first attempt does not look first


def test_amounts_are_exact_decimal_numbers_in_the_body(order, settings):
    raw: list[bytes] = []
    with FakeNetSuite() as netsuite:
        configure(settings, netsuite)

        def capture(request):
            raw.append(request.get_data())
            return netsuite.create(request)

        netsuite.server.clear()
        netsuite.server.expect_request(SALES_ORDER, method="POST").respond_with_handler(capture)
        write(order, ActionKind.ERP_POST, "netsuite")
    text = raw[0].decode()
    assert '"rate":12.50' in text and '"rate":20.00' in text and '"shippingCost":5.00' in text
    assert json.loads(text)["item"]["items"][0]["amount"] == 25.0


def test_an_ambiguous_timeout_then_the_retry_finds_the_first_record(order, settings):
    """NetSuite is slow: our read timeout fires before it has stored and answered. The next
    attempt looks the external id up first and finds the record: one sales order."""
    with FakeNetSuite(slow=1.0) as netsuite:
        configure(settings, netsuite, DOWNSTREAM_HTTP_TIMEOUT=(2.0, 0.3))
        action = write(order, ActionKind.ERP_POST, "netsuite")
        assert action.status == ActionStatus.RETRY_SCHEDULED and action.attempts == 1
        assert "may have been processed" in action.last_error
        wait_for(lambda: netsuite.creates == 1)  # NetSuite finished the first create after all

        make_due(action)
        assert dispatch(action) == "succeeded"

    action = fresh(action)
    assert action.attempts == 2
    assert action.result == {"record_id": "1001", "external_id": netsuite.gets[-1],
                             "created": False}  # fmt: skip
    assert netsuite.creates == 1 and len(netsuite.posts) == 1


def test_an_ambiguous_timeout_finds_the_record_within_the_same_attempt(order, settings):
    with FakeNetSuite(slow=1.0, store_first=True) as netsuite:
        configure(settings, netsuite, DOWNSTREAM_HTTP_TIMEOUT=(2.0, 0.3))
        action = write(order, ActionKind.ERP_POST, "netsuite")
    assert action.status == ActionStatus.SUCCEEDED and action.attempts == 1
    assert action.result["created"] is False and action.result["record_id"] == "1001"
    assert netsuite.creates == 1 and len(netsuite.posts) == 1


def test_a_create_refused_as_duplicate_finds_the_existing_record(order, settings):
    """The record exists already (an earlier attempt whose answer was lost): NetSuite refuses
    the create with DUP_RCRD and we take the existing one."""
    with FakeNetSuite() as netsuite:
        configure(settings, netsuite)
        netsuite.records[order.correlation_id] = {"id": "555"}
        action = write(order, ActionKind.ERP_POST, "netsuite")
    assert action.status == ActionStatus.SUCCEEDED
    assert action.result["record_id"] == "555" and action.result["created"] is False
    assert netsuite.creates == 1


def test_a_409_is_a_duplicate_too(order, settings):
    with FakeNetSuite() as netsuite:
        configure(settings, netsuite)
        netsuite.records[order.correlation_id] = {"id": "556"}
        netsuite.server.clear()
        netsuite.server.expect_request(SALES_ORDER, method="POST").respond_with_response(
            Response("", status=409)
        )
        netsuite.server.expect_request(
            re.compile(rf"^{SALES_ORDER}/eid:.+$"), method="GET"
        ).respond_with_handler(netsuite.get)
        action = write(order, ActionKind.ERP_POST, "netsuite")
    assert action.status == ActionStatus.SUCCEEDED and action.result["record_id"] == "556"


def test_a_validation_error_is_not_retried_and_raises_an_incident(order, settings):
    with FakeNetSuite() as netsuite:
        configure(settings, netsuite)
        netsuite.server.clear()
        netsuite.server.expect_request(SALES_ORDER, method="POST").respond_with_json(
            {"title": "Bad Request", "status": 400, "o:errorDetails": [
                {"detail": "Invalid value for item MUG.", "o:errorCode": "INVALID_KEY_OR_REF"}
            ]},
            status=400,
        )  # fmt: skip
        action = write(order, ActionKind.ERP_POST, "netsuite")
    assert action.status == ActionStatus.DEAD and action.attempts == 1
    assert "HTTP 400 INVALID_KEY_OR_REF" in action.last_error
    incident = Incident.objects.get(category=IncidentCategory.DOWNSTREAM_FAILED)
    assert incident.order_id == order.pk and "INVALID_KEY_OR_REF" in incident.summary
    assert incident.details["outbound_action_id"] == action.pk


def test_server_errors_are_retried(order, settings):
    with FakeNetSuite() as netsuite:
        configure(settings, netsuite)
        netsuite.server.clear()
        netsuite.server.expect_request(SALES_ORDER, method="POST").respond_with_data(
            "maintenance", status=503, headers={"Retry-After": "120"}
        )
        action = write(order, ActionKind.ERP_POST, "netsuite")
    assert action.status == ActionStatus.RETRY_SCHEDULED
    assert "HTTP 503" in action.last_error
    # Retry-After is honoured: not before two minutes.
    assert (action.next_attempt_at - action.updated_at).total_seconds() >= 119


def test_without_configuration_the_action_dies_with_a_clear_message(order, settings):
    settings.NETSUITE_API_BASE = ""
    action = write(order, ActionKind.ERP_POST, "netsuite")
    assert action.status == ActionStatus.DEAD
    assert "NetSuite is not configured" in action.last_error
