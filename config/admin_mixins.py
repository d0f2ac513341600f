"""Admin building blocks every app shares (``config`` imports no app, only Django)."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest
from django.utils.html import format_html, format_html_join


class ReadOnlyAdminMixin:
    """A record the system keeps (an audit event, an inbox delivery, a stock level, a routing
    decision, a breaker): shown to those who may view it, never typed in, edited or deleted
    here; it changes only through its services."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- inboxes: the errors of a quarantined delivery (channels' and carriers' admins) -----------
def first_error_text(errors: list[dict[str, Any]] | None) -> str:
    """The first error as ``pointer: message``, with how many more there are ("" for none)."""
    if not errors:
        return ""
    first = errors[0]
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{first.get('pointer') or '(body)'}: {first.get('message')}{more}"


def errors_html(errors: list[dict[str, Any]] | None, *, with_values: bool = False) -> str:
    """The errors as a list; the values they quote only ``with_values`` (a value can be
    personal data: only roles that may see raw payloads get them)."""
    if not errors:
        return "—"
    if with_values:
        items = format_html_join(
            "", "<li><code>{}</code> {} (value: <code>{}</code>)</li>",
            ((e.get("pointer") or "(body)", e.get("message"), json.dumps(e.get("value")))
             for e in errors),
        )  # fmt: skip
    else:
        items = format_html_join(
            "", "<li><code>{}</code> {}</li>",
            ((e.get("pointer") or "(body)", e.get("message")) for e in errors),
        )  # fmt: skip
    return format_html("<ul>{}</ul>", items)
