"""Versioned JSON Schemas and readable validation errors.

Schemas live in each app's ``schemas/`` folder as ``<subject>.v<N>.json``. Errors come back as
``{"pointer", "message", "value"}`` a person can act on; a value under a personal-data key is
redacted, and long values are cut, so errors can be stored, listed and logged.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from django.apps import apps
from jsonschema import Draft202012Validator, FormatChecker

PII_KEYS = frozenset(
    {"email", "name", "first_name", "last_name", "phone", "address1", "address2", "address_1",
     "address_2", "line1", "line2", "street", "company", "city", "postcode", "postal_code", "zip",
     "buyer_email", "buyer_name", "customer_ip_address", "browser_ip", "contact_email"}
)  # fmt: skip
MAX_VALUE_CHARS = 80


@cache
def validator(app_label: str, name: str) -> Draft202012Validator:
    """The validator for ``<app>/schemas/<name>`` (``name`` like ``shopify_order.v1.json``)."""
    path = Path(apps.get_app_config(app_label).path) / "schemas" / name
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def pointer(path: Any) -> str:
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    return "/" + "/".join(parts) if parts else ""


def shown_value(path: Any, value: Any) -> Any:
    """The offending value as it may be stored: redacted under a PII key, cut when long."""
    keys = [p for p in path if isinstance(p, str)]
    if keys and keys[-1].lower() in PII_KEYS:
        return "[redacted]"
    if isinstance(value, dict | list):
        text = json.dumps(value, default=str)
        return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return value[: MAX_VALUE_CHARS - 1] + "…"
    return value


def errors(app_label: str, name: str, instance: Any, *, limit: int = 20) -> list[dict[str, Any]]:
    """Every schema violation of ``instance`` (up to ``limit``), most specific first."""
    found = sorted(
        validator(app_label, name).iter_errors(instance),
        key=lambda e: (list(e.absolute_path), e.validator),
    )
    result = []
    for error in found[:limit]:
        message = error.message
        if error.validator in ("required", "additionalProperties", "enum", "const", "type"):
            message = _short(error)
        result.append(
            {
                "pointer": pointer(error.absolute_path),
                "message": message,
                "value": shown_value(error.absolute_path, error.instance),
            }
        )
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
    if error.validator == "enum":
        return f"must be one of {', '.join(map(str, error.validator_value))}"
    return f"must be {error.validator_value!r}"
