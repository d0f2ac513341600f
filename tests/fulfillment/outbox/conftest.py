"""Settings that keep every test's downstream systems local and its files in a temp folder.
The outbox's tasks, admin screens and URLs are production's (fulfillment.apps, config.urls)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def outbox_settings(settings, tmp_path):
    settings.ERP_TARGET = "filedrop"
    settings.ERP_DROP_DIR = str(tmp_path / "erp-drop")
    settings.WMS_TARGET = "local"
    settings.NOTIFY_TARGETS = ["email"]
    settings.OUTBOX_BACKOFF_BASE_SECONDS = 30
    settings.OUTBOX_BACKOFF_CAP_SECONDS = 3600
    settings.OUTBOX_BREAKER_THRESHOLD = 5
    settings.OUTBOX_BREAKER_COOLDOWN_SECONDS = 60
    settings.OUTBOX_MAX_ATTEMPTS = 8
    settings.DOWNSTREAM_HTTP_TIMEOUT = (2.0, 5.0)
    settings.DEFAULT_FROM_EMAIL = "Shop <orders@shop.example>"
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER",
                 "TWILIO_MESSAGING_SERVICE_SID"):  # fmt: skip
        setattr(settings, name, "")
    return settings
