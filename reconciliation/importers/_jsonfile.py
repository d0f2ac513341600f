"""What the JSON importers share: a file read with exact amounts, JSON pointers for errors, the
raw row as it can be stored, and the vendor's timestamps as aware UTC."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from reconciliation.imports import RowError


def load(path: Path, run_reject: Any) -> Any:
    """The file's JSON (a number with a fraction as a ``Decimal``, never a float), or None after
    rejecting the whole file as one error (``run_reject(where, message)``)."""
    try:
        return json.loads(path.read_bytes(), parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        run_reject(f"{path.name}#", f"the file is not JSON ({exc})")
        return None


def pointer(name: str, *parts: str | int) -> str:
    """``name#/a/0/b`` (RFC 6901: ``~`` and ``/`` escaped)."""
    escaped = (str(p).replace("~", "~0").replace("/", "~1") for p in parts)
    return f"{name}#/" + "/".join(escaped) if parts else f"{name}#"


def jsonable(value: Any) -> Any:
    """The row as a JSONField stores it: a ``Decimal`` as the text the vendor sent (a float an
    SDK parsed as its shortest text: never a float in our rows)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):  # only from an SDK's own parsing (Stripe's exchange_rate)
        return repr(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def text(value: Any) -> str:
    """An id or reference as text ("" for none); an integer id stays its digits."""
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, dict):
        return text(value.get("id"))
    return str(value).strip()


def required_id(row: dict[str, Any], where: Sequence[str | int], name: str) -> str:
    value = text(row.get("id"))
    if not value:
        raise RowError(pointer(name, *where, "id"), "the row has no id")
    return value


def iso_datetime(value: Any, where: str) -> datetime:
    """An ISO 8601 timestamp with its offset, as UTC (a naive one is refused: whose time?)."""
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise RowError(where, f"{value!r} is not a timestamp") from None
    if parsed.tzinfo is None:
        raise RowError(where, f"{value!r} has no time zone")
    return parsed.astimezone(UTC)


def iso_date(value: Any, where: str) -> date:
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise RowError(where, f"{value!r} is not a date (YYYY-MM-DD)") from None


def unix_datetime(value: Any, where: str) -> datetime:
    """Seconds since the epoch (Stripe's ``created``) as UTC."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise RowError(where, f"{value!r} is not a unix timestamp")
    return datetime.fromtimestamp(value, tz=UTC)
