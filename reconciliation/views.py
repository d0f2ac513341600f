"""The finance screens, with the admin's look, under ``/admin/reconciliation/finance/``:

- ``period/``: the period close page (a period and a channel picked; last month by default): one
  row per channel and currency with the columns, variance % and unexplained amount (green when
  nothing is unexplained), the unexplained items first under the table, a chart of the daily
  difference storefront sales - ERP revenue (SVG drawn on the server by pygal); "Recompute"
  (match and compute again, no imports) and "Close period";
- ``column/`` and ``items/``: the records behind a number (orders, refunds, ERP documents,
  transactions, payouts, deposits) and the variance items of a comparison or category;
- ``items/<id>/``: one item, with what it concerns and the form that resolves it;
- ``payouts/`` and ``payouts/<id>/``: every payout with its status (matched, partial,
  inconsistent, unmatched), and one payout with its transactions, defects and bank candidates
  ("Match to this deposit" confirms a proposal or makes a match).

Every table is also ``?format=csv`` (``config.csvfiles``: no cell runs as a formula). Finance
only, by permission: ``reconciliation.view_varianceitem`` (period pages), ``view_payout``
(payouts), ``change_varianceitem`` (resolve, recompute), ``change_link`` (match a deposit),
``close_period``; anything else is a 403. Every change goes through a service that audits it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pygal
from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.db.models import Max
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.safestring import mark_safe

from channels.models import SalesChannel
from config.csvfiles import csv_row
from orders import money
from orders.errors import InvalidInput
from reconciliation.matching import bank_match_confirm
from reconciliation.models import (
    BankLine,
    Category,
    Comparison,
    Link,
    LinkKind,
    Payout,
    PeriodClose,
    Source,
    VarianceItem,
)
from reconciliation.selectors import (
    PAYOUT_STATUSES,
    Table,
    column_records,
    daily_difference,
    defect_words,
    payout_bank_candidates,
    payout_list,
)
from reconciliation.services import period_changes, period_close, period_recompute
from reconciliation.variance import COLUMNS, Period, compute_period, item_resolve

PERM_VIEW = "reconciliation.view_varianceitem"
PERM_PAYOUTS = "reconciliation.view_payout"
PERM_RESOLVE = "reconciliation.change_varianceitem"
PERM_MATCH = "reconciliation.change_link"
PERM_CLOSE = "reconciliation.close_period"
COLUMN_LABELS = {"sales": "Sales", "refunds": "Refunds", "erp": "ERP revenue",
                 "processor": "Processor gross", "fees": "Fees", "payouts": "Payouts",
                 "bank": "Bank deposits"}  # fmt: skip


def _need(request: HttpRequest, perm: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied


def _context(request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    return {**admin.site.each_context(request), "title": title, **extra}


def _csv(name: str, headers: Iterable[str], rows: Iterable[Iterable[Any]]) -> HttpResponse:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(csv_row(headers))
    for row in rows:
        writer.writerow(csv_row(c[0] if isinstance(c, tuple) else c for c in row))
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


def _cells(row: Iterable[Any]) -> list[dict[str, Any]]:
    """Cells for the templates: text, a link (text, url) or a number (right-aligned)."""
    out = []
    for c in row:
        if isinstance(c, tuple):
            out.append({"text": c[0], "url": c[1]})
        else:
            out.append({"text": c, "num": isinstance(c, Decimal)})
    return out


def _period(request: HttpRequest) -> Period:
    text = (request.POST.get("period") or request.GET.get("period") or "").strip()
    if not text:
        last = timezone.now().date().replace(day=1) - timedelta(days=1)
        text = f"{last:%Y-%m}"
    try:
        return Period.parse(text)
    except InvalidInput as exc:
        raise Http404(str(exc)) from None


def _channel(request: HttpRequest) -> Any:
    slug = (request.POST.get("channel") or request.GET.get("channel") or "").strip()
    if not slug:
        return None
    return get_object_or_404(SalesChannel, slug=slug)


def _url(name: str, **params: Any) -> str:
    return f"{reverse(name)}?{urlencode({k: v for k, v in params.items() if v not in (None, '')})}"


def _item_rows(items: Iterable[VarianceItem]) -> list[list[Any]]:
    return [[(str(i.pk), reverse("finance:item", args=[i.pk])), i.channel.slug if i.channel else "",
             i.currency, Comparison(i.comparison).label, Category(i.category).label,
             i.description, i.amount,
             f"{Category(i.resolved_category).label} by {i.resolved_by} at "
             f"{i.resolved_at:%Y-%m-%d %H:%M}" if i.resolved_by_id and i.resolved_at else ""]
            for i in items]  # fmt: skip


ITEM_HEADERS = ["Item", "Channel", "Currency", "Comparison", "Category", "Description", "Amount",
                "Resolved"]  # fmt: skip


def _chart(period: Period, rows: list[Any]) -> str:
    """Storefront sales - ERP revenue per day, a bar series per channel and currency (SVG)."""
    chart = pygal.Bar(js=[], disable_xml_declaration=True, width=900, height=280,
                      show_minor_x_labels=False, x_label_rotation=0, legend_at_bottom=True,
                      title="Daily difference: storefront sales - ERP revenue")  # fmt: skip
    days: list[str] = []
    for row in rows:
        if row.channel_id is None:
            continue
        series = daily_difference(period, channel_id=row.channel_id, currency=row.currency)
        days = [d.strftime("%d") for d, _ in series]
        # Drawing only: the figures themselves stay Decimal everywhere else.
        chart.add(f"{row.channel} {row.currency}", [float(v) for _, v in series])
    chart.x_labels = days
    chart.x_labels_major = days[::5]
    return str(chart.render(is_unicode=True))


# --- the period close page -----------------------------------------------------------------------
@staff_member_required
def period_page(request: HttpRequest) -> HttpResponse:
    _need(request, PERM_VIEW)
    period, channel = _period(request), _channel(request)
    here = _url("finance:period", period=period.label, channel=channel.slug if channel else "")
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "recompute":
                _need(request, PERM_RESOLVE)
                period_recompute(period=period, channel=channel, user=request.user)
                messages.success(request, f"{period.label} matched and computed again.")
            elif action == "close":
                _need(request, PERM_CLOSE)
                period_close(period=period, channel=channel, user=request.user,
                             note=request.POST.get("note", ""))  # fmt: skip
                messages.success(request, f"{period.label} closed.")
        except InvalidInput as exc:
            messages.error(request, str(exc))
        return HttpResponseRedirect(here)

    rows = compute_period(period, channel_id=channel.pk if channel else None)
    items = VarianceItem.objects.filter(period=period.label, category=Category.UNEXPLAINED)
    if channel is not None:
        items = items.filter(channel=channel)
    unexplained = sorted(
        items.select_related("channel", "resolved_by"),
        key=lambda i: (i.resolved_by_id is not None, -abs(i.amount), i.pk),
    )
    fmt = request.GET.get("format")

    def shown_amount(r: Any, value: Decimal) -> Decimal:
        return money.normalize(value, r.currency)

    table = [[r.channel, r.currency, *(shown_amount(r, r.columns.get(c, Decimal(0)))
                                       for c in COLUMNS),
              r.variance_percent if r.variance_percent is not None else "",
              shown_amount(r, r.unexplained_total)] for r in rows]  # fmt: skip
    headers = ["Channel", "Currency", *(COLUMN_LABELS[c] for c in COLUMNS), "Variance %",
               "Unexplained"]  # fmt: skip
    if fmt == "csv":
        if request.GET.get("table") == "unexplained":
            return _csv(f"unexplained-{period.label}", ITEM_HEADERS, _item_rows(unexplained))
        return _csv(f"period-{period.label}", headers, table)
    shown = []
    for r in rows:
        params = dict(period=period.label, channel=r.channel, currency=r.currency)
        shown.append({
            "row": r, "ok": not r.unexplained_total,
            "columns": [(shown_amount(r, r.columns.get(c, Decimal(0))),
                         _url("finance:column", column=c, **params)) for c in COLUMNS],
            "unexplained": shown_amount(r, r.unexplained_total),
            "variance_url": _url("finance:items", comparison=Comparison.SALES_ERP, **params),
            "unexplained_url": _url("finance:items", category=Category.UNEXPLAINED, **params),
            "items_url": _url("finance:items", **params),
        })  # fmt: skip
    closed = (PeriodClose.objects.filter(period=period.label, channel=channel)
              .select_related("closed_by").first())  # fmt: skip
    changes = sorted(period_changes(closed, rows).items()) if closed is not None else []
    computed_at = VarianceItem.objects.filter(period=period.label).aggregate(
        at=Max("computed_at"))["at"] or timezone.now()  # fmt: skip
    context = _context(
        request, f"Period close {period.label}", period=period, channel=channel,
        channels=SalesChannel.objects.order_by("slug"), rows=shown,
        headers=[COLUMN_LABELS[c] for c in COLUMNS], computed_at=computed_at,
        unexplained=[(i, _cells(r)) for i, r in zip(unexplained, _item_rows(unexplained),
                                                    strict=True)],
        item_headers=ITEM_HEADERS, chart=mark_safe(_chart(period, rows)),  # noqa: S308 (pygal's SVG)
        closed=closed, changes=changes, here=here,
        can_close=request.user.has_perm(PERM_CLOSE),
        can_recompute=request.user.has_perm(PERM_RESOLVE),
    )  # fmt: skip
    return TemplateResponse(request, "admin/reconciliation/finance/period.html", context)


def _table_page(request: HttpRequest, *, title: str, name: str, table: Table,
                back: str, intro: str = "") -> HttpResponse:  # fmt: skip
    if request.GET.get("format") == "csv":
        return _csv(name, table.headers, table.rows)
    csv_url = f"{request.path}?{urlencode({**request.GET.dict(), 'format': 'csv'})}"
    context = _context(request, title, headers=table.headers,
                       rows=[_cells(r) for r in table.rows], csv_url=csv_url, back=back,
                       intro=intro)  # fmt: skip
    return TemplateResponse(request, "admin/reconciliation/finance/table.html", context)


@staff_member_required
def column_page(request: HttpRequest) -> HttpResponse:
    """The records one number of the period close page sums."""
    _need(request, PERM_VIEW)
    period, channel = _period(request), _channel(request)
    column, currency = request.GET.get("column", ""), request.GET.get("currency", "")
    if channel is None or column not in COLUMNS or not currency:
        raise Http404("Pick a channel, a currency and a column")
    table = column_records(period, channel_id=channel.pk, currency=currency, column=column)
    return _table_page(
        request, title=f"{COLUMN_LABELS[column]} {period.label}: {channel.slug} {currency}",
        name=f"{column}-{period.label}-{channel.slug}-{currency}", table=table,
        back=_url("finance:period", period=period.label, channel=channel.slug),
    )  # fmt: skip


@staff_member_required
def items_page(request: HttpRequest) -> HttpResponse:
    """The variance items of a period, by channel, currency, comparison and category."""
    _need(request, PERM_VIEW)
    period, channel = _period(request), _channel(request)
    items = VarianceItem.objects.filter(period=period.label).select_related(
        "channel", "resolved_by"
    )
    what = []
    if channel is not None:
        items = items.filter(channel=channel)
        what.append(channel.slug)
    for key in ("currency", "comparison", "category"):
        if value := request.GET.get(key):
            items = items.filter(**{key: value})
            labels = {"comparison": Comparison, "category": Category}
            what.append(labels[key](value).label if key in labels and value in
                        labels[key].values else value)  # fmt: skip
    items = items.order_by("comparison", "category", "-amount", "pk")
    return _table_page(
        request, title=f"Variance items {period.label}" + (f": {', '.join(what)}" if what else ""),
        name=f"items-{period.label}", table=Table(ITEM_HEADERS, _item_rows(items)),
        back=_url("finance:period", period=period.label, channel=channel.slug if channel else ""),
    )  # fmt: skip


@staff_member_required
def item_page(request: HttpRequest, item_id: int) -> HttpResponse:
    """One item: what it concerns (order, payout, deposit, ERP document) and its resolution."""
    _need(request, PERM_VIEW)
    related = ("channel", "order", "payout", "bank_line", "erp_document", "resolved_by")
    item = get_object_or_404(VarianceItem.objects.select_related(*related), pk=item_id)
    back = _url("finance:period", period=item.period,
                channel=item.channel.slug if item.channel else "")  # fmt: skip
    if request.method == "POST":
        _need(request, PERM_RESOLVE)
        try:
            item_resolve(item_id=item.pk, category=request.POST.get("category", ""),
                         note=request.POST.get("note", ""), user=request.user)  # fmt: skip
        except InvalidInput as exc:
            messages.error(request, str(exc))
            return HttpResponseRedirect(reverse("finance:item", args=[item.pk]))
        messages.success(request, f"Item {item.pk} resolved.")
        return HttpResponseRedirect(back)
    choices = [(c.value, c.label) for c in Category if c != Category.UNEXPLAINED]
    context = _context(
        request, f"Variance item {item.pk}", item=item, back=back, choices=choices,
        comparison=Comparison(item.comparison).label, category=Category(item.category).label,
        resolved_label=Category(item.resolved_category).label if item.resolved_category else "",
        can_resolve=request.user.has_perm(PERM_RESOLVE) and item.category == Category.UNEXPLAINED,
        order_url=reverse("admin:orders_order_change", args=[item.order_id])
        if item.order_id else "",
        payout_url=reverse("finance:payout", args=[item.payout_id]) if item.payout_id else "",
    )  # fmt: skip
    return TemplateResponse(request, "admin/reconciliation/finance/item.html", context)


# --- payouts -------------------------------------------------------------------------------------
PAYOUT_HEADERS = ["Payout", "Source", "Channel", "Paid on", "Currency", "Amount",
                  "Transactions sum", "Bank deposit", "Status", "Why"]  # fmt: skip


@staff_member_required
def payouts_page(request: HttpRequest) -> HttpResponse:
    _need(request, PERM_PAYOUTS)
    status, source = request.GET.get("status", ""), request.GET.get("source", "")
    rows = payout_list(status=status if status in PAYOUT_STATUSES else "",
                       source=source if source in Source.values else "")  # fmt: skip
    table = [[(r.payout.external_id, reverse("finance:payout", args=[r.payout.pk])),
              r.payout.get_source_display(), r.payout.channel.slug if r.payout.channel else "",
              r.payout.paid_on.isoformat(), r.payout.currency, r.payout.amount,
              r.tx_sum if r.tx_sum is not None else "",
              f"{r.bank_line.booked_on.isoformat()} {r.bank_line.amount}" if r.bank_line else "",
              r.status, r.why] for r in rows]  # fmt: skip
    if request.GET.get("format") == "csv":
        return _csv("payouts", PAYOUT_HEADERS, table)
    csv_url = f"{request.path}?{urlencode({**request.GET.dict(), 'format': 'csv'})}"
    context = _context(
        request, "Payouts", headers=PAYOUT_HEADERS,
        rows=[(r.status, _cells(t)) for r, t in zip(rows, table, strict=True)],
        statuses=PAYOUT_STATUSES, status=status, sources=Source.choices, source=source,
        csv_url=csv_url,
    )  # fmt: skip
    return TemplateResponse(request, "admin/reconciliation/finance/payouts.html", context)


@staff_member_required
def payout_page(request: HttpRequest, payout_id: int) -> HttpResponse:
    _need(request, PERM_PAYOUTS)
    payout = get_object_or_404(Payout.objects.select_related("channel"), pk=payout_id)
    here = reverse("finance:payout", args=[payout.pk])
    if request.method == "POST":
        _need(request, PERM_MATCH)
        line = get_object_or_404(BankLine, pk=request.POST.get("bank_line") or 0)
        ids = [int(i) for i in request.POST.getlist("payouts") if i.isdigit()] or [payout.pk]
        payouts = list(Payout.objects.filter(pk__in=ids).order_by("paid_on", "pk"))
        try:
            bank_match_confirm(payouts=payouts, bank_line=line, user=request.user,
                               note=request.POST.get("note", ""))  # fmt: skip
            messages.success(request, f"Deposit of {line.booked_on.isoformat()} matched to "
                                      f"{', '.join(p.external_id for p in payouts)}.")  # fmt: skip
        except InvalidInput as exc:
            messages.error(request, str(exc))
        return HttpResponseRedirect(here)
    row = next(iter(payout_list(payout_id=payout.pk)), None)
    txs = payout.transactions.select_related("order").order_by("occurred_at", "pk")
    tx_table = Table(
        ["Transaction", "Type", "Date", "Order", "Amount", "Fee", "Net", "Defects"],
        [[t.external_id, t.vendor_type or t.get_category_display(),
          t.occurred_at.date().isoformat(),
          (t.source_order_id or "order", reverse("admin:orders_order_change", args=[t.order_id]))
          if t.order_id else t.source_order_id, t.amount, t.fee, t.net,
          "; ".join(defect_words(d) for d in t.defects)] for t in txs],
    )  # fmt: skip
    if request.GET.get("format") == "csv":
        return _csv(f"payout-{payout.external_id}", tx_table.headers, tx_table.rows)
    links = Link.objects.filter(payout=payout).exclude(kind=LinkKind.ORDER_TRANSACTION)
    context = _context(
        request, f"Payout {payout.external_id}", payout=payout, row=row,
        defects=[defect_words(d) for d in payout.defects], tx_headers=tx_table.headers,
        tx_rows=[_cells(r) for r in tx_table.rows], candidates=payout_bank_candidates(payout),
        links=links.select_related("bank_line", "made_by"), here=here,
        csv_url=f"{here}?format=csv", can_match=request.user.has_perm(PERM_MATCH),
    )  # fmt: skip
    return TemplateResponse(request, "admin/reconciliation/finance/payout.html", context)


__all__ = [
    "column_page", "item_page", "items_page", "payout_page", "payouts_page", "period_page",
]  # fmt: skip
