"""The validation pipeline: a registry of small checks and the runner that applies them.

``orders`` owns the interface and the runner; higher apps register their checks (stock,
address, payment, fraud) from their ``ready()``, and name the tasks to run once an order is
valid, so this module never imports them.
"""

from __future__ import annotations

import time
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

    @classmethod
    def passed(cls, message: str = "", **details: Any) -> CheckResult:
        return cls(outcome=PASSED, message=message, details=details)


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


def register_builtin_checks() -> None:
    register(TotalsCheck())


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
    try:
        with transaction.atomic():
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
                if result.outcome == PASSED:
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
                for task_name in _AFTER_VALIDATED_TASKS:
                    enqueue_on_commit(task_name, order_id=order.pk)
    except DomainError as exc:
        # Another worker moved the order first: that run wins, this one changes nothing.
        log.info("pipeline.skipped", order_id=order_id, reason=exc.code)
        return None
    log.info("pipeline.done", order_id=order.pk, status=order.status, failed=len(failures))
    return order
