"""The circuit breaker per downstream target (``CircuitBreaker`` row, conditional updates only).

After ``OUTBOX_BREAKER_THRESHOLD`` consecutive retryable failures it opens for
``OUTBOX_BREAKER_COOLDOWN_SECONDS``; after the cooldown one dispatch wins the half-open trial (a
conditional UPDATE), whose success closes it and whose failure re-opens it. See the mechanism in
``fulfillment.outbox.services``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db.models import F, Q

from fulfillment.models import CircuitBreaker, CircuitState

log = structlog.get_logger(__name__)


def breaker_threshold() -> int:
    return int(settings.OUTBOX_BREAKER_THRESHOLD)


def breaker_cooldown() -> float:
    return float(settings.OUTBOX_BREAKER_COOLDOWN_SECONDS)


def breaker_gate(target: str, now: datetime) -> str | datetime:
    """``"clean"`` (closed, no failure counted: a success has nothing to reset), ``"closed"``
    (closed, with failures counted), ``"trial"`` (this caller won the half-open trial), or the
    time to wait until (open, or another caller's trial is running)."""
    breaker = CircuitBreaker.objects.filter(target=target).first()
    if breaker is None or (
        breaker.state == CircuitState.CLOSED and breaker.consecutive_failures == 0
    ):
        return "clean"
    if breaker.state == CircuitState.CLOSED:
        return "closed"
    if breaker.retry_at is not None and breaker.retry_at > now:
        return breaker.retry_at
    trial_until = now + timedelta(seconds=breaker_cooldown())
    # Conditional: of concurrent callers after the cooldown, exactly one moves retry_at on.
    won = (
        CircuitBreaker.objects.filter(
            pk=breaker.pk, state__in=[CircuitState.OPEN, CircuitState.HALF_OPEN]
        )
        .filter(Q(retry_at__isnull=True) | Q(retry_at__lte=now))
        .update(state=CircuitState.HALF_OPEN, retry_at=trial_until)
    )
    if won:
        log.info("outbox.breaker_half_open", target=target)
        return "trial"
    # Another caller won it: wait for its verdict.
    current = CircuitBreaker.objects.filter(pk=breaker.pk).values_list("retry_at", flat=True)
    return current.first() or trial_until


def breaker_success(target: str) -> None:
    """The target answered: close its breaker and reset the failure count."""
    closed = (
        CircuitBreaker.objects.filter(target=target)
        .filter(~Q(state=CircuitState.CLOSED) | Q(consecutive_failures__gt=0))
        .update(state=CircuitState.CLOSED, consecutive_failures=0, opened_at=None, retry_at=None)
    )
    if closed:
        log.info("outbox.breaker_closed", target=target)


def breaker_failure(target: str, now: datetime) -> datetime | None:
    """Count a failure; open (or re-open after a failed trial) when due. Returns the breaker's
    ``retry_at`` when it is open now."""
    CircuitBreaker.objects.get_or_create(target=target)
    CircuitBreaker.objects.filter(target=target).update(
        consecutive_failures=F("consecutive_failures") + 1
    )
    retry_at = now + timedelta(seconds=breaker_cooldown())
    opened = (
        CircuitBreaker.objects.filter(target=target)
        .filter(
            Q(state=CircuitState.HALF_OPEN)
            | Q(state=CircuitState.CLOSED, consecutive_failures__gte=breaker_threshold())
        )
        .update(state=CircuitState.OPEN, opened_at=now, retry_at=retry_at)
    )
    if opened:
        log.warning("outbox.breaker_opened", target=target, retry_at=retry_at.isoformat())
    return breaker_open_until(target)


def breaker_open_until(target: str) -> datetime | None:
    """When the target's open breaker lets the next call through; None when it is not open."""
    row = CircuitBreaker.objects.filter(target=target).values_list("state", "retry_at").first()
    return row[1] if row is not None and row[0] == CircuitState.OPEN else None
