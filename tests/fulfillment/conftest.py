"""The allocator registered for every stock test (whatever suite-wide fixtures do with it),
exactly as ``fulfillment``'s ``ready()`` registers it."""

from __future__ import annotations

import pytest

from fulfillment.services import allocate
from orders import checks


@pytest.fixture(autouse=True)
def allocator():
    saved = dict(checks._ALLOCATOR)
    checks.set_allocator(allocate)
    yield allocate
    checks._ALLOCATOR.clear()
    checks._ALLOCATOR.update(saved)
