"""Stripe: balance transactions and payouts, from JSON (the API's objects, a list of them or
Stripe's list object ``{"object": "list", "data": [...]}``), from the itemized payout
reconciliation report (CSV), or from the API through the official ``stripe`` SDK.

- A ``balance_transaction`` becomes a ``ProcessorTransaction``: amounts are integer minor units
  (``minor()``), the category is Stripe's ``reporting_category`` (charge, refund, dispute,
  dispute_reversal, fee, payout, refund_failure, ...), the payout it was paid out in is the
  automatic payout when known (the payout the API listed it by, ``source`` of type payout, a
  ``payout`` field), the order id is the expanded charge's ``metadata.order_id``.
- A ``payout`` becomes a ``Payout``: ``arrival_date`` its day, ``trace_id.value`` (else the
  ``statement_descriptor``) what the bank shows.
- The itemized report's rows (``automatic_payout_id``, ``balance_transaction_id``, ``gross``,
  ``fee``, ``net``, ``reporting_category``, ``currency``, ``created_utc``...; parsed by header
  name, amounts decimal strings in major units) become the same transactions: one
  balance transaction is one row, whichever way it came in.

The API read lists the payouts of ``since``..``until`` (their arrival date) and each payout's
balance transactions (``payout=po_...``, ``expand=data.source``), every list auto-paginated by the
SDK. The SDK sends through our integration layer: ``stripe.RequestsClient`` is given an
``IntegrationSession`` (timeouts, retries on 429/5xx, ``X-Correlation-ID``, the URL guard), the
SDK's own network retries are off (the session retries), and a guard refusal leaves the SDK as
our ``URLRefused`` instead of a generic connection error.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

import stripe
import structlog
from django.conf import settings

from config import integrations
from config.integrations import IntegrationError, where
from orders.errors import InvalidInput
from reconciliation.importers import ImportOptions
from reconciliation.importers._jsonfile import (
    jsonable,
    load,
    pointer,
    required_id,
    text,
    unix_datetime,
)
from reconciliation.imports import (
    RowError,
    Run,
    amount,
    attach_transactions,
    currency_code,
    import_run,
    minor,
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

SOURCE = Source.STRIPE
USER_AGENT = "orderdesk/0.1 (+finance imports)"
PAGE_LIMIT = 100
STATUSES = {
    "paid": PayoutStatus.PAID,
    "pending": PayoutStatus.SCHEDULED,
    "in_transit": PayoutStatus.IN_TRANSIT,
    "canceled": PayoutStatus.CANCELED,
    "failed": PayoutStatus.FAILED,
}
CATEGORIES = {
    "charge": TxCategory.CHARGE,
    "partial_capture_reversal": TxCategory.CHARGE,
    "refund": TxCategory.REFUND,
    "refund_failure": TxCategory.REFUND,
    "dispute": TxCategory.DISPUTE,
    "dispute_reversal": TxCategory.DISPUTE_REVERSAL,
    "fee": TxCategory.FEE,
    "platform_earning": TxCategory.FEE,
    "platform_earning_refund": TxCategory.FEE,
    "payout": TxCategory.PAYOUT,
    "payout_reversal": TxCategory.PAYOUT,
    "adjustment": TxCategory.ADJUSTMENT,
    "other_adjustment": TxCategory.ADJUSTMENT,
}
RESERVES = frozenset({"risk_reserved_funds", "connect_reserved_funds", "reserve_transaction"})
ORDER_KEYS = ("order_id", "orderId", "order", "order_number")
# The itemized report's columns this import needs (the others are kept in ``raw``).
CSV_REQUIRED = ("balance_transaction_id", "currency", "gross", "fee", "net", "reporting_category")


class StripeAPIError(IntegrationError):
    """A call to Stripe's API failed, or its answer cannot be used."""


def category_of(reporting_category: str, amount_: Decimal) -> TxCategory:
    kind = reporting_category.lower()
    if kind in RESERVES:  # money held back (negative) or given back
        return TxCategory.RESERVE_HOLD if amount_ < 0 else TxCategory.RESERVE_RELEASE
    return CATEGORIES.get(kind, TxCategory.OTHER)


def _order_id(source: Any) -> str:
    """The order id a charge (or payment intent) carries in its metadata."""
    if not isinstance(source, dict):
        return ""
    found = source.get("metadata")
    metadata: dict[str, Any] = found if isinstance(found, dict) else {}
    return next((text(metadata[k]) for k in ORDER_KEYS if text(metadata.get(k))), "")[:120]


