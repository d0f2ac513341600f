"""Order validation: the check interface, the registry of checks and the runner.

Rooms: ``outcomes`` (the ``Check`` interface, ``CheckResult``, ``Allocation``), ``registry``
(who takes part: checks, allocator, review router, after-validated tasks), ``pipeline`` (the
runner: ``order_validate``, ``order_allocate``), one module per built-in check (``totals``,
``duplicate``, ``address``, ``payment``) and ``builtin`` (registers those). Higher apps import
what they need from here and register from their ``ready()``; nothing here imports them.
"""

from __future__ import annotations

from orders.validation.builtin import register_builtin_checks
from orders.validation.outcomes import FAILED, PASSED, WARNING, Allocation, Check, CheckResult
from orders.validation.pipeline import order_allocate, order_validate
from orders.validation.registry import (
    Allocator,
    ReviewRouter,
    after_validated,
    register,
    registered,
    set_allocator,
    set_review_router,
    unregister,
)

__all__ = [
    "FAILED",
    "PASSED",
    "WARNING",
    "Allocation",
    "Allocator",
    "Check",
    "CheckResult",
    "ReviewRouter",
    "after_validated",
    "order_allocate",
    "order_validate",
    "register",
    "register_builtin_checks",
    "registered",
    "set_allocator",
    "set_review_router",
    "unregister",
]
