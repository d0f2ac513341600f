"""Versioned JSON Schemas and readable validation errors.

Schemas live in each app's ``schemas/`` folder as ``<subject>.v<N>.json``. Errors come back as
``{"pointer", "message", "value"}`` a person can act on; a value under a personal-data key is
redacted, and long values are cut, so errors can be stored, listed and logged.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from django.apps import apps
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

PII_KEYS = frozenset(
    {"email", "name", "first_name", "last_name", "phone", "address1", "address2", "address_1",
     "address_2", "line1", "line2", "street", "company", "city", "postcode", "postal_code", "zip",
     "buyer_email", "buyer_name", "customer_ip_address", "browser_ip", "contact_email"}
)  # fmt: skip
# Objects that hold a person's data as a whole: nothing under them is shown.
PII_CONTAINERS = frozenset(
    {"customer", "shipping_address", "billing_address", "address", "billing", "shipping",
     "buyer", "buyerinfo", "shippingaddress", "recipient", "deliveryaddress", "contact"}
)  # fmt: skip
MAX_VALUE_CHARS = 80
SCHEMA_FILE = re.compile(r"[a-z0-9_]+\.v[0-9]+\.json")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


@cache
def validator(app_label: str, name: str) -> Draft202012Validator:
    """The validator for ``<app>/schemas/<name>`` (``name`` like ``shopify_order.v1.json``)."""
    folder = Path(apps.get_app_config(app_label).path) / "schemas"
    schema = json.loads((folder / name).read_text())
    Draft202012Validator.check_schema(schema)

    def sibling(uri: str) -> Resource[Any]:
        # A "$ref" names another schema of the same folder by file name, nothing else.
        if not SCHEMA_FILE.fullmatch(uri):
            raise ValueError(f"{name}: $ref {uri!r} is not a schema file of {app_label}")
        return Resource.from_contents(json.loads((folder / uri).read_text()))

    # attrs' alias ("retrieve" for the private field) is not seen by mypy's attrs plugin.
    registry: Registry[Any] = Registry(retrieve=sibling)  # type: ignore[call-arg]
    return Draft202012Validator(schema, format_checker=FormatChecker(), registry=registry)


def pointer(path: Any) -> str:
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    return "/" + "/".join(parts) if parts else ""


def shown_value(path: Any, value: Any) -> Any:
    """The offending value as it may be stored: never personal data, never a whole object.

    Redacted when any key on the path names personal data or a container of it (a customer,
    an address); objects and lists are described, not shown; emails inside text are masked.
    """
    keys = [str(p).lower() for p in path if isinstance(p, str)]
    if any(k in PII_KEYS or k in PII_CONTAINERS for k in keys):
        return "[redacted]"
    if isinstance(value, dict):
        names = ", ".join(sorted(str(k) for k in value)[:8])
        return f"object with keys: {names}" if value else "empty object"
    if isinstance(value, list):
        return f"array of {len(value)} item(s)"
    if isinstance(value, str):
        value = _EMAIL.sub("[email]", value)
        return value if len(value) <= MAX_VALUE_CHARS else value[: MAX_VALUE_CHARS - 1] + "…"
    return value


def errors(app_label: str, name: str, instance: Any, *, limit: int = 20) -> list[dict[str, Any]]:
    """Every schema violation of ``instance`` (up to ``limit``), most specific first."""
    found = sorted(
        validator(app_label, name).iter_errors(instance),
        key=lambda e: (list(e.absolute_path), e.validator),
    )
    result: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for error in found:
        message = error.message
        if error.validator in (
            "required", "additionalProperties", "enum", "const", "type", "pattern", "format",
            "minLength", "maxLength",
        ):  # fmt: skip
            message = _short(error)
        where = pointer(error.absolute_path)
        if (where, message) in seen:  # one "required" error per missing field, same message
            continue
        seen.add((where, message))
        result.append(
            {"pointer": where, "message": message,
             "value": shown_value(error.absolute_path, error.instance)}
        )  # fmt: skip
        if len(result) == limit:
            break
    return result


def _short(error: Any) -> str:
    """Messages that do not quote the whole offending object (which may hold PII)."""
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in (error.instance or {})]
        return f"missing required field(s): {', '.join(missing)}"
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return f"unexpected field(s): {', '.join(extra)}"
    if error.validator == "type":
        return f"must be of type {error.validator_value}"
    if error.validator in ("pattern", "format", "minLength", "maxLength"):
        return f"does not match the expected {error.validator} ({error.validator_value})"
    if error.validator == "enum":
        return f"must be one of {', '.join(map(str, error.validator_value))}"
    return f"must be {error.validator_value!r}"
