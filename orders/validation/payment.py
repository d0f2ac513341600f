"""Payment eligibility: may this order go on with the payment it has?

Consumers need a payment method their channel accepts and a payment that is authorized or
captured. Business accounts buying on net terms need finance's approval and room under their
credit limit: open exposure (their unpaid net-terms orders) plus this order. Amounts are
compared in one currency only: there is no conversion, so a different currency fails.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Sum

from orders import money
from orders.models import (
    AccountType,
    Customer,
    IncidentCategory,
    Order,
    OrderStatus,
    PaymentStatus,
)
from orders.validation.outcomes import FAILED, CheckResult

NET_TERMS_METHOD = "net_terms"
CONSUMER_SECURED = {PaymentStatus.AUTHORIZED, PaymentStatus.PAID, PaymentStatus.PARTIALLY_REFUNDED}


def accepted_methods(channel_kind: str) -> set[str] | None:
    """The payment methods a kind of channel accepts, lower-cased; None: every method.

    ``settings.ACCEPTED_PAYMENT_METHODS = {"shopify": ["shopify_payments", "paypal"], ...}``.
    """
    configured: dict[str, Any] = settings.ACCEPTED_PAYMENT_METHODS or {}
    if channel_kind not in configured:
        return None
    return {str(m).strip().lower() for m in configured[channel_kind]}


def _fmt(amount: Decimal, currency: str) -> str:
    return f"{money.normalize(amount, currency)} {currency}"


class PaymentEligibilityCheck:
    name = "payment"

    def run(self, order: Order) -> CheckResult:
        customer = order.customer
        method = (order.payment_method or "").strip().lower()
        if (
            customer is not None
            and customer.account_type == AccountType.BUSINESS
            and (
                method == NET_TERMS_METHOD
                or order.payment_status in (PaymentStatus.PENDING, PaymentStatus.NET_TERMS)
            )
        ):
            return self._net_terms(order, customer)
        return self._consumer(order, method)

    def _fail(self, message: str, **details: Any) -> CheckResult:
        return CheckResult(
            outcome=FAILED,
            message=message,
            incident_category=IncidentCategory.PAYMENT_INELIGIBLE,
            key=self.name,
            details=details,
        )

    def _consumer(self, order: Order, method: str) -> CheckResult:
        if method == NET_TERMS_METHOD:
            return self._fail(
                "Net terms are only for business accounts approved by finance",
                payment_method=method,
            )
        accepted = accepted_methods(order.channel.kind)
        if accepted is not None:
            # Shopify joins several gateways with "+" (gift card + card): each must be accepted.
            parts = [p.strip() for p in method.split("+") if p.strip()]
            refused = [p for p in parts if p not in accepted]
            if not parts or refused:
                shown = ", ".join(refused) or "none"
                return self._fail(
                    f"Payment method {shown} is not accepted on {order.channel.kind} orders",
                    payment_method=method, accepted=sorted(accepted),
                )  # fmt: skip
        if order.payment_status not in CONSUMER_SECURED:
            return self._fail(
                f"The payment is {order.payment_status}: it must be authorized or captured",
                payment_status=order.payment_status,
            )
        return CheckResult.passed(
            f"Payment {order.payment_status}", payment_status=order.payment_status,
            payment_method=method,
        )  # fmt: skip

    def _net_terms(self, order: Order, customer: Customer) -> CheckResult:
        if not customer.net_terms_approved:
            return self._fail(
                "The business account is not approved for net terms",
                customer_id=customer.pk,
            )
        if customer.net_terms_days <= 0:
            return self._fail(
                "The business account has no net-terms payment period (0 days)",
                customer_id=customer.pk,
            )
        limit_currency = customer.credit_currency
        if order.currency != limit_currency:
            return self._fail(
                f"The order is in {order.currency} but the credit limit is in {limit_currency}: "
                "amounts in different currencies are not converted",
                customer_id=customer.pk, currency=order.currency, credit_currency=limit_currency,
            )  # fmt: skip
        open_by_currency = dict(
            Order.objects.filter(customer=customer, payment_status=PaymentStatus.NET_TERMS)
            .exclude(status=OrderStatus.CANCELLED)
            .exclude(pk=order.pk)
            .values("currency")
            .annotate(open=Sum("total"))
            .values_list("currency", "open")
        )
        foreign = sorted(c for c in open_by_currency if c != limit_currency)
        if foreign:
            return self._fail(
                f"Open net-terms exposure in {', '.join(foreign)} cannot be compared with the "
                f"credit limit in {limit_currency} (no currency conversion)",
                customer_id=customer.pk, currencies=foreign,
            )  # fmt: skip
        exposure = money.quantize(
            open_by_currency.get(limit_currency) or Decimal(0), limit_currency,
            rounding=money.ROUND_HALF_UP,
        )  # fmt: skip
        details = {
            "customer_id": customer.pk,
            "open_exposure": str(exposure),
            "order_total": str(order.total),
            "credit_limit": str(customer.credit_limit),
            "currency": limit_currency,
        }
        if exposure + order.total > customer.credit_limit:
            return self._fail(
                f"Open net-terms exposure {_fmt(exposure, limit_currency)} + this order "
                f"{_fmt(order.total, limit_currency)} exceeds the credit limit "
                f"{_fmt(customer.credit_limit, limit_currency)}",
                **details,
            )
        return CheckResult.passed(
            f"Net terms: {_fmt(exposure + order.total, limit_currency)} of the credit limit "
            f"{_fmt(customer.credit_limit, limit_currency)} used",
            **details,
        )
