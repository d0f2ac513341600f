"""The automation KPIs (issue 14, item 4): per sales channel and overall, for the orders
RECEIVED in ``[start, end)``. The API (``reviews.api``), the KPI page (``reviews.kpi_views``)
and the weekly summary read them from here, so one definition serves all three.

The cohort is the orders whose ``created_at`` (the moment we stored the order; ``order_create``
writes its ``received`` event in the same transaction) falls in the range. Every figure is
about that cohort, whenever its later events happened, so re-running a past range gives the
same figures as long as nothing more happened to those orders.

- **No human touch**: no ``OrderEvent`` with ``actor_kind = "user"`` (a hold, a release, a
  manual transition, a person's retry of a dead outbound action — ``action_retry_dead``
  writes ``outbound_retried`` as that person) and no ``ReviewCase``. Share of the cohort.
- **Time to fulfil**: from ``created_at`` to the order's first ``OrderEvent`` with
  ``field = "status"`` and ``to_state = "shipped"`` (every parcel out); average and p90
  (nearest rank) in hours, over the cohort's shipped orders.
- **Same day**: the warehouse of the order's first shipped parcel (``Shipment.warehouse``)
  decides, on its own clock (``Warehouse.time_zone``): received before its ``cutoff_time`` ->
  due that local day; received at or after it -> due the next local day. Same day when the
  shipped event's local date is on or before the due day. Share of the shipped orders.
- **Tracking write-back success**: the cohort's ``channel_tracking_sync`` outbound actions that
  finished: succeeded / (succeeded + dead). Those still pending, in flight or waiting for a
  retry are counted apart (``writebacks_open``), not in the rate.
- **Return rate**: shipped orders with at least one return (``fulfillment.Return``, rejected
  ones left out) / shipped orders; per channel and per acquisition source
  (``Order.source["acquisition_source"]``, set by the channel adapters; "(none)" when the
  channel gave none).
- **Reconciliation variance**: ``reconciliation.variance.kpi_variance`` (registered in
  ``orders.figures``: this layer may not import reconciliation) for the local days the range
  covers, per channel and currency: sales, the unexplained total and the variance %. Read
  only: the finance screens save the items, this does not.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from channels.models import SalesChannel
from fulfillment.models import (
    ActionKind,
    ActionStatus,
    OutboundAction,
    Return,
    ReturnStatus,
    Shipment,
    Warehouse,
)
from orders import figures as figures_registry
from orders.figures import VarianceFigure
from orders.models import ActorKind, Order, OrderEvent
from orders.selectors import PIPELINE_SKIPPED
from reviews.models import ReviewCase

NO_SOURCE = "(none)"
HUNDRED = Decimal(100)
CENT = Decimal("0.01")


def percent(part: int, whole: int) -> Decimal | None:
    """``part`` of ``whole`` in percent, two decimals; None when there is nothing to divide."""
    if not whole:
        return None
    return (Decimal(part) * HUNDRED / Decimal(whole)).quantize(CENT)


def hours(seconds: float | Decimal) -> Decimal:
    return (Decimal(str(seconds)) / Decimal(3600)).quantize(CENT)


def p90(values: Sequence[Decimal]) -> Decimal | None:
    """The 90th percentile by nearest rank: the smallest value at or above 90% of them."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def due_day(received: datetime, warehouse: Warehouse) -> date:
    """The local day an order must ship on to count as same day: the day it came in when it
    came in before the warehouse's cut-off, else the next day."""
    local = received.astimezone(ZoneInfo(warehouse.time_zone))
    if local.time() < warehouse.cutoff_time:
        return local.date()
    return local.date() + timedelta(days=1)


def shipped_same_day(received: datetime, shipped: datetime, warehouse: Warehouse) -> bool:
    local_shipped = shipped.astimezone(ZoneInfo(warehouse.time_zone)).date()
    return local_shipped <= due_day(received, warehouse)


@dataclass(frozen=True)
class OrderFacts:
    """What the KPIs need to know of one order of the cohort."""

    order_id: int
    channel_id: int
    received_at: datetime
    acquisition_source: str
    touched: bool
    shipped_at: datetime | None
    same_day: bool | None  # None: not shipped, or no parcel with a warehouse
    returned: bool
    writebacks_succeeded: int
    writebacks_dead: int
    writebacks_open: int


@dataclass(frozen=True)
class KpiFigures:
    orders_received: int
    orders_no_touch: int
    no_touch_percent: Decimal | None
    orders_shipped: int
    avg_hours_to_ship: Decimal | None
    p90_hours_to_ship: Decimal | None
    same_day_counted: int
    same_day_shipped: int
    same_day_percent: Decimal | None
    writebacks_succeeded: int
    writebacks_dead: int
    writebacks_open: int
    writeback_success_percent: Decimal | None
    orders_returned: int
    return_rate_percent: Decimal | None


