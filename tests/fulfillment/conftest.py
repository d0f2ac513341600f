"""The allocator registered for every stock test (whatever suite-wide fixtures do with it),
exactly as ``fulfillment``'s ``ready()`` registers it."""

from __future__ import annotations

import pytest

from fulfillment.services import allocate
from orders.validation import registry


@pytest.fixture(autouse=True)
def allocator():
    saved = registry.snapshot()
    registry.set_allocator(allocate)
    yield allocate
    registry.restore(saved)
