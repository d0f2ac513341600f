"""The fraud score: explainable signals with weights from ``FraudSettings`` (edited in the admin).

Each signal says what it saw without personal data ("countries US -> DE", never a name, an
email address or an IP). The check never fails an order: it scores it, stores the score on the
order and asks for a review when the score reaches the threshold or a case that is always
reviewed applies (international, high value, first-time customer with differing billing and
shipping addresses).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Func, Q, QuerySet, Subquery

from orders import money
from orders.fingerprints import fingerprint
from orders.models import Order, OrderStatus
from orders.validation import PASSED, CheckResult
from reviews.models import FraudSettings

# The score is stored in Order.risk_score (max 9999.99).
MAX_SCORE = 9999
VELOCITY_WINDOW = timedelta(hours=24)
HISTORY_LIMIT = 200  # recent orders used for averages and medians

# AVS result codes (Visa/Mastercard as Shopify and the gateways pass them on).
AVS_NO_MATCH = {"N", "C", "I"}
AVS_PARTIAL = {"A", "B", "P", "W", "Z"}
CVV_NO_MATCH = {"N"}


@dataclass(frozen=True)
class Signal:
    name: str
    weight: int
    evidence: str


def _disposable_domains() -> frozenset[str] | set[str]:
    try:
        from disposable_email_domains import blocklist
    except ImportError:  # the package is a pinned dependency; keep a floor if it is missing
        return FALLBACK_DISPOSABLE
    return blocklist


FALLBACK_DISPOSABLE = frozenset(
    {
        "mailinator.com",
        "guerrillamail.com",
        "10minutemail.com",
        "tempmail.com",
        "yopmail.com",
        "trashmail.com",
        "sharklasers.com",
        "getnada.com",
        "dispostable.com",
        "throwawaymail.com",
    }
)


def _name(address: dict[str, Any]) -> str:
    name = address.get("name") or " ".join(
        str(address.get(k) or "") for k in ("first_name", "last_name")
    )
    return " ".join(str(name).casefold().split())


def _country(address: dict[str, Any]) -> str:
    return str(address.get("country_code") or "").upper()


def _fmt(amount: Decimal, currency: str) -> str:
    return f"{money.normalize(amount, currency)} {currency}"


def _median(values: list[Decimal]) -> Decimal:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def _earlier_orders(order: Order) -> QuerySet[Order]:
    """The customer's other orders placed before (or with) this one, cancelled ones left out."""
    return (
        Order.objects.filter(customer_id=order.customer_id, placed_at__lte=order.placed_at)
        .exclude(pk=order.pk)
        .exclude(status=OrderStatus.CANCELLED)
    )


