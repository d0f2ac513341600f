"""The operations dashboard's figures (reads only; ``reviews.dashboard_views`` renders them).

Two sources:

- the database: orders in (``Order.created_at``) and out (an ``OrderEvent`` whose ``to_state`` is
  ``shipped``) per minute and per hour, the validation failure rate (the ``check`` events of the
  timelines), retries and dead actions per downstream target (``OutboundAction``), the circuit
  breakers, the oldest order in flight and the "business uptime" (the share of orders whose first
  shipment label was bought within ``PROCESSING_SLA_MINUTES`` of receipt);
- the Prometheus registry: per-step latency p50 / p95 from the histograms' buckets, interpolated
  as PromQL's ``histogram_quantile`` does. With ``PROMETHEUS_MULTIPROC_DIR`` set (``make run``
  and production: gunicorn and the Celery workers write their samples there) every process is
  summed through ``MultiProcessCollector``; otherwise this process's ``REGISTRY`` is read, which
  holds every step only where tasks run in-process (eager tasks, tests).

Queue depth is read from the broker itself: ``LLEN`` per queue on Redis (with kombu's priority
sub-queues), the message files per queue in the filesystem broker's folder under ``make run``.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Count, Min, Q, Sum
from django.db.models.functions import TruncHour, TruncMinute
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.registry import Collector

from fulfillment.models import ActionStatus, CircuitBreaker, OutboundAction
from orders.models import Order, OrderEvent, OrderStatus
from orders.selectors import PIPELINE_SKIPPED
from orders.validation.registry import registered

# Moving through the machine: nobody is asked to act and no stock is awaited. on_hold,
# in_review and backordered wait on a person or on stock and have their own screens (incidents,
# review queue, backorders); counting them here would hide a stuck worker behind a slow reviewer.
IN_FLIGHT = (
    OrderStatus.RECEIVED,
    OrderStatus.VALIDATED,
    OrderStatus.ALLOCATED,
    OrderStatus.FULFILLING,
)
WAITING = (OrderStatus.ON_HOLD, OrderStatus.IN_REVIEW, OrderStatus.BACKORDERED)
LABELLED = "label_purchased"  # the shipment's audit event when its label is bought
STEP_METRIC = "pipeline_step_seconds"
ACK_METRIC = "ingest_webhook_ack_seconds"
# The fixed steps, in the order of an order's path; checks and targets are added between.
ORCHESTRATION_STEPS = ("allocation", "routing", "label")


# --- Prometheus: histogram buckets and quantiles ---------------------------------------------
@dataclass
class Buckets:
    """One histogram series summed over the labels not kept: cumulative counts by upper bound."""

    counts: dict[float, float] = field(default_factory=dict)
    total_seconds: float = 0.0

    @property
    def observations(self) -> int:
        return int(self.counts.get(math.inf, 0.0))

    def quantile(self, q: float) -> float | None:
        """PromQL's ``histogram_quantile``: linear interpolation inside the bucket the rank
        falls in; the lowest bucket starts at 0; a rank in the +Inf bucket answers the highest
        finite bound. None when nothing was observed."""
        bounds = sorted(self.counts)
        total = self.counts.get(math.inf, 0.0)
        if not bounds or total <= 0:
            return None
        rank = q * total
        lower, below = 0.0, 0.0
        for upper in bounds:
            count = self.counts[upper]
            if count >= rank:
                if math.isinf(upper):
                    return lower
                in_bucket = count - below
                if in_bucket <= 0:
                    return upper
                return lower + (upper - lower) * (rank - below) / in_bucket
            lower, below = upper, count
        return lower


def metrics_registry() -> Collector | CollectorRegistry:
    """Every process's samples when ``PROMETHEUS_MULTIPROC_DIR`` is set, else this process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def histogram_buckets(
    name: str, *, by: str | None = None, registry: Collector | CollectorRegistry | None = None
) -> dict[str, Buckets]:
    """The histogram ``name`` summed over every label but ``by`` (all summed under "" when
    ``by`` is None), as cumulative bucket counts per value of ``by``."""
    out: dict[str, Buckets] = defaultdict(Buckets)
    for family in (registry or metrics_registry()).collect():
        if family.name != name:
            continue
        for sample in family.samples:
            key = sample.labels.get(by, "") if by else ""
            if sample.name == f"{name}_bucket":
                upper = float(sample.labels["le"])
                out[key].counts[upper] = out[key].counts.get(upper, 0.0) + sample.value
            elif sample.name == f"{name}_sum":
                out[key].total_seconds += sample.value
    return dict(out)


