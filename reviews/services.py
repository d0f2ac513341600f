"""Write operations on review cases. Each runs in one transaction: lock the case, transition it,
move the order with ``order_transition``, write the order's audit event with the reviewer, and
enqueue follow-up work after commit."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import structlog
from django.db import IntegrityError, transaction
from django_fsm import ConcurrentTransition

from config.tasks import enqueue_on_commit
from orders.actors import Actor
from orders.errors import InvalidInput, NotFound, PermissionRefused, StaleState, TransitionRefused
from orders.models import Incident, IncidentCategory, IncidentStatus, Order, OrderStatus, Severity
from orders.services import (
    incident_raise,
    incident_transition,
    order_event_record,
    order_transition,
)
from reviews.models import PERM_REVIEW, ReviewCase

log = structlog.get_logger(__name__)

ROUTER_ACTOR = Actor.system("fraud")


def _score(risk: dict[str, Any] | None) -> Decimal | None:
    try:
        return Decimal(str((risk or {}).get("score")))
    except (InvalidOperation, ValueError):
        return None


@transaction.atomic
def review_case_open(
    *, order_id: int, reasons: list[str], risk: dict[str, Any] | None = None
) -> ReviewCase:
    """The review router: open a case for a validated order and move the order to ``in_review``.

    Idempotent: an unresolved case of the order is reused (a re-run of the pipeline opens no
    second one), and an order already in review is left there. Stock stays reserved.
    """
    order = Order.objects.select_for_update(of=("self",)).filter(pk=order_id).first()
    if order is None:
        raise NotFound(f"Order {order_id} does not exist")
    if order.status not in (OrderStatus.VALIDATED, OrderStatus.IN_REVIEW):
        raise TransitionRefused(
            f"Cannot open a review for order {order_id}: it is '{order.status}' "
            "(allowed from: validated, in_review)"
        )
    case = ReviewCase.objects.unresolved().filter(order_id=order_id).first()
    created = False
    if case is None:
        try:
            with transaction.atomic():
                case = ReviewCase.objects.create(
                    order_id=order_id,
                    reasons=[str(r) for r in reasons],
                    score=_score(risk),
                    signals=list((risk or {}).get("signals") or []),
                )
                created = True
        except IntegrityError:
            # Another worker opened it between our read and insert: use theirs.
            case = ReviewCase.objects.unresolved().get(order_id=order_id)
    if order.status == OrderStatus.VALIDATED:
        order_transition(
            order_id=order_id, transition="send_to_review", actor=ROUTER_ACTOR,
            expected_status=OrderStatus.VALIDATED, data={"case_id": case.pk},
        )  # fmt: skip
    if created:
        order_event_record(
            order_id=order_id, action="review_opened", actor=ROUTER_ACTOR,
            data={"case_id": case.pk, "reasons": case.reasons,
                  "score": str(case.score) if case.score is not None else None,
                  "sla_due_at": case.sla_due_at.isoformat()},
        )  # fmt: skip
        log.info("review.opened", case_id=case.pk, order_id=order_id, score=str(case.score))
    return case


def route_to_review(order_id: int, reasons: list[str], risk: dict[str, Any] | None) -> None:
    """The pipeline's review router (``orders.validation.set_review_router``)."""
    review_case_open(order_id=order_id, reasons=reasons, risk=risk)


def _user_of(actor: Actor) -> Any:
    user = actor.user
    if user is None:
        raise PermissionRefused("A review decision needs a person (a user actor)")
    if not user.has_perm(PERM_REVIEW):
        raise PermissionRefused(f"You do not have permission to review orders ({PERM_REVIEW})")
    return user


def _locked_case(case_id: int, transition: str) -> ReviewCase:
    try:
        case = ReviewCase.objects.select_for_update().get(pk=case_id)
    except ReviewCase.DoesNotExist:
        raise NotFound(f"Review case {case_id} does not exist") from None
    meta = getattr(case, transition)._django_fsm
    if not meta.has_transition(case.status):
        sources = sorted(str(s) for s in meta.transitions)
        raise TransitionRefused(
            f"Cannot {transition} review case {case_id}: it is '{case.status}' "
            f"(allowed from: {', '.join(sources)})"
        )
    return case


