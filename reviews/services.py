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
        # The row this transaction holds, moved in place; any error ends this whole opening
        # (its own savepoint), so the move needs none of its own.
        order.row_remember()
        order_transition(
            order_id=order_id, transition="send_to_review", actor=ROUTER_ACTOR,
            expected_status=OrderStatus.VALIDATED, data={"case_id": case.pk}, locked=order,
            savepoint=False,
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


# --- the review workspace (reviews.workspace_views) -------------------------------------------
# Deciding from the workspace claims an open (or escalated) case in the same transaction as the
# decision: a reviewer who looked at the case and pressed "a" meant "I take it and approve it".
# Two guards keep two people from deciding one case:
# - the form carries the status the reviewer saw; if the locked row is no longer in it, someone
#   else moved it in between and the decision is refused, naming them (``CaseTaken``);
# - a case claimed by someone else is theirs: it is re-assigned first (``review_case_assign``).
# The row lock (PostgreSQL) and the FSM's compare-and-set save (SQLite too) catch the rest.
DECISIONS = ("approve", "reject", "escalate")


class CaseTaken(TransitionRefused):
    """Someone else decided, escalated or holds the case since the reviewer looked at it."""

    code = "case_taken"


def review_case_last_actor(case: ReviewCase) -> str:
    """Who moved the case last (the actor of its newest event on the order's timeline)."""
    from orders.models import OrderEvent

    event = (
        OrderEvent.objects.filter(order_id=case.order_id, field="review_case",
                                  data__case_id=case.pk)
        .order_by("-at", "-id").first()
    )  # fmt: skip
    if event is not None and event.actor_id:
        return event.actor_id
    person = case.decided_by or case.assignee
    return person.get_username() if person is not None else "someone else"


def case_taken_message(case: ReviewCase) -> str:
    """The words the second reviewer reads: what happened to the case and who did it."""
    who = review_case_last_actor(case)
    if case.status in ("approved", "rejected"):
        return f"Case {case.pk} was already decided by {who} ({case.get_status_display().lower()})."
    if case.status == "escalated":
        return f"Case {case.pk} was already escalated by {who}; look at it again before deciding."
    holder = case.assignee.get_username() if case.assignee is not None else who
    return f"Case {case.pk} is being reviewed by {holder}; have it assigned to you to decide."


def _refuse_if_taken(case: ReviewCase, user: Any, expected_status: str | None) -> None:
    if expected_status is not None and case.status != expected_status:
        raise CaseTaken(case_taken_message(case))
    if case.assignee_id is not None and case.assignee_id != user.pk and case.status in (
        "open", "in_review",
    ):  # fmt: skip
        raise CaseTaken(case_taken_message(case))


@transaction.atomic
def review_case_claim(*, case_id: int, actor: Actor) -> ReviewCase:
    """A reviewer takes an open or escalated case (``review_case_start``), unless another
    person holds it: then it must be assigned over explicitly."""
    user = _user_of(actor)
    case = row_lock(ReviewCase.objects.all(), case_id)
    if case.status == "in_review" and case.assignee_id == user.pk:
        return case  # already mine: claiming twice is a no-op
    _refuse_if_taken(case, user, expected_status=None)
    return review_case_start(case_id=case_id, actor=actor)


@transaction.atomic
def review_case_assign(*, case_id: int, actor: Actor, assignee_id: int) -> ReviewCase:
    """Give an unresolved case to a reviewer (the actor or another one), audited on the order's
    timeline as ``review_assigned``. The status stays: an open case stays open for its new
    assignee to claim, a case in review moves to them with its review."""
    from django.contrib.auth import get_user_model

    _user_of(actor)
    assignee = get_user_model().objects.filter(pk=assignee_id, is_active=True).first()
    if assignee is None:
        raise InvalidInput(f"User {assignee_id} does not exist", code="assignee_unknown")
    if not assignee.has_perm(PERM_REVIEW):
        raise InvalidInput(
            f"{assignee.get_username()} cannot review orders ({PERM_REVIEW})",
            code="assignee_not_reviewer",
        )
    case = row_lock(ReviewCase.objects.all(), case_id)
    if not case.is_unresolved:
        raise CaseTaken(case_taken_message(case))
    before = case.assignee.get_username() if case.assignee is not None else ""
    if case.assignee_id == assignee.pk:
        return case
    # The assignee is a plain field (no state moves): a conditional update so a concurrent
    # assignment cannot be overwritten unseen.
    moved = ReviewCase.objects.filter(
        pk=case.pk, status=case.status, assignee_id=case.assignee_id
    ).update(assignee=assignee)
    if moved != 1:
        raise CaseTaken(case_taken_message(case))
    case.assignee = assignee
    order_event_record(
        order_id=case.order_id, action="review_assigned", actor=actor, field="review_case",
        from_state=case.status, to_state=case.status,
        data={"case_id": case.pk, "assignee": assignee.get_username(), "previous": before},
    )  # fmt: skip
    log.info("review.assigned", case_id=case.pk, order_id=case.order_id)
    return case


@transaction.atomic
def review_case_decide(
    *, case_id: int, actor: Actor, decision: str, note: str = "",
    expected_status: str | None = None,
) -> ReviewCase:  # fmt: skip
    """Approve, reject or escalate from the workspace: claim the case first if it is open or
    escalated (same transaction), refuse with ``CaseTaken`` if someone else moved or holds it
    since the reviewer looked (``expected_status``: the status the page showed)."""
    user = _user_of(actor)
    if decision not in DECISIONS:
        raise InvalidInput(f"Unknown decision '{decision}' (one of: {', '.join(DECISIONS)})")
    note = (note or "").strip()
    if decision == "reject" and not note:
        raise InvalidInput("Rejecting a review needs a reason", code="reason_required")
    if decision == "escalate" and not note:
        raise InvalidInput("Escalating a review needs a note", code="note_required")
    case = row_lock(ReviewCase.objects.all(), case_id)
    _refuse_if_taken(case, user, expected_status)
    if case.status != "in_review":
        if not case.is_unresolved:
            raise CaseTaken(case_taken_message(case))
        review_case_start(case_id=case.pk, actor=actor)
    if decision == "approve":
        return review_case_approve(case_id=case.pk, actor=actor, note=note)
    if decision == "reject":
        return review_case_reject(case_id=case.pk, actor=actor, reason=note)
    return review_case_escalate(case_id=case.pk, actor=actor, note=note)


def bulk_approve_refusal(case: ReviewCase, *, threshold: int) -> str:
    """Why ``case`` is not low risk enough to approve in bulk ("" when it is).

    Low risk: a known score below the review threshold, no high-value signal and not a
    first-time customer whose billing and shipping differ. What is left is a case opened by a
    policy rule alone (international orders), which a reviewer may clear in a batch."""
    names = {str(s.get("name")) for s in case.signals or [] if isinstance(s, dict)}
    if case.score is None:
        return "it has no risk score"
    if case.score >= threshold:
        return f"its score {case.score.normalize():f} is not below the review threshold {threshold}"
    if "high_value" in names:
        return "it is a high-value order"
    if "first_time_customer" in names and names & {"country_mismatch", "name_mismatch"}:
        return "a first-time customer's billing and shipping addresses differ"
    return ""


def review_cases_bulk_approve(
    *, case_ids: list[int], actor: Actor
) -> tuple[list[ReviewCase], list[tuple[int, str]]]:
    """Approve the low-risk cases of ``case_ids`` (``bulk_approve_refusal``), each in its own
    transaction through ``review_case_decide``; returns the approved cases and, for every other
    one, its id and why it was refused."""
    from reviews.models import FraudSettings

    _user_of(actor)
    threshold = FraudSettings.load().review_threshold
    approved: list[ReviewCase] = []
    refused: list[tuple[int, str]] = []
    cases = ReviewCase.objects.in_bulk(sorted(set(case_ids)))
    for case_id in sorted(set(case_ids)):
        found = cases.get(case_id)
        if found is None:
            refused.append((case_id, "it does not exist"))
            continue
        why = bulk_approve_refusal(found, threshold=threshold)
        if why:
            refused.append((case_id, why))
            continue
        try:
            approved.append(
                review_case_decide(
                    case_id=case_id, actor=actor, decision="approve", expected_status=found.status
                )  # fmt: skip
            )
        except (TransitionRefused, InvalidInput) as exc:
            refused.append((case_id, str(exc)))
    return approved, refused