@dataclass(frozen=True)
class StepLatency:
    step: str
    label: str
    observations: int
    p50_ms: float | None
    p95_ms: float | None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _latency(step: str, label: str, buckets: Buckets | None) -> StepLatency:
    if buckets is None:
        return StepLatency(step, label, 0, None, None)
    return StepLatency(
        step, label, buckets.observations, _ms(buckets.quantile(0.5)), _ms(buckets.quantile(0.95))
    )


def step_latencies(registry: Collector | CollectorRegistry | None = None) -> list[StepLatency]:
    """p50 / p95 per step, in the order of an order's path: webhook ack, processing, each
    validation check, allocation, routing, label, each downstream target, tracking write-back.
    Steps with no observation yet are listed too (with no figures), so a missing step shows."""
    registry = registry or metrics_registry()
    steps = histogram_buckets(STEP_METRIC, by="step", registry=registry)
    ack = histogram_buckets(ACK_METRIC, registry=registry).get("")
    checks = {f"check:{c.name}" for c in registered()}
    checks |= {s for s in steps if s.startswith("check:")}
    targets = sorted(s for s in steps if s.startswith("downstream:"))
    rows = [
        _latency("webhook_ack", "Webhook ack", ack),
        _latency("processing", "Processing (inbox event)", steps.get("processing")),
    ]
    rows += [_latency(s, f"Check: {s[6:]}", steps.get(s)) for s in sorted(checks)]
    rows += [_latency(s, s.capitalize(), steps.get(s)) for s in ORCHESTRATION_STEPS]
    rows += [_latency(s, f"Downstream: {s[11:]}", steps.get(s)) for s in targets]
    writeback = steps.get("tracking_writeback")
    rows.append(_latency("tracking_writeback", "Tracking write-back", writeback))
    return rows


# --- the database -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Throughput:
    labels: list[str]
    received: list[int]
    shipped: list[int]

    @property
    def received_total(self) -> int:
        return sum(self.received)

    @property
    def shipped_total(self) -> int:
        return sum(self.shipped)


def throughput(*, now: datetime, span: timedelta, step: timedelta) -> Throughput:
    """Orders received and orders shipped per ``step`` (a minute or an hour) over the ``span``
    that ends at ``now``, oldest first; counted in the database (UTC buckets)."""
    trunc = TruncMinute if step == timedelta(minutes=1) else TruncHour
    unit = "minute" if trunc is TruncMinute else "hour"
    # The current, partial bucket is the last one; start so that exactly span/step buckets show.
    end = now.replace(second=0, microsecond=0)
    if unit == "hour":
        end = end.replace(minute=0)
    n = int(span / step)
    starts = [end - step * (n - 1 - i) for i in range(n)]
    since = starts[0]
    utc = timezone.get_fixed_timezone(0)
    received = dict(
        Order.objects.filter(created_at__gte=since)
        .annotate(bucket=trunc("created_at", tzinfo=utc))
        .values("bucket")
        .annotate(n=Count("id"))
        .values_list("bucket", "n")
    )
    shipped = dict(
        OrderEvent.objects.filter(at__gte=since, to_state=OrderStatus.SHIPPED)
        .annotate(bucket=trunc("at", tzinfo=utc))
        .values("bucket")
        .annotate(n=Count("id"))
        .values_list("bucket", "n")
    )
    fmt = "%H:%M" if unit == "minute" else "%H:00"
    received = {_key(k): v for k, v in received.items()}
    shipped = {_key(k): v for k, v in shipped.items()}
    return Throughput(
        labels=[s.strftime(fmt) for s in starts],
        received=[received.get(_key(s), 0) for s in starts],
        shipped=[shipped.get(_key(s), 0) for s in starts],
    )


