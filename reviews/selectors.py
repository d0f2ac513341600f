"""Reads of review cases for the API, the admin and the review workspace, and of incidents for
the incidents screen.

The workspace's case page reads everything a reviewer needs in one place (``case_context``):
the score in words, the customer's history, both addresses with the address check's verdict,
how our own parcels to that postal area fared per carrier, the stock held for the order and the
order's timeline, each as the reviewer's role may see it (``orders.personal_data``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, F, Q, QuerySet, Sum, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from orders import money
from orders.models import (
    Incident,
    IncidentCategory,
    IncidentStatus,
    Order,
    OrderEvent,
    OrderStatus,
    Refund,
)
from orders.personal_data import address_for, snapshot_for
from orders.selectors import incident_list, incident_trend
from reviews.models import PERM_REVIEW, FraudSettings, ReviewCase


def review_case_list(
    *, reviewer: Any = None, unresolved_only: bool = False
) -> QuerySet[ReviewCase]:
    """The queue: soonest SLA first; optionally only a reviewer's cases or the unresolved ones."""
    qs = ReviewCase.objects.select_related(
        "order", "order__channel", "assignee", "decided_by"
    ).order_by("sla_due_at", "id")
    if unresolved_only:
        qs = qs.unresolved()
    if reviewer is not None:
        qs = qs.filter(assignee=reviewer)
    return qs


def review_case_for_order(*, order_id: int) -> ReviewCase | None:
    """The order's case that still needs a person, if any."""
    return ReviewCase.objects.unresolved().filter(order_id=order_id).first()


# --- incidents -----------------------------------------------------------------------------
TREND_DAYS = 30
WINDOWS = (("today", 1), ("7d", 7), ("30d", 30))


@dataclass
class CategoryFigures:
    """One category's incidents (first seen) and occurrences per window, and its 7-day trend."""

    category: str
    label: str
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # window -> (inc, occ)
    open: int = 0  # open or acknowledged now, whenever first seen
    last7: int = 0  # occurrences of the incidents first seen in the last 7 days
    prev7: int = 0  # ... in the 7 days before

    @property
    def delta(self) -> int:
        return self.last7 - self.prev7

    @property
    def delta_percent(self) -> int | None:
        """Change vs the previous 7 days in whole percent; None when there was nothing."""
        return None if self.prev7 == 0 else round(100 * self.delta / self.prev7)


@dataclass
class IncidentOverview:
    today: date
    days: list[date]
    categories: list[CategoryFigures]  # every category seen in 30 days or open now
    per_day: dict[str, list[int]]  # category -> occurrences per day of ``days``
    top: list[CategoryFigures]  # by occurrences in the last 7 days, at most 3


def incident_overview(*, now: datetime | None = None) -> IncidentOverview:
    """What keeps breaking: per category, the incidents first seen today (UTC), in 7 and in 30
    days with their occurrences; the per-day series for the trend chart; the top 3 categories
    by occurrences in the last 7 days with the previous 7 days beside them. Two queries (the
    trend of ``orders.selectors.incident_trend`` and the open counts)."""
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    start = today - timedelta(days=TREND_DAYS - 1)
    since = datetime.combine(start, datetime.min.time(), tzinfo=UTC)
    rows = incident_trend(queryset=Incident.objects.filter(first_seen_at__gte=since))
    open_now = dict(
        Incident.objects.exclude(status=IncidentStatus.RESOLVED)
        .order_by()
        .values("category")
        .annotate(n=Count("id"))
        .values_list("category", "n")
    )
    labels = dict(IncidentCategory.choices)
    figures: dict[str, CategoryFigures] = {}

    def of(category: str) -> CategoryFigures:
        if category not in figures:
            figures[category] = CategoryFigures(category, labels.get(category, category),
                                                {w: (0, 0) for w, _ in WINDOWS})  # fmt: skip
        return figures[category]

    days = [start + timedelta(days=n) for n in range(TREND_DAYS)]
    per_day: dict[str, list[int]] = {}
    for row in rows:
        fig, age = of(row["category"]), (today - row["day"]).days
        for window, length in WINDOWS:
            if 0 <= age < length:
                inc, occ = fig.counts[window]
                fig.counts[window] = (inc + row["incidents"], occ + (row["occurrences"] or 0))
        if 0 <= age < 7:
            fig.last7 += row["occurrences"] or 0
        elif 7 <= age < 14:
            fig.prev7 += row["occurrences"] or 0
        if 0 <= age < TREND_DAYS:
            series = per_day.setdefault(row["category"], [0] * TREND_DAYS)
            series[TREND_DAYS - 1 - age] += row["occurrences"] or 0
    for category, n in open_now.items():
        of(category).open = n
    ordered = sorted(figures.values(), key=lambda f: (-f.counts["30d"][1], -f.open, f.category))
    top = sorted((f for f in ordered if f.last7), key=lambda f: (-f.last7, f.category))[:3]
    return IncidentOverview(today=today, days=days, categories=ordered, per_day=per_day, top=top)


