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
- ``urlguard``: the outbound URL guard in every session (https only, no loopback, private,
  link-local or metadata addresses unless allowed, checked on connect; no redirect to another
  host); a refusal is ``URLRefused``. ``url_problem(url)`` is the same policy for a URL being
  saved (admin forms, commands).

Room for what comes next (not built yet): rate-limit budgets per vendor as a ``budget``
argument of ``session()`` checked in ``IntegrationSession.send`` beside the guard, so that
every adapter gets them without a change of its own.

``config`` imports no app: families keep their errors in their own app and pass the class in.
"""

from __future__ import annotations

from config.integrations.errors import IntegrationError, URLRefused
from config.integrations.http import (
    ANY_STATUS,
    IDEMPOTENT_METHODS,
    IDEMPOTENT_METHODS_AND_POST,
    RETRYABLE_STATUSES,
    IntegrationSession,
    Retry,
    RetryPolicy,
    is_retryable_status,
    session,
    where,
)
from config.integrations.urlguard import url_problem

__all__ = [
    "ANY_STATUS",
    "IDEMPOTENT_METHODS",
    "IDEMPOTENT_METHODS_AND_POST",
    "RETRYABLE_STATUSES",
    "IntegrationError",
    "IntegrationSession",
    "Retry",
    "RetryPolicy",
    "URLRefused",
    "is_retryable_status",
    "session",
    "url_problem",
    "where",
]