def _key(at: datetime) -> str:
    """Bucket starts compared as UTC strings: SQLite and PostgreSQL return different tzinfos."""
    return at.astimezone(timezone.get_fixed_timezone(0)).strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class CheckFailures:
    check: str
    runs: int
    failed: int

    @property
    def rate(self) -> float:
        return round(100 * self.failed / self.runs, 1) if self.runs else 0.0


def validation_failures(*, since: datetime) -> tuple[list[CheckFailures], CheckFailures]:
    """Check runs and failures per check since ``since`` (from the orders' timelines), and the
    total over every check."""
    rows = (
        OrderEvent.objects.filter(action="check", at__gte=since)
        .values("data__check")
        .annotate(runs=Count("id"), failed=Count("id", filter=Q(data__outcome="failed")))
        .order_by("data__check")
    )
    per_check = [CheckFailures(str(r["data__check"]), r["runs"], r["failed"]) for r in rows]
    total = CheckFailures("all", sum(c.runs for c in per_check), sum(c.failed for c in per_check))
    return per_check, total


@dataclass(frozen=True)
class TargetHealth:
    target: str
    actions: int
    retries: int
    waiting_retry: int
    dead: int


def outbox_by_target() -> list[TargetHealth]:
    """Per downstream target: actions, retries (attempts beyond each action's first), actions
    waiting for their next attempt, and dead actions (a person must look)."""
    rows = (
        OutboundAction.objects.values("target")
        .annotate(
            actions=Count("id"),
            total_attempts=Sum("attempts"),
            tried=Count("id", filter=Q(attempts__gte=1)),
            waiting=Count("id", filter=Q(status=ActionStatus.RETRY_SCHEDULED)),
            dead=Count("id", filter=Q(status=ActionStatus.DEAD)),
        )
        .order_by("target")
    )
    return [
        TargetHealth(
            target=r["target"],
            actions=r["actions"],
            retries=(r["total_attempts"] or 0) - r["tried"],
            waiting_retry=r["waiting"],
            dead=r["dead"],
        )
        for r in rows
    ]


def breakers() -> list[dict[str, Any]]:
    """Every downstream target's circuit breaker (a target never failing may have no row)."""
    rows = CircuitBreaker.objects.order_by("target").values(
        "target", "state", "consecutive_failures", "opened_at", "retry_at"
    )
    return [dict(row) for row in rows]


@dataclass(frozen=True)
class OldestOrder:
    order_id: int
    status: str
    received_at: datetime
    age: timedelta


def oldest_in_flight(*, now: datetime, statuses: Iterable[str] = IN_FLIGHT) -> OldestOrder | None:
    """The order received longest ago that is still in one of ``statuses``."""
    row = (
        Order.objects.filter(status__in=list(statuses))
        .order_by("created_at", "id")
        .values_list("id", "status", "created_at")
        .first()
    )
    if row is None:
        return None
    return OldestOrder(row[0], row[1], row[2], now - row[2])


@dataclass(frozen=True)
class Uptime:
    minutes: int
    met: int
    missed: int
    pending: int

    @property
    def decided(self) -> int:
        return self.met + self.missed

    @property
    def percent(self) -> float | None:
        return round(100 * self.met / self.decided, 1) if self.decided else None


def business_uptime(*, since: datetime, now: datetime, sla_minutes: int | None = None) -> Uptime:
    """The share of orders received since ``since`` whose first label was bought within the
    processing SLA. An order without a label counts as missed once its SLA has passed and as
    pending before that; cancelled orders and generated history (``pipeline_skipped``) are
    left out: neither was ever meant to be labelled."""
    minutes = int(settings.PROCESSING_SLA_MINUTES if sla_minutes is None else sla_minutes)
    sla = timedelta(minutes=minutes)
    rows = (
        Order.objects.filter(created_at__gte=since)
        .exclude(status=OrderStatus.CANCELLED)
        .exclude(events__action=PIPELINE_SKIPPED)
        .annotate(labelled_at=Min("events__at", filter=Q(events__action=LABELLED)))
        .values_list("created_at", "labelled_at")
    )
    met = missed = pending = 0
    for received_at, labelled_at in rows:
        due = received_at + sla
        if labelled_at is not None:
            if labelled_at <= due:
                met += 1
            else:
                missed += 1
        elif now > due:
            missed += 1
        else:
            pending += 1
    return Uptime(minutes, met, missed, pending)


