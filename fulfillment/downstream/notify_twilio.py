"""Customer SMS through Twilio's Programmable Messaging REST API.

``POST {TWILIO_API_BASE}/2010-04-01/Accounts/{AccountSid}/Messages.json``, HTTP basic auth
(account SID, auth token), form fields ``To``, ``From`` (or ``MessagingServiceSid``) and
``Body``; ``201 Created`` with the message's ``sid`` and ``status``.

Used only when configured: ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN`` and a sender
(``TWILIO_FROM_NUMBER`` or ``TWILIO_MESSAGING_SERVICE_SID``); ``targets_for`` leaves ``twilio``
out otherwise. The phone number is read from the customer at send time and never logged or
stored (Twilio's answer repeats it: we keep only ``sid`` and ``status``).

Twilio's Messages API takes no idempotency key. A refused connection never reached it and is
retried; an answer that never came may mean the SMS went out, so that failure is not retried
automatically: the action goes dead and a person checks Twilio's message log before retrying.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
from django.conf import settings

from fulfillment.carriers.base import web_link
from fulfillment.downstream.base import DownstreamError, order_of
from fulfillment.downstream.http import session_for

if TYPE_CHECKING:
    from fulfillment.models import OutboundAction

log = structlog.get_logger(__name__)

TWILIO_API_BASE = "https://api.twilio.com"
BODIES = {
    "order_confirmation": "{shop}: thank you! Your order {number} is confirmed.",
    "shipping_confirmation": "{shop}: your order {number} has shipped.{tracking}",
}


def twilio_configured() -> bool:
    return bool(
        settings.TWILIO_ACCOUNT_SID
        and settings.TWILIO_AUTH_TOKEN
        and (settings.TWILIO_FROM_NUMBER or settings.TWILIO_MESSAGING_SERVICE_SID)
    )


class TwilioSMSNotifyAdapter:
    target = "twilio"

    def __init__(
        self, *, api_base: str, account_sid: str, auth_token: str, from_number: str = "",
        messaging_service_sid: str = "",
    ) -> None:  # fmt: skip
        self.api_base = (api_base or TWILIO_API_BASE).rstrip("/")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid

    @classmethod
    def from_settings(cls) -> TwilioSMSNotifyAdapter:
        return cls(
            api_base=settings.TWILIO_API_BASE,
            account_sid=settings.TWILIO_ACCOUNT_SID,
            auth_token=settings.TWILIO_AUTH_TOKEN,
            from_number=settings.TWILIO_FROM_NUMBER,
            messaging_service_sid=settings.TWILIO_MESSAGING_SERVICE_SID,
        )

    def perform(self, action: OutboundAction) -> dict[str, Any]:
        if not (self.account_sid and self.auth_token and (
            self.from_number or self.messaging_service_sid
        )):  # fmt: skip
            raise DownstreamError("Twilio is not configured (TWILIO_* settings)", retryable=False)
        template = str((action.payload or {}).get("template") or "order_confirmation")
        if template not in BODIES:
            raise DownstreamError(f"unknown SMS template {template!r}", retryable=False)
        order = order_of(action)
        phone = (order.customer.phone if order.customer else "").strip()
        if not phone:
            log.info("notify_twilio.no_recipient", action_id=action.pk, order_id=order.pk)
            return {"sent": False, "reason": "no_recipient", "template": template}
        tracking = ""
        if template == "shipping_confirmation":
            shipment = order.shipments.exclude(tracking_number="").order_by("-pk").first()
            if shipment is not None:
                link = web_link(shipment.tracking_url)
                tracking = f" Tracking: {link or shipment.tracking_number}"
        body = BODIES[template].format(
            shop=order.channel.name or order.channel.slug,
            number=order.order_number or order.external_id,
            tracking=tracking,
        )
        form = {"To": phone, "Body": body[:1600]}
        if self.messaging_service_sid:
            form["MessagingServiceSid"] = self.messaging_service_sid
        else:
            form["From"] = self.from_number
        url = f"{self.api_base}/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        with session_for(self.target) as session:
            try:
                response = session.call(
                    "POST", url, what="twilio send sms", data=form,
                    auth=(self.account_sid, self.auth_token),
                    headers={"Accept": "application/json"},
                )  # fmt: skip
            except DownstreamError as exc:
                if exc.ambiguous:
                    raise DownstreamError(
                        f"{exc} - the SMS may have been sent: check Twilio's message log "
                        "before retrying",
                        retryable=False, status=exc.status, ambiguous=True,
                    ) from exc  # fmt: skip
                raise
            try:
                answer = response.json()
            except ValueError:
                answer = {}
        sid = str(answer.get("sid") or "") if isinstance(answer, dict) else ""
        status = str(answer.get("status") or "") if isinstance(answer, dict) else ""
        log.info("notify_twilio.sent", action_id=action.pk, order_id=order.pk, sid=sid)
        return {"sent": True, "template": template, "sid": sid, "status": status}