def incidents_unresolved(*, category: str) -> QuerySet[Incident]:
    """The open and acknowledged incidents of one category, most recently seen first."""
    return (
        incident_list()
        .select_related("acknowledged_by")
        .filter(category=category)
        .exclude(status=IncidentStatus.RESOLVED)
    )


# --- the workspace queue -----------------------------------------------------------------------
# The reasons ``reviews.fraud`` writes, by kind: (words on the filter, text the reason holds).
REASON_KINDS: dict[str, tuple[str, str]] = {
    "score": ("Risk score over the threshold", "risk score "),
    "international": ("International order", "international order"),
    "high_value": ("High-value order", "high-value order"),
    "first_time_mismatch": ("First-time customer, addresses differ", "first-time customer with"),
}


@dataclass(frozen=True)
class QueueFilters:
    """The queue's filters as the request gave them (all optional)."""

    channel: str = ""
    reason: str = ""
    overdue: bool = False
    mine: bool = False

    @classmethod
    def from_query(cls, query: Any) -> QueueFilters:
        reason = str(query.get("reason") or "")
        return cls(
            channel=str(query.get("channel") or "").strip(),
            reason=reason if reason in REASON_KINDS else "",
            overdue=query.get("overdue") == "1",
            mine=query.get("mine") == "1",
        )

    def as_query(self) -> dict[str, str]:
        """The filters as query parameters (only the set ones), to carry them from page to page."""
        out = {"channel": self.channel, "reason": self.reason,
               "overdue": "1" if self.overdue else "",
               "mine": "1" if self.mine else ""}  # fmt: skip
        return {k: v for k, v in out.items() if v}


def review_queue(*, filters: QueueFilters, user: Any, now: datetime | None = None
                 ) -> QuerySet[ReviewCase]:  # fmt: skip
    """The unresolved cases, soonest SLA first, then the riskiest (highest score) first."""
    qs = ReviewCase.objects.unresolved().select_related("order", "order__channel", "assignee")
    if filters.channel:
        qs = qs.filter(order__channel__slug=filters.channel)
    if filters.reason:
        # The reasons are a JSON list of sentences: match the kind's words in its text (the
        # same on SQLite and PostgreSQL).
        qs = qs.annotate(reasons_text=Cast("reasons", TextField())).filter(
            reasons_text__icontains=REASON_KINDS[filters.reason][1]
        )
    if filters.overdue:
        qs = qs.filter(sla_due_at__lt=now or timezone.now())
    if filters.mine:
        qs = qs.filter(assignee_id=user.pk)
    return qs.order_by("sla_due_at", F("score").desc(nulls_last=True), "id")


