"""The "why" text: rules, their actions and each rule's part in a decision, in plain words."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from fulfillment.models import RoutingRule

if TYPE_CHECKING:
    from fulfillment.routing.evaluation import RuleResult


def listing(values: Iterable[Any]) -> str:
    """Values joined for a sentence: ``US, CA``."""
    return ", ".join(str(v) for v in values)


def describe_conditions(conditions: Mapping[str, Any]) -> str:
    """One line of words for a rule's conditions (the admin list)."""
    if not isinstance(conditions, Mapping) or not conditions:
        return "every order"
    parts = []
    total = conditions.get("order_total")
    if isinstance(total, Mapping):
        cur = total.get("currency", "")
        if "gte" in total:
            parts.append(f"total >= {total['gte']} {cur}")
        if "lt" in total:
            parts.append(f"total < {total['lt']} {cur}")
    dest = conditions.get("destination")
    if isinstance(dest, Mapping):
        if "international" in dest:
            parts.append("international" if dest["international"] else "domestic")
        if dest.get("countries_in"):
            parts.append(f"ships to {listing(dest['countries_in'])}")
        if dest.get("countries_not_in"):
            parts.append(f"not to {listing(dest['countries_not_in'])}")
    if conditions.get("channels_in"):
        parts.append(f"channel {listing(conditions['channels_in'])}")
    if "customer_type" in conditions:
        parts.append(f"{conditions['customer_type']} customer")
    if "subscription_renewal" in conditions:
        renewal = conditions["subscription_renewal"]
        parts.append("subscription renewal" if renewal else "not a subscription renewal")
    weight = conditions.get("weight_grams")
    if isinstance(weight, Mapping):
        if "gte" in weight:
            parts.append(f"weight >= {weight['gte']} g")
        if "lt" in weight:
            parts.append(f"weight < {weight['lt']} g")
    if conditions.get("sku_tags_any"):
        parts.append(f"tagged {' or '.join(map(str, conditions['sku_tags_any']))}")
    if conditions.get("sku_tags_none"):
        parts.append(f"not tagged {' or '.join(map(str, conditions['sku_tags_none']))}")
    return " and ".join(parts) or "every order"


def describe_actions(actions: Mapping[str, Any]) -> str:
    """One line of words for a rule's (or a decision's) actions."""
    if not isinstance(actions, Mapping):
        return ""
    parts = []
    if "carrier" in actions:
        parts.append(f"carrier {actions['carrier']}")
    if "service_level" in actions:
        parts.append(str(actions["service_level"]))
    if "warehouse" in actions:
        parts.append(f"warehouse {actions['warehouse']}")
    if "warehouse_kind" in actions:
        kind = actions["warehouse_kind"]
        parts.append("a 3PL warehouse" if kind == "3pl" else "an own warehouse")
    if "lane" in actions:
        parts.append(f"lane {actions['lane']}")
    raw_flags = actions.get("flags")
    flags = raw_flags if isinstance(raw_flags, Mapping) else {}
    for flag, value in flags.items():
        parts.append(flag.replace("_", " ") if value else f"no {flag.replace('_', ' ')}")
    if actions.get("continue"):
        parts.append("then continue")
    return ", ".join(parts) or "nothing"


def describe_rule(rule: RoutingRule) -> str:
    return f"If {describe_conditions(rule.conditions)}: {describe_actions(rule.actions)}"


def rule_note(result: RuleResult, decided_by: str) -> str:
    """What a rule did in this evaluation, for its ``note``."""
    failed = [c.text for c in result.checks if not c.passed]
    if not result.matched:
        return "did not match: " + "; ".join(failed)
    if not result.applied:
        return f"matched, but not applied: {decided_by!r} already decided"
    wanted = [k for k in result.actions if k not in ("flags", "continue")]
    wanted += [f"flags.{flag}" for flag in result.actions.get("flags") or {}]
    kept = [k for k in wanted if k not in result.set_keys]
    sets = f"set {listing(result.set_keys)}" if result.set_keys else "set nothing new"
    if kept:
        sets += f"; kept {listing(kept)} from earlier rules"
    if result.decisive:
        return f"matched; {sets}; decides (lower-priority rules are not applied)"
    return f"matched; {sets}; continues to lower-priority rules"
