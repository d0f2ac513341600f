"""Shopify Payments: payouts and balance transactions, from the Admin REST API's JSON (a saved
``payouts.json``, ``payouts/{id}.json`` or ``balance/transactions.json`` answer) or from the API.

A file holds ``{"payouts": [...]}``, ``{"payout": {...}}`` or ``{"transactions": [...]}``
(told apart by the key; anything else is one error for the file). A payout becomes a
``Payout`` (its ``summary`` kept, gross and fees summed from it, ``paid_on`` its date); a
balance transaction a ``ProcessorTransaction`` (Shopify's ``type`` kept as ``vendor_type`` and
mapped to our category; amount, fee and net exactly as Shopify gives them, net_mismatch when
amount - fee != net). After the import each payout named is checked against its transactions
(``payout_check``): Shopify's own sample does not sum (41.90 against its 50 transactions), and
the payout says so instead of being balanced.

The API read (``import_api``, the channel's ``api_base_url``, ``api_version`` and
``access_token``): ``GET shopify_payments/payouts.json?date_min=&date_max=`` page by page (the
``Link`` header's ``page_info``), then ``shopify_payments/balance/transactions.json?payout_id=``
for each payout, through the channels' integration session (timeouts, retries, correlation id,
URL guard).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import structlog

from channels.adapters.shopify import admin_api_ready, admin_headers, admin_url
from channels.http import session_for
from channels.services import channel_config
from config.integrations import IntegrationSession, where
from orders.errors import InvalidInput
from reconciliation.importers import ImportOptions
from reconciliation.importers._jsonfile import (
    iso_date,
    iso_datetime,
    jsonable,
    load,
    pointer,
    required_id,
    text,
)
from reconciliation.imports import (
    RowError,
    Run,
    amount,
    attach_transactions,
    currency_code,
    import_run,
    net_defects,
)
from reconciliation.models import (
    ImportRun,
    Payout,
    PayoutStatus,
    ProcessorTransaction,
    Source,
    TxCategory,
)

log = structlog.get_logger(__name__)

SOURCE = Source.SHOPIFY_PAYMENTS
PAGE_LIMIT = 250
STATUSES = {
    "scheduled": PayoutStatus.SCHEDULED,
    "in_transit": PayoutStatus.IN_TRANSIT,
    "paid": PayoutStatus.PAID,
    "failed": PayoutStatus.FAILED,
    "canceled": PayoutStatus.CANCELED,
    "cancelled": PayoutStatus.CANCELED,
}
# Shopify's balance transaction types (lower-cased) -> our category; reserves by their sign.
CATEGORIES = {
    "charge": TxCategory.CHARGE,
    "capture": TxCategory.CHARGE,
    "refund": TxCategory.REFUND,
    "refund_failure": TxCategory.REFUND,
    "dispute": TxCategory.DISPUTE,
    "chargeback": TxCategory.DISPUTE,
    "chargeback_won": TxCategory.DISPUTE_REVERSAL,
    "dispute_won": TxCategory.DISPUTE_REVERSAL,
    "adjustment": TxCategory.ADJUSTMENT,
    "tax_adjustment": TxCategory.ADJUSTMENT,
    "credit": TxCategory.ADJUSTMENT,
    "debit": TxCategory.ADJUSTMENT,
    "advance": TxCategory.ADJUSTMENT,
    "advance_funding": TxCategory.ADJUSTMENT,
    "seller_protection_credit": TxCategory.ADJUSTMENT,
    "application_fee_refund": TxCategory.FEE,
    "payout": TxCategory.PAYOUT,
    "payout_failure": TxCategory.PAYOUT,
    "payout_cancellation": TxCategory.PAYOUT,
    "gift_card": TxCategory.GIFT_CARD,
}
SUMMARY_GROSS = ("adjustments_gross_amount", "charges_gross_amount", "refunds_gross_amount",
                 "reserved_funds_gross_amount", "retried_payouts_gross_amount")  # fmt: skip
SUMMARY_FEES = ("adjustments_fee_amount", "charges_fee_amount", "refunds_fee_amount",
                "reserved_funds_fee_amount", "retried_payouts_fee_amount")  # fmt: skip
TRACE_KEYS = ("external_trace_id", "externalTraceId", "trace_id", "reference")


def category_of(vendor_type: str, source_type: str, amount_: Decimal) -> TxCategory:
    """Shopify's ``type`` (and ``source_type`` for gift cards) in our vocabulary; a reserve
    taken is a hold, one given back a release; a reversal of something is an adjustment."""
    kind = vendor_type.lower()
    if kind == "reserve":
        return TxCategory.RESERVE_HOLD if amount_ < 0 else TxCategory.RESERVE_RELEASE
    if "gift_card" in kind or "gift_card" in source_type.lower():
        return TxCategory.GIFT_CARD
    if kind == "dispute" and amount_ > 0:
        return TxCategory.DISPUTE_REVERSAL  # the money of a won dispute coming back
    if kind in CATEGORIES:
        return CATEGORIES[kind]
    if kind.endswith("_reversal") or "adjustment" in kind:
        return TxCategory.ADJUSTMENT
    if kind.endswith("_fee") or kind.startswith("fee"):
        return TxCategory.FEE
    return TxCategory.OTHER


# --- rows ---------------------------------------------------------------------------------------
def keep_payout(run: Run, row: Any, where: list[str | int], name: str,
                options: ImportOptions) -> str:  # fmt: skip
    """One payout object kept once; returns its id."""
    if not isinstance(row, dict):
        raise RowError(pointer(name, *where), "a payout must be an object")
    external_id = required_id(row, where, name)
    currency = currency_code(row.get("currency"), pointer(name, *where, "currency"))
    status = STATUSES.get(str(row.get("status") or "").lower())
    if status is None:
        raise RowError(pointer(name, *where, "status"),
                       f"{row.get('status')!r} is not a Shopify payout status")  # fmt: skip
    found = row.get("summary")
    summary: dict[str, Any] = found if isinstance(found, dict) else {}
    gross = fees = Decimal(0)
    for key in SUMMARY_GROSS:
        if key in summary:
            gross += amount(summary[key], currency, pointer(name, *where, "summary", key))
    for key in SUMMARY_FEES:
        if key in summary:
            fees += amount(summary[key], currency, pointer(name, *where, "summary", key))
    values = {
        "channel": options.channel,
        "status": status,
        "currency": currency,
        "amount": amount(row.get("amount"), currency, pointer(name, *where, "amount")),
        "gross": gross,
        "fees": fees,
        "paid_on": iso_date(row.get("date"), pointer(name, *where, "date")),
        "trace_id": next((text(row[k]) for k in TRACE_KEYS if text(row.get(k))), "")[:200],
        "summary": jsonable(summary),
        "raw": jsonable(row),
        "import_run": run.row,
    }
    # A payout moves on (scheduled -> in_transit -> paid): its status and what Shopify says.
    run.keep(Payout, key={"source": SOURCE, "external_id": external_id}, values=values,
             mutable=("status", "trace_id", "raw", "summary"))  # fmt: skip
    return external_id


def keep_transaction(run: Run, row: Any, where: list[str | int], name: str,
                     options: ImportOptions) -> str:  # fmt: skip
    """One balance transaction kept once; returns the payout id it names ("" for none)."""
    if not isinstance(row, dict):
        raise RowError(pointer(name, *where), "a balance transaction must be an object")
    external_id = required_id(row, where, name)
    currency = currency_code(row.get("currency"), pointer(name, *where, "currency"))
    gross = amount(row.get("amount"), currency, pointer(name, *where, "amount"))
    fee = amount(row.get("fee"), currency, pointer(name, *where, "fee"))
    net = amount(row.get("net"), currency, pointer(name, *where, "net"))
    vendor_type = text(row.get("type"))
    if not vendor_type:
        raise RowError(pointer(name, *where, "type"), "the transaction has no type")
    payout_id = text(row.get("payout_id"))
    values = {
        "channel": options.channel,
        "category": category_of(vendor_type, text(row.get("source_type")), gross),
        "vendor_type": vendor_type[:60],
        "currency": currency,
        "amount": gross,
        "fee": fee,
        "net": net,
        "occurred_at": iso_datetime(
            row.get("processed_at"), pointer(name, *where, "processed_at")
        ),  # fmt: skip
        "payout_external_id": payout_id,
        "source_order_id": text(row.get("source_order_id")),
        "source_reference": (
            text(row.get("source_order_transaction_id")) or text(row.get("source_id"))
        )[:120],  # fmt: skip
        "raw": jsonable(row),
        "defects": net_defects(gross, fee, net, currency),
        "import_run": run.row,
    }
    # A pending transaction gets its payout later: that link may be filled in.
    run.keep(ProcessorTransaction, key={"source": SOURCE, "external_id": external_id},
             values=values, mutable=("payout_external_id",))  # fmt: skip
    return payout_id


def read_document(run: Run, document: Any, name: str, options: ImportOptions) -> set[str]:
    """Every row of one answer (a file or an API page); returns the payout ids it names."""
    payout_ids: set[str] = set()
    if isinstance(document, dict) and isinstance(document.get("payouts"), list):
        rows: list[tuple[list[str | int], Any]] = [
            (["payouts", i], row) for i, row in enumerate(document["payouts"])
        ]
        keep = keep_payout
    elif isinstance(document, dict) and isinstance(document.get("payout"), dict):
        rows, keep = [(["payout"], document["payout"])], keep_payout
    elif isinstance(document, dict) and isinstance(document.get("transactions"), list):
        rows = [(["transactions", i], row) for i, row in enumerate(document["transactions"])]
        keep = keep_transaction
    else:
        run.reject(pointer(name), 'no "payouts", "payout" or "transactions" in it: not a '
                   "Shopify Payments answer")  # fmt: skip
        return payout_ids
    for place, row in options.progress(rows, total=len(rows), desc=name):
        try:
            payout_id = keep(run, row, place, name, options)
        except RowError as exc:
            run.reject(exc.where, exc.message)
            continue
        if payout_id:
            payout_ids.add(payout_id)
    return payout_ids


def import_files(paths: Sequence[Path], *, options: ImportOptions) -> list[ImportRun]:
    runs: list[ImportRun] = []
    payout_ids: set[str] = set()
    for path in paths:
        with import_run(source=SOURCE, origin=path.name, channel=options.channel,
                        by=options.by) as run:  # fmt: skip
            document = load(path, run.reject)
            if document is not None:
                payout_ids |= read_document(run, document, path.name, options)
        runs.append(run.result)
    attach_transactions(SOURCE, payout_ids)
    return runs


# --- the Admin REST API -------------------------------------------------------------------------
def _pages(http: IntegrationSession, url: str, headers: dict[str, str],
           what: str) -> Iterator[tuple[str, Any]]:  # fmt: skip
    """Each page's (url, JSON), following the ``Link: <...page_info=...>; rel="next"``."""
    next_url: str | None = url
    while next_url:
        response = http.call("GET", next_url, what=what, headers=headers)
        link = response.links.get("next", {}).get("url")
        yield next_url, http.json_of(response, what=what, parse_float=Decimal)
        next_url = link


