"""HTTP to channel APIs: the integration layer (``config.integrations``) with the channels'
timeouts, retries and error.

Channels retry inside the session: a retryable failure (connection errors, read timeouts, 408,
425, 429, 5xx) is tried again up to four times with exponential backoff, a ``Retry-After``
honoured up to 20 s (a channel cannot park a worker for an hour). What still fails comes back
as ``ChannelHTTPError(retryable=True)`` and the inbox tries the event again later. POST is
repeated too: the LWA token exchange is safe to repeat. The tracking write-backs, whose POSTs
create something, have their own session (``channels.writeback.session``: these timeouts and
User-Agent, but a POST is never repeated inside it; the outbox tries again, after looking for the
first result).
"""

from __future__ import annotations

import structlog
from django.conf import settings

from channels.adapters.base import AdapterError, ChannelConfig
from config import integrations

RETRY_TOTAL = 4
RETRY_METHODS = integrations.IDEMPOTENT_METHODS_AND_POST
MAX_RETRY_AFTER_SECONDS = 20.0
USER_AGENT = "orderdesk/0.1 (+channel adapters)"

ChannelSession = integrations.IntegrationSession

log = structlog.get_logger(__name__)


class ChannelHTTPError(AdapterError):
    """An ``AdapterError`` from HTTP; ``status`` is None when no answer came at all."""


def _policy(backoff_factor: float | None) -> integrations.RetryPolicy:
    return integrations.RetryPolicy(
        retries=RETRY_TOTAL,
        backoff=settings.CHANNEL_HTTP_BACKOFF_FACTOR if backoff_factor is None else backoff_factor,
        methods=RETRY_METHODS,
        max_retry_after=MAX_RETRY_AFTER_SECONDS,
    )


def retry_policy(*, backoff_factor: float | None = None) -> integrations.Retry:
    """The urllib3 ``Retry`` a channel session mounts (tests read it)."""
    return _policy(backoff_factor).urllib3_retry()


def session_for(
    channel: ChannelConfig,
    *,
    backoff_factor: float | None = None,
    timeout: tuple[float, float] | None = None,
    policy: integrations.RetryPolicy | None = None,
    error: type[ChannelHTTPError] = ChannelHTTPError,
    log_event: str = "channel_http.failed",
) -> integrations.IntegrationSession:
    """A new session for calls to ``channel``'s API (close it, or use it as a context manager).
    ``policy``, ``error`` and ``log_event`` replace the channels' defaults for callers whose
    calls differ (the tracking write-backs never repeat a POST)."""
    return integrations.session(
        timeout=timeout or settings.CHANNEL_HTTP_TIMEOUT, user_agent=USER_AGENT,
        policy=policy or _policy(backoff_factor), error=error, log_event=log_event, logger=log,
        channel_id=channel.id,
    )  # fmt: skip
