"""Routing rules: which carrier, service level, warehouse, lane and flags an order gets, and why.

A ``RoutingRule`` holds ``conditions`` and ``actions`` as structured data validated by the JSON
Schema ``fulfillment/schemas/routing_rule.v1.json``. ``evaluate`` tries the active rules by
``(priority, id)``; every condition present must hold. The first matching rule decides, unless
its actions say ``continue``: then it applies what it sets, and lower-priority rules may still
set what is left (an earlier rule's value is never overwritten; each flag counts on its own).
What no rule sets comes from the defaults (settings ``ROUTING_DEFAULT_CARRIER``,
``ROUTING_DEFAULT_SERVICE_LEVEL``, ``ROUTING_DEFAULT_LANE``; no flags, no warehouse preference).

Every rule tried gets an explanation in plain words, one line per condition with the expected
and the actual value (``order total 1250.00 USD >= 1000.00 USD: yes``), so a person can see why
an order went where it went. ``evaluate`` never writes; ``route_order`` stores the outcome as a
``RoutingDecision`` and puts a ``routed`` event on the order's timeline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction

from config import correlation
from fulfillment.models import RoutingDecision, RoutingRule, Warehouse
from orders import jsonschemas, money
from orders.actors import Actor
from orders.errors import InvalidInput, NotFound
from orders.models import Order
from orders.services import order_event_record

log = structlog.get_logger(__name__)

SCHEMA = "routing_rule.v1.json"
CELERY_LANES = ("fulfillment", "sync", "notify", "ingest")
SERVICE_LEVELS = ("economy", "ground", "express", "premium")
FLAGS = ("signature_required", "customs_declaration", "hazmat")
# Conditions in the order they are explained (the schema's order).
CONDITION_KEYS = (
    "order_total",
    "destination",
    "channels_in",
    "customer_type",
    "subscription_renewal",
    "weight_grams",
    "sku_tags_any",
    "sku_tags_none",
)
# What a rule can decide; `warehouse` and `warehouse_kind` fill the same slot.
ACTION_SLOTS = ("carrier", "service_level", "warehouse", "lane")


# --- settings ----------------------------------------------------------------------------------
def home_country() -> str:
    return str(getattr(settings, "HOME_COUNTRY", "US") or "US").upper()


def default_actions() -> dict[str, Any]:
    """What an order gets when no rule says otherwise."""
    return {
        "carrier": getattr(settings, "ROUTING_DEFAULT_CARRIER", "local") or "local",
        "service_level": getattr(settings, "ROUTING_DEFAULT_SERVICE_LEVEL", "ground") or "ground",
        "lane": getattr(settings, "ROUTING_DEFAULT_LANE", "fulfillment") or "fulfillment",
        "flags": {},
    }


# --- validation --------------------------------------------------------------------------------
def _listing(values: Iterable[Any]) -> str:
    return ", ".join(str(v) for v in values)


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
        return f"missing required field(s): {_listing(missing)}"
    if kind == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"unknown field(s): {_listing(extra)}; allowed: {_listing(allowed)}"
    if kind == "enum":
        return f"{_shown(error.instance)} is not allowed; must be one of: {_listing(expected)}"
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
        return f"must set at least one of: {_listing(schema.get('properties', {}))}"
    if kind == "anyOf" and all(set(s) == {"required"} for s in expected):
        return f"needs at least one of: {_listing(s['required'][0] for s in expected)}"
    if kind == "not" and set(expected) == {"required"}:
        return f"set only one of: {_listing(expected['required'])}"
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
                f"a country cannot be both in and not in the list: {_listing(sorted(both))}",
            )
    any_tags = {str(t).lower() for t in conditions.get("sku_tags_any") or []}
    none_tags = {str(t).lower() for t in conditions.get("sku_tags_none") or []}
    if any_tags & none_tags:
        add(
            "/conditions",
            f"a tag cannot be both required (sku_tags_any) and excluded (sku_tags_none): "
            f"{_listing(sorted(any_tags & none_tags))}",
        )
    code = actions.get("warehouse")
    if isinstance(code, str) and code and not Warehouse.objects.filter(code=code).exists():
        add(
            "/actions/warehouse",
            f"no warehouse has the code {code!r} (add it first, e.g. with add_warehouse)",
            code,
        )
    return found


def _schema_errors(conditions: Any, actions: Any) -> list[dict[str, Any]]:
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
    result = _schema_errors(conditions, actions)
    if not result and isinstance(conditions, dict) and isinstance(actions, dict):
        result.extend(_semantic_errors(conditions, actions))
    return result


# --- facts -------------------------------------------------------------------------------------
SUBSCRIPTION_FLAG_KEYS = ("subscription_renewal", "is_subscription_renewal", "is_renewal")


def _source_tags(source: Mapping[str, Any]) -> list[str]:
    tags = source.get("tags")
    if isinstance(tags, str):
        return [t.strip() for t in tags.split(",") if t.strip()]
    if isinstance(tags, list):
        return [str(t).strip() for t in tags if str(t).strip()]
    return []


def subscription_renewal(source: Any) -> tuple[bool, str]:
    """Whether the channel's facts (``order.source``) say this order renews a subscription,
    and which fact says so. Read, in this order:

    - ``subscription_renewal`` / ``is_subscription_renewal`` / ``is_renewal`` set to ``true``
      (custom storefronts and ingest files);
    - Shopify's ``source_name == "subscription_contract"`` (orders billed by a subscription
      contract; the first checkout order has another source name);
    - WooCommerce Subscriptions' ``created_via == "subscription"`` (renewal orders);
    - ``tags`` (a comma-separated string or a list) with a tag containing "subscription",
      except tags that also say "first" (ReCharge's "Subscription First Order" is not a
      renewal, its "Subscription Recurring Order" is).
    """
    if not isinstance(source, Mapping):
        return False, ""
    for key in SUBSCRIPTION_FLAG_KEYS:
        if source.get(key) is True:
            return True, f"source {key} is true"
    if source.get("source_name") == "subscription_contract":
        return True, "Shopify source_name is subscription_contract"
    if str(source.get("created_via") or "").lower() == "subscription":
        return True, "WooCommerce created_via is subscription"
    for tag in _source_tags(source):
        low = tag.lower()
        if "subscription" in low and "first" not in low:
            return True, f"order tag {tag!r}"
    return False, ""


def _order_with_lines(order: Order | int) -> Order:
    order_id = order if isinstance(order, int) else order.pk
    return (
        Order.objects.select_related("channel", "customer")
        .prefetch_related("lines")
        .get(pk=order_id)
    )


def _products(skus: Iterable[str]) -> dict[str, Any]:
    from channels.models import Product  # the catalogue (channels sits beside fulfillment)

    wanted = {s for s in skus if s}
    return {p.sku: p for p in Product.objects.filter(sku__in=wanted)} if wanted else {}


def _facts(order: Order, products: Mapping[str, Any]) -> dict[str, Any]:
    shipping = order.shipping_address if isinstance(order.shipping_address, dict) else {}
    destination = str(order.ship_to_country or shipping.get("country_code") or "").upper()
    origin = home_country()
    renewal, renewal_reason = subscription_renewal(order.source)
    weight, unknown, weightless, tags = 0, [], [], set()
    for line in order.lines.all():
        product = products.get(line.sku) if line.sku else None
        if product is None:
            unknown.append(line.sku or f"line {line.line_no} (no SKU yet)")
            continue
        if product.weight_grams is None:
            weightless.append(line.sku)
        else:
            weight += int(product.weight_grams) * line.quantity
        tags.update(str(t).strip().lower() for t in (product.tags or []) if str(t).strip())
    return {
        "order_id": order.pk,
        "external_id": order.external_id,
        "total": str(money.quantize(order.total, order.currency, rounding=money.ROUND_HALF_UP)),
        "currency": order.currency,
        "destination_country": destination,
        "origin_country": origin,
        "international": (destination != origin) if destination else None,
        "channel": order.channel.slug,
        "customer_type": order.customer.account_type if order.customer_id else "",
        "subscription_renewal": renewal,
        "subscription_reason": renewal_reason,
        "weight_grams": weight,
        "unknown_skus": sorted(set(unknown)),
        "skus_without_weight": sorted(set(weightless)),
        "sku_tags": sorted(tags),
    }


def order_facts(order: Order | int) -> dict[str, Any]:
    """What routing conditions look at, as JSON-ready values.

    ``total`` (decimal string) and ``currency``; ``destination_country`` (the order's
    ``ship_to_country``, else its shipping address's ``country_code``), ``origin_country``
    (settings ``HOME_COUNTRY``) and ``international`` (``None`` when the destination is
    unknown); ``channel`` (slug); ``customer_type`` (``consumer``/``business``, ``""`` without a
    customer); ``subscription_renewal`` with ``subscription_reason`` (see
    ``subscription_renewal()``); ``weight_grams``: the sum of catalogue weight x quantity, where
    SKUs missing from the catalogue (``unknown_skus``) or without a weight
    (``skus_without_weight``) count as 0; ``sku_tags``: the union of the lines' catalogue tags,
    lower-cased.
    """
    order = _order_with_lines(order)
    return _facts(order, _products(line.sku for line in order.lines.all()))


# --- conditions --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """One condition of one rule against the order: expected, actual, and the verdict."""

    condition: str
    expected: str
    actual: str
    passed: bool
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "condition": self.condition,
            "expected": self.expected,
            "actual": self.actual,
            "passed": self.passed,
            "text": self.text,
        }


def _yes(ok: bool) -> str:
    return "yes" if ok else "no"


def _check(
    condition: str, expected: str, actual: str, passed: bool, statement: str, note: str = ""
) -> Check:
    text = f"{statement}: {_yes(passed)}" + (f" ({note})" if note else "")
    return Check(condition, expected, actual, passed, text)


def _list(values: Iterable[Any]) -> str:
    return "[" + ", ".join(str(v) for v in values) + "]"


def _check_total(spec: Mapping[str, Any], facts: Mapping[str, Any]) -> list[Check]:
    cur, rule_cur = facts["currency"], str(spec.get("currency", ""))
    actual = f"{facts['total']} {cur}"
    bounds = [(op, spec[key]) for key, op in (("gte", ">="), ("lt", "<")) if key in spec]
    if cur != rule_cur:
        expected = " and ".join(f"{op} {value} {rule_cur}" for op, value in bounds)
        return [
            _check(
                "order_total",
                expected,
                actual,
                False,
                f"order total {actual} {expected}",
                f"the order is in {cur} and the rule in {rule_cur}; amounts are not "
                f"converted between currencies",
            )
        ]
    checks = []
    total = Decimal(facts["total"])
    for op, value in bounds:
        limit = Decimal(str(value))
        ok = total >= limit if op == ">=" else total < limit
        expected = f"{op} {value} {rule_cur}"
        checks.append(
            _check("order_total", expected, actual, ok, f"order total {actual} {expected}")
        )
    return checks


def _check_destination(spec: Mapping[str, Any], facts: Mapping[str, Any]) -> list[Check]:
    dest, origin = facts["destination_country"], facts["origin_country"]
    shown = dest or "unknown"
    checks = []
    if "international" in spec:
        want = bool(spec["international"])
        word = "international" if want else "domestic"
        if facts["international"] is None:
            checks.append(
                _check(
                    "destination",
                    word,
                    "unknown",
                    False,
                    f"destination is {word}",
                    "the order has no destination country",
                )
            )
        else:
            ok = facts["international"] == want
            actual = "international" if facts["international"] else "domestic"
            checks.append(
                _check(
                    "destination",
                    word,
                    f"{actual} ({shown})",
                    ok,
                    f"destination {shown} is {word} (origin {origin})",
                )
            )
    if "countries_in" in spec:
        listed = list(spec["countries_in"])
        checks.append(
            _check(
                "destination",
                f"in {_list(listed)}",
                shown,
                dest in listed,
                f"destination {shown} in {_list(listed)}",
            )
        )
    if "countries_not_in" in spec:
        listed = list(spec["countries_not_in"])
        ok = bool(dest) and dest not in listed
        checks.append(
            _check(
                "destination",
                f"not in {_list(listed)}",
                shown,
                ok,
                f"destination {shown} not in {_list(listed)}",
                "" if dest else "the order has no destination country",
            )
        )
    return checks


def _check_weight(spec: Mapping[str, Any], facts: Mapping[str, Any]) -> list[Check]:
    weight = int(facts["weight_grams"])
    missing = [*facts["unknown_skus"], *facts["skus_without_weight"]]
    note = f"counted as 0 g, no catalogue weight: {_listing(missing)}" if missing else ""
    checks = []
    for key, op in (("gte", ">="), ("lt", "<")):
        if key in spec:
            limit = int(spec[key])
            ok = weight >= limit if op == ">=" else weight < limit
            checks.append(
                _check(
                    "weight_grams",
                    f"{op} {limit} g",
                    f"{weight} g",
                    ok,
                    f"total weight {weight} g {op} {limit} g",
                    note,
                )
            )
    return checks


def _check_tags(key: str, spec: Iterable[Any], facts: Mapping[str, Any]) -> list[Check]:
    wanted = [str(t).lower() for t in spec]
    have = list(facts["sku_tags"])
    found = [t for t in wanted if t in have]
    if key == "sku_tags_any":
        return [
            _check(
                key,
                f"any of {_list(wanted)}",
                _list(have),
                bool(found),
                f"SKU tags {_list(have)} include any of {_list(wanted)}",
                f"found {_listing(found)}" if found else "",
            )
        ]
    return [
        _check(
            key,
            f"none of {_list(wanted)}",
            _list(have),
            not found,
            f"SKU tags {_list(have)} include none of {_list(wanted)}",
            f"found {_listing(found)}" if found else "",
        )
    ]


def condition_checks(conditions: Mapping[str, Any], facts: Mapping[str, Any]) -> list[Check]:
    """Every condition of a rule against the order's facts, in a fixed order."""
    checks: list[Check] = []
    if not conditions:
        return [Check("", "", "", True, "no conditions: matches every order")]
    for key in CONDITION_KEYS:
        if key not in conditions:
            continue
        spec = conditions[key]
        if key == "order_total":
            checks.extend(_check_total(spec, facts))
        elif key == "destination":
            checks.extend(_check_destination(spec, facts))
        elif key == "channels_in":
            listed = list(spec)
            checks.append(
                _check(
                    key,
                    f"in {_list(listed)}",
                    facts["channel"],
                    facts["channel"] in listed,
                    f"channel {facts['channel']} in {_list(listed)}",
                )
            )
        elif key == "customer_type":
            actual = facts["customer_type"] or "unknown"
            checks.append(
                _check(
                    key,
                    str(spec),
                    actual,
                    facts["customer_type"] == spec,
                    f"customer type {actual} is {spec}",
                    "" if facts["customer_type"] else "the order has no customer",
                )
            )
        elif key == "subscription_renewal":
            want, have = bool(spec), bool(facts["subscription_renewal"])
            statement = f"order is {'' if want else 'not '}a subscription renewal"
            checks.append(
                _check(
                    key,
                    _yes(want),
                    _yes(have),
                    want == have,
                    statement,
                    facts["subscription_reason"],
                )
            )
        elif key == "weight_grams":
            checks.extend(_check_weight(spec, facts))
        else:  # sku_tags_any / sku_tags_none
            checks.extend(_check_tags(key, spec, facts))
    return checks


# --- evaluation --------------------------------------------------------------------------------
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


def _note(result: RuleResult, decided_by: str) -> str:
    failed = [c.text for c in result.checks if not c.passed]
    if not result.matched:
        return "did not match: " + "; ".join(failed)
    if not result.applied:
        return f"matched, but not applied: {decided_by!r} already decided"
    wanted = [k for k in result.actions if k not in ("flags", "continue")]
    wanted += [f"flags.{flag}" for flag in result.actions.get("flags") or {}]
    kept = [k for k in wanted if k not in result.set_keys]
    sets = f"set {_listing(result.set_keys)}" if result.set_keys else "set nothing new"
    if kept:
        sets += f"; kept {_listing(kept)} from earlier rules"
    if result.decisive:
        return f"matched; {sets}; decides (lower-priority rules are not applied)"
    return f"matched; {sets}; continues to lower-priority rules"


def _customs(order: Order, products: Mapping[str, Any]) -> tuple[list[dict], list[str]]:
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
    order = _order_with_lines(order)
    products = _products(line.sku for line in order.lines.all())
    facts = _facts(order, products)
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
        invalid = _schema_errors(rule.conditions, rule.actions)
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
        result.note = _note(result, decided_by)
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


# --- describing rules --------------------------------------------------------------------------
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
            parts.append(f"ships to {_listing(dest['countries_in'])}")
        if dest.get("countries_not_in"):
            parts.append(f"not to {_listing(dest['countries_not_in'])}")
    if conditions.get("channels_in"):
        parts.append(f"channel {_listing(conditions['channels_in'])}")
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
    flags = actions.get("flags") if isinstance(actions.get("flags"), Mapping) else {}
    for flag, value in flags.items():
        parts.append(flag.replace("_", " ") if value else f"no {flag.replace('_', ' ')}")
    if actions.get("continue"):
        parts.append("then continue")
    return ", ".join(parts) or "nothing"


def describe_rule(rule: RoutingRule) -> str:
    return f"If {describe_conditions(rule.conditions)}: {describe_actions(rule.actions)}"


# --- storing -----------------------------------------------------------------------------------
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
    actor = actor or Actor.system("routing")
    order = Order.objects.select_for_update().filter(pk=order_id).first()
    if order is None:
        raise NotFound(f"Order {order_id} does not exist", code="order_not_found")
    evaluation = evaluate(order_id)
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
