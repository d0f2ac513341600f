"""HTTP to downstream systems: the integration layer (``config.integrations``) with the
outbox's timeouts, no retries inside the session, and ``DownstreamError``.

No retries here: the outbox is the retry loop (backoff with jitter, a circuit breaker, a limit,
then a person), and a POST repeated blindly inside one attempt could create a second record.
The error says whether a later attempt may help, whether the vendor may have processed the
request (``ambiguous``: the adapter looks for the first result before creating again) and how
long the vendor asked us to wait (``retry_after``).
"""

from __future__ import annotations

import structlog
from django.conf import settings

from config import integrations
from fulfillment.downstream.base import DownstreamError

USER_AGENT = "orderdesk/0.1 (+outbox)"
NO_RETRIES = integrations.RetryPolicy(retries=0)

log = structlog.get_logger(__name__)


def session_for(target: str) -> integrations.IntegrationSession:
    """A new session for one downstream call (use it as a context manager); timeouts from
    ``DOWNSTREAM_HTTP_TIMEOUT`` ((connect, read) seconds)."""
    return integrations.session(
        timeout=settings.DOWNSTREAM_HTTP_TIMEOUT, user_agent=USER_AGENT, policy=NO_RETRIES,
        error=DownstreamError, log_event="downstream_http.failed", logger=log, target=target,
    )  # fmt: skip
