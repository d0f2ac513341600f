"""Routing's write: ``route_order`` stores an evaluation as a ``RoutingDecision`` and puts a
``routed`` event on the order's timeline."""

from __future__ import annotations

from typing import Any

import structlog
from django.db import transaction
from django.db.models import prefetch_related_objects

from config import correlation
from config.metrics import timed
from fulfillment.models import RoutingDecision
from fulfillment.routing.evaluation import Evaluation, evaluate
from orders.actors import Actor
from orders.errors import NotFound
from orders.models import Order
from orders.services import order_event_record

log = structlog.get_logger(__name__)


def _outcome(rule_id: int | None, actions: Any, explanation: Any) -> tuple[Any, ...]:
    customs: Any = {}
    for entry in explanation if isinstance(explanation, list) else []:
        if isinstance(entry, dict) and entry.get("kind") == "result":
            customs = entry.get("customs") or {}
    return (rule_id, actions, customs)


def _event_data(decision: RoutingDecision, evaluation: Evaluation) -> dict[str, Any]:
    """Short and flat, so the timeline shows it as ``key=value``."""
    actions = evaluation.actions
    first = evaluation.first_match
    data: dict[str, Any] = {
        "decision_id": decision.pk,
        "rule": first.name if first is not None else "defaults (no rule matched)",
    }
    others = [r.name for r in evaluation.applied_rules[1:]]
    if others:
        data["also"] = " + ".join(others)
    data["carrier"] = actions.get("carrier", "")
    data["service_level"] = actions.get("service_level", "")
    if "warehouse" in actions:
        data["warehouse"] = actions["warehouse"]
    if "warehouse_kind" in actions:
        data["warehouse_kind"] = actions["warehouse_kind"]
    data["lane"] = actions.get("lane", "")
    data["flags"] = ", ".join(k for k, v in actions.get("flags", {}).items() if v) or "none"
    if evaluation.customs_lines:
        data["customs_lines"] = len(evaluation.customs_lines)
    if evaluation.customs_problems:
        data["customs_problems"] = len(evaluation.customs_problems)
    return data


@timed("routing")  # outside the transaction: includes the commit
@transaction.atomic
def route_order(*, order_id: int, actor: Actor | None = None) -> RoutingDecision:
    """Evaluate the rules for an order, store the outcome as a ``RoutingDecision`` and put a
    ``routed`` event on the order's timeline.

    Safe to repeat: the order row is locked, and when the outcome (first matching rule, merged
    actions, customs lines) equals the latest stored decision's, that decision is returned and
    nothing is written. A changed outcome (a rule or the catalogue changed) stores a new
    decision and a new event; the latest decision is the one that counts. An unknown order
    raises ``NotFound``.
    """
    # Locked with what the rules read of it (channel, customer, lines), so that evaluating them
    # does not read the order again.
    order = (
        Order.objects.select_for_update(of=("self",), no_key=True)
        .select_related("channel", "customer").filter(pk=order_id).first()
    )  # fmt: skip
    if order is None:
        raise NotFound(f"Order {order_id} does not exist", code="order_not_found")
    prefetch_related_objects([order], "lines")
    return route_locked(order, actor=actor)


def route_locked(order: Order, *, actor: Actor | None = None) -> RoutingDecision:
    """``route_order`` for a caller whose transaction already holds the order locked (read
    with its channel and customer, its lines prefetched, as orchestration reads it); not timed
    on its own (the caller times the step)."""
    actor = actor or Actor.system("routing")
    order_id = order.pk
    evaluation = evaluate(order)
    explanation = evaluation.explanation()
    latest = (
        RoutingDecision.objects.filter(order_id=order_id).order_by("-decided_at", "-id").first()
    )
    if latest is not None and _outcome(latest.rule_id, latest.actions, latest.explanation) == (
        _outcome(evaluation.rule_id, evaluation.actions, explanation)
    ):
        log.info("routing.unchanged", order_id=order_id, decision_id=latest.pk)
        return latest
    decision = RoutingDecision.objects.create(
        order_id=order_id,
        rule_id=evaluation.rule_id,
        actions=evaluation.actions,
        explanation=explanation,
    )
    order_event_record(
        order_id=order_id,
        action="routed",
        actor=actor,
        data=_event_data(decision, evaluation),
        correlation_id=correlation.get() or order.correlation_id,
    )
    log.info(
        "routing.decided",
        order_id=order_id,
        decision_id=decision.pk,
        rule_id=evaluation.rule_id,
        lane=evaluation.actions.get("lane"),
    )
    return decision
