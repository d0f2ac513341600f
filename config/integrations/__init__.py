"""The one integration layer: how every adapter talks to another system.

A new vendor is one adapter module in its app's ``adapters/`` (or ``downstream/``) that makes
its session here and raises its family's ``IntegrationError`` subclass:

    from config import integrations

    with integrations.session(
        timeout=(3.0, 15.0), user_agent=USER_AGENT, policy=integrations.RetryPolicy(retries=2),
        error=CarrierError, log_event="acme.failed", carrier="acme",
    ) as s:
        body = s.get_json(f"{base}/rates", what="acme rates")

- ``http``: the session factory, ``RetryPolicy`` (how many retries inside one session), the one
  retryable classification and ``call()``, which maps every failure to the error.
- ``errors``: ``IntegrationError(message, *, retryable, status, ambiguous, retry_after)``.
- ``where(url)``: how a message names a call (host and path; no query, body or header value).
- ``logfilter``: keeps query strings out of urllib3's own log lines.

Room for what comes next (not built yet): the outbound URL guard (allowed hosts and schemes,
no private addresses) belongs in ``IntegrationSession.request`` before ``super().request``, and
rate-limit budgets per vendor as a ``budget`` argument of ``session()`` checked in the same
place, so that every adapter gets both without a change of its own.

``config`` imports no app: families keep their errors in their own app and pass the class in.
"""

from __future__ import annotations

from config.integrations.errors import IntegrationError
from config.integrations.http import (
    ANY_STATUS,
    IDEMPOTENT_METHODS,
    IDEMPOTENT_METHODS_AND_POST,
    RETRYABLE_STATUSES,
    IntegrationSession,
    RetryPolicy,
    is_retryable_status,
    session,
    where,
)

__all__ = [
    "ANY_STATUS",
    "IDEMPOTENT_METHODS",
    "IDEMPOTENT_METHODS_AND_POST",
    "RETRYABLE_STATUSES",
    "IntegrationError",
    "IntegrationSession",
    "RetryPolicy",
    "is_retryable_status",
    "session",
    "where",
]
