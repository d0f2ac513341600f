"""One rule's conditions against an order's facts: each check with its expected and actual
value and a line of text (``order total 1250.00 USD >= 1000.00 USD: yes``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fulfillment.routing.explain import listing

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
    note = f"counted as 0 g, no catalogue weight: {listing(missing)}" if missing else ""
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
                f"found {listing(found)}" if found else "",
            )
        ]
    return [
        _check(
            key,
            f"none of {_list(wanted)}",
            _list(have),
            not found,
            f"SKU tags {_list(have)} include none of {_list(wanted)}",
            f"found {listing(found)}" if found else "",
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
