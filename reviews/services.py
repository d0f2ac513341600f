"""Write operations on review cases. Each runs in one transaction: lock the case, transition it,
move the order with ``order_transition``, write the order's audit event with the reviewer, and
enqueue follow-up work after commit."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import structlog
from django.db import IntegrityError, transaction

from config.tasks import enqueue_on_commit
from orders.actors import Actor
from orders.errors import InvalidInput, NotFound, PermissionRefused, TransitionRefused
from orders.models import IncidentCategory, Order, OrderStatus, Severity
from orders.services import (
    incident_fingerprint,
    incident_raise,
    incidents_resolve,
    order_event_record,
    order_transition,
)
from orders.transitions import (
    Audit,
    AuditOf,
    row_lock,
    transition_apply,
    transition_check,
    transition_run,
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


def _audit(action: str, **data: Any) -> AuditOf[ReviewCase]:
    """The case's event on its order's timeline (with the reviewer as actor), and a log line."""

    def audit(case: ReviewCase, before: str) -> Audit:
        log.info("review.transition", case_id=case.pk, order_id=case.order_id, action=action,
                 to_state=case.status)  # fmt: skip
        return Audit(
            order_id=case.order_id, action=action, field="review_case", from_state=before,
            to_state=case.status, data={"case_id": case.pk, **data},
        )  # fmt: skip

    return audit


def _move(case_id: int, transition: str, actor: Actor, audit: AuditOf[ReviewCase],
          **kwargs: Any) -> ReviewCase:  # fmt: skip
    """Lock the case, move it, audit it (the one transition path; "it is 'open'" wording)."""
    return transition_apply(
        ReviewCase.objects.all(), case_id, transition, actor=actor, audit=audit, kwargs=kwargs,
        say_field=False,
    )  # fmt: skip


def _locked(case_id: int, transition: str) -> ReviewCase:
    """The locked case, refused now if ``transition`` is not allowed: a decision moves the
    order first (its event comes first on the timeline), then the case."""
    case = row_lock(ReviewCase.objects.all(), case_id)
    transition_check(case, transition, say_field=False)
    return case


@transaction.atomic
def review_case_start(*, case_id: int, actor: Actor) -> ReviewCase:
    """A reviewer takes an open (or escalated) case; they become its assignee."""
    user = _user_of(actor)
    return _move(case_id, "start", actor, _audit("review_started"), by=user)


@transaction.atomic
def review_case_approve(*, case_id: int, actor: Actor, note: str = "") -> ReviewCase:
    """Approve a case: the order goes back to ``validated`` and on to allocation after commit."""
    user = _user_of(actor)
    case = _locked(case_id, "approve")
    order_transition(
        order_id=case.order_id, transition="approve_review", actor=actor,
        expected_status=OrderStatus.IN_REVIEW, data={"case_id": case.pk},
    )  # fmt: skip
    transition_run(
        case, "approve", actor=actor, kwargs={"by": user, "note": note.strip()}, checked=True,
        audit=_audit("review_approved", **({"note": note.strip()} if note else {})),
    )  # fmt: skip
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
    case = _locked(case_id, "reject")
    order_transition(
        order_id=case.order_id, transition="cancel", actor=actor,
        reason=f"Rejected in review: {reason}", data={"case_id": case.pk},
    )  # fmt: skip
    transition_run(
        case, "reject", actor=actor, kwargs={"by": user, "reason": reason}, checked=True,
        audit=_audit("review_rejected", reason=reason),
    )  # fmt: skip
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
    case = _move(case_id, "escalate", actor, _audit("review_escalated", note=note),
                 by=actor.user, note=note)  # fmt: skip
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
    incidents_resolve(
        fingerprints=incident_fingerprint(
            category=IncidentCategory.FRAUD_REVIEW, order_id=case.order_id, key=_incident_key(case)
        ),
        actor=Actor.system("review"), note=f"Review case {case.pk} was {case.status}",
    )  # fmt: skip