@dataclass(frozen=True)
class SourceReturns:
    acquisition_source: str
    orders_shipped: int
    orders_returned: int
    return_rate_percent: Decimal | None


@dataclass(frozen=True)
class ChannelKpis:
    slug: str
    name: str
    figures: KpiFigures
    returns_by_source: list[SourceReturns]


@dataclass(frozen=True)
class KpiReport:
    start: datetime
    end: datetime
    channel: str | None
    overall: KpiFigures
    channels: list[ChannelKpis]
    returns_by_source: list[SourceReturns]
    variance: list[VarianceFigure] = field(default_factory=list)


def local_days(first: date, last: date) -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC for the local days ``first`` to ``last`` (both included) in
    ``TIME_ZONE``: what the API's ``from`` and ``to`` mean."""
    zone = ZoneInfo(settings.TIME_ZONE)
    start = datetime.combine(first, time.min, zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time.min, zone).astimezone(UTC)
    return start, end


def week_of(day: date) -> date:
    """The Monday of ``day``'s ISO week."""
    return day - timedelta(days=day.weekday())


def cohort(
    *, start: datetime, end: datetime, channel: SalesChannel | None = None
) -> QuerySet[Order]:
    """The orders received in ``[start, end)``, of one channel when given; not those recorded
    without their pipeline on purpose (a generated finance month's history: ``PIPELINE_SKIPPED``
    on their timeline), which were never ours to automate."""
    qs = Order.objects.filter(created_at__gte=start, created_at__lt=end).exclude(
        events__action=PIPELINE_SKIPPED
    )
    if channel is not None:
        qs = qs.filter(channel=channel)
    return qs


def order_facts(
    *, start: datetime, end: datetime, channel: SalesChannel | None = None
) -> list[OrderFacts]:
    """One ``OrderFacts`` per order of the cohort, in a fixed number of queries (eight)
    whatever its size: the screens and the weekly summary call this for weeks of orders."""
    orders = cohort(start=start, end=end, channel=channel)
    rows = list(orders.order_by("created_at", "id").values_list("id", "channel_id", "created_at",
                                                                "source"))  # fmt: skip
    if not rows:
        return []
    ids = orders.values("id")
    touched = set(
        OrderEvent.objects.filter(order_id__in=ids, actor_kind=ActorKind.USER)
        .values_list("order_id", flat=True)
        .distinct()
    ) | set(ReviewCase.objects.filter(order_id__in=ids).values_list("order_id", flat=True))
    shipped: dict[int, datetime] = {}
    for order_id, at in (
        OrderEvent.objects.filter(order_id__in=ids, field="status", to_state="shipped")
        .order_by("at", "id")
        .values_list("order_id", "at")
    ):
        shipped.setdefault(order_id, at)
    first_parcel: dict[int, int] = {}
    for order_id, warehouse_id in (
        Shipment.objects.filter(order_id__in=ids, shipped_at__isnull=False)
        .order_by("shipped_at", "id")
        .values_list("order_id", "warehouse_id")
    ):
        first_parcel.setdefault(order_id, warehouse_id)
    warehouses = Warehouse.objects.in_bulk(set(first_parcel.values()))
    returned = set(
        Return.objects.filter(order_id__in=ids)
        .exclude(status=ReturnStatus.REJECTED)
        .values_list("order_id", flat=True)
    )
    writebacks: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for order_id, status in OutboundAction.objects.filter(
        order_id__in=ids, kind=ActionKind.CHANNEL_TRACKING_SYNC
    ).values_list("order_id", "status"):
        writebacks[order_id][status] += 1
    facts = []
    for order_id, channel_id, received_at, source in rows:
        shipped_at = shipped.get(order_id)
        warehouse = warehouses.get(first_parcel.get(order_id, 0))
        same_day = None
        if shipped_at is not None and warehouse is not None:
            same_day = shipped_same_day(received_at, shipped_at, warehouse)
        counts = writebacks.get(order_id, {})
        succeeded = counts.get(ActionStatus.SUCCEEDED, 0)
        dead = counts.get(ActionStatus.DEAD, 0)
        acquisition = (source or {}).get("acquisition_source") if isinstance(source, dict) else ""
        facts.append(OrderFacts(
            order_id=order_id, channel_id=channel_id, received_at=received_at,
            acquisition_source=str(acquisition or NO_SOURCE), touched=order_id in touched,
            shipped_at=shipped_at, same_day=same_day,
            returned=shipped_at is not None and order_id in returned,
            writebacks_succeeded=succeeded, writebacks_dead=dead,
            writebacks_open=sum(counts.values()) - succeeded - dead,
        ))  # fmt: skip
    return facts


