"""Customer emails (order confirmation, shipping confirmation) through Django's email backend
(console by default, SMTP or a provider's backend in production).

Every email links to the customer's order status page (``fulfillment.status_page``).

The action's payload names the template (``{"template": "order_confirmation"}``) and, for a
shipping confirmation, the shipment (``"shipment_id"``); nothing personal. The recipient, the
greeting and the lines are read from the order at send time, so the address lives only in the
customer record: never in the payload, the result, an audit event or a log line.

Each email carries a ``Message-ID`` derived from the action's idempotency key: the same on
every attempt, so a resend after an ambiguous SMTP failure is recognisably the same message
(mail stores and many providers drop a repeated Message-ID). An order without a customer email
(marketplaces often hide it) is not an error: the result says ``sent: false``.
"""

from __future__ import annotations

import hashlib
import smtplib
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import structlog
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from config import correlation
from fulfillment.carriers.base import web_link
from fulfillment.downstream.base import DownstreamError, order_lines, order_of
from fulfillment.status_page import status_url
from orders import money

if TYPE_CHECKING:
    from fulfillment.models import OutboundAction
    from orders.models import Order

log = structlog.get_logger(__name__)

SUBJECTS = {
    "order_confirmation": "Your order {number} is confirmed",
    "shipping_confirmation": "Your order {number} has shipped",
    "delivery_exception": "A delivery problem with your order {number}",
    "review_request": "How was your order {number}?",
    "refund_issued": "Your refund for order {number}",
    "return_label": "Your return label for order {number}",
    "return_rejected": "About your return for order {number}",
}
# Marketing email: sent only while the customer accepts it (checked again at send time).
MARKETING_TEMPLATES = frozenset({"review_request"})
# Templates about one parcel: they need its tracking number.
PARCEL_TEMPLATES = frozenset({"shipping_confirmation", "delivery_exception"})
# Templates about one refund (payload ``refund_id``) or one return (payload ``return_id``).
REFUND_TEMPLATES = frozenset({"refund_issued"})
RETURN_TEMPLATES = frozenset({"return_label", "return_rejected"})


def message_id_for(idempotency_key: str) -> str:
    """A stable ``Message-ID`` for this action (the same on every attempt and every host)."""
    domain = str(settings.OUTBOX_EMAIL_DOMAIN)
    if not domain:
        _name, address = parseaddr(str(settings.DEFAULT_FROM_EMAIL))
        domain = address.rpartition("@")[2] or "localhost"
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    return f"<outbox.{digest}@{domain}>"


def _money(value: Any, currency: str) -> str:
    return f"{money.normalize(value, currency)} {currency}"


def _context(order: Order, action: OutboundAction) -> dict[str, Any]:
    from fulfillment.models import Shipment

    cur = order.currency
    number = order.order_number or order.external_id
    lines = [
        {
            "title": line.title or line.sku,
            "sku": line.sku,
            "quantity": line.quantity,
            "unit_price": _money(line.unit_price, cur),
            "total": _money(line.gross - line.discount_allocation, cur),
        }
        for line in order_lines(order)
    ]
    shipments = Shipment.objects.filter(order_id=order.pk).exclude(tracking_number="")
    shipment_id = (action.payload or {}).get("shipment_id")
    if shipment_id:
        shipments = shipments.filter(pk=shipment_id)
    carrier_message = ""
    if event_id := (action.payload or {}).get("tracking_event_id"):
        from fulfillment.models import TrackingEvent

        event = TrackingEvent.objects.filter(pk=event_id, order_id=order.pk).first()
        carrier_message = event.message if event is not None else ""
    survey_url = ""
    if settings.SURVEY_URL:
        survey_url = web_link(
            str(settings.SURVEY_URL).format(order_number=quote(number, safe=""), order_id=order.pk)
        )
    return {
        "survey_url": survey_url,
        # The customer's status page (a fresh signed link, valid STATUS_LINK_MAX_AGE_DAYS).
        "status_url": status_url(order),
        "carrier_message": carrier_message,
        "shop_name": order.channel.name or order.channel.slug,
        "order_number": number,
        "customer_name": order.customer.name if order.customer else "",
        "placed_at": order.placed_at,
        "lines": lines,
        "subtotal": _money(order.subtotal, cur),
        "discount": _money(order.discount_total, cur) if order.discount_total else "",
        "shipping": _money(order.shipping_total, cur),
        "tax": _money(order.tax_total, cur),
        "total": _money(order.total, cur),
        "taxes_included": order.taxes_included,
        "shipments": [
            {
                "carrier": s.carrier,
                "tracking_number": s.tracking_number,
                "tracking_url": web_link(s.tracking_url),  # a link only when https
                "service_level": s.service_level,
            }
            for s in shipments.order_by("pk")
        ],  # fmt: skip
    }


