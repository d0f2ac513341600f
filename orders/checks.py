"""The validation pipeline: a registry of small checks and the runner that applies them.

``orders`` owns the interface and the runner; higher apps register their checks (stock,
address, payment, fraud) from their ``ready()``, and name the tasks to run once an order is
valid, so this module never imports them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import structlog
from django.db import transaction

from config import correlation
from config.tasks import enqueue_on_commit
from orders.actors import Actor
from orders.errors import DomainError
from orders.models import IncidentCategory, Order, OrderStatus, Severity

log = structlog.get_logger(__name__)

PASSED, FAILED, WARNING = "passed", "failed", "warning"


@dataclass(frozen=True)
class CheckResult:
    outcome: str
    message: str = ""
    incident_category: str = ""
    severity: str = Severity.MEDIUM
    key: str = ""  # tells incidents of the same check apart (a SKU, say)
    details: dict[str, Any] = field(default_factory=dict)
    # "review": a person must look before the order goes on (it is not held: stock stays
    # reserved). Any check may ask; the reasons are the messages of the checks that asked.
    route: str = ""
    # A risk assessment to store on the order: {"score": "<decimal>", "signals": [...]}.
    risk: dict[str, Any] | None = None

    @classmethod
    def passed(cls, message: str = "", **details: Any) -> CheckResult:
        return cls(outcome=PASSED, message=message, details=details)


@dataclass(frozen=True)
class Allocation:
    """What an allocator did for an order: ``reserved`` (every line) or ``short``."""

    outcome: str
    details: dict[str, Any] = field(default_factory=dict)


Allocator = Callable[[int], Allocation]
ReviewRouter = Callable[[int, list[str], dict[str, Any] | None], None]
_ALLOCATOR: dict[str, Allocator] = {}
_REVIEW_ROUTER: dict[str, ReviewRouter] = {}


def set_allocator(allocator: Allocator) -> None:
    """The stock step (fulfillment registers it). Called with an order id outside any
    transaction; reserves stock in its own and must be idempotent (a re-run reserves nothing
    twice)."""
    _ALLOCATOR["default"] = allocator


def set_review_router(router: ReviewRouter) -> None:
    """Who opens a review (reviews registers it). Called inside the pipeline's transaction
    with (order id, reasons, risk); it must move the order to ``in_review``."""
    _REVIEW_ROUTER["default"] = router


class Check(Protocol):
    name: str

    def run(self, order: Order) -> CheckResult: ...


_CHECKS: dict[str, Check] = {}
_AFTER_VALIDATED_TASKS: list[str] = []


def register(check: Check) -> None:
    """Add a check (or replace the one with the same name); they run in registration order."""
    _CHECKS[check.name] = check


def unregister(name: str) -> None:
    _CHECKS.pop(name, None)


def registered() -> list[Check]:
    return list(_CHECKS.values())


def after_validated(task_name: str) -> None:
    """Name a Celery task to run (with ``order_id``) once an order is validated."""
    if task_name not in _AFTER_VALIDATED_TASKS:
        _AFTER_VALIDATED_TASKS.append(task_name)


class TotalsCheck:
    """The order's amounts add up: lines to subtotal, allocations to totals, parts to total."""

    name = "totals"

    def run(self, order: Order) -> CheckResult:
        lines = list(order.lines.all())
        if not lines:
            return CheckResult(
                outcome=FAILED, message="The order has no lines",
                incident_category=IncidentCategory.SCHEMA_INVALID, key=self.name,
            )  # fmt: skip
        sums = {
            "subtotal": (sum((ln.gross for ln in lines), Decimal(0)), order.subtotal),
            "discount_total": (
                sum((ln.discount_allocation for ln in lines), Decimal(0)),
                order.discount_total,
            ),
            "tax_total": (
                sum((ln.tax_allocation for ln in lines), order.shipping_tax),
                order.tax_total,
            ),
            "total": (order.computed_total, order.total),
        }
        mismatches = {
            name: {"expected": str(stated), "computed": str(computed)}
            for name, (computed, stated) in sums.items()
            if computed != stated
        }
        if mismatches:
            return CheckResult(
                outcome=FAILED,
                message="Amounts do not add up: " + ", ".join(sorted(mismatches)),
                incident_category=IncidentCategory.SCHEMA_INVALID,
                key=self.name,
                details={"mismatches": mismatches, "currency": order.currency},
            )
        return CheckResult.passed(total=str(order.total), currency=order.currency)


