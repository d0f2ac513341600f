"""Who takes part in validation: the checks, the allocator, the review router and the tasks
to run once an order is valid.

``orders`` registers its built-in checks; higher apps register theirs (stock allocator, SKU
mapping, fraud, review router) from their ``ready()``, so the runner never imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orders.validation.outcomes import Allocation, Check

Allocator = Callable[[int], Allocation]
ReviewRouter = Callable[[int, list[str], dict[str, Any] | None], None]


@dataclass
class _Registry:
    checks: dict[str, Check] = field(default_factory=dict)
    allocator: Allocator | None = None
    review_router: ReviewRouter | None = None
    after_validated: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Snapshot:
    """What :func:`snapshot` saw, for :func:`restore` (tests change registrations per test)."""

    checks: tuple[Check, ...]
    allocator: Allocator | None
    review_router: ReviewRouter | None
    after_validated: tuple[str, ...]


_registry = _Registry()


def register(check: Check) -> None:
    """Add a check (or replace the one with the same name); they run in registration order."""
    _registry.checks[check.name] = check


def unregister(name: str) -> None:
    _registry.checks.pop(name, None)


def registered() -> list[Check]:
    return list(_registry.checks.values())


def set_allocator(allocator: Allocator) -> None:
    """The stock step (fulfillment registers it). Called with an order id outside any
    transaction; reserves stock in its own and must be idempotent (a re-run reserves nothing
    twice)."""
    _registry.allocator = allocator


def unregister_allocator() -> None:
    """No stock step: validated orders stay validated (suites without a warehouse)."""
    _registry.allocator = None


def get_allocator() -> Allocator | None:
    return _registry.allocator


def set_review_router(router: ReviewRouter) -> None:
    """Who opens a review (reviews registers it). Called inside the pipeline's transaction
    with (order id, reasons, risk); it must move the order to ``in_review``."""
    _registry.review_router = router


def unregister_review_router() -> None:
    """No review step: an order a check wants reviewed goes on like any other."""
    _registry.review_router = None


def get_review_router() -> ReviewRouter | None:
    return _registry.review_router


def after_validated(task_name: str) -> None:
    """Name a Celery task to run (with ``order_id``) once an order is validated."""
    if task_name not in _registry.after_validated:
        _registry.after_validated.append(task_name)


def unregister_after_validated(task_name: str) -> None:
    if task_name in _registry.after_validated:
        _registry.after_validated.remove(task_name)


def after_validated_tasks() -> list[str]:
    return list(_registry.after_validated)


def snapshot() -> Snapshot:
    """Every registration as it stands, to put back later with :func:`restore`."""
    return Snapshot(
        checks=tuple(_registry.checks.values()),
        allocator=_registry.allocator,
        review_router=_registry.review_router,
        after_validated=tuple(_registry.after_validated),
    )


def restore(saved: Snapshot) -> None:
    """Put back exactly what :func:`snapshot` saw (and drop whatever was registered since)."""
    _registry.checks = {check.name: check for check in saved.checks}
    _registry.allocator = saved.allocator
    _registry.review_router = saved.review_router
    _registry.after_validated = list(saved.after_validated)
