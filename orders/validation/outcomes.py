"""The check interface and what checks and the allocator answer with.

Nothing here imports the registry or the runner: a check module (ours or another app's) needs
only this one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from orders.models import Order, Severity

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


class Check(Protocol):
    name: str

    def run(self, order: Order) -> CheckResult: ...
