"""HubSpot CRM v3: the customer as a contact (found by email), the order as one deal whose
stage follows its milestones.

Per action, with the private app token ``HUBSPOT_TOKEN`` (``Authorization: Bearer``) against
``HUBSPOT_API_BASE``:

1. The contact: ``POST /crm/v3/objects/contacts/search`` (email EQ); when there is none,
   ``POST /crm/v3/objects/contacts``. A create whose answer was lost is not repeated blindly:
   the next attempt searches first, and HubSpot refuses a second contact with the same email
   (``409 Conflict`` "Contact already exists. Existing ID: 123"), which we read as found. An
   order without an email (marketplaces) gets a deal without a contact.
2. The deal: ``POST /crm/v3/objects/deals/batch/upsert`` with ``idProperty`` =
   ``HUBSPOT_ORDER_KEY_PROPERTY`` (a unique deal property, created once in the portal) and our
   order key as its value: HubSpot creates the deal the first time and updates that same deal
   every later time, so a retry or a later milestone never makes a second. ``dealstage`` comes
   from ``HUBSPOT_DEAL_STAGES`` (milestone -> stage id); a milestone without a stage updates
   the amount only.
3. The association: ``PUT /crm/v4/objects/deals/{deal}/associations/default/contacts/{contact}``
   (a PUT: repeating it changes nothing).

The deal carries the order number, channel, amount and currency; the email goes only to the
contact search and create (that is the contact), never into the action, its result or a log.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import structlog
from django.conf import settings

from fulfillment.downstream.base import DownstreamError, safe_key
from fulfillment.downstream.crm_event import event_of
from fulfillment.downstream.http import session_for

if TYPE_CHECKING:
    from config.integrations import IntegrationSession
    from fulfillment.models import OutboundAction
    from orders.models import Order

log = structlog.get_logger(__name__)

CONTACTS = "/crm/v3/objects/contacts"
DEALS_UPSERT = "/crm/v3/objects/deals/batch/upsert"
ASSOCIATE = "/crm/v4/objects/deals/{deal}/associations/default/contacts/{contact}"
EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")


def order_key(order: Order) -> str:
    """Our order's value of the deal's unique property (stable per installation and order)."""
    return safe_key(f"{settings.OUTBOX_KEY_PREFIX}orderdesk-order-{order.pk}")


class HubSpotCRMAdapter:
    target = "hubspot"

    def __init__(
        self, *, api_base: str, token: str, stages: dict[str, str], pipeline: str = "default",
        key_property: str = "orderdesk_order_key",
    ) -> None:  # fmt: skip
        self.api_base = api_base.rstrip("/")
        self.token = token
        self.stages = dict(stages or {})
        self.pipeline = pipeline
        self.key_property = key_property

    @classmethod
    def from_settings(cls) -> HubSpotCRMAdapter:
        return cls(
            api_base=settings.HUBSPOT_API_BASE, token=settings.HUBSPOT_TOKEN,
            stages=settings.HUBSPOT_DEAL_STAGES, pipeline=settings.HUBSPOT_PIPELINE,
            key_property=settings.HUBSPOT_ORDER_KEY_PROPERTY,
        )  # fmt: skip

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}

    def perform(self, action: OutboundAction) -> dict[str, Any]:
        if not self.api_base or not self.token:
            raise DownstreamError(
                "HubSpot is not configured (HUBSPOT_API_BASE and HUBSPOT_TOKEN)", retryable=False
            )
        order, milestone, facts = event_of(action)
        email = (order.customer.email if order.customer else "").strip().lower()
        with session_for(self.target) as session:
            contact_id, created = ("", False)
            if email:
                contact_id, created = self._contact(session, email)
            deal_id = self._deal(session, order, milestone, facts)
            if contact_id:
                session.call(
                    "PUT", self.api_base + ASSOCIATE.format(deal=deal_id, contact=contact_id),
                    what="hubspot associate deal", headers=self._headers(),
                )  # fmt: skip
        log.info("crm_hubspot.updated", action_id=action.pk, order_id=order.pk,
                 milestone=milestone, deal_id=deal_id, contact_id=contact_id)  # fmt: skip
        return {
            "milestone": milestone, "deal_id": deal_id, "contact_id": contact_id,
            "contact_created": created, "stage": self.stages.get(milestone, ""),
        }  # fmt: skip

    def _search(self, session: IntegrationSession, email: str) -> str:
        body = {
            "filterGroups": [
                {"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}
            ],
            "properties": ["email"],
            "limit": 1,
        }
        answer = session.json_of(
            session.call("POST", f"{self.api_base}{CONTACTS}/search", what="hubspot find contact",
                         json=body, headers=self._headers()),
            what="hubspot find contact",
        )  # fmt: skip
        results = (answer or {}).get("results") or []
        return str(results[0]["id"]) if results else ""

    def _contact(self, session: IntegrationSession, email: str) -> tuple[str, bool]:
        """(contact id, created now): the one with this email, created if there is none."""
        found = self._search(session, email)
        if found:
            return found, False
        response = session.call(
            "POST", f"{self.api_base}{CONTACTS}", what="hubspot create contact",
            json={"properties": {"email": email}}, headers=self._headers(), accept=(409,),
        )  # fmt: skip
        if response.status_code == 409:
            # Created by an earlier attempt whose answer was lost (the search index lags).
            match = EXISTING_ID.search(response.text or "")
            existing = match.group(1) if match else self._search(session, email)
            if not existing:
                raise DownstreamError(
                    "hubspot create contact: 409 without the existing contact's id",
                    retryable=True,
                )
            return existing, False
        answer = session.json_of(response, what="hubspot create contact") or {}
        if not answer.get("id"):
            raise DownstreamError("hubspot create contact: no id in the answer", retryable=True)
        return str(answer["id"]), True

    def _deal(
        self, session: IntegrationSession, order: Order, milestone: str, facts: dict[str, Any]
    ) -> str:
        properties = {
            "dealname": f"Order {facts['order_number']} ({facts['channel']})"[:200],
            "amount": facts["total"],
            "deal_currency_code": facts["currency"],
            "pipeline": self.pipeline,
        }
        if stage := self.stages.get(milestone):
            properties["dealstage"] = stage
        body = {"inputs": [{"idProperty": self.key_property, "id": order_key(order),
                            "properties": properties}]}  # fmt: skip
        answer = session.json_of(
            session.call("POST", f"{self.api_base}{DEALS_UPSERT}", what="hubspot upsert deal",
                         json=body, headers=self._headers()),
            what="hubspot upsert deal",
        )  # fmt: skip
        results = (answer or {}).get("results") or []
        if not results or not results[0].get("id"):
            raise DownstreamError("hubspot upsert deal: no deal in the answer", retryable=True)
        return str(results[0]["id"])