class FraudScorer:
    """Computes the signals of one order; ``FraudCheck`` turns them into a check result."""

    def __init__(self, config: FraudSettings) -> None:
        self.config = config

    def signals(self, order: Order) -> tuple[list[Signal], list[str]]:
        """The scored signals, and the reasons that send the order to review whatever the score."""
        c = self.config
        found: list[Signal] = []
        always: list[str] = []
        shipping = order.shipping_address or {}
        billing = order.billing_address or {}
        # An empty billing address means "same as shipping" (many channels leave it out).
        mismatch = False
        if billing:
            ship_country, bill_country = _country(shipping), _country(billing)
            if ship_country and bill_country and ship_country != bill_country:
                mismatch = True
                found.append(
                    Signal(
                        "country_mismatch",
                        c.weight_country_mismatch,
                        f"countries {bill_country} -> {ship_country}",
                    )
                )
            ship_name, bill_name = _name(shipping), _name(billing)
            if ship_name and bill_name and ship_name != bill_name:
                mismatch = True
                found.append(
                    Signal(
                        "name_mismatch", c.weight_name_mismatch, "billing and shipping names differ"
                    )
                )

        first_time = self._first_time(order, found)
        if first_time and mismatch and c.always_review_first_time_mismatch:
            always.append("first-time customer with differing billing and shipping addresses")
        if not first_time:  # a first-time customer has no earlier order to average
            self._customer_history(order, found)
        self._channel_median(order, found)

        home = str(settings.HOME_COUNTRY).upper()
        if order.ship_to_country and order.ship_to_country.upper() != home:
            found.append(
                Signal(
                    "international",
                    c.weight_international,
                    f"ships to {order.ship_to_country.upper()} (home {home})",
                )
            )
            if c.always_review_international:
                always.append(f"international order (ships to {order.ship_to_country.upper()})")

        if (
            order.currency == c.high_value_currency
            and c.high_value_amount > 0
            and order.total >= c.high_value_amount
        ):
            evidence = (
                f"total {_fmt(order.total, order.currency)} >= "
                f"{_fmt(c.high_value_amount, order.currency)}"
            )
            found.append(Signal("high_value", c.weight_high_value, evidence))
            if c.always_review_high_value:
                always.append(f"high-value order ({evidence})")

        self._quantities(order, found)
        self._disposable_email(order, found)
        self._velocity(order, found)
        self._channel_risk(order, found)
        return found, always

    def _first_time(self, order: Order, found: list[Signal]) -> bool:
        c = self.config
        if order.customer_id is None:
            found.append(
                Signal(
                    "first_time_customer",
                    c.weight_first_time_customer,
                    "guest checkout: no customer history",
                )
            )
            return True
        if not _earlier_orders(order).exists():
            found.append(
                Signal(
                    "first_time_customer",
                    c.weight_first_time_customer,
                    "no earlier order by this customer",
                )
            )
            return True
        return False

    def _customer_history(self, order: Order, found: list[Signal]) -> None:
        if order.customer_id is None:
            return
        totals = list(
            _earlier_orders(order)
            .filter(currency=order.currency)
            .order_by("-placed_at", "-pk")
            .values_list("total", flat=True)[:HISTORY_LIMIT]
        )
        if not totals:
            return
        average = sum(totals, Decimal(0)) / len(totals)
        factor = self.config.value_multiplier
        if factor and average > 0 and order.total > average * factor:
            average_q = money.quantize(average, order.currency, rounding=money.ROUND_HALF_UP)
            found.append(
                Signal(
                    "customer_history",
                    self.config.weight_customer_history,
                    f"total {_fmt(order.total, order.currency)} is over {factor}x the customer's "
                    f"average {_fmt(average_q, order.currency)} over {len(totals)} order(s)",
                )
            )

    def _channel_median(self, order: Order, found: list[Signal]) -> None:
        c = self.config
        totals = list(
            Order.objects.filter(channel_id=order.channel_id, currency=order.currency)
            .exclude(pk=order.pk)
            .exclude(status=OrderStatus.CANCELLED)
            .order_by("-placed_at", "-pk")
            .values_list("total", flat=True)[:HISTORY_LIMIT]
        )
        if len(totals) < max(c.channel_median_min_orders, 1):
            return
        median = _median(totals)
        if c.value_multiplier and median > 0 and order.total > median * c.value_multiplier:
            median_q = money.quantize(median, order.currency, rounding=money.ROUND_HALF_UP)
            found.append(
                Signal(
                    "channel_median",
                    c.weight_channel_median,
                    f"total {_fmt(order.total, order.currency)} is over {c.value_multiplier}x the "
                    f"channel's median {_fmt(median_q, order.currency)}",
                )
            )

    def _quantities(self, order: Order, found: list[Signal]) -> None:
        limit = self.config.unusual_quantity
        per_sku: dict[str, int] = defaultdict(int)
        for line in order.lines.all():  # loaded once by the pipeline for every check
            per_sku[line.sku or line.channel_sku or f"line {line.line_no}"] += line.quantity
        unusual = sorted((sku, qty) for sku, qty in per_sku.items() if qty > limit)
        if limit and unusual:
            found.append(
                Signal(
                    "unusual_quantity",
                    self.config.weight_unusual_quantity,
                    ", ".join(f"{sku} x {qty}" for sku, qty in unusual) + f" (more than {limit})",
                )
            )

    def _email(self, order: Order) -> str:
        customer = order.customer  # None, without a query, when the order has no customer
        if customer is None:
            return ""
        return (customer.email or "").strip().lower()

    def _disposable_email(self, order: Order, found: list[Signal]) -> None:
        domain = self._email(order).rpartition("@")[2]
        if domain and domain in _disposable_domains():
            # A public throwaway-mail domain names no one; the address itself is never shown.
            found.append(
                Signal(
                    "disposable_email",
                    self.config.weight_disposable_email,
                    f"email domain {domain} is a disposable-mail service",
                )
            )

    def _velocity_counts(self, order: Order, same: dict[str, Q]) -> dict[str, int]:
        """Orders in the 24 h window matching each condition of ``same``, in one query: one
        scalar count per condition, each a subquery of its own that its index drives (the
        customer's email, the card, the browser address: indexes on ``customer, placed_at``
        and on the ``source`` keys), beside the order's own row. OR-ed in one WHERE, the
        conditions made PostgreSQL read every order of the window, which a busy day fills."""
        if not same:
            return {}
        window = Order.objects.filter(
            placed_at__gt=order.placed_at - VELOCITY_WINDOW, placed_at__lte=order.placed_at
        )
        counts = {
            name: Subquery(window.filter(condition).order_by().annotate(
                n=Func("pk", function="COUNT")).values("n")[:1])
            for name, condition in same.items()
        }  # fmt: skip
        row = Order.objects.filter(pk=order.pk).annotate(**counts).values(*counts).first()
        return {name: int((row or {}).get(name) or 0) for name in same}

    def _velocity(self, order: Order, found: list[Signal]) -> None:
        c = self.config
        source = order.source or {}
        email = self._email(order)
        card = str(source.get("card_fingerprint") or "")
        ip = str(source.get("browser_ip") or "")
        ip_hash = str(source.get("browser_ip_hash") or "") or (fingerprint("ip", ip) if ip else "")
        same: dict[str, Q] = {}
        if email:
            same["email"] = Q(customer__email=email)
        if card:
            same["card"] = Q(source__card_fingerprint=card)
        if ip_hash:
            # Channels may keep only the hash (browser_ip_hash); match either form.
            same["ip"] = Q(source__browser_ip_hash=ip_hash)
            if ip:
                same["ip"] |= Q(source__browser_ip=ip)
        counts = self._velocity_counts(order, same)
        if email:
            count = counts["email"]
            if count > c.velocity_limit:
                found.append(
                    Signal(
                        "velocity_email",
                        c.weight_velocity_email,
                        f"{count} orders from one email address in 24 h (limit {c.velocity_limit})",
                    )
                )
        if card:
            count = counts["card"]
            if count > c.velocity_limit:
                found.append(
                    Signal(
                        "velocity_card",
                        c.weight_velocity_card,
                        f"{count} orders with one card (card#{fingerprint('card', card)})"
                        f" in 24 h (limit {c.velocity_limit})",
                    )
                )
        if ip_hash:
            count = counts["ip"]
            if count > c.velocity_limit:
                found.append(
                    Signal(
                        "velocity_ip",
                        c.weight_velocity_ip,
                        f"{count} orders from one IP (ip#{ip_hash[:12]}) in 24 h "
                        f"(limit {c.velocity_limit})",
                    )
                )

    def _channel_risk(self, order: Order, found: list[Signal]) -> None:
        c = self.config
        source = order.source or {}
        level = str(source.get("risk_level") or "").lower()
        if level == "high":
            found.append(
                Signal(
                    "channel_risk",
                    c.weight_channel_risk_high,
                    "the channel rates the order high risk",
                )
            )
        elif level == "medium":
            found.append(
                Signal(
                    "channel_risk",
                    c.weight_channel_risk_medium,
                    "the channel rates the order medium risk",
                )
            )
        avs = str(source.get("avs_result_code") or "").upper()
        if avs in AVS_NO_MATCH:
            found.append(
                Signal(
                    "avs_mismatch",
                    c.weight_avs_mismatch,
                    f"AVS result {avs}: address and postal code do not match",
                )
            )
        elif avs in AVS_PARTIAL:
            found.append(
                Signal(
                    "avs_mismatch", c.weight_avs_mismatch // 2, f"AVS result {avs}: partial match"
                )
            )
        cvv = str(source.get("cvv_result_code") or "").upper()
        if cvv in CVV_NO_MATCH:
            found.append(
                Signal("cvv_mismatch", c.weight_cvv_mismatch, f"CVV result {cvv}: no match")
            )