def _save(case: ReviewCase) -> None:
    try:
        case.save()
    except ConcurrentTransition:
        raise StaleState(
            f"Review case {case.pk} was changed by someone else at the same time: reload and "
            "try again"
        ) from None


def _audit(case: ReviewCase, action: str, actor: Actor, before: str, **data: Any) -> None:
    order_event_record(
        order_id=case.order_id, action=action, actor=actor, field="review_case",
        from_state=before, to_state=case.status, data={"case_id": case.pk, **data},
    )  # fmt: skip
    log.info("review.transition", case_id=case.pk, order_id=case.order_id, action=action,
             to_state=case.status)  # fmt: skip


@transaction.atomic
def review_case_start(*, case_id: int, actor: Actor) -> ReviewCase:
    """A reviewer takes an open (or escalated) case; they become its assignee."""
    user = _user_of(actor)
    case = _locked_case(case_id, "start")
    before = case.status
    case.start(by=user)
    _save(case)
    _audit(case, "review_started", actor, before)
    return case


@transaction.atomic
def review_case_approve(*, case_id: int, actor: Actor, note: str = "") -> ReviewCase:
    """Approve a case: the order goes back to ``validated`` and on to allocation after commit."""
    user = _user_of(actor)
    case = _locked_case(case_id, "approve")
    before = case.status
    case.approve(by=user, note=note.strip())
    _save(case)
    order_transition(
        order_id=case.order_id, transition="approve_review", actor=actor,
        expected_status=OrderStatus.IN_REVIEW, data={"case_id": case.pk},
    )  # fmt: skip
    _audit(case, "review_approved", actor, before, **({"note": note.strip()} if note else {}))
    _settle_escalation(case)
    enqueue_on_commit("orders.order_allocate", order_id=case.order_id)
    return case


@transaction.atomic
def review_case_reject(*, case_id: int, actor: Actor, reason: str) -> ReviewCase:
    """Reject a case: the order is cancelled (fulfillment's cancel hook releases its stock)."""
    user = _user_of(actor)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Rejecting a review needs a reason", code="reason_required")
    case = _locked_case(case_id, "reject")
    before = case.status
    case.reject(by=user, reason=reason)
    _save(case)
    order_transition(
        order_id=case.order_id, transition="cancel", actor=actor,
        reason=f"Rejected in review: {reason}", data={"case_id": case.pk},
    )  # fmt: skip
    _audit(case, "review_rejected", actor, before, reason=reason)
    _settle_escalation(case)
    return case


@transaction.atomic
def review_case_escalate(*, case_id: int, actor: Actor, note: str) -> ReviewCase:
    """Hand a case on to a senior person: it stays unresolved (the order stays in review) and a
    high-severity ``fraud_review`` incident makes it visible."""
    _user_of(actor)
    note = (note or "").strip()
    if not note:
        raise InvalidInput("Escalating a review needs a note", code="note_required")
    case = _locked_case(case_id, "escalate")
    before = case.status
    case.escalate(by=actor.user, note=note)
    _save(case)
    _audit(case, "review_escalated", actor, before, note=note)
    incident_raise(
        category=IncidentCategory.FRAUD_REVIEW,
        summary=f"Review case {case.pk} escalated",
        order_id=case.order_id,
        severity=Severity.HIGH,
        details={"case_id": case.pk},
        key=_incident_key(case),
    )
    return case


def _incident_key(case: ReviewCase) -> str:
    return f"review:{case.pk}"


def _settle_escalation(case: ReviewCase) -> None:
    """A decided case settles the incident its escalation opened."""
    fingerprint = f"{IncidentCategory.FRAUD_REVIEW}:{case.order_id}:{_incident_key(case)}"
    open_ids = (
        Incident.objects.filter(fingerprint=fingerprint)
        .exclude(status=IncidentStatus.RESOLVED)
        .values_list("pk", flat=True)
    )
    for incident_id in open_ids:
        incident_transition(
            incident_id=incident_id, transition="resolve", actor=Actor.system("review"),
            note=f"Review case {case.pk} was {case.status}",
        )  # fmt: skip
