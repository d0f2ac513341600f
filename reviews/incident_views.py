"""The incidents screen, with the admin's look, under ``/admin/work/incidents/``:

- without ``category``: per category the incidents first seen today (UTC), in 7 and in 30 days
  with their occurrences, how many are open now, a per-day chart of occurrences over 30 days
  (pygal, SVG drawn on the server, no JavaScript) and the top 3 categories of the last 7 days
  with their change against the 7 days before;
- with ``?category=X``: the open and acknowledged incidents of that category (first and last
  seen, occurrences, order, summary), acknowledge and resolve (with a note), and the fix next
  to the problem, each through the service the REST API calls too:
  an unmapped SKU -> "Map and release" (``channels.services.sku_map_and_release``), a
  quarantined inbound event -> its errors, its channel's settings and "Replay"
  (``inbound_event_replay``), a dead outbound action -> "Retry" (``action_retry_dead``), an
  address hold -> the corrected address and "Save and release"
  (``orders.services.order_shipping_address_correct``).

Seeing needs ``orders.view_incident`` and ``orders.view_incident_screen`` (customer service,
operations; reviewers and finance read incidents through the API and admin), acknowledging
and resolving ``orders.work_incident``; every fix asks its own service for the rest (a role
without it sees why instead of the button). Plain forms, POST then redirect: no JavaScript needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pygal
from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.safestring import mark_safe

from channels.models import InboundEvent, InboundStatus
from channels.services import (
    PERM_ADD_SKU_MAPPING,
    VIEW_RAW_PAYLOAD,
    inbound_errors_shown,
    inbound_event_replay,
    sku_map_and_release,
)
from fulfillment.models import ActionStatus, OutboundAction
from fulfillment.outbox.services import action_retry_dead
from orders.actors import Actor
from orders.errors import DomainError, InvalidInput
from orders.models import Incident, IncidentCategory, Product
from orders.personal_data import address_for, sees_contact_details
from orders.services import (
    ADDRESS_FIX_FIELDS,
    incident_transition,
    order_shipping_address_correct,
)
from reviews.selectors import incident_overview, incidents_unresolved

PERM_VIEW = "orders.view_incident"
PERM_SCREEN = "orders.view_incident_screen"  # customer service and operations only
PERM_WORK = "orders.work_incident"
PERM_REPLAY = "channels.replay_inboundevent"
PERM_RETRY = "fulfillment.change_outboundaction"
PERM_RELEASE = "orders.hold_order"
ADDRESS_CATEGORIES = (IncidentCategory.ADDRESS_FORMAT_INVALID,
                      IncidentCategory.ADDRESS_UNDELIVERABLE)  # fmt: skip
ADDRESS_LABELS = {"line1": "Street line 1", "line2": "Street line 2", "city": "City",
                  "region_code": "Region code", "postal_code": "Postal code",
                  "country_code": "Country code"}  # fmt: skip
PRODUCT_CHOICES_MAX = 1000  # the datalist offered for "Map to product"; typing any SKU works


def _need(request: HttpRequest, perm: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied


def _here(category: str = "") -> str:
    url = reverse("work:incidents")
    return f"{url}?{urlencode({'category': category})}" if category else url


def _chart(overview: Any) -> str:
    """Occurrences per UTC day (by first seen) over 30 days, a stacked bar per category (SVG)."""
    chart = pygal.StackedBar(js=[], disable_xml_declaration=True, width=900, height=300,
                             show_minor_x_labels=False, x_label_rotation=0, truncate_label=-1,
                             legend_at_bottom=True, legend_at_bottom_columns=4,
                             title="Incident occurrences per day (first seen, UTC)")  # fmt: skip
    labels = [d.strftime("%m-%d") for d in overview.days]
    chart.x_labels = labels
    chart.x_labels_major = labels[::5]
    for fig in overview.categories:
        if fig.category in overview.per_day:
            chart.add(fig.label, overview.per_day[fig.category])
    return str(chart.render(is_unicode=True))


@staff_member_required
def incidents_page(request: HttpRequest) -> HttpResponse:
    _need(request, PERM_VIEW)
    _need(request, PERM_SCREEN)
    category = (request.POST.get("category") or request.GET.get("category") or "").strip()
    if category and category not in IncidentCategory.values:
        messages.error(request, f"There is no incident category {category!r}.")
        return HttpResponseRedirect(_here())
    if request.method == "POST":
        _act(request)
        return HttpResponseRedirect(_here(category))
    if category:
        return _category_page(request, category)
    overview = incident_overview()
    context = {
        **admin.site.each_context(request), "title": "Incidents", "overview": overview,
        "chart": mark_safe(_chart(overview)),  # noqa: S308 (pygal's SVG, escaped by it)
        "windows": [("today", "Today"), ("7d", "7 days"),
                                                ("30d", "30 days")],
    }  # fmt: skip
    return TemplateResponse(request, "admin/reviews/incidents.html", context)


# --- the actions -----------------------------------------------------------------------------
def _act(request: HttpRequest) -> None:
    """Run the one action the form names through its service; say what happened."""
    action = request.POST.get("action", "")
    handler = ACTIONS.get(action)
    if handler is None:
        messages.error(request, f"Unknown action {action!r}.")
        return
    try:
        messages.success(request, handler(request, Actor.for_user(request.user)))
    except DomainError as exc:
        messages.error(request, str(exc))


def _id(request: HttpRequest, name: str) -> int:
    try:
        value = int(request.POST.get(name, ""))
    except ValueError:
        raise InvalidInput(f"The form lacks a valid {name.replace('_', ' ')}") from None
    if value < 1:
        raise InvalidInput(f"The form lacks a valid {name.replace('_', ' ')}")
    return value


def _acknowledge(request: HttpRequest, actor: Actor) -> str:
    _need(request, PERM_WORK)
    incident = incident_transition(incident_id=_id(request, "incident_id"),
                                   transition="acknowledge", actor=actor)  # fmt: skip
    return f"Incident {incident.pk} acknowledged."


def _resolve(request: HttpRequest, actor: Actor) -> str:
    _need(request, PERM_WORK)
    note = request.POST.get("note", "").strip()
    if not note:
        raise InvalidInput("Say how it was resolved: a note is required")
    incident = incident_transition(incident_id=_id(request, "incident_id"), transition="resolve",
                                   actor=actor, note=note)  # fmt: skip
    return f"Incident {incident.pk} resolved."


def _map_sku(request: HttpRequest, actor: Actor) -> str:
    outcome = sku_map_and_release(
        channel_id=_id(request, "channel_id"), external_ref=request.POST.get("external_ref", ""),
        sku=request.POST.get("sku", ""), actor=actor,
    )  # fmt: skip
    mapping = outcome.mapping
    words = [
        f"{'Mapped' if outcome.created else 'Already mapped'} {mapping.external_ref} on "
        f"{mapping.channel.slug} to {mapping.product.sku}"
    ]
    words.append(
        f"{len(outcome.released)} held order(s) released"
        + (f" ({', '.join(map(str, outcome.released))})" if outcome.released else "")
    )
    if outcome.still_held:
        words.append(f"{len(outcome.still_held)} stay held for other unmapped lines "
                     f"({', '.join(map(str, outcome.still_held))})")  # fmt: skip
    return "; ".join(words) + "."


def _replay(request: HttpRequest, actor: Actor) -> str:
    _need(request, PERM_REPLAY)
    event = inbound_event_replay(event_id=_id(request, "event_id"), actor=actor)
    if event.status == InboundStatus.QUARANTINED:
        raise InvalidInput(f"Inbound event {event.pk} is still invalid: see its errors")
    return f"Inbound event {event.pk} replayed ({event.status})."


def _retry(request: HttpRequest, actor: Actor) -> str:
    _need(request, PERM_RETRY)
    action = action_retry_dead(action_id=_id(request, "action_id"), actor=actor)
    action.refresh_from_db()  # in-process workers may have run it already
    return (
        f"Outbound action {action.pk} ({action.kind} -> {action.target}) retried: {action.status}."
    )


def _fix_address(request: HttpRequest, actor: Actor) -> str:
    order = order_shipping_address_correct(
        order_id=_id(request, "order_id"),
        address={key: request.POST.get(key, "") for key in ADDRESS_FIX_FIELDS}, actor=actor,
    )  # fmt: skip
    order.refresh_from_db()
    return f"Order {order.pk}: shipping address corrected and hold released (now {order.status})."


ACTIONS: dict[str, Callable[[HttpRequest, Actor], str]] = {
    "acknowledge": _acknowledge, "resolve": _resolve, "map_sku": _map_sku, "replay": _replay,
    "retry": _retry, "fix_address": _fix_address,
}  # fmt: skip


# --- the list of one category ----------------------------------------------------------------
def _unmapped_refs(incidents: list[Incident]) -> list[dict[str, Any]]:
    """The channel references the unmapped-SKU incidents name, once per (channel, reference),
    with the orders held for each: one "Map and release" form per reference."""
    refs: dict[tuple[int, str], dict[str, Any]] = {}
    for incident in incidents:
        if incident.order is None:
            continue
        lines = incident.details.get("lines") or [
            {"variant_ref": r, "channel_sku": "", "label": r}
            for r in incident.details.get("unmapped", [])
        ]
        for line in lines:
            # The variant id when the channel sent one (stable across renamed SKUs), else its SKU.
            ref = line.get("variant_ref") or line.get("channel_sku") or ""
            if not ref:
                continue
            key = (incident.order.channel_id, ref)
            entry = refs.setdefault(key, {"channel": incident.order.channel, "ref": ref,
                                          "label": line.get("label") or ref, "orders": [],
                                          "order_ids": set()})  # fmt: skip
            if incident.order_id not in entry["order_ids"]:
                entry["order_ids"].add(incident.order_id)
                entry["orders"].append(incident.order)
    return sorted(refs.values(), key=lambda e: (e["channel"].slug, e["ref"]))


def _category_page(request: HttpRequest, category: str) -> HttpResponse:
    user = request.user
    incidents = list(incidents_unresolved(category=category))
    event_ids = {i.details.get("inbound_event_id") for i in incidents} - {None}
    action_ids = {i.details.get("outbound_action_id") for i in incidents} - {None}
    events = InboundEvent.objects.select_related("channel").defer("raw_body", "fetched")
    events_by_id = {e.pk: e for e in events.filter(pk__in=event_ids)} if event_ids else {}
    actions_by_id = (
        {a.pk: a for a in OutboundAction.objects.filter(pk__in=action_ids)} if action_ids else {}
    )
    raw = user.has_perm(VIEW_RAW_PAYLOAD)
    contact = sees_contact_details(user)
    rows = []
    for incident in incidents:
        row: dict[str, Any] = {"incident": incident}
        event = events_by_id.get(incident.details.get("inbound_event_id"))
        if event is not None:
            row["event"] = event
            row["event_errors"] = inbound_errors_shown(list(event.errors or []), raw=raw)
            row["channel_url"] = reverse("admin:channels_saleschannel_change",
                                         args=[event.channel_id])  # fmt: skip
            row["can_replay"] = event.status == InboundStatus.QUARANTINED
        action = actions_by_id.get(incident.details.get("outbound_action_id"))
        if action is not None:
            row["action"] = action
            row["can_retry"] = action.status == ActionStatus.DEAD
        if category in ADDRESS_CATEGORIES and incident.order is not None:
            shown = address_for(user, incident.order.shipping_address)
            row["address"] = shown
            row["address_fields"] = [(key, ADDRESS_LABELS[key], shown.get(key, ""))
                                     for key in ADDRESS_FIX_FIELDS]  # fmt: skip
            row["address_errors"] = incident.details.get("errors") or {}
            row["can_fix_address"] = incident.order.status == "on_hold"
        rows.append(row)
    unmapped = _unmapped_refs(incidents) if category == IncidentCategory.SKU_UNMAPPED else []
    products = (
        list(Product.objects.order_by("sku").values_list("sku", "title")[:PRODUCT_CHOICES_MAX])
        if unmapped else []
    )  # fmt: skip
    context = {
        **admin.site.each_context(request),
        "title": f"Incidents: {IncidentCategory(category).label}",
        "category": category, "category_label": IncidentCategory(category).label,
        "categories": IncidentCategory.choices, "rows": rows, "unmapped": unmapped,
        "products": products, "can_work": user.has_perm(PERM_WORK),
        "can_map": user.has_perm(PERM_ADD_SKU_MAPPING) and user.has_perm(PERM_RELEASE),
        "can_replay": user.has_perm(PERM_REPLAY), "can_retry": user.has_perm(PERM_RETRY),
        "can_fix_address": contact and user.has_perm(PERM_RELEASE),
    }  # fmt: skip
    return TemplateResponse(request, "admin/reviews/incident_category.html", context)
