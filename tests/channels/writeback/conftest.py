"""Fixtures every tracking write-back test shares."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def no_backoff(settings):
    """The session's own retries of a GET or PUT do not wait."""
    settings.CHANNEL_HTTP_BACKOFF_FACTOR = 0
