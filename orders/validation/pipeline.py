"""The validation pipeline runner: apply every registered check, then validate, hold, route to
review, allocate or backorder the order.

It knows only the registry: the checks, allocator and review router that other apps add from
their ``ready()`` are called through it, never imported.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import structlog
from django.db.models import prefetch_related_objects
from django.utils import timezone

from config import correlation, metrics
from config.tasks import enqueue_on_commit
from orders.actors import Actor
from orders.errors import DomainError
from orders.models import (
    Incident,
    IncidentCategory,
    IncidentStatus,
    Order,
    OrderStatus,
)
from orders.services import (
    incident_raise,
    incidents_resolve,
    order_event_record,
    order_transition,
)
from orders.transitions import Audit, atomic_audited, order_events_record
from orders.validation.outcomes import FAILED, PASSED, Allocation, CheckResult
from orders.validation.registry import (
    after_validated_tasks,
    get_allocator,
    get_review_router,
    registered,
)

log = structlog.get_logger(__name__)


def _address_outcome(results: list[tuple[str, CheckResult, float]]) -> dict[str, Any]:
    """The address check's verdict as Order fields (empty when it did not run or say)."""
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


def _unresolved_incidents_by_check(order_id: int) -> dict[str, set[str]]:
    """The fingerprints of the order's unresolved incidents, by the check that opened them (one
    query): a check that passes now settles those (even a crash's, which has its own key)."""
    by_check: dict[str, set[str]] = {}
    for check_name, fingerprint in (
        Incident.objects.filter(order_id=order_id)
        .exclude(status=IncidentStatus.RESOLVED)
        .values_list("details__check", "fingerprint")
    ):
        by_check.setdefault(check_name, set()).add(fingerprint)
    return by_check


def _resolve_incidents_of(fingerprints: set[str], check_name: str, actor: Actor) -> None:
    """A check that passes now settles the incidents it opened on an earlier run."""
    incidents_resolve(
        fingerprints=fingerprints, actor=actor, note=f"The {check_name} check passes now"
    )


def order_validate(*, order_id: int) -> Order | None:
    """Run every registered check on a received order; validate it or put it on hold.

    Idempotent: an order that is not ``received`` any more is left alone, and a failing check
    that runs again bumps its incident instead of opening another. Checks run outside the
    transaction (some call out over HTTP); results are written in one short transaction.
    """
    # The checks share one read of the order, its customer, its channel and its lines (each
    # check used to fetch the lines, the customer or the channel again).
    order = Order.objects.select_related("customer", "channel").filter(pk=order_id).first()
    if order is None or order.status != OrderStatus.RECEIVED:
        return None
    prefetch_related_objects([order], "lines")
    with correlation.bound(correlation.get() or order.correlation_id):
        return _run_checks(order)


def _run_checks(order: Order) -> Order | None:
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
        elapsed = time.perf_counter() - started
        metrics.observe(f"check:{check.name}", elapsed)
        metrics.CHECK_OUTCOMES.labels(check.name, result.outcome).inc()
        results.append((check.name, result, elapsed * 1000))

    failures = [(name, r) for name, r, _ in results if r.outcome == FAILED]
    allocator = get_allocator()
    # Stock is reserved only for an order that passed its checks, before anyone reviews it.
    allocation = allocator(order.pk) if allocator is not None and not failures else None
    reviews = [r.message or f"{n} asked for a review" for n, r, _ in results if r.route == "review"]
    risk = next((r.risk for _, r, _ in results if r.risk is not None), None)
    try:
        with atomic_audited():
            unresolved = _unresolved_incidents_by_check(order.pk)
            # Every check's result on the timeline, in run order, in one INSERT.
            _check_events_record(order, results, actor)
            for name, result, _ in results:
                if result.outcome == PASSED and name in unresolved:
                    _resolve_incidents_of(unresolved[name], name, actor)
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
                    expected_status=OrderStatus.RECEIVED, reason=reason, savepoint=False,
                )  # fmt: skip
            else:
                order = order_transition(
                    order_id=order.pk, transition="validate", actor=actor,
                    expected_status=OrderStatus.RECEIVED, savepoint=False,
                )  # fmt: skip
                router = get_review_router()
                if reviews and router is not None:
                    router(order.pk, reviews, risk)
                elif allocation is not None:
                    order = _record_allocation(
                        order.pk, allocation, actor, status=OrderStatus.VALIDATED,
                        stock_incidents=unresolved.get("stock", set()), locked=order,
                    )  # fmt: skip
                for task_name in after_validated_tasks():
                    enqueue_on_commit(task_name, order_id=order.pk)
                # The router, or a hook of the transitions above, may have moved it further.
                order.refresh_from_db()
    except DomainError as exc:
        # Another worker moved the order first: that run wins, this one changes nothing.
        log.info("pipeline.skipped", order_id=order_id, reason=exc.code)
        return None
    log.info("pipeline.done", order_id=order.pk, status=order.status, failed=len(failures))
    return order