class EmailNotifyAdapter:
    target = "email"

    def perform(self, action: OutboundAction) -> dict[str, Any]:
        template = str((action.payload or {}).get("template") or "order_confirmation")
        if template not in SUBJECTS:
            raise DownstreamError(f"unknown email template {template!r}", retryable=False)
        order = order_of(action)
        if template in MARKETING_TEMPLATES and not (
            order.customer is not None and order.customer.accepts_marketing
        ):
            # Consent withdrawn (or the customer redacted) since the email was scheduled.
            log.info("notify_email.no_consent", action_id=action.pk, order_id=order.pk)
            return {"sent": False, "reason": "no_marketing_consent", "template": template}
        recipient = (order.customer.email if order.customer else "").strip()
        if not recipient:
            log.info("notify_email.no_recipient", action_id=action.pk, order_id=order.pk)
            return {"sent": False, "reason": "no_recipient", "template": template}
        context = _context(order, action)
        if template in PARCEL_TEMPLATES and not context["shipments"]:
            # The shipment has no tracking number yet; it will (or a person looks).
            raise DownstreamError(
                f"shipping confirmation for order {order.pk}: no tracking number yet",
                retryable=True,
            )
        attachments: list[tuple[str, bytes, str]] = []
        if template in REFUND_TEMPLATES:
            context.update(_refund_context(order, action))
        elif template in RETURN_TEMPLATES:
            context.update(_return_context(order, action, template, attachments))
        subject = SUBJECTS[template].format(number=context["order_number"])
        message_id = message_id_for(action.idempotency_key)
        message = EmailMultiAlternatives(
            subject=subject,
            body=render_to_string(f"emails/{template}.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[recipient],
            headers={"Message-ID": message_id,
                     correlation.HEADER: action.correlation_id or correlation.get()},
        )  # fmt: skip
        message.attach_alternative(
            render_to_string(f"emails/{template}.html", context), "text/html"
        )
        for name, content, mimetype in attachments:
            message.attach(name, content, mimetype)
        try:
            message.send(fail_silently=False)
        # The exceptions' own text can quote the recipient: our messages name only the code.
        except smtplib.SMTPRecipientsRefused as exc:
            raise DownstreamError("the mail server refused the recipient", retryable=False) from exc
        except smtplib.SMTPResponseException as exc:
            code = int(exc.smtp_code)
            raise DownstreamError(
                f"the mail server answered SMTP {code}", retryable=code < 500, status=code
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DownstreamError(
                f"could not send the email ({type(exc).__name__})", retryable=True
            ) from exc
        log.info("notify_email.sent", action_id=action.pk, order_id=order.pk, template=template)
        return {"sent": True, "template": template, "message_id": message_id}


def _refund_context(order: Order, action: OutboundAction) -> dict[str, Any]:
    from orders.models import Refund

    refund = Refund.objects.filter(pk=(action.payload or {}).get("refund_id"), order_id=order.pk)
    found = refund.first()
    if found is None:
        raise DownstreamError(f"action {action.pk} has no refund to announce", retryable=False)
    cur = found.currency
    return {
        "refund_reference": found.reference,
        "refund_amount": _money(found.amount, cur),
        "refund_payments": [
            {"method": p.method, "amount": _money(p.amount, cur)}
            for p in found.payments.order_by("pk")
        ],
        "refund_lines": [
            {
                "title": ln.order_line.title or ln.order_line.sku,
                "quantity": ln.quantity,
                "amount": _money(ln.amount + ln.tax, cur),
            }
            for ln in found.lines.select_related("order_line").order_by("order_line__line_no")
        ],  # fmt: skip
    }


def _return_context(
    order: Order, action: OutboundAction, template: str, attachments: list[tuple[str, bytes, str]]
) -> dict[str, Any]:
    from fulfillment.models import Return

    ret = Return.objects.filter(pk=(action.payload or {}).get("return_id"), order_id=order.pk)
    found = ret.first()
    if found is None:
        raise DownstreamError(f"action {action.pk} has no return to announce", retryable=False)
    context: dict[str, Any] = {
        "rma_number": found.rma_number,
        "reason": found.decision_note,
        "label_carrier": found.label_carrier,
        "return_lines": [
            {"title": ln.order_line.title or ln.sku, "quantity": ln.quantity}
            for ln in found.lines.select_related("order_line").order_by("pk")
        ],
    }
    if template == "return_label":
        pdf = bytes(found.label_pdf) if found.label_pdf else b""
        label_url = web_link(found.label_url) if found.label_url else ""
        if not pdf and not label_url:
            # The label is bought by its own outbox action: wait for it, then send.
            raise DownstreamError(
                f"return label email for return {found.pk}: no label yet", retryable=True
            )
        if pdf:
            attachments.append((f"return-label-{found.rma_number}.pdf", pdf, "application/pdf"))
        context.update(label_attached=bool(pdf), label_url=label_url)
    return context
