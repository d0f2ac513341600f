"""The CRM as a signed webhook (Standard Webhooks, https://www.standardwebhooks.com/).

``POST {CRM_WEBHOOK_URL}`` with a JSON event::

    {"type": "order.delivered", "timestamp": "2026-12-02T05:00:00+00:00",
     "data": {"milestone": "delivered", "order_id": 17, "external_id": "...",
              "order_number": "#1001", "channel": "shop", "channel_kind": "shopify",
              "status": "delivered", "payment_status": "paid", "currency": "USD",
              "subtotal": "20.00", ..., "total": "26.50", "customer_id": 5}}

signed with the three headers: ``webhook-id`` (the action's idempotency key: the same on every
attempt, so a receiver drops a repeat), ``webhook-timestamp`` (unix seconds of this attempt)
and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` under the
``whsec_`` secret ``CRM_WEBHOOK_SECRET``). Amounts are strings (exact decimals).

Personal data: none by default. ``CRM_WEBHOOK_INCLUDE_EMAIL=1`` adds ``data.customer_email``
for a receiver that matches customers by email; it is read from the order at send time and
never stored in the action, its result or a log line.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import structlog
from django.conf import settings
from django.utils import timezone

from config import webhook_signing
from fulfillment.downstream.base import DownstreamError
from fulfillment.downstream.crm_event import event_of
from fulfillment.downstream.http import session_for

if TYPE_CHECKING:
    from fulfillment.models import OutboundAction

log = structlog.get_logger(__name__)


class WebhookCRMAdapter:
    target = "webhook"

    def __init__(self, *, url: str, secret: str, include_email: bool = False) -> None:
        self.url = url
        self.secret = secret
        self.include_email = include_email

    @classmethod
    def from_settings(cls) -> WebhookCRMAdapter:
        return cls(
            url=settings.CRM_WEBHOOK_URL, secret=settings.CRM_WEBHOOK_SECRET,
            include_email=settings.CRM_WEBHOOK_INCLUDE_EMAIL,
        )  # fmt: skip

    def _check(self) -> None:
        """A configuration problem stops the action (dead, the setting named) before any call."""
        if not self.url or not self.secret:
            raise DownstreamError(
                "the CRM webhook is not configured (CRM_WEBHOOK_URL and CRM_WEBHOOK_SECRET)",
                retryable=False,
            )
        if problem := webhook_signing.whsec_problem(self.secret):
            raise DownstreamError(f"CRM_WEBHOOK_SECRET: {problem}", retryable=False)

    def perform(self, action: OutboundAction) -> dict[str, Any]:
        self._check()
        order, milestone, data = event_of(action)
        if self.include_email:
            data["customer_email"] = order.customer.email if order.customer else ""
        body = json.dumps(
            {"type": f"order.{milestone}", "timestamp": timezone.now().isoformat(), "data": data},
            separators=(",", ":"), sort_keys=True,
        ).encode()  # fmt: skip
        msg_id = action.idempotency_key
        headers = {
            "Content-Type": "application/json",
            **webhook_signing.sign_headers(
                secret=self.secret, msg_id=msg_id, timestamp=int(time.time()), body=body
            ),
        }
        with session_for(self.target) as session:
            response = session.call(
                "POST", self.url, what="crm webhook", data=body, headers=headers, accept=(409,)
            )
        # 409: the receiver already has this webhook-id (a retry after a lost answer).
        log.info("crm_webhook.sent", action_id=action.pk, order_id=order.pk, milestone=milestone,
                 status=response.status_code)  # fmt: skip
        return {"milestone": milestone, "webhook_id": msg_id, "status": response.status_code}
