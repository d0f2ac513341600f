"""Reviews' part of a privacy request (``orders.privacy``): the review cases of the orders.

A case's reasons, signals and the reviewer's note are texts for people; a redaction replaces
the subject's values in them (the decision, score and dates stay: they are the audit of who
decided what).
"""

from __future__ import annotations

from typing import Any

from orders import privacy
from reviews.models import ReviewCase


def _export(scope: privacy.Scope) -> list[dict[str, Any]]:
    return [
        {
            "id": c.pk,
            "order_id": c.order_id,
            "status": c.status,
            "reasons": c.reasons,
            "score": c.score,
            "signals": c.signals,
            "decision_note": c.decision_note,
            "decided_at": c.decided_at,
            "created_at": c.created_at,
        }
        for c in ReviewCase.objects.filter(order_id__in=scope.order_ids).order_by("pk")
    ]


def _redact(scope: privacy.Scope) -> int:
    changed = 0
    for case in ReviewCase.objects.filter(order_id__in=scope.order_ids):
        values = {
            "reasons": privacy.scrub(case.reasons, scope.known),
            "signals": privacy.scrub(case.signals, scope.known),
            "decision_note": privacy.scrub(case.decision_note, scope.known),
        }
        if any(getattr(case, k) != v for k, v in values.items()):
            ReviewCase.objects.filter(pk=case.pk).update(**values)
            changed += 1
    return changed


def register() -> None:
    privacy.register("review_cases", export=_export, redact=_redact)
