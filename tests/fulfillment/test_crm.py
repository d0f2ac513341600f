"""The order's milestones reach the CRM through the outbox: one action per milestone and
target, ids only in the payload; a signed Standard Webhooks POST and HubSpot CRM v3 (one
contact, one deal per order, the deal's stage following the milestones), each against a
loopback server, and a retry never makes a second contact or deal."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from werkzeug import Request, Response

from channels.signatures import standard_webhooks
from fulfillment.crm import MILESTONE_VERSIONS
from fulfillment.downstream import targets_for
from fulfillment.models import ActionStatus, OutboundAction
from fulfillment.outbox.services import action_dispatch, outbox_drain
from orders.actors import Actor
from orders.services import order_transition
from tests.factories import CustomerFactory, make_order
from tests.fulfillment.helpers import add_warehouse, stock
from tests.fulfillment.outbox.helpers import Loopback, make_due
from tests.fulfillment.test_tracking import record, shipped_order

pytestmark = pytest.mark.django_db

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OPS = Actor.system("test")


@pytest.fixture(autouse=True)
def crm_settings(settings):
    settings.CRM_TARGETS = ["webhook"]
    settings.CRM_WEBHOOK_SECRET = SECRET
    settings.CRM_WEBHOOK_URL = ""
    settings.CRM_WEBHOOK_INCLUDE_EMAIL = False
    settings.HUBSPOT_TOKEN = "pat-test"
    settings.DOWNSTREAM_HTTP_TIMEOUT = (2.0, 5.0)
    settings.OUTBOX_MAX_ATTEMPTS = 8
    return settings


def crm_actions(order, **filters):
    return OutboundAction.objects.filter(order=order, kind="crm_update", **filters).order_by(
        "version", "target"
    )


def send_crm(order) -> list[str]:
    """The outbox dispatches every CRM action of the order still due (the order's creation
    already rang the doorbell of its first one), oldest first; their statuses after."""
    for action in crm_actions(order).order_by("pk"):
        action_dispatch(action_id=action.pk)
    return [str(a.status) for a in crm_actions(order).order_by("pk")]


def delivered_order():
    add_warehouse("A")
    stock("MUG", "A", 5)
    order, [parcel] = shipped_order(("MUG", 1))
    record(parcel, ("in_transit", 1, "Arrived"), ("delivered", 8, "Delivered"))
    order.refresh_from_db()
    assert order.status == "delivered"
    return order, parcel


# --- writing -----------------------------------------------------------------------------
def test_crm_is_off_by_default(settings):
    settings.CRM_TARGETS = []
    assert targets_for("crm_update") == []
    order, _parcel = delivered_order()
    assert not crm_actions(order).exists()


def test_each_milestone_writes_one_action_per_target_with_ids_only(settings):
    settings.CRM_TARGETS = "webhook,hubspot"
    order, parcel = delivered_order()
    actions = list(crm_actions(order))
    assert [(a.payload["milestone"], a.target, a.version) for a in actions] == [
        ("received", "hubspot", 1), ("received", "webhook", 1),
        ("shipped", "hubspot", 2), ("shipped", "webhook", 2),
        ("delivered", "hubspot", 3), ("delivered", "webhook", 3),
    ]  # fmt: skip
    assert all(set(a.payload) == {"order_id", "milestone"} for a in actions)
    assert all(a.payload["order_id"] == order.pk for a in actions)
    # A repeated carrier event (or a re-run hook) writes nothing new.
    record(parcel, ("delivered", 8, "Delivered"))
    assert crm_actions(order).count() == 6


def test_a_cancelled_order_tells_the_crm_once():
    order = make_order(pipeline=False)
    order_transition(order_id=order.pk, transition="cancel", actor=OPS, reason="customer asked")
    assert [a.payload["milestone"] for a in crm_actions(order)] == ["received", "cancelled"]
    assert (
        crm_actions(order).get(payload__milestone="cancelled").version
        == (MILESTONE_VERSIONS["cancelled"])
    )


def test_a_parcel_returned_to_the_sender_is_the_returned_milestone():
    add_warehouse("A")
    stock("MUG", "A", 5)
    order, [parcel] = shipped_order(("MUG", 1))
    record(parcel, ("in_transit", 1, "Arrived"), ("return_to_sender", 30, "Refused"))
    parcel.refresh_from_db()
    assert parcel.status == "returned"
    returned = crm_actions(order).get(payload__milestone="returned")
    assert returned.payload == {"order_id": order.pk, "milestone": "returned",
                                "shipment_id": parcel.pk}  # fmt: skip


# --- the signed webhook ------------------------------------------------------------------
class FakeCRMWebhook(Loopback):
    """A receiver that verifies the Standard Webhooks signature the way BigCommerce's are
    verified here, and answers 500 to the first ``fail`` requests."""

    def __init__(self, *, fail: int = 0) -> None:
        super().__init__()
        self.fail = fail
        self.received: list[dict[str, Any]] = []
        self.server.expect_request("/crm", method="POST").respond_with_handler(self.handle)

    def handle(self, request: Request) -> Response:
        body = request.get_data()
        headers = {k.lower(): v for k, v in request.headers.items()}
        msg_id, _sent = standard_webhooks(
            secret=SECRET, headers=headers, body=body, now=datetime.now(UTC)
        )
        with self.lock:
            self.received.append({"id": msg_id, "event": json.loads(body), "headers": headers})
            if self.fail:
                self.fail -= 1
                return Response("oops", status=500)
        return Response(status=204)


def test_the_webhook_posts_each_milestone_signed_with_standard_webhooks_headers(settings):
    with FakeCRMWebhook() as receiver:
        settings.CRM_WEBHOOK_URL = f"{receiver.url}/crm"
        order, _parcel = delivered_order()
        assert send_crm(order) == ["succeeded"] * 3
    events = [r["event"] for r in receiver.received]
    assert [e["type"] for e in events] == ["order.received", "order.shipped", "order.delivered"]
    data = events[-1]["data"]
    assert data["order_id"] == order.pk and data["status"] == "delivered"
    assert data["channel"] == order.channel.slug
    assert (data["currency"], data["total"], data["subtotal"]) == ("USD", "16.50", "10.00")
    assert "customer_email" not in data and order.customer.email not in json.dumps(events)
    webhook_ids = [r["id"] for r in receiver.received]
    assert webhook_ids == [a.idempotency_key for a in crm_actions(order)]
    delivered = crm_actions(order).get(payload__milestone="delivered")
    assert delivered.result["webhook_id"] == delivered.idempotency_key
    assert order.customer.email not in json.dumps(delivered.result)


def test_a_retry_sends_the_same_webhook_id_and_the_email_only_when_asked(settings):
    settings.CRM_WEBHOOK_INCLUDE_EMAIL = True
    order = make_order(pipeline=False)
    [action] = crm_actions(order)
    with FakeCRMWebhook(fail=1) as receiver:
        settings.CRM_WEBHOOK_URL = f"{receiver.url}/crm"
        assert action_dispatch(action_id=action.pk) == "rescheduled"
        make_due(action)
        assert outbox_drain()["succeeded"] >= 1
    action.refresh_from_db()
    assert action.status == ActionStatus.SUCCEEDED and action.attempts == 2
    first, second = receiver.received
    assert first["id"] == second["id"] == action.idempotency_key
    assert second["event"]["data"]["customer_email"] == order.customer.email
    assert order.customer.email not in json.dumps(action.payload)


def test_a_webhook_without_url_or_with_a_broken_secret_goes_dead_with_a_reason(settings):
    order = make_order(pipeline=False)
    [action] = crm_actions(order)
    assert action_dispatch(action_id=action.pk) == "dead"
    action.refresh_from_db()
    assert "CRM_WEBHOOK_URL" in action.last_error


# --- HubSpot -----------------------------------------------------------------------------
class FakeHubSpot(Loopback):
    """HubSpot CRM v3 as far as we use it: contacts search / create (a second contact with the
    same email is refused 409 "Existing ID"), deals batch upsert by a unique property, v4
    default associations. ``lose_contact_answer``: the first create is stored, then answered 502
    (the answer lost on the way back). ``search_lags``: the search index does not see contacts
    created during the test (HubSpot's search is eventually consistent)."""

    def __init__(self, *, lose_contact_answer: bool = False, search_lags: bool = False) -> None:
        super().__init__()
        self.lose_contact_answer = lose_contact_answer
        self.search_lags = search_lags
        self.contacts: dict[str, str] = {}  # email -> id
        self.deals: dict[str, dict[str, Any]] = {}  # order key -> deal
        self.associations: set[tuple[str, str]] = set()
        self.calls: list[tuple[str, str]] = []
        self.auth: set[str] = set()
        s = self.server
        s.expect_request("/crm/v3/objects/contacts/search", method="POST").respond_with_handler(
            self.search
        )
        s.expect_request("/crm/v3/objects/contacts", method="POST").respond_with_handler(
            self.create_contact
        )
        s.expect_request("/crm/v3/objects/deals/batch/upsert", method="POST").respond_with_handler(
            self.upsert
        )
        s.expect_request(
            re.compile(r"^/crm/v4/objects/deals/\d+/associations/default/contacts/\d+$"),
            method="PUT",
        ).respond_with_handler(self.associate)

    def _log(self, request: Request) -> None:
        self.calls.append((request.method, request.path))
        self.auth.add(request.headers.get("Authorization", ""))

    @staticmethod
    def _json(body: Any, status: int = 200) -> Response:
        return Response(json.dumps(body), status=status, content_type="application/json")

    def search(self, request: Request) -> Response:
        self._log(request)
        [group] = request.get_json()["filterGroups"]
        [flt] = group["filters"]
        assert (flt["propertyName"], flt["operator"]) == ("email", "EQ")
        found = None if self.search_lags else self.contacts.get(flt["value"])
        results = [{"id": found, "properties": {"email": flt["value"]}}] if found else []
        return self._json({"total": len(results), "results": results})

    def create_contact(self, request: Request) -> Response:
        self._log(request)
        email = request.get_json()["properties"]["email"]
        with self.lock:
            if email in self.contacts:
                return self._json({"status": "error", "category": "CONFLICT",
                                   "message": f"Contact already exists. Existing ID: "
                                              f"{self.contacts[email]}"}, 409)  # fmt: skip
            self.contacts[email] = str(500 + len(self.contacts) + 1)
            if self.lose_contact_answer:
                self.lose_contact_answer = False
                return Response("Bad Gateway", status=502)
        return self._json({"id": self.contacts[email], "properties": {"email": email}}, 201)

    def upsert(self, request: Request) -> Response:
        self._log(request)
        [item] = request.get_json()["inputs"]
        assert item["idProperty"] == "orderdesk_order_key"
        with self.lock:
            deal = self.deals.get(item["id"])
            new = deal is None
            if new:
                deal = self.deals[item["id"]] = {"id": str(900 + len(self.deals) + 1),
                                                 "properties": {}}  # fmt: skip
            deal["properties"].update(item["properties"])
        return self._json({"status": "COMPLETE", "results": [
            {"id": deal["id"], "new": new, "properties": deal["properties"]}
        ]})  # fmt: skip

    def associate(self, request: Request) -> Response:
        self._log(request)
        parts = request.path.split("/")
        self.associations.add((parts[5], parts[-1]))
        return self._json({"status": "COMPLETE"})


def hubspot(settings, fake: FakeHubSpot) -> None:
    settings.CRM_TARGETS = ["hubspot"]
    settings.HUBSPOT_API_BASE = fake.url


def test_hubspot_keeps_one_contact_and_one_deal_whose_stage_follows_the_milestones(settings):
    with FakeHubSpot() as fake:
        hubspot(settings, fake)
        order, _parcel = delivered_order()
        assert send_crm(order) == ["succeeded"] * 3
    email = order.customer.email
    assert list(fake.contacts) == [email]
    [(key, deal)] = fake.deals.items()
    assert key.endswith(f"orderdesk-order-{order.pk}")
    assert deal["properties"]["dealstage"] == "closedwon"
    assert deal["properties"]["amount"] == "16.50"
    assert deal["properties"]["deal_currency_code"] == "USD"
    assert email not in json.dumps(deal)
    assert fake.associations == {(deal["id"], fake.contacts[email])}
    assert fake.auth == {"Bearer pat-test"}
    # Only the first milestone created the contact; the others found it.
    assert fake.calls.count(("POST", "/crm/v3/objects/contacts")) == 1
    results = [a.result for a in crm_actions(order)]
    assert [r["stage"] for r in results] == ["appointmentscheduled", "contractsent", "closedwon"]
    assert [r["contact_created"] for r in results] == [True, False, False]
    assert all(email not in json.dumps(r) for r in results)


def test_hubspot_stages_come_from_the_setting(settings):
    settings.HUBSPOT_DEAL_STAGES = {"received": "s-new"}
    with FakeHubSpot() as fake:
        hubspot(settings, fake)
        order = make_order(pipeline=False)
        assert send_crm(order) == ["succeeded"]
    [deal] = fake.deals.values()
    assert deal["properties"]["dealstage"] == "s-new"


def test_a_retry_after_a_lost_create_answer_finds_the_first_contact(settings):
    with FakeHubSpot(lose_contact_answer=True) as fake:
        hubspot(settings, fake)
        order = make_order(pipeline=False)
        [action] = crm_actions(order)
        assert action_dispatch(action_id=action.pk) == "rescheduled"
        make_due(action)
        assert outbox_drain()["succeeded"] == 1
    action.refresh_from_db()
    assert action.attempts == 2 and action.status == ActionStatus.SUCCEEDED
    assert len(fake.contacts) == 1 and len(fake.deals) == 1
    assert action.result["contact_id"] == fake.contacts[order.customer.email]


def test_a_conflict_on_create_is_the_existing_contact_when_search_lags(settings):
    customer = CustomerFactory()
    with FakeHubSpot(search_lags=True) as fake:
        hubspot(settings, fake)
        fake.contacts[customer.email] = "777"  # made by someone else; search does not see it
        order = make_order(customer=customer, pipeline=False)
        assert send_crm(order) == ["succeeded"]
    assert fake.contacts == {customer.email: "777"}
    [action] = crm_actions(order)
    assert (action.result["contact_id"], action.result["contact_created"]) == ("777", False)


def test_an_order_without_an_email_gets_a_deal_without_a_contact(settings):
    customer = CustomerFactory(email="")
    with FakeHubSpot() as fake:
        hubspot(settings, fake)
        order = make_order(customer=customer, pipeline=False)
        assert send_crm(order) == ["succeeded"]
    assert fake.contacts == {} and len(fake.deals) == 1 and fake.associations == set()


def test_hubspot_without_a_token_goes_dead_with_a_reason(settings):
    settings.CRM_TARGETS = ["hubspot"]
    settings.HUBSPOT_TOKEN = ""
    order = make_order(pipeline=False)
    [action] = crm_actions(order)
    assert action_dispatch(action_id=action.pk) == "dead"
    action.refresh_from_db()
    assert "HUBSPOT_TOKEN" in action.last_error


def test_a_malformed_secret_goes_dead_naming_the_setting(settings):
    settings.CRM_WEBHOOK_URL = "https://crm.example.com/hook"
    settings.CRM_WEBHOOK_SECRET = "whsec_not-base64!"
    order = make_order(pipeline=False)
    [action] = crm_actions(order)
    assert action_dispatch(action_id=action.pk) == "dead"
    action.refresh_from_db()
    assert "CRM_WEBHOOK_SECRET" in action.last_error and "base64" in action.last_error