class DuplicateOrderCheck:
    """The same customer ordering the same items for the same total within a short window
    (a double-clicked checkout, a storefront that re-sent an order under a new number): the
    later order waits for a person. A person who releases its hold after the warning has
    decided: the check lets it through from then on."""

    name = "duplicate"

    def run(self, order: Order) -> CheckResult:
        from django.conf import settings
        from django.db.models import Q
        from django.utils.timezone import timedelta

        from orders.models import Incident, OrderEvent

        if order.customer_id is None:
            return CheckResult.passed("Guest order: no customer history to compare")
        window = timedelta(minutes=int(getattr(settings, "DUPLICATE_ORDER_WINDOW_MINUTES", 30)))
        items = sorted((ln.sku or ln.channel_sku, ln.quantity) for ln in order.lines.all())
        candidates = (
            Order.objects.filter(
                customer_id=order.customer_id, currency=order.currency, total=order.total,
                placed_at__gte=order.placed_at - window, placed_at__lte=order.placed_at + window,
            )
            .filter(
                Q(placed_at__lt=order.placed_at) | Q(placed_at=order.placed_at, pk__lt=order.pk)
            )
            .exclude(status=OrderStatus.CANCELLED)
            .select_related("channel")
            .prefetch_related("lines")
            .order_by("-placed_at", "-pk")
        )  # fmt: skip
        twin = next(
            (
                other for other in candidates[:20]
                if sorted((ln.sku or ln.channel_sku, ln.quantity) for ln in other.lines.all())
                == items
            ),
            None,
        )  # fmt: skip
        if twin is None:
            return CheckResult.passed(
                f"No order of the same items and total by this customer within {window}"
            )
        warned = Incident.objects.filter(order_id=order.pk, details__check=self.name).first()
        if warned is not None and OrderEvent.objects.filter(
            order_id=order.pk, action="release_hold", actor_kind="user",
            at__gte=warned.first_seen_at,
        ).exists():  # fmt: skip
            return CheckResult.passed(
                f"Looks like order {twin.pk}, but a person released the hold after the warning",
                other_order_id=twin.pk,
            )
        minutes = int(abs((order.placed_at - twin.placed_at).total_seconds()) // 60)
        return CheckResult(
            outcome=FAILED,
            message=(
                f"Possible duplicate of order {twin.pk} ({twin.channel.slug} "
                f"{twin.external_id}): same customer, items and total, placed {minutes} min apart"
            ),
            incident_category=IncidentCategory.DUPLICATE_SUSPECTED,
            key=self.name,
            details={
                "other_order_id": twin.pk,
                "other_channel": twin.channel.slug,
                "other_external_id": twin.external_id,
                "minutes_apart": minutes,
            },
        )


def register_builtin_checks() -> None:
    from orders.address import AddressCheck
    from orders.payment import PaymentEligibilityCheck

    register(TotalsCheck())
    register(DuplicateOrderCheck())
    register(AddressCheck())
    register(PaymentEligibilityCheck())


def _address_outcome(results: list[tuple[str, CheckResult, float]]) -> dict[str, Any]:
    """The address check's verdict as Order fields (empty when it did not run or say)."""
    from django.utils import timezone

    for name, result, _ in results:
        deliverability = result.details.get("deliverability") if name == "address" else None
        if deliverability:
            return {
                "address_deliverability": deliverability,
                "address_confidence": Decimal(str(result.details.get("confidence", "0"))),
                "address_source": str(result.details.get("source", ""))[:16],
                "address_checked_at": timezone.now(),
            }
    return {}


def _checks_with_unresolved_incidents(order_id: int) -> set[str]:
    """The checks that opened incidents of the order still unresolved (one query)."""
    from orders.models import Incident, IncidentStatus

    return set(
        Incident.objects.filter(order_id=order_id)
        .exclude(status=IncidentStatus.RESOLVED)
        .values_list("details__check", flat=True)
    )


def _resolve_incidents_of(order_id: int, check_name: str, actor: Actor) -> None:
    """A check that passes now settles the incidents it opened on an earlier run."""
    from orders.models import Incident, IncidentStatus
    from orders.services import incident_transition

    open_ids = (
        Incident.objects.filter(order_id=order_id, details__check=check_name)
        .exclude(status=IncidentStatus.RESOLVED)
        .values_list("pk", flat=True)
    )
    for incident_id in open_ids:
        incident_transition(
            incident_id=incident_id, transition="resolve", actor=actor,
            note=f"The {check_name} check passes now",
        )  # fmt: skip


def order_validate(*, order_id: int) -> Order | None:
    """Run every registered check on a received order; validate it or put it on hold.

    Idempotent: an order that is not ``received`` any more is left alone, and a failing check
    that runs again bumps its incident instead of opening another. Checks run outside the
    transaction (some call out over HTTP); results are written in one short transaction.
    """
    order = Order.objects.filter(pk=order_id).first()
    if order is None or order.status != OrderStatus.RECEIVED:
        return None
    with correlation.bound(correlation.get() or order.correlation_id):
        return _run_checks(order)


def _run_checks(order: Order) -> Order | None:
    from orders.services import incident_raise, order_event_record, order_transition

    order_id = order.pk
    actor = Actor.system("pipeline")
    results: list[tuple[str, CheckResult, float]] = []
    for check in registered():
        started = time.perf_counter()
        try:
            result = check.run(order)
        except Exception as exc:  # a broken check must hold the order, not lose it
            log.exception("check.crashed", check=check.name, order_id=order_id)
            result = CheckResult(
                outcome=FAILED,
                message=f"The {check.name} check could not run ({type(exc).__name__})",
                incident_category=IncidentCategory.OTHER,
                key=f"crash:{check.name}",
            )
        results.append((check.name, result, (time.perf_counter() - started) * 1000))

    failures = [(name, r) for name, r, _ in results if r.outcome == FAILED]
    allocator = _ALLOCATOR.get("default")
    # Stock is reserved only for an order that passed its checks, before anyone reviews it.
    allocation = allocator(order.pk) if allocator is not None and not failures else None
    reviews = [r.message or f"{n} asked for a review" for n, r, _ in results if r.route == "review"]
    risk = next((r.risk for _, r, _ in results if r.risk is not None), None)
    try:
        with transaction.atomic():
            unresolved = _checks_with_unresolved_incidents(order.pk)
            for name, result, duration_ms in results:
                order_event_record(
                    order_id=order.pk,
                    action="check",
                    actor=actor,
                    data={
                        "check": name,
                        "outcome": result.outcome,
                        "message": result.message,
                        "duration_ms": round(duration_ms, 3),
                        "details": result.details,
                    },
                )
                if result.outcome == PASSED and name in unresolved:
                    _resolve_incidents_of(order.pk, name, actor)
                if result.outcome == FAILED and result.incident_category:
                    incident_raise(
                        category=result.incident_category,
                        summary=result.message or f"{name} check failed",
                        order_id=order.pk,
                        severity=result.severity,
                        details={"check": name, **result.details},
                        key=result.key or name,
                    )
            stored: dict[str, Any] = _address_outcome(results)
            if risk is not None:
                stored.update(risk_score=risk.get("score"), risk_signals=risk.get("signals", []))
            if stored:
                Order.objects.filter(pk=order.pk).update(**stored)
            if failures:
                reason = "; ".join(r.message or f"{n} failed" for n, r in failures)
                order = order_transition(
                    order_id=order.pk, transition="hold", actor=actor,
                    expected_status=OrderStatus.RECEIVED, reason=reason,
                )  # fmt: skip
            else:
                order = order_transition(
                    order_id=order.pk, transition="validate", actor=actor,
                    expected_status=OrderStatus.RECEIVED,
                )  # fmt: skip
                router = _REVIEW_ROUTER.get("default")
                if reviews and router is not None:
                    router(order.pk, reviews, risk)
                elif allocation is not None:
                    _record_allocation(order.pk, allocation, actor)
                for task_name in _AFTER_VALIDATED_TASKS:
                    enqueue_on_commit(task_name, order_id=order.pk)
                order.refresh_from_db()
    except DomainError as exc:
        # Another worker moved the order first: that run wins, this one changes nothing.
        log.info("pipeline.skipped", order_id=order_id, reason=exc.code)
        return None
    log.info("pipeline.done", order_id=order.pk, status=order.status, failed=len(failures))
    return order


def _record_allocation(order_id: int, allocation: Allocation, actor: Actor) -> Order:
    """Move a validated (or backordered) order by what the allocator managed to reserve."""
    from orders.services import incident_raise, order_event_record, order_transition

    order_event_record(
        order_id=order_id, action="allocation", actor=actor,
        data={"outcome": allocation.outcome, **allocation.details},
    )  # fmt: skip
    current = Order.objects.get(pk=order_id)
    if allocation.outcome == "reserved":
        _resolve_incidents_of(order_id, "stock", actor)
        return order_transition(
            order_id=order_id, transition="allocate", actor=actor, expected_status=current.status
        )
    incident_raise(
        category=IncidentCategory.INVENTORY_UNAVAILABLE,
        summary="Not enough stock for " + ", ".join(allocation.details.get("short_skus", [])),
        order_id=order_id,
        details={"check": "stock", **allocation.details},
        key="stock",
    )
    if current.status == OrderStatus.VALIDATED:
        return order_transition(
            order_id=order_id, transition="backorder", actor=actor,
            expected_status=OrderStatus.VALIDATED,
        )  # fmt: skip
    return current


def order_allocate(*, order_id: int) -> Order | None:
    """Reserve stock for a validated order (after a review was approved) or a backordered one
    (stock may have arrived), then allocate it or keep it backordered. Idempotent."""
    allocator = _ALLOCATOR.get("default")
    order = Order.objects.filter(pk=order_id).first()
    if allocator is None or order is None:
        return None
    if order.status not in (OrderStatus.VALIDATED, OrderStatus.BACKORDERED):
        return None
    with correlation.bound(correlation.get() or order.correlation_id):
        allocation = allocator(order_id)
        try:
            with transaction.atomic():
                return _record_allocation(order_id, allocation, Actor.system("allocation"))
        except DomainError as exc:
            log.info("allocation.skipped", order_id=order_id, reason=exc.code)
            return None