# --- JSON rows ----------------------------------------------------------------------------------
def keep_balance_transaction(run: Run, row: dict[str, Any], where_: list[str | int], name: str,
                             options: ImportOptions, payout_id: str = "") -> str:  # fmt: skip
    """One balance transaction kept once; returns the payout id it is paid out in ("")."""
    external_id = required_id(row, where_, name)
    currency = currency_code(row.get("currency"), pointer(name, *where_, "currency"))
    gross = minor(row.get("amount"), currency, pointer(name, *where_, "amount"))
    fee = minor(row.get("fee"), currency, pointer(name, *where_, "fee"))
    net = minor(row.get("net"), currency, pointer(name, *where_, "net"))
    reporting = text(row.get("reporting_category")) or text(row.get("type"))
    if not reporting:
        raise RowError(pointer(name, *where_, "reporting_category"), "no reporting_category")
    source = row.get("source")
    source_id = text(source)
    if isinstance(source, dict) and source.get("object") == "payout":
        payout_id = payout_id or source_id
    elif isinstance(row.get("payout"), str | dict):
        payout_id = payout_id or text(row.get("payout"))
    available = row.get("available_on")
    values = {
        "channel": options.channel,
        "category": category_of(reporting, gross),
        "vendor_type": text(row.get("type"))[:60],
        "currency": currency,
        "amount": gross,
        "fee": fee,
        "net": net,
        "occurred_at": unix_datetime(row.get("created"), pointer(name, *where_, "created")),
        "available_on": (
            unix_datetime(available, pointer(name, *where_, "available_on")).date()
            if available is not None
            else None
        ),  # fmt: skip
        "payout_external_id": payout_id,
        "source_order_id": _order_id(source),
        "source_reference": source_id[:120],
        "raw": jsonable(row),
        "defects": net_defects(gross, fee, net, currency),
        "import_run": run.row,
    }
    run.keep(ProcessorTransaction, key={"source": SOURCE, "external_id": external_id},
             values=values, mutable=("payout_external_id",))  # fmt: skip
    return payout_id


def keep_payout(run: Run, row: dict[str, Any], where_: list[str | int], name: str,
                options: ImportOptions) -> str:  # fmt: skip
    external_id = required_id(row, where_, name)
    currency = currency_code(row.get("currency"), pointer(name, *where_, "currency"))
    status = STATUSES.get(text(row.get("status")).lower())
    if status is None:
        raise RowError(pointer(name, *where_, "status"),
                       f"{row.get('status')!r} is not a Stripe payout status")  # fmt: skip
    trace = row.get("trace_id")
    trace_value = text(trace.get("value")) if isinstance(trace, dict) else text(trace)
    arrival = unix_datetime(row.get("arrival_date"), pointer(name, *where_, "arrival_date"))
    values = {
        "channel": options.channel,
        "status": status,
        "currency": currency,
        "amount": minor(row.get("amount"), currency, pointer(name, *where_, "amount")),
        "paid_on": arrival.date(),
        "trace_id": (trace_value or text(row.get("statement_descriptor")))[:200],
        "raw": jsonable(row),
        "import_run": run.row,
    }
    # A payout moves on (pending -> in_transit -> paid) and gets its trace id on the way.
    run.keep(Payout, key={"source": SOURCE, "external_id": external_id}, values=values,
             mutable=("status", "trace_id", "paid_on", "raw"))  # fmt: skip
    return external_id


def read_objects(run: Run, rows: Sequence[tuple[list[str | int], Any]], name: str,
                 options: ImportOptions, payout_id: str = "") -> set[str]:  # fmt: skip
    """Balance transactions and payouts, each by its ``object``; returns the payout ids named."""
    payout_ids: set[str] = set()
    for place, row in options.progress(rows, total=len(rows), desc=name):
        try:
            kind = row.get("object") if isinstance(row, dict) else None
            if kind == "balance_transaction":
                named = keep_balance_transaction(run, row, place, name, options, payout_id)
            elif kind == "payout":
                named = keep_payout(run, row, place, name, options)
            else:
                raise RowError(pointer(name, *place, "object") if isinstance(row, dict)
                               else pointer(name, *place),
                               f"{kind!r} is not a balance_transaction or a payout")  # fmt: skip
        except RowError as exc:
            run.reject(exc.where, exc.message)
            continue
        if named:
            payout_ids.add(named)
    return payout_ids


