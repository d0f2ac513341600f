"""Opening incidents: a categorized problem for a person, one per fingerprint while unresolved
(moving them, acknowledge and resolve, is ``orders.services``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from config import correlation
from orders.errors import InvalidInput, TransitionRefused
from orders.models import Incident, IncidentCategory, IncidentStatus, Severity

log = structlog.get_logger(__name__)


def incident_fingerprint(*, category: str, order_id: int | None, key: str = "") -> str:
    """What makes two incidents the same one: the category, the order and an optional key (a
    SKU, a check name, ``outbound_action:7``). The only place that spells the format."""
    return f"{category}:{order_id or '-'}:{key}"[:255]


def incident_raise(
    *,
    category: str,
    summary: str,
    order_id: int | None = None,
    severity: str = Severity.MEDIUM,
    details: Mapping[str, Any] | None = None,
    key: str = "",
) -> Incident:
    """Open an incident, or bump the unresolved one with the same fingerprint.

    The fingerprint (``incident_fingerprint``) is the category, the order and an optional key,
    so a re-run of the same failing check never opens a second incident. A unique index on
    unresolved fingerprints settles a race between two workers: the loser bumps the winner's row.
    """
    if category not in IncidentCategory.values:
        raise InvalidInput(f"Unknown incident category {category!r}", code="unknown_category")
    fingerprint = incident_fingerprint(category=category, order_id=order_id, key=key)
    now = timezone.now()
    for _attempt in range(2):
        try:
            with transaction.atomic():
                existing = (
                    Incident.objects.select_for_update()
                    .filter(fingerprint=fingerprint)
                    .exclude(status=IncidentStatus.RESOLVED)
                    .first()
                )
                if existing is not None:
                    Incident.objects.filter(pk=existing.pk).update(
                        occurrence_count=F("occurrence_count") + 1, last_seen_at=now
                    )
                    existing.refresh_from_db()
                    return existing
                incident = Incident.objects.create(
                    category=category,
                    severity=severity,
                    order_id=order_id,
                    fingerprint=fingerprint,
                    summary=summary[:255],
                    details=dict(details or {}),
                    correlation_id=correlation.get(),
                    first_seen_at=now,
                    last_seen_at=now,
                )
                log.info(
                    "incident.opened", incident_id=incident.pk, category=category,
                    order_id=order_id,
                )  # fmt: skip
                return incident
        except IntegrityError:
            continue  # another worker opened it between our read and insert: bump theirs
    raise TransitionRefused("Could not record the incident; try again", code="incident_conflict")