def figures(facts: Iterable[OrderFacts]) -> KpiFigures:
    """The KPIs of a set of orders (see the module's docstring for each definition)."""
    facts = list(facts)
    shipped = [f for f in facts if f.shipped_at is not None]
    durations = [
        hours((f.shipped_at - f.received_at).total_seconds())
        for f in shipped
        if f.shipped_at is not None
    ]
    counted = [f for f in shipped if f.same_day is not None]
    same_day = sum(1 for f in counted if f.same_day)
    no_touch = sum(1 for f in facts if not f.touched)
    succeeded = sum(f.writebacks_succeeded for f in facts)
    dead = sum(f.writebacks_dead for f in facts)
    returned = sum(1 for f in shipped if f.returned)
    avg = (sum(durations, Decimal(0)) / len(durations)).quantize(CENT) if durations else None
    return KpiFigures(
        orders_received=len(facts), orders_no_touch=no_touch,
        no_touch_percent=percent(no_touch, len(facts)),
        orders_shipped=len(shipped), avg_hours_to_ship=avg, p90_hours_to_ship=p90(durations),
        same_day_counted=len(counted), same_day_shipped=same_day,
        same_day_percent=percent(same_day, len(counted)),
        writebacks_succeeded=succeeded, writebacks_dead=dead,
        writebacks_open=sum(f.writebacks_open for f in facts),
        writeback_success_percent=percent(succeeded, succeeded + dead),
        orders_returned=returned, return_rate_percent=percent(returned, len(shipped)),
    )  # fmt: skip


def returns_by_source(facts: Iterable[OrderFacts]) -> list[SourceReturns]:
    """The return rate of the shipped orders per acquisition source, largest source first."""
    groups: dict[str, list[OrderFacts]] = defaultdict(list)
    for f in facts:
        if f.shipped_at is not None:
            groups[f.acquisition_source].append(f)
    out = []
    for source, group in groups.items():
        returned = sum(1 for f in group if f.returned)
        out.append(SourceReturns(source, len(group), returned, percent(returned, len(group))))
    return sorted(out, key=lambda s: (-s.orders_shipped, s.acquisition_source))


def variance(
    *, start: datetime, end: datetime, channel: SalesChannel | None = None
) -> list[VarianceFigure]:
    """Reconciliation's variance for the local days of the range (``TIME_ZONE``), per channel
    and currency, through ``orders.figures`` (reconciliation registers it)."""
    zone = ZoneInfo(settings.TIME_ZONE)
    first = start.astimezone(zone).date()
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    if last < first:
        return []
    return figures_registry.variance_for(first, last, channel.pk if channel is not None else None)


def kpi_report(
    *, start: datetime, end: datetime, channel: SalesChannel | None = None,
    with_variance: bool = True,
) -> KpiReport:  # fmt: skip
    """The KPIs of the orders received in ``[start, end)`` (aware datetimes), overall and per
    channel (every channel that received orders, or only ``channel``)."""
    if timezone.is_naive(start) or timezone.is_naive(end):
        raise ValueError("kpi_report needs timezone-aware datetimes")
    facts = order_facts(start=start, end=end, channel=channel)
    per_channel: dict[int, list[OrderFacts]] = defaultdict(list)
    for f in facts:
        per_channel[f.channel_id].append(f)
    known = SalesChannel.objects.in_bulk(list(per_channel))
    channels = [
        ChannelKpis(
            slug=known[cid].slug,
            name=known[cid].name,
            figures=figures(group),
            returns_by_source=returns_by_source(group),
        )  # fmt: skip
        for cid, group in per_channel.items()
    ]
    return KpiReport(
        start=start, end=end, channel=channel.slug if channel is not None else None,
        overall=figures(facts), channels=sorted(channels, key=lambda c: c.slug),
        returns_by_source=returns_by_source(facts),
        variance=variance(start=start, end=end, channel=channel) if with_variance else [],
    )  # fmt: skip


def daily(
    *, start: datetime, end: datetime, channel: SalesChannel | None = None
) -> list[tuple[date, KpiFigures]]:
    """The KPIs per local day (``TIME_ZONE``) of ``[start, end)``, every day listed (an empty
    day has zero orders): the KPI page's chart."""
    zone = ZoneInfo(settings.TIME_ZONE)
    per_day: dict[date, list[OrderFacts]] = defaultdict(list)
    for f in order_facts(start=start, end=end, channel=channel):
        per_day[f.received_at.astimezone(zone).date()].append(f)
    first = start.astimezone(zone).date()
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return [(day, figures(per_day.get(day, []))) for day in days]