def review_queue_neighbours(*, case_id: int, filters: QueueFilters, user: Any
                            ) -> tuple[int | None, int | None]:  # fmt: skip
    """The cases before and after ``case_id`` in queue order (wrapping round; None when the
    case is the only one). A case no longer in the queue (just decided) is placed where its
    SLA and score put it, so "next" is the one that followed it."""
    case = ReviewCase.objects.filter(pk=case_id).values("sla_due_at", "score").first()
    rows = list(review_queue(filters=filters, user=user).values_list("pk", "sla_due_at", "score"))
    others = [r for r in rows if r[0] != case_id]
    if not others:
        return None, None
    if case is None:
        return others[-1][0], others[0][0]

    def key(row: tuple[int, datetime, Decimal | None]) -> tuple[datetime, Decimal, int]:
        # The queue's order as a sort key: SLA up, score down (no score last), id up.
        return (row[1], -(row[2] if row[2] is not None else Decimal("-1")), row[0])

    here = key((case_id, case["sla_due_at"], case["score"]))
    after = [r for r in others if key(r) > here]
    before = [r for r in others if key(r) < here]
    nxt = after[0][0] if after else others[0][0]
    prev = before[-1][0] if before else others[-1][0]
    return prev, nxt


def reviewers_list() -> list[Any]:
    """The active staff who may decide reviews (through a group, directly, or as superuser)."""
    app_label, codename = PERM_REVIEW.split(".")
    perm = Q(content_type__app_label=app_label, codename=codename)
    from django.contrib.auth.models import Permission

    perm_ids = list(Permission.objects.filter(perm).values_list("pk", flat=True))
    users = get_user_model().objects.filter(is_active=True, is_staff=True).filter(
        Q(is_superuser=True) | Q(groups__permissions__in=perm_ids)
        | Q(user_permissions__in=perm_ids)
    )  # fmt: skip
    return list(users.distinct().order_by("username"))


# --- the case page -----------------------------------------------------------------------------
# Each fraud signal (reviews.fraud) as a sentence a reviewer reads; the evidence follows it.
SIGNAL_WORDS: dict[str, str] = {
    "country_mismatch": "Billing and shipping are in different countries.",
    "name_mismatch": "The billing and shipping names differ.",
    "first_time_customer": "This customer has never ordered from us before.",
    "customer_history": "The order is far larger than this customer usually spends.",
    "channel_median": "The order is far larger than this channel's typical order.",
    "international": "The parcel goes abroad.",
    "high_value": "The order is of high value.",
    "unusual_quantity": "Unusually many units of one product.",
    "disposable_email": "The email address is at a throwaway-mail service.",
    "velocity_email": "Many orders from one email address within a day.",
    "velocity_card": "Many orders with one payment card within a day.",
    "velocity_ip": "Many orders from one internet address within a day.",
    "channel_risk": "The sales channel's own fraud analysis rates the order risky.",
    "avs_mismatch": "The card's address check (AVS) did not match.",
    "cvv_mismatch": "The card's security code (CVV) did not match.",
}

# Chargebacks: reconciliation's dispute category (TxCategory.DISPUTE) and the refund reasons
# the Amazon adapter gives chargebacks and A-to-z guarantee claims.
DISPUTE_CATEGORY = "dispute"
CHARGEBACK_REFUND_REASONS = ("chargeback", "guarantee_claim")

# Carrier delivery confidence: parcels that arrived vs parcels that did not.
DELIVERED = ("delivered",)
FAILED = ("exception", "returned")
FAILED_TRACKING = ("exception", "failed_attempt", "return_to_sender")
POSTAL_AREA_CHARS = 3
MIN_SAMPLE = 5  # fewer parcels than this: the rate is shown but called thin


@dataclass(frozen=True)
class SignalRow:
    name: str
    words: str
    weight: int
    evidence: str


@dataclass(frozen=True)
class History:
    """The customer's other orders (this one left out)."""

    guest: bool
    orders: int = 0
    cancelled: int = 0
    value: list[tuple[str, Decimal]] = field(default_factory=list)  # per currency, not cancelled
    returns: int = 0
    chargebacks: int = 0
    chargeback_value: list[tuple[str, Decimal]] = field(default_factory=list)
    cities: list[str] = field(default_factory=list)  # newest first, distinct