def import_api(*, options: ImportOptions) -> list[ImportRun]:
    """Payouts of ``since``..``until`` (their date) and each payout's balance transactions, read
    from the channel's Admin API into one import run."""
    channel = options.channel
    if channel is None:
        raise InvalidInput("Shopify Payments API import: give the channel (--channel)",
                           code="channel_required")  # fmt: skip
    config = channel_config(channel)
    if not admin_api_ready(config):
        raise InvalidInput(
            f"channel {channel.slug} has no Admin API (api_base_url, api_version and an "
            "access_token in its credentials)", code="channel_api_missing",
        )  # fmt: skip
    query: dict[str, str | int] = {"limit": PAGE_LIMIT}
    if options.since:
        query["date_min"] = options.since.isoformat()
    if options.until:
        query["date_max"] = options.until.isoformat()
    payouts_url = admin_url(config, "shopify_payments/payouts.json") + "?" + urlencode(query)
    period = f"{options.since or '...'}..{options.until or '...'}"
    origin = f"Shopify Payments API {where(payouts_url)} {period}"
    headers = admin_headers(config)
    payout_ids: set[str] = set()
    with (import_run(source=SOURCE, origin=origin, channel=channel, by=options.by) as run,
          session_for(config) as http):  # fmt: skip
        listed: list[str] = []
        for page, (url, document) in enumerate(_pages(http, payouts_url, headers,
                                                      "Shopify payouts")):  # fmt: skip
            name = f"payouts.json page {page + 1}"
            if not isinstance(document, dict) or not isinstance(document.get("payouts"), list):
                run.reject(pointer(name), f"the answer from {where(url)} has no payouts list")
                continue
            before = set(payout_ids)
            payout_ids |= read_document(run, document, name, options)
            listed += sorted(payout_ids - before)
        for payout_id in listed:
            tx_url = (
                admin_url(config, "shopify_payments/balance/transactions.json")
                + "?"
                + (urlencode({"payout_id": payout_id, "limit": PAGE_LIMIT}))
            )
            for page, (_url, document) in enumerate(
                _pages(http, tx_url, headers, "Shopify balance transactions")
            ):
                name = f"balance/transactions.json?payout_id={payout_id} page {page + 1}"
                read_document(run, document, name, options)
        log.info("reconciliation.shopify_payments.api_read", channel_id=channel.pk,
                 payouts=len(listed), rows_new=run.new)  # fmt: skip
    attach_transactions(SOURCE, payout_ids)
    return [run.result]
