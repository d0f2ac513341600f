"""Routing an order on paper: try the active rules by (priority, id), merge what the
applied ones set, fill the rest from the defaults, and list the customs lines when a
declaration is due. Nothing here writes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from fulfillment.models import RoutingRule
from fulfillment.routing.conditions import Check, condition_checks
from fulfillment.routing.explain import describe_actions, rule_note
from fulfillment.routing.facts import catalogue_products, facts_of, order_with_lines
from fulfillment.routing.validation import schema_errors
from orders import money
from orders.models import Order, Product

FLAGS = ("signature_required", "customs_declaration", "hazmat")
# What a rule can decide; `warehouse` and `warehouse_kind` fill the same slot.
ACTION_SLOTS = ("carrier", "service_level", "warehouse", "lane")


def default_actions() -> dict[str, Any]:
    """What an order gets when no rule says otherwise."""
    return {
        "carrier": settings.ROUTING_DEFAULT_CARRIER or "local",
        "service_level": settings.ROUTING_DEFAULT_SERVICE_LEVEL or "ground",
        "lane": settings.ROUTING_DEFAULT_LANE or "fulfillment",
        "flags": {},
    }


@dataclass
class RuleResult:
    """One rule tried against the order: its checks, whether it matched, what it set."""

    rule_id: int | None
    name: str
    priority: int
    matched: bool
    applied: bool
    decisive: bool
    checks: list[Check]
    actions: dict[str, Any]
    set_keys: list[str]
    note: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "rule",
            "rule_id": self.rule_id,
            "rule": self.name,
            "priority": self.priority,
            "matched": self.matched,
            "applied": self.applied,
            "decisive": self.decisive,
            "note": self.note,
            "set": list(self.set_keys),
            "actions": dict(self.actions),
            "checks": [c.as_dict() for c in self.checks],
        }


@dataclass
class Evaluation:
    """The outcome of routing one order (nothing stored)."""

    order_id: int
    facts: dict[str, Any]
    rules: list[RuleResult]
    actions: dict[str, Any]
    sources: dict[str, str]
    customs_lines: list[dict[str, Any]] = field(default_factory=list)
    customs_problems: list[str] = field(default_factory=list)

    @property
    def applied_rules(self) -> list[RuleResult]:
        return [r for r in self.rules if r.applied]

    @property
    def first_match(self) -> RuleResult | None:
        return next((r for r in self.rules if r.applied), None)

    @property
    def rule_id(self) -> int | None:
        first = self.first_match
        return first.rule_id if first is not None else None

    def result_entry(self) -> dict[str, Any]:
        return {
            "kind": "result",
            "applied_rules": [r.name for r in self.applied_rules],
            "actions": dict(self.actions),
            "sources": dict(self.sources),
            "facts": dict(self.facts),
            "customs": {"lines": list(self.customs_lines), "problems": list(self.customs_problems)},
        }

    def explanation(self) -> list[dict[str, Any]]:
        """JSON for ``RoutingDecision.explanation``: one entry per rule tried (``kind: rule``),
        then the result (``kind: result``: merged actions, where each came from, the facts,
        the customs lines and their problems)."""
        return [r.as_dict() for r in self.rules] + [self.result_entry()]

    def summary(self) -> str:
        first = self.first_match
        head = (
            " + ".join(r.name for r in self.applied_rules)
            if first
            else "No rule matched (defaults)"
        )
        return f"{head}: {describe_actions(self.actions)}"


def _sort_key(rule: RoutingRule) -> tuple[int, int]:
    return (rule.priority, rule.pk or 0)


def _active_rules(rules: Iterable[RoutingRule] | None) -> list[RoutingRule]:
    if rules is None:
        return list(RoutingRule.objects.filter(is_active=True).order_by("priority", "id"))
    return sorted((r for r in rules if r.is_active), key=_sort_key)


def _apply(
    actions: Mapping[str, Any], merged: dict[str, Any], sources: dict[str, str], name: str
) -> list[str]:
    """Fill the slots this rule sets that no earlier rule set; return the ones it filled."""
    filled = []
    for slot in ACTION_SLOTS:
        keys = ("warehouse", "warehouse_kind") if slot == "warehouse" else (slot,)
        for key in keys:
            if key in actions and slot not in sources:
                merged[key] = actions[key]
                sources[slot] = name
                filled.append(key)
    for flag, value in (actions.get("flags") or {}).items():
        if f"flags.{flag}" not in sources:
            merged.setdefault("flags", {})[flag] = bool(value)
            sources[f"flags.{flag}"] = name
            filled.append(f"flags.{flag}")
    return filled


def _customs(order: Order, products: Mapping[str, Product]) -> tuple[list[dict], list[str]]:
    """Per line: what a customs declaration needs; the declared value is the line's net amount
    (quantity x unit price - discount allocation, before tax) in the order currency."""
    lines, problems = [], []
    for line in order.lines.all():
        product = products.get(line.sku) if line.sku else None
        value = money.quantize(
            line.unit_price * line.quantity - line.discount_allocation,
            order.currency,
            rounding=money.ROUND_HALF_UP,
        )
        hs_code = (product.hs_code if product is not None else "") or ""
        origin = (product.origin_country if product is not None else "") or ""
        label = f"line {line.line_no} ({line.sku or 'no SKU'})"
        title = line.title or (product.title if product is not None else "") or line.sku
        lines.append(
            {
                "line_no": line.line_no,
                "sku": line.sku,
                "description": title,
                "quantity": line.quantity,
                "hs_code": hs_code,
                "origin_country": origin,
                "declared_value": str(value),
                "currency": order.currency,
            }
        )
        if product is None:
            problems.append(f"{label}: not in the catalogue, so no HS code or origin country")
            continue
        if not hs_code:
            problems.append(f"{label}: no HS code in the catalogue")
        if not origin:
            problems.append(f"{label}: no origin country in the catalogue")
    return lines, problems


def evaluate(order: Order | int, rules: Iterable[RoutingRule] | None = None) -> Evaluation:
    """Route ``order`` on paper: try the active rules (all active ones, or the given ones) by
    (priority, id) and explain each. Writes nothing."""
    order = order_with_lines(order)
    products = catalogue_products(line.sku for line in order.lines.all())
    facts = facts_of(order, products)
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    results: list[RuleResult] = []
    decided_by = ""
    for rule in _active_rules(rules):
        conditions = rule.conditions if isinstance(rule.conditions, dict) else {}
        actions = rule.actions if isinstance(rule.actions, dict) else {}
        # Only the schema here: a rule saved around the admin (shell, fixture) that breaks it
        # never matches, rather than being guessed at. (A warehouse code that has gone away is
        # for allocation to report.)
        invalid = schema_errors(rule.conditions, rule.actions)
        if invalid:
            checks = [
                Check(
                    "",
                    "a valid rule",
                    "invalid",
                    False,
                    f"the rule is invalid: {e['pointer'] or '/'}: {e['message']}",
                )
                for e in invalid
            ]
        else:
            checks = condition_checks(conditions, facts)
        matched = all(c.passed for c in checks)
        applied = matched and not decided_by
        set_keys = _apply(actions, merged, sources, rule.name) if applied else []
        decisive = applied and not actions.get("continue", False)
        result = RuleResult(
            rule.pk,
            rule.name,
            rule.priority,
            matched,
            applied,
            decisive,
            checks,
            dict(actions),
            set_keys,
            "",
        )
        result.note = rule_note(result, decided_by)
        results.append(result)
        if decisive:
            decided_by = rule.name
    for key, value in default_actions().items():
        if key == "flags":
            merged.setdefault("flags", {})
        elif key not in sources:
            merged[key] = value
            sources[key] = "default"
    merged["flags"] = {k: merged["flags"][k] for k in FLAGS if k in merged["flags"]}
    evaluation = Evaluation(order.pk, facts, results, merged, sources)
    if merged["flags"].get("customs_declaration"):
        evaluation.customs_lines, evaluation.customs_problems = _customs(order, products)
    return evaluation