class FraudCheck:
    """Scores the order; asks for a review above the threshold or in an always-reviewed case."""

    name = "fraud"

    def run(self, order: Order) -> CheckResult:
        config = FraudSettings.load()
        signals, always = FraudScorer(config).signals(order)
        score = min(sum(s.weight for s in signals), MAX_SCORE)
        scored = [s for s in signals if s.weight > 0]
        risk = {"score": str(score), "signals": [asdict(s) for s in scored]}
        names = ", ".join(s.name for s in scored) or "no signals"
        details = {"score": score, "threshold": config.review_threshold, "always_review": always}

        reasons = []
        if score >= config.review_threshold:
            reasons.append(
                f"risk score {score} >= review threshold {config.review_threshold} ({names})"
            )
        reasons.extend(always)
        if not reasons:
            message = f"Risk score {score} below the review threshold {config.review_threshold}"
            message += f" ({names})"
            return CheckResult(outcome=PASSED, message=message, details=details, risk=risk)
        if order.review_approved_at is not None:
            # A person cleared this order already: it is not sent back on a re-run.
            message = f"Review already approved; would be reviewed for: {'; '.join(reasons)}"
            return CheckResult(outcome=PASSED, message=message[:500], details=details, risk=risk)
        message = "; ".join(reasons)
        message = message[:1].upper() + message[1:]
        return CheckResult(
            outcome=PASSED, message=message[:500], details=details, route="review", risk=risk
        )