@dataclass(frozen=True)
class CarrierRate:
    carrier: str
    delivered: int
    failed: int
    troubled: int  # delivered, but after an exception or a failed attempt

    @property
    def sample(self) -> int:
        return self.delivered + self.failed

    @property
    def rate(self) -> Decimal | None:
        if not self.sample:
            return None
        return (Decimal(self.delivered) * 100 / self.sample).quantize(Decimal("0.1"))

    @property
    def thin(self) -> bool:
        return self.sample < MIN_SAMPLE


@dataclass(frozen=True)
class DeliveryConfidence:
    country: str
    area: str  # the postal code's first characters, upper case, no spaces
    carriers: list[CarrierRate]
    overall: CarrierRate

    @property
    def known(self) -> bool:
        return bool(self.country and self.area)


@dataclass(frozen=True)
class HeldStock:
    sku: str
    quantity: int
    warehouse: str
    status: str
    expires_at: datetime
    active: bool
    expires_before_sla: bool


@dataclass(frozen=True)
class TimelineRow:
    at: datetime
    actor: str
    action: str
    change: str
    data: Any

    @property
    def data_text(self) -> str:
        """The event's data on one line (already redacted for the viewer)."""
        if not self.data:
            return ""
        return json.dumps(self.data, default=str, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class CaseContext:
    case: ReviewCase
    order: Order
    threshold: int
    signals: list[SignalRow]
    history: History
    shipping: dict[str, Any]
    billing: dict[str, Any]
    billing_same: bool
    differs: list[str]
    address_rows: list[tuple[str, str, str, bool]]  # label, billing, shipping, differ
    verdict: dict[str, Any]
    delivery: DeliveryConfidence
    reservations: list[HeldStock]
    timeline: list[TimelineRow]


def signal_rows(case: ReviewCase) -> list[SignalRow]:
    """The score's signals in words, heaviest first."""
    rows = []
    for s in case.signals or []:
        if not isinstance(s, dict):
            continue
        name = str(s.get("name") or "")
        rows.append(SignalRow(
            name=name, words=SIGNAL_WORDS.get(name, name.replace("_", " ").capitalize() + "."),
            weight=int(s.get("weight") or 0), evidence=str(s.get("evidence") or ""),
        ))  # fmt: skip
    return sorted(rows, key=lambda r: (-r.weight, r.name))


def customer_history(order: Order) -> History:
    """Count, value per currency, returns, chargebacks and last cities of the customer's other
    orders. A chargeback is recorded two ways: a payment processor's dispute transaction on the
    order (reconciliation's imports, read through the order's relation: this app may not import
    reconciliation) or a channel refund whose reason is a chargeback or guarantee claim (Amazon's
    Finances events, ``channels.adapters.amazon``)."""
    from fulfillment.models import Return, ReturnStatus

    if order.customer_id is None:
        return History(guest=True)
    others = Order.objects.filter(customer_id=order.customer_id).exclude(pk=order.pk)
    counts = others.aggregate(n=Count("pk"), cancelled=Count("pk", filter=Q(
        status=OrderStatus.CANCELLED)))  # fmt: skip
    value = [
        (row["currency"], money.normalize(row["value"], row["currency"]))
        for row in others.exclude(status=OrderStatus.CANCELLED).values("currency")
        .annotate(value=Sum("total")).order_by("currency")
    ]  # fmt: skip
    returns = Return.objects.filter(order__in=others).exclude(status=ReturnStatus.REJECTED).count()
    chargebacks = 0
    taken_back: dict[str, Decimal] = defaultdict(Decimal)
    disputes = (
        others.filter(processor_transactions__category=DISPUTE_CATEGORY)
        .values("processor_transactions__currency")
        .annotate(n=Count("processor_transactions"), value=Sum("processor_transactions__amount"))
        .order_by()
    )
    for row in disputes:
        chargebacks += row["n"]
        # The processor reports the money taken back as a negative amount.
        taken_back[row["processor_transactions__currency"]] += abs(row["value"] or 0)
    refunds = (
        Refund.objects.filter(order__in=others, reason__in=CHARGEBACK_REFUND_REASONS)
        .values("currency").annotate(n=Count("pk"), value=Sum("amount")).order_by()
    )  # fmt: skip
    for row in refunds:
        chargebacks += row["n"]
        taken_back[row["currency"]] += abs(row["value"] or 0)
    chargeback_value = [(currency, money.normalize(amount, currency))
                        for currency, amount in sorted(taken_back.items())]  # fmt: skip
    cities: list[str] = []
    for address in others.order_by("-placed_at", "-pk").values_list("shipping_address", flat=True)[
        :50
    ]:
        address = address or {}
        city = str(address.get("city") or "").strip()
        if not city:
            continue
        label = f"{city} ({str(address.get('country_code') or '').upper()})".replace(" ()", "")
        if label not in cities:
            cities.append(label)
        if len(cities) == 5:
            break
    return History(guest=False, orders=counts["n"], cancelled=counts["cancelled"], value=value,
                   returns=returns, chargebacks=chargebacks, chargeback_value=chargeback_value,
                   cities=cities)  # fmt: skip


def postal_area(address: dict[str, Any] | None) -> tuple[str, str]:
    """(country, postal area): the postal code's first characters, spaces left out (ZIP3 in
    the US, the forward sortation area in Canada, the outward code's start in the UK)."""
    address = address or {}
    country = str(address.get("country_code") or "").upper()
    code = "".join(str(address.get("postal_code") or "").split()).upper()
    return country, code[:POSTAL_AREA_CHARS]


def delivery_confidence(order: Order) -> DeliveryConfidence:
    """How our own past parcels to the order's postal area fared, per carrier: delivered vs
    exception or returned (parcels still on their way are left out), from the shipments and
    their tracking events."""
    from fulfillment.models import Shipment

    country, area = postal_area(order.shipping_address)
    empty = CarrierRate(carrier="all carriers", delivered=0, failed=0, troubled=0)
    if not country or not area:
        return DeliveryConfidence(country=country, area=area, carriers=[], overall=empty)
    parcels = (
        Shipment.objects.exclude(order_id=order.pk)
        .filter(order__shipping_address__country_code__iexact=country,
                order__shipping_address__postal_code__istartswith=area[0],
                status__in=(*DELIVERED, *FAILED))
    )  # fmt: skip
    per_carrier: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    rows = parcels.annotate(
        troubles=Count("tracking_events", filter=Q(tracking_events__status__in=FAILED_TRACKING))
    ).values_list("carrier", "status", "order__shipping_address", "troubles")
    for carrier, status, address, troubles in rows:
        # Spaces in postal codes vary (K1A0A9, K1A 0A9): compare the area in Python.
        if postal_area(address)[1] != area:
            continue
        counts = per_carrier[carrier or "unknown"]
        if status in DELIVERED:
            counts[0] += 1
            if troubles:
                counts[2] += 1
        else:
            counts[1] += 1
    carriers = [CarrierRate(carrier=c, delivered=d, failed=f, troubled=t)
                for c, (d, f, t) in sorted(per_carrier.items())]  # fmt: skip
    overall = CarrierRate(
        carrier="all carriers", delivered=sum(c.delivered for c in carriers),
        failed=sum(c.failed for c in carriers), troubled=sum(c.troubled for c in carriers),
    )  # fmt: skip
    return DeliveryConfidence(country=country, area=area, carriers=carriers, overall=overall)


def held_stock(order: Order, *, sla_due_at: datetime) -> list[HeldStock]:
    """The order's reservations: what is held in which warehouse until when (active first)."""
    from fulfillment.models import Reservation, ReservationStatus

    rows = []
    for r in (
        Reservation.objects.filter(order_id=order.pk)
        .select_related("warehouse")
        .order_by("sku", "pk")
    ):
        active = r.status == ReservationStatus.ACTIVE
        rows.append(HeldStock(
            sku=r.sku, quantity=r.quantity,
            warehouse=r.warehouse.code + (f" ({r.warehouse.name})" if r.warehouse.name else ""),
            status=r.get_status_display(), expires_at=r.expires_at, active=active,
            expires_before_sla=active and r.expires_at < sla_due_at,
        ))  # fmt: skip
    return sorted(rows, key=lambda h: (not h.active, h.sku))


def order_timeline(order: Order, user: Any) -> list[TimelineRow]:
    """The order's audit events, oldest first, their data as ``user`` may see it."""
    rows = []
    for e in OrderEvent.objects.filter(order_id=order.pk).order_by("at", "id"):
        change = f"{e.from_state} -> {e.to_state}" if e.from_state or e.to_state else ""
        rows.append(TimelineRow(at=e.at, actor=f"{e.actor_kind}:{e.actor_id}".rstrip(":"),
                                action=e.action, change=change,
                                data=snapshot_for(user, e.data)))  # fmt: skip
    return rows


ADDRESS_COMPARED = ("name", "company", "line1", "line2", "city", "region_code", "postal_code",
                    "country_code")  # fmt: skip
ADDRESS_ROWS = (("Name", ("name",)), ("Company", ("company",)), ("Street", ("line1", "line2")),
                ("City", ("city",)), ("Region", ("region_code", "region")),
                ("Postal code", ("postal_code",)), ("Country", ("country_code",)))  # fmt: skip


def _address_rows(billing: dict[str, Any], shipping: dict[str, Any], differs: list[str],
                  same: bool) -> list[tuple[str, str, str, bool]]:  # fmt: skip
    """Billing and shipping side by side, one row per part, as the viewer may see them (a part
    the viewer may not see is blank on both sides; ``differs`` still names it)."""

    def part(address: dict[str, Any], keys: tuple[str, ...]) -> str:
        return " ".join(str(address.get(k)) for k in keys if address.get(k)).strip()

    rows = []
    for label, keys in ADDRESS_ROWS:
        ship = part(shipping, keys)
        bill = (
            "(same as shipping)"
            if same and label == "Name"
            else ("" if same else part(billing, keys))
        )
        rows.append((label, bill, ship, any(k in differs for k in keys)))
    return rows


def case_context(case: ReviewCase, user: Any) -> CaseContext:
    """Everything the case page shows, read for ``user`` (street lines only with
    ``orders.view_contact_details``, audit data whole only with ``orders.view_raw_payload``)."""
    order = Order.objects.select_related("channel", "customer").get(pk=case.order_id)
    shipping_whole, billing_whole = order.shipping_address or {}, order.billing_address or {}
    # Compare the whole addresses (a street differs even when the reviewer cannot see it), but
    # name only the parts of it that were compared, never their values.
    differs = [
        key for key in ADDRESS_COMPARED
        if billing_whole and str(billing_whole.get(key) or "").strip().casefold()
        != str(shipping_whole.get(key) or "").strip().casefold()
    ]  # fmt: skip
    verdict = {
        "deliverability": order.get_address_deliverability_display() or "Not checked",
        "code": order.address_deliverability,
        "confidence": order.address_confidence,
        "source": order.address_source or "",
        "checked_at": order.address_checked_at,
    }
    shipping, billing = address_for(user, shipping_whole), address_for(user, billing_whole)
    return CaseContext(
        case=case, order=order, threshold=FraudSettings.load().review_threshold,
        signals=signal_rows(case), history=customer_history(order),
        shipping=shipping, billing=billing, billing_same=not billing_whole, differs=differs,
        address_rows=_address_rows(billing, shipping, differs, not billing_whole),
        verdict=verdict,
        delivery=delivery_confidence(order),
        reservations=held_stock(order, sla_due_at=case.sla_due_at),
        timeline=order_timeline(order, user),
    )  # fmt: skip