# --- the broker ------------------------------------------------------------------------------
@dataclass(frozen=True)
class QueueDepth:
    queue: str
    depth: int | None
    error: str = ""


def queue_names() -> list[str]:
    """Every queue the app declares and every queue a route or an outbox lane names."""
    names = list(settings.CELERY_TASK_QUEUES_NAMES)
    for route in settings.CELERY_TASK_ROUTES.values():
        if route.get("queue") and route["queue"] not in names:
            names.append(route["queue"])
    return names


def queue_depths() -> tuple[str, list[QueueDepth]]:
    """The broker's kind and the messages waiting per queue (None with an error if unread)."""
    url: str = settings.CELERY_BROKER_URL
    names = queue_names()
    if settings.CELERY_TASK_ALWAYS_EAGER or url.startswith("memory://"):
        return "eager (tasks run in-process, nothing queues)", []
    if url.startswith("filesystem://"):
        folder = Path(str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]))
        return "filesystem", _filesystem_depths(folder, names)
    if url.startswith(("redis://", "rediss://")):
        return "redis", _redis_depths(url, names)
    unread = [QueueDepth(n, None, "not readable for this broker") for n in names]
    return url.split("://", 1)[0], unread


def _filesystem_depths(folder: Path, names: list[str]) -> list[QueueDepth]:
    """kombu's filesystem transport writes one ``<ms>_<uuid>.<queue>.msg`` file per message."""
    counts: dict[str, int] = defaultdict(int)
    try:
        for entry in os.scandir(folder):
            _, _, rest = entry.name.partition(".")
            if rest.endswith(".msg"):
                counts[rest[: -len(".msg")]] += 1
    except OSError as exc:
        error = f"broker folder unreadable ({type(exc).__name__})"
        return [QueueDepth(n, None, error) for n in names]
    return [QueueDepth(n, counts.get(n, 0)) for n in names]


def _redis_depths(url: str, names: list[str]) -> list[QueueDepth]:
    """kombu keeps a queue as a Redis list, plus one list per priority step above 0."""
    import redis
    from kombu.transport.redis import PRIORITY_STEPS

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    out: list[QueueDepth] = []
    try:
        for name in names:
            keys = [name] + [f"{name}\x06\x16{p}" for p in PRIORITY_STEPS if p]
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.llen(key)
            out.append(QueueDepth(name, sum(int(n) for n in pipe.execute())))
    except redis.RedisError as exc:
        return [QueueDepth(n, None, f"Redis unreachable ({type(exc).__name__})") for n in names]
    finally:
        client.close()
    return out


# --- everything the page shows -------------------------------------------------------------------
def dashboard_figures(*, now: datetime | None = None) -> dict[str, Any]:
    """Every figure of the dashboard, read now."""
    now = now or timezone.now()
    broker, depths = queue_depths()
    per_check, all_checks = validation_failures(since=now - timedelta(hours=24))
    return {
        "now": now,
        "last_hour": throughput(now=now, span=timedelta(hours=1), step=timedelta(minutes=1)),
        "last_day": throughput(now=now, span=timedelta(hours=24), step=timedelta(hours=1)),
        "latencies": step_latencies(),
        "check_failures": per_check,
        "all_checks": all_checks,
        "targets": outbox_by_target(),
        "breakers": breakers(),
        "broker": broker,
        "queues": depths,
        "oldest": oldest_in_flight(now=now),
        "oldest_waiting": oldest_in_flight(now=now, statuses=WAITING),
        "uptime_day": business_uptime(since=now - timedelta(hours=24), now=now),
        "uptime_week": business_uptime(since=now - timedelta(days=7), now=now),
    }
