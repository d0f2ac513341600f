"""ERP posting to Oracle NetSuite through its REST Record API (SuiteTalk REST web services).

Create: ``POST {NETSUITE_API_BASE}/services/rest/record/v1/salesOrder`` with a JSON body whose
``externalId`` is the order's correlation id (signed, stable for the order; ``-v<n>`` added when
a later version of the posting is due; our idempotency key when an action has no correlation id),
in the characters NetSuite allows: letters, digits, ``_`` and ``-``. NetSuite keeps external
ids unique per record type, so a second create with the same id cannot make a second sales
order: it is refused as a duplicate. NetSuite answers a create
with ``204 No Content`` and the new record's URL in ``Location`` (its last segment is the
internal id).

Find the first: ``GET .../salesOrder/eid:{externalId}``. We look before creating on every retry
(the previous attempt may have timed out after NetSuite created the record), after an ambiguous
failure within the attempt, and when a create is refused as a duplicate.

Auth: ``Authorization: Bearer {NETSUITE_TOKEN}``. Production uses NetSuite's OAuth 2.0
machine-to-machine (client credentials) flow, whose access tokens last 60 minutes: a small
token provider would fetch and cache one and hand it here; a static token is what this adapter
takes today (and what the loopback tests use).

Body: the customer is one configured entity (``NETSUITE_CUSTOMER_ID``, the "web sales" customer
most retailers post marketplace orders under), items are referenced by external id = our SKU,
amounts are exact decimal JSON numbers (never floats). No personal data is sent or stored.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import structlog
from django.conf import settings

from fulfillment.downstream.base import DownstreamError, order_of, safe_key
from fulfillment.downstream.http import session_for
from orders import money

if TYPE_CHECKING:
    import requests

    from config.integrations import IntegrationSession
    from fulfillment.models import OutboundAction

log = structlog.get_logger(__name__)

RECORD_BASE = "/services/rest/record/v1/"
# How NetSuite says "a record with this external id exists" (REST answers 400 with these codes).
DUPLICATE_CODES = frozenset({"DUP_RCRD", "DUP_ENTITY", "DUPLICATE_EXTERNAL_ID", "DUP_RCRD_LINK"})


def external_id_for(action: OutboundAction) -> str:
    """The sales order's externalId: the correlation id, so a retry (or a second trigger of the
    same posting) finds the first record instead of making a second."""
    if not action.correlation_id:
        return safe_key(action.idempotency_key)
    suffix = f"-v{action.version}" if action.version > 1 else ""
    return safe_key(f"{action.correlation_id}{suffix}")


def dumps(value: Any) -> str:
    """JSON with ``Decimal`` as exact numbers (``json`` would need floats for that)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


