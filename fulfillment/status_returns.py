"""Returns on the customer's order status page: start one (``/status/<token>/return/``), see it
(``/status/<token>/return/<rma>/``) and download its label (``.../label.pdf``).

The signed status token is the only key, as for the page itself; every return looked up through
it must belong to the token's order, else the same plain 404. The form is on its own address so
the status page stays free of cookies (the form needs Django's CSRF cookie). Each form carries a
fresh request key (``Return.request_key``): a double click or a resubmitted form starts one
return. What the customer sees of a return is its number, state in words, items, label and, once
refunded, the amount: nothing of the review notes customer service writes.

The return itself is started by ``fulfillment.returns.return_request`` with ``via=status_page``,
which also applies the window and the policy (an automatic authorization buys the label and
emails it).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods, require_safe

from fulfillment import returns
from fulfillment.carriers.base import web_link
from fulfillment.models import (
    Return,
    ReturnReason,
    ReturnResolution,
    ReturnStatus,
)
from fulfillment.selectors import return_policy_for
from fulfillment.status_page import first_name, returns_of, status_token_order_id
from fulfillment.status_views import not_found, private
from orders.actors import Actor
from orders.errors import DomainError
from orders.models import Order, OrderLine

CUSTOMER = Actor.system("customer:status-page")
MAX_NOTE = 2000
RS = ReturnStatus


@dataclass(frozen=True)
class ReturnableLine:
    line_id: int
    title: str
    units: int  # how many may still come back


def returnable_lines(order: Order) -> list[ReturnableLine]:
    left = returns.returnable_units(order.pk)
    lines = OrderLine.objects.filter(order_id=order.pk, pk__in=list(left)).order_by("line_no", "pk")
    return [ReturnableLine(line_id=ln.pk, title=ln.title or ln.sku, units=left[ln.pk])
            for ln in lines]  # fmt: skip


def can_start_return(order: Order, window_open: bool) -> bool:
    """Whether the status page offers "Start a return" (the form says what is left)."""
    return order.status in returns.RETURNABLE_ORDER_STATES and window_open


# --- the form ------------------------------------------------------------------------------------
class FormError(Exception):
    pass


def _read_form(post: Mapping[str, Any], lines: list[ReturnableLine]
               ) -> tuple[list[returns.ReturnLineRequest], str, str]:  # fmt: skip
    """The chosen lines, note and resolution; FormError with what to correct."""
    chosen = []
    for line in lines:
        raw = str(post.get(f"qty_{line.line_id}", "0") or "0").strip()
        if not raw.isdigit():
            raise FormError(f"Choose how many of {line.title} to return")
        quantity = int(raw)
        if quantity == 0:
            continue
        if quantity > line.units:
            raise FormError(f"You can return at most {line.units} of {line.title}")
        reason = str(post.get(f"reason_{line.line_id}", "") or "")
        if reason not in ReturnReason.values:
            raise FormError(f"Tell us why you are returning {line.title}")
        chosen.append(returns.ReturnLineRequest(order_line_id=line.line_id, quantity=quantity,
                                                reason=reason))  # fmt: skip
    if not chosen:
        raise FormError("Choose at least one item to return")
    resolution = str(post.get("resolution", ReturnResolution.REFUND) or ReturnResolution.REFUND)
    if resolution not in ReturnResolution.values:
        raise FormError("Choose a refund or an exchange")
    return chosen, str(post.get("note", "") or "")[:MAX_NOTE], resolution


def _order_of(token: str) -> Order | None:
    order_id = status_token_order_id(token)
    if order_id is None:
        return None
    return (
        Order.objects.select_related("channel", "customer")
        .only("pk", "order_number", "external_id", "status", "channel_id", "customer_id",
              "channel__name", "channel__slug", "customer__name", "placed_at")
        .filter(pk=order_id)
        .first()
    )  # fmt: skip


def _render(request: HttpRequest, template: str, context: dict[str, Any],
            status: int = 200) -> HttpResponse:  # fmt: skip
    html = render_to_string(template, context, request=request)
    return private(HttpResponse(html, status=status))


def _form_response(request: HttpRequest, context: dict[str, Any],
                   status: int = 200) -> HttpResponse:  # fmt: skip
    """The return form. A browser sends ``Origin: null`` on a POST from a ``no-referrer`` page,
    which Django's CSRF check refuses: the form's page is ``same-origin`` (the address, token
    included, still never goes to another site)."""
    response = _render(request, "status/start_return.html", context, status)
    response["Referrer-Policy"] = "same-origin"
    return response


@dataclass(frozen=True)
class FormWindow:
    policy_name: str
    window_days: int
    open_until: datetime | None  # None: not delivered yet (the window has not started)


def _form_context(order: Order, token: str, *, error: str = "",
                  post: Mapping[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    # The window return_request applies (the active policy, from the last delivery).
    policy = return_policy_for(channel_id=order.channel_id)
    ends = returns.return_window_ends(order, policy)
    info = (FormWindow(policy_name=policy.name, window_days=policy.window_days, open_until=ends)
            if policy is not None else None)  # fmt: skip
    window_open = ends is None or timezone.now() <= ends
    lines = returnable_lines(order) if can_start_return(order, window_open) else []
    post = post or {}
    return {
        "order_number": order.order_number or order.external_id,
        "shop_name": order.channel.name or order.channel.slug,
        "first_name": first_name(order.customer.name if order.customer else ""),
        "status_path": reverse("order-status", args=[token]),
        "policy": info,
        "lines": [
            {"line": line, "qty": str(post.get(f"qty_{line.line_id}", "0")),
             "reason": str(post.get(f"reason_{line.line_id}", "")),
             "choices": range(0, line.units + 1)}
            for line in lines
        ],
        "reasons": ReturnReason.choices,
        "resolutions": ReturnResolution.choices,
        "resolution": str(post.get("resolution", ReturnResolution.REFUND)),
        "note": str(post.get("note", "")),
        "key": str(post.get("key", "")) or secrets.token_urlsafe(18),
        "error": error,
        "window_closed": not window_open,
    }  # fmt: skip


@csrf_protect
@require_http_methods(["GET", "HEAD", "POST"])
def start_return(request: HttpRequest, token: str) -> HttpResponse:
    order = _order_of(token)
    if order is None:
        return not_found()
    if request.method != "POST":
        return _form_response(request, _form_context(order, token))
    key = str(request.POST.get("key", "")).strip()[:100]
    # The same form sent again (a double click, a reload): the return it already started.
    ret = Return.objects.filter(order_id=order.pk, request_key=key).first() if key else None
    if ret is None:
        context = _form_context(order, token, post=request.POST)
        lines = [row["line"] for row in context["lines"]]
        try:
            if context["window_closed"]:
                raise FormError("The return window for this order has closed")
            chosen, note, resolution = _read_form(request.POST, lines)
            ret = returns.return_request(
                order_id=order.pk, lines=chosen, via="status_page", actor=CUSTOMER, note=note,
                resolution=resolution, key=key,
            )  # fmt: skip
        except (FormError, DomainError) as exc:
            context["error"] = str(exc)
            return _form_response(request, context, status=400)
    return HttpResponseRedirect(
        reverse("order-status-return", args=[token, ret.rma_number]), status=303
    )


def _return_of(order: Order, rma: str) -> Return | None:
    return Return.objects.filter(order_id=order.pk, rma_number=rma).defer("label_pdf").first()


@require_safe
def return_detail(request: HttpRequest, token: str, rma: str) -> HttpResponse:
    order = _order_of(token)
    ret = _return_of(order, rma) if order is not None else None
    if order is None or ret is None:
        return not_found()
    [summary] = [s for s in returns_of(order.pk) if s.rma_number == ret.rma_number]
    policy = return_policy_for(channel_id=order.channel_id)
    return _render(request, "status/return_started.html", {
        "order_number": order.order_number or order.external_id,
        "shop_name": order.channel.name or order.channel.slug,
        "status_path": reverse("order-status", args=[token]),
        "label_path": reverse("order-status-return-label", args=[token, ret.rma_number]),
        "ret": summary,
        "policy_name": policy.name if policy is not None else "",
        "now": timezone.now(),
    })  # fmt: skip


@require_safe
def return_label(request: HttpRequest, token: str, rma: str) -> HttpResponse:
    """The return's label PDF, while the return is authorized (else 404)."""
    order = _order_of(token)
    ret = (
        Return.objects.filter(order_id=order.pk, rma_number=rma, status=RS.AUTHORIZED).first()
        if order is not None else None
    )  # fmt: skip
    if ret is None:
        return not_found()
    if not ret.label_pdf:
        if web_link(ret.label_url):  # the carrier's own label page (https only)
            return private(HttpResponseRedirect(web_link(ret.label_url)))
        return not_found()
    response = HttpResponse(bytes(ret.label_pdf), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="return-label-{ret.rma_number}.pdf"'
    return private(response)