def _check_events_record(
    order: Order, results: list[tuple[str, CheckResult, float]], actor: Actor
) -> None:
    """One ``check`` event per result, in a single bulk INSERT with the run's time (in run order:
    the ids keep the timeline's order)."""
    order_events_record(
        [Audit(order_id=order.pk, action="check",
               data={"check": name, "outcome": result.outcome, "message": result.message,
                     "duration_ms": round(duration_ms, 3), "details": result.details})
         for name, result, duration_ms in results],
        actor=actor, at=timezone.now(),
    )  # fmt: skip


def _record_allocation(
    order_id: int,
    allocation: Allocation,
    actor: Actor,
    *,
    status: str | None = None,
    stock_incidents: set[str] | None = None,
    locked: Order | None = None,
) -> Order:
    """Move a validated (or backordered) order by what the allocator managed to reserve.

    ``status``, ``stock_incidents`` and ``locked``: what the caller already knows in this
    transaction (the order's state, its unresolved stock incidents, the row it holds locked:
    see ``order_transition``); None reads them."""
    order_event_record(
        order_id=order_id, action="allocation", actor=actor,
        data={"outcome": allocation.outcome, **allocation.details},
    )  # fmt: skip
    if status is None:
        status = Order.objects.values_list("status", flat=True).get(pk=order_id)
    if allocation.outcome == "reserved":
        if stock_incidents is None:
            stock_incidents = _unresolved_incidents_by_check(order_id).get("stock", set())
        if stock_incidents:
            _resolve_incidents_of(stock_incidents, "stock", actor)
        return order_transition(
            order_id=order_id, transition="allocate", actor=actor, expected_status=status,
            locked=locked, savepoint=False,
        )  # fmt: skip
    incident_raise(
        category=IncidentCategory.INVENTORY_UNAVAILABLE,
        summary="Not enough stock for " + ", ".join(allocation.details.get("short_skus", [])),
        order_id=order_id,
        details={"check": "stock", **allocation.details},
        key="stock",
    )
    if status == OrderStatus.VALIDATED:
        return order_transition(
            order_id=order_id, transition="backorder", actor=actor,
            expected_status=OrderStatus.VALIDATED, locked=locked, savepoint=False,
        )  # fmt: skip
    return Order.objects.get(pk=order_id)


def order_allocate(*, order_id: int) -> Order | None:
    """Reserve stock for a validated order (after a review was approved) or a backordered one
    (stock may have arrived), then allocate it or keep it backordered. Idempotent."""
    allocator = get_allocator()
    order = Order.objects.filter(pk=order_id).first()
    if allocator is None or order is None:
        return None
    if order.status not in (OrderStatus.VALIDATED, OrderStatus.BACKORDERED):
        return None
    with correlation.bound(correlation.get() or order.correlation_id):
        allocation = allocator(order_id)
        try:
            with atomic_audited():
                return _record_allocation(order_id, allocation, Actor.system("allocation"))
        except DomainError as exc:
            log.info("allocation.skipped", order_id=order_id, reason=exc.code)
            return None