class NetSuiteERPAdapter:
    target = "netsuite"

    def __init__(self, *, api_base: str, token: str, customer_id: str) -> None:
        self.api_base = api_base.rstrip("/")
        self.token = token
        self.customer_id = customer_id

    @classmethod
    def from_settings(cls) -> NetSuiteERPAdapter:
        return cls(
            api_base=settings.NETSUITE_API_BASE,
            token=settings.NETSUITE_TOKEN,
            customer_id=settings.NETSUITE_CUSTOMER_ID,
        )

    # The REST record type this adapter creates, once per external id.
    record = "salesOrder"

    def perform(self, action: OutboundAction) -> dict[str, Any]:
        self._check_configured()
        external_id = external_id_for(action)
        return self._create_once(action, external_id, self._body(action, external_id))

    def _check_configured(self) -> None:
        if not (self.api_base and self.token):
            raise DownstreamError(
                "NetSuite is not configured (NETSUITE_API_BASE, NETSUITE_TOKEN)", retryable=False
            )

    def _create_once(
        self, action: OutboundAction, external_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Create the record unless it exists: a retry (whose last attempt may have created it
        before failing) looks it up first; an ambiguous failure or a "duplicate" refusal looks
        it up after."""
        record = self.record
        with session_for(self.target) as session:
            session.headers["Authorization"] = f"Bearer {self.token}"
            if action.attempts > 1:
                found = self._find(session, external_id)
                if found is not None:
                    return found
            try:
                response = session.call(
                    "POST", f"{self.api_base}{RECORD_BASE}{record}",
                    what=f"netsuite create {record}", data=dumps(body).encode(),
                    accept=(400, 409),
                    headers={"Content-Type": "application/json", "Accept": "application/json"},
                )  # fmt: skip
            except DownstreamError as exc:
                if not exc.ambiguous:
                    raise
                # It may have been created: look once now; if not there (yet), the next
                # attempt looks again before it creates.
                found = self._find_quietly(session, external_id)
                if found is not None:
                    return found
                raise
            if response.status_code in (400, 409):
                code = _error_code(response)
                if response.status_code == 409 or _is_duplicate(response, code):
                    found = self._find(session, external_id)
                    if found is not None:
                        return found
                    raise DownstreamError(
                        f"netsuite create {record}: refused as a duplicate, but "
                        f"eid:{external_id} is not found yet",
                        retryable=True, status=response.status_code,
                    )  # fmt: skip
                raise DownstreamError(
                    f"netsuite create {record}: HTTP {response.status_code} "
                    f"{code or 'error'} (see NetSuite's execution log for eid:{external_id})",
                    retryable=False, status=response.status_code,
                )  # fmt: skip
            record_id = response.headers.get("Location", "").rstrip("/").rsplit("/", 1)[-1]
            if not record_id:
                raise DownstreamError(
                    f"netsuite create {record}: no Location in the answer", retryable=True,
                    status=response.status_code, ambiguous=True,
                )  # fmt: skip
        log.info("netsuite.record_created", record=record, action_id=action.pk,
                 record_id=record_id)  # fmt: skip
        return {"record_id": record_id, "external_id": external_id, "created": True}

    def _find(self, session: IntegrationSession, external_id: str) -> dict[str, Any] | None:
        """The record with this external id, or None (404)."""
        url = f"{self.api_base}{RECORD_BASE}{self.record}/eid:{quote(external_id, safe='')}"
        response = session.call(
            "GET", url, what=f"netsuite get {self.record} by externalId", accept=(404,),
            headers={"Accept": "application/json"},
        )  # fmt: skip
        if response.status_code == 404:
            return None
        try:
            record_id = str(response.json().get("id") or "")
        except (ValueError, AttributeError):
            record_id = ""
        log.info("netsuite.record_found", record=self.record, external_id=external_id,
                 record_id=record_id)  # fmt: skip
        return {"record_id": record_id, "external_id": external_id, "created": False}

    def _find_quietly(self, session: IntegrationSession, external_id: str) -> dict[str, Any] | None:
        try:
            return self._find(session, external_id)
        except DownstreamError:
            return None

    def _body(self, action: OutboundAction, external_id: str) -> dict[str, Any]:
        order = order_of(action)
        cur = order.currency
        items = [
            {
                "item": {"externalId": line.sku},
                "quantity": line.quantity,
                "rate": money.normalize(line.unit_price, cur),
                "amount": money.normalize(line.gross - line.discount_allocation, cur),
                "description": (line.title or line.sku)[:200],
            }
            for line in order.lines.order_by("line_no")
        ]
        body: dict[str, Any] = {
            "externalId": external_id,
            "tranDate": order.placed_at.date().isoformat(),
            "otherRefNum": (order.order_number or order.external_id)[:45],
            "memo": f"{order.channel.slug} order {order.external_id}"[:999],
            "currency": {"refName": cur},
            "shippingCost": money.normalize(order.shipping_total, cur),
            "item": {"items": items},
        }
        if self.customer_id:
            body["entity"] = {"id": self.customer_id}
        return body


def _error_code(response: requests.Response) -> str:
    """NetSuite's ``o:errorCode`` from an error answer (RFC 7807 JSON with ``o:errorDetails``)."""
    try:
        details = response.json().get("o:errorDetails") or []
        return str(details[0].get("o:errorCode") or "") if details else ""
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""


def _is_duplicate(response: requests.Response, code: str) -> bool:
    if code in DUPLICATE_CODES:
        return True
    try:
        details = response.json().get("o:errorDetails") or []
        text = " ".join(str(d.get("detail", "")) for d in details).lower()
    except (ValueError, AttributeError, TypeError):
        return False
    return "external" in text and ("duplicate" in text or "already exists" in text)
