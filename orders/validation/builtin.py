"""The checks ``orders`` brings itself; ``orders.apps`` registers them before any other app's."""

from __future__ import annotations

from orders.validation.address import AddressCheck
from orders.validation.duplicate import DuplicateOrderCheck
from orders.validation.payment import PaymentEligibilityCheck
from orders.validation.registry import register
from orders.validation.totals import TotalsCheck


def register_builtin_checks() -> None:
    # Registration order is run order, and the order of the check events on the timeline.
    register(TotalsCheck())
    register(DuplicateOrderCheck())
    register(AddressCheck())
    register(PaymentEligibilityCheck())
