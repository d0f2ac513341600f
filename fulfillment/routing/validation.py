"""Validation of a routing rule: the JSON Schema ``fulfillment/schemas/routing_rule.v1.json``
in words a person editing a rule can act on, plus what the schema cannot say (a known
currency, non-empty ranges, an existing warehouse)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from fulfillment.models import Warehouse
from fulfillment.routing.explain import listing
from orders import jsonschemas, money
from orders.errors import InvalidInput

SCHEMA = "routing_rule.v1.json"
CELERY_LANES = ("fulfillment", "sync", "notify", "ingest")
SERVICE_LEVELS = ("economy", "ground", "express", "premium")


def _shown(value: Any) -> str:
    """A value quoted in a message: scalars as written, objects and lists described."""
    if isinstance(value, dict | list | str):
        shown = jsonschemas.shown_value([], value)
        return repr(shown) if isinstance(value, str) else str(shown)
    return repr(value)


def _message(error: Any) -> str:
    """One schema violation in words a person editing a rule can act on."""
    kind, expected, schema = error.validator, error.validator_value, error.schema
    hint = f" ({schema['description']})" if isinstance(schema.get("description"), str) else ""
    if kind == "required":
        missing = [k for k in expected if k not in (error.instance or {})]
        return f"missing required field(s): {listing(missing)}"
    if kind == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"unknown field(s): {listing(extra)}; allowed: {listing(allowed)}"
    if kind == "enum":
        return f"{_shown(error.instance)} is not allowed; must be one of: {listing(expected)}"
    if kind == "type":
        article = "an" if str(expected)[:1] in "aeiou" else "a"
        return f"must be {article} {expected}, not {_shown(error.instance)}{hint}"
    if kind == "pattern":
        return (
            f"{_shown(error.instance)} is not valid{hint or f' (expected the pattern {expected})'}"
        )
    if kind == "minimum":
        return f"must be at least {expected}"
    if kind == "minItems":
        return f"must list at least {expected} item(s)"
    if kind == "uniqueItems":
        return "lists the same item more than once"
    if kind == "minLength":
        return "must not be empty" if expected == 1 else f"must be at least {expected} characters"
    if kind == "maxLength":
        return f"must be at most {expected} characters"
    if kind == "minProperties":
        return f"must set at least one of: {listing(schema.get('properties', {}))}"
    if kind == "anyOf" and all(set(s) == {"required"} for s in expected):
        return f"needs at least one of: {listing(s['required'][0] for s in expected)}"
    if kind == "not" and set(expected) == {"required"}:
        return f"set only one of: {listing(expected['required'])}"
    return str(error.message)


def _semantic_errors(conditions: Mapping[str, Any], actions: Mapping[str, Any]) -> list[dict]:
    """What the schema cannot say: known currency, non-empty ranges, existing warehouse."""
    found: list[dict[str, Any]] = []

    def add(where: str, message: str, value: Any = None) -> None:
        found.append({"pointer": where, "message": message, "value": value})

    total = conditions.get("order_total")
    if isinstance(total, dict) and isinstance(total.get("currency"), str):
        try:
            money.validate_currency(total["currency"])
        except InvalidInput:
            add(
                "/conditions/order_total/currency",
                f"unknown currency code {total['currency']!r}",
                total["currency"],
            )
    for key, unit in (("order_total", "amount"), ("weight_grams", "weight")):
        bounds = conditions.get(key)
        if isinstance(bounds, dict) and "gte" in bounds and "lt" in bounds:
            try:
                empty = Decimal(str(bounds["gte"])) >= Decimal(str(bounds["lt"]))
            except InvalidOperation:
                continue
            if empty:
                add(
                    f"/conditions/{key}",
                    f"gte ({bounds['gte']}) must be below lt ({bounds['lt']}): no {unit} is both "
                    f">= {bounds['gte']} and < {bounds['lt']}",
                )
    dest = conditions.get("destination")
    if isinstance(dest, dict):
        both = set(dest.get("countries_in") or []) & set(dest.get("countries_not_in") or [])
        if both:
            add(
                "/conditions/destination",
                f"a country cannot be both in and not in the list: {listing(sorted(both))}",
            )
    any_tags = {str(t).lower() for t in conditions.get("sku_tags_any") or []}
    none_tags = {str(t).lower() for t in conditions.get("sku_tags_none") or []}
    if any_tags & none_tags:
        add(
            "/conditions",
            f"a tag cannot be both required (sku_tags_any) and excluded (sku_tags_none): "
            f"{listing(sorted(any_tags & none_tags))}",
        )
    code = actions.get("warehouse")
    if isinstance(code, str) and code and not Warehouse.objects.filter(code=code).exists():
        add(
            "/actions/warehouse",
            f"no warehouse has the code {code!r} (add it first, e.g. with add_warehouse)",
            code,
        )
    return found


def schema_errors(conditions: Any, actions: Any) -> list[dict[str, Any]]:
    """The JSON Schema's verdict alone, deduplicated, as ``{"pointer", "message", "value"}``."""
    instance = {"conditions": conditions, "actions": actions}
    found = sorted(
        jsonschemas.validator("fulfillment", SCHEMA).iter_errors(instance),
        key=lambda e: ([str(p) for p in e.absolute_path], e.validator),
    )
    result: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for error in found:
        where, message = jsonschemas.pointer(error.absolute_path), _message(error)
        if (where, message) in seen:
            continue
        seen.add((where, message))
        value = jsonschemas.shown_value(error.absolute_path, error.instance)
        result.append({"pointer": where, "message": message, "value": value})
    return result


def validate_rule(conditions: Any, actions: Any) -> list[dict[str, Any]]:
    """Readable errors of a rule's conditions and actions (``[]`` when valid).

    Each error is ``{"pointer", "message", "value"}``; the pointer is rooted at the rule
    document (``/conditions/order_total/gte``, ``/actions/service_level``). Beyond the JSON
    Schema it checks what the schema cannot say: a known currency, ranges that some value can
    fall into, no tag or country both required and excluded, an existing warehouse code.
    """
    result = schema_errors(conditions, actions)
    if not result and isinstance(conditions, dict) and isinstance(actions, dict):
        result.extend(_semantic_errors(conditions, actions))
    return result