def _json_rows(document: Any) -> list[tuple[list[str | int], Any]] | None:
    if isinstance(document, list):
        return [([i], row) for i, row in enumerate(document)]
    if isinstance(document, dict) and document.get("object") == "list":
        data = document.get("data")
        if not isinstance(data, list):
            return None
        return [(["data", i], row) for i, row in enumerate(data)]
    if isinstance(document, dict) and "object" in document:
        return [([], document)]  # one object, as the API returns it
    return None


# --- the itemized payout reconciliation report (CSV) --------------------------------------------
def _csv_time(row: dict[str, str], where_: str) -> datetime:
    """``created_utc`` (UTC by name); a report without it: ``created``, read as UTC."""
    value = (row.get("created_utc") or row.get("created") or "").strip()
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RowError(where_, f"created {value!r} is not a timestamp") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _csv_date(value: str, where_: str) -> date | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise RowError(where_, f"available_on {value!r} is not a date") from None


def read_itemized(run: Run, path: Path, options: ImportOptions) -> set[str]:
    name = path.name
    payout_ids: set[str] = set()
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        run.reject(f"{name}:1", f"the file is not UTF-8 text ({exc})")
        return payout_ids
    reader = csv.DictReader(io.StringIO(content, newline=""))
    missing = [c for c in CSV_REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        run.reject(f"{name}:1", f"not Stripe's itemized payout report: no {', '.join(missing)} "
                   "column")  # fmt: skip
        return payout_ids
    rows = list(reader)  # small enough: a payout report; line numbers from the reader below
    reader = csv.DictReader(io.StringIO(content, newline=""))
    for row in options.progress(reader, total=len(rows), desc=name):
        at = f"{name}:{reader.line_num}"
        try:
            payout_id = keep_itemized(run, row, at, options)
        except RowError as exc:
            run.reject(exc.where, exc.message)
            continue
        if payout_id:
            payout_ids.add(payout_id)
    return payout_ids


def keep_itemized(run: Run, row: dict[str, str], at: str, options: ImportOptions) -> str:
    external_id = (row.get("balance_transaction_id") or "").strip()
    if not external_id:
        raise RowError(at, "no balance_transaction_id")
    currency = currency_code(row.get("currency"), at)
    gross = amount(row.get("gross", ""), currency, f"{at} gross")
    fee = amount(row.get("fee", ""), currency, f"{at} fee")
    net = amount(row.get("net", ""), currency, f"{at} net")
    reporting = (row.get("reporting_category") or "").strip()
    payout_id = (row.get("automatic_payout_id") or "").strip()
    order_id = next((row[k].strip() for k in ("payment_metadata[order_id]", "order_id")
                     if (row.get(k) or "").strip()), "")  # fmt: skip
    values = {
        "channel": options.channel,
        "category": category_of(reporting, gross),
        "vendor_type": reporting[:60],
        "currency": currency,
        "amount": gross,
        "fee": fee,
        "net": net,
        "occurred_at": _csv_time(row, at),
        "available_on": _csv_date(
            row.get("available_on_utc") or row.get("available_on") or "", at
        ),  # fmt: skip
        "payout_external_id": payout_id,
        "source_order_id": order_id[:120],
        "source_reference": (row.get("source_id") or row.get("charge_id") or "").strip()[:120],
        "raw": dict(row),
        "defects": net_defects(gross, fee, net, currency),
        "import_run": run.row,
    }
    run.keep(ProcessorTransaction, key={"source": SOURCE, "external_id": external_id},
             values=values, mutable=("payout_external_id",))  # fmt: skip
    return payout_id


def import_files(paths: Sequence[Path], *, options: ImportOptions) -> list[ImportRun]:
    runs: list[ImportRun] = []
    payout_ids: set[str] = set()
    for path in paths:
        with import_run(source=SOURCE, origin=path.name, channel=options.channel,
                        by=options.by) as run:  # fmt: skip
            if path.suffix.lower() == ".csv":
                payout_ids |= read_itemized(run, path, options)
            else:
                document = load(path, run.reject)
                rows = _json_rows(document) if document is not None else None
                if rows is None and document is not None:
                    run.reject(pointer(path.name), "not a Stripe object, a list of them or a "
                               'list object {"object": "list", "data": [...]}')  # fmt: skip
                elif rows is not None:
                    payout_ids |= read_objects(run, rows, path.name, options)
        runs.append(run.result)
    attach_transactions(SOURCE, payout_ids)
    return runs


# --- the API, through the official SDK ----------------------------------------------------------
class GuardedRequestsClient(stripe.RequestsClient):
    """The SDK's requests client on our ``IntegrationSession``; a refusal of the URL guard is
    raised as it is (the SDK would make it a retryable-looking connection error)."""

    def _handle_request_error(self, e: Exception) -> NoReturn:
        if isinstance(e, IntegrationError):
            raise e
        super()._handle_request_error(e)


def stripe_client(session: integrations.IntegrationSession) -> stripe.StripeClient:
    if not settings.STRIPE_API_KEY:
        raise InvalidInput("Stripe API import: STRIPE_API_KEY is not set", code="stripe_not_set")
    return stripe.StripeClient(
        settings.STRIPE_API_KEY, base_addresses={"api": settings.STRIPE_API_BASE},
        http_client=GuardedRequestsClient(session=session, timeout=settings.STRIPE_TIMEOUT),
        max_network_retries=0,  # the session retries (one classification for every vendor)
    )  # fmt: skip


def _session() -> integrations.IntegrationSession:
    return integrations.session(
        timeout=settings.STRIPE_TIMEOUT, user_agent=USER_AGENT,
        policy=integrations.RetryPolicy(retries=settings.STRIPE_RETRIES,
                                       backoff=settings.STRIPE_BACKOFF),
        error=StripeAPIError, log_event="stripe_api.failed", prefix="stripe ", logger=log,
    )  # fmt: skip


def _dicts(objects: Iterable[Any]) -> list[Any]:
    return [obj.to_dict() for obj in objects]


def import_api(*, options: ImportOptions) -> list[ImportRun]:
    """Payouts arriving ``since``..``until`` and each one's balance transactions, one run."""
    params: dict[str, Any] = {"limit": PAGE_LIMIT}
    arrival: dict[str, int] = {}
    if options.since:
        arrival["gte"] = int(datetime.combine(options.since, datetime.min.time(), UTC).timestamp())
    if options.until:
        end = options.until + timedelta(days=1)
        arrival["lt"] = int(datetime.combine(end, datetime.min.time(), UTC).timestamp())
    if arrival:
        params["arrival_date"] = arrival
    base = settings.STRIPE_API_BASE
    origin = (f"Stripe API {where(base.rstrip('/') + '/v1/payouts')} "
              f"{options.since or '...'}..{options.until or '...'}")  # fmt: skip
    payout_ids: set[str] = set()
    with _session() as session, import_run(source=SOURCE, origin=origin, channel=options.channel,
                                           by=options.by) as run:  # fmt: skip
        client = stripe_client(session)
        try:
            payouts = _dicts(client.v1.payouts.list(params=params).auto_paging_iter())  # type: ignore[arg-type]  # built above, checked by Stripe
            payout_ids = read_objects(run, [(["payouts", i], p) for i, p in enumerate(payouts)],
                                      "payouts", options)  # fmt: skip
            for payout in payouts:
                payout_id = text(payout.get("id"))
                if not payout_id or payout.get("automatic") is False:
                    continue  # a manual payout cannot be itemized (Stripe does not know)
                txs = _dicts(client.v1.balance_transactions.list(params={
                    "payout": payout_id, "limit": PAGE_LIMIT, "expand": ["data.source"],
                }).auto_paging_iter())  # fmt: skip
                read_objects(run, [(["balance_transactions", i], t) for i, t in enumerate(txs)],
                             f"balance_transactions?payout={payout_id}", options,
                             payout_id)  # fmt: skip
        except stripe.StripeError as exc:
            status = exc.http_status
            # Stripe's error type and code, not its message: an error is stored and shown, and
            # the vendor's text may quote what was sent (a masked key, an id, an address).
            raise StripeAPIError(
                f"stripe {type(exc).__name__}: {exc.code or 'the call failed'}"
                f"{f' (HTTP {status})' if status else ''}",
                retryable=status is None or integrations.is_retryable_status(status),
                status=status,
            ) from None
        log.info("reconciliation.stripe.api_read", payouts=len(payouts), rows_new=run.new)
    attach_transactions(SOURCE, payout_ids)
    return [run.result]
