"""A transition the caller's role may not make is 403 whatever state the row is in: the refusal
never depends on (and so never reveals) the state, and no state check or other work runs first."""

from __future__ import annotations

import pytest

from orders.actors import Actor
from orders.models import Incident
from orders.services import incident_transition
from tests.factories import advance, make_order

ORDERS = "/api/v1/orders/"
INCIDENTS = "/api/v1/incidents/"


def transition(client, order_id: int, name: str, **body):
    return client.post(f"{ORDERS}{order_id}/transition/", {"transition": name, **body},
                       format="json")  # fmt: skip


def test_customer_service_capturing_an_already_captured_payment_is_403_not_409(api_client, cs_user):
    order = advance(make_order(), "authorize_payment", "capture_payment")
    events_before = order.events.count()
    api_client.force_authenticate(cs_user)

    response = transition(api_client, order.pk, "capture_payment")

    assert response.status_code == 403, response.content
    body = response.json()
    assert body["code"] == "permission_denied"
    assert "paid" not in body["detail"]  # the refusal does not tell the payment's state
    order.refresh_from_db()
    assert order.payment_status == "paid"
    assert order.events.count() == events_before


def test_finance_cancelling_a_cancelled_order_is_403_not_409(api_client, finance_user):
    order = advance(make_order(), "cancel")
    api_client.force_authenticate(finance_user)

    response = transition(api_client, order.pk, "cancel", reason="again")

    assert response.status_code == 403, response.content
    assert response.json()["code"] == "permission_denied"
    assert "cancelled" not in response.json()["detail"]


def test_a_stale_expected_status_from_a_role_without_the_permission_is_403_not_stale(
    api_client, cs_user
):
    order = make_order()  # validated
    api_client.force_authenticate(cs_user)

    response = transition(api_client, order.pk, "capture_payment", expected_status="paid")

    assert response.status_code == 403, response.content
    assert response.json()["code"] == "permission_denied"
    assert "pending" not in response.json()["detail"]


def test_the_role_that_has_the_permission_still_gets_409_naming_the_state(api_client, ops_user):
    order = advance(make_order(), "authorize_payment", "capture_payment")
    api_client.force_authenticate(ops_user)

    response = transition(api_client, order.pk, "capture_payment")

    assert response.status_code == 409
    assert response.json()["code"] == "transition_not_allowed"
    assert "'paid'" in response.json()["detail"]


@pytest.fixture
def resolved_incident(db) -> Incident:
    incident = Incident.objects.get(order=make_order(total="999.00"))  # schema_invalid
    incident_transition(incident_id=incident.pk, transition="resolve", actor=Actor.system())
    return incident


@pytest.mark.parametrize("verb", ["acknowledge", "resolve"])
def test_finance_working_a_resolved_incident_is_403_not_409(
    api_client, finance_user, resolved_incident, verb
):
    api_client.force_authenticate(finance_user)

    response = api_client.post(f"{INCIDENTS}{resolved_incident.pk}/{verb}/", {}, format="json")

    assert response.status_code == 403, response.content
    assert response.json()["code"] == "permission_denied"
    assert "resolved" not in response.json()["detail"]


def test_customer_service_acknowledging_a_resolved_incident_is_still_409(
    api_client, cs_user, resolved_incident
):
    api_client.force_authenticate(cs_user)

    response = api_client.post(f"{INCIDENTS}{resolved_incident.pk}/acknowledge/", {},
                               format="json")  # fmt: skip

    assert response.status_code == 409
    assert response.json()["code"] == "transition_not_allowed"
