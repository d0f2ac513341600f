"""ERP revenue: invoices and credit notes, from the ERP's CSV export or NetSuite's REST API.

CSV export (``Source.ERP_CSV``; a NetSuite saved-search export under ``Source.NETSUITE`` reads
the same way): one row per document with its number, date, reference (our correlation id, which
NetSuite carries as ``externalId``, or the channel's order id), amount, currency and type. Header
names are matched case-insensitively with the common spellings (``COLUMNS``), type values too
(``TYPES``: "Invoice", "Credit Memo", "credit_note", NetSuite's "CustCred"...). A row that
cannot be read is rejected as ``file:line: what is wrong``; the rest of the file imports.

Amounts are positive for both kinds (``ErpDocument.signed_amount`` gives revenue's sign); a
credit note exported negative is kept as its absolute value, an invoice exported negative is
rejected (a negative invoice is a credit note under the wrong type: a person must look).

The document's order: the one whose correlation id is the reference, else the one whose channel
order id is (only when a single channel has it: the same order id on two channels is left open
for matching to decide). It is re-looked on every import, so an ERP export read before the
orders arrived gets its orders later; nothing else of a kept row changes. A row whose number is
already kept with another date, amount, currency or reference (twice in one file, or edited in
the ERP since) is rejected with both versions: a person decides, nothing is overwritten.

Not imported: our own ERP file drop (``fulfillment.downstream.erp_filedrop``). It is what we
*sent* the ERP (sales orders, one row per order line), not what the ERP booked; reading it as
ERP revenue would reconcile our orders against themselves. Such a file is refused with that
reason.

NetSuite (``import_api``, ``Source.NETSUITE``): SuiteQL over ``transaction`` where type is
``CustInvc`` or ``CustCred`` and tranDate is in [since, until], ``POST
{NETSUITE_API_BASE}/services/rest/query/v1/suiteql?limit=&offset=`` with ``Prefer: transient``,
paged until ``hasMore`` is false, through the integration layer (timeouts, retries: SuiteQL's
POST is a read, so it is safe to repeat; the correlation id; the URL guard). Auth as the ERP
adapter: ``Authorization: Bearer {NETSUITE_TOKEN}``. Dates are asked for as ``YYYY-MM-DD``
(``TO_CHAR``: SuiteQL otherwise formats them in the user's preference), amounts are JSON
numbers read as ``Decimal``. There is no official NetSuite SDK for Python; plain HTTP is what
the ecosystem does.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog
from django.conf import settings

from config import correlation, integrations
from orders import money
from orders.errors import InvalidInput
from orders.models import Order
from reconciliation.importers import ImportOptions
from reconciliation.imports import RowError, Run, amount, currency_code, import_run
from reconciliation.models import ErpDocType, ErpDocument, ImportRun, Source

log = structlog.get_logger(__name__)

USER_AGENT = "orderdesk/0.1 (+reconciliation)"
SUITEQL_PATH = "/services/rest/query/v1/suiteql"
PAGE_SIZE = 1000  # SuiteQL's most per page

# Our field -> the header spellings seen in ERP exports (compared lower-cased, with spaces,
# dashes, dots and "#" read as "_").
COLUMNS: dict[str, tuple[str, ...]] = {
    "document_number": ("document_number", "document_no", "doc_no", "doc_number", "document",
                        "number", "tranid", "invoice_number", "document_num"),
    "date": ("date", "document_date", "doc_date", "trandate", "transaction_date",
             "invoice_date", "posting_date"),
    "reference": ("reference", "ref", "correlation_id", "external_id", "externalid",
                  "order_reference", "order_id", "order"),
    "amount": ("amount", "total", "gross_amount", "amount_gross", "foreigntotal",
               "document_total", "amount_foreign_currency"),
    "currency": ("currency", "currency_code", "ccy"),
    "type": ("type", "doc_type", "document_type", "kind", "transaction_type"),
}  # fmt: skip

TYPES: dict[str, ErpDocType] = {
    "invoice": ErpDocType.INVOICE, "inv": ErpDocType.INVOICE, "custinvc": ErpDocType.INVOICE,
    "credit_note": ErpDocType.CREDIT_NOTE, "credit_memo": ErpDocType.CREDIT_NOTE,
    "creditnote": ErpDocType.CREDIT_NOTE, "creditmemo": ErpDocType.CREDIT_NOTE,
    "credit": ErpDocType.CREDIT_NOTE, "cn": ErpDocType.CREDIT_NOTE,
    "custcred": ErpDocType.CREDIT_NOTE,
}  # fmt: skip

# The columns only our own ERP file drop has (fulfillment/downstream/erp_filedrop.py).
FILEDROP_MARKERS = {"idempotency_key", "line_no", "order_total", "correlation_id"}


class NetSuiteReadError(integrations.IntegrationError):
    """A SuiteQL read failed (after the session's retries)."""


def _norm(name: str) -> str:
    return re.sub(r"[\s\-.#/]+", "_", name.strip().lower()).strip("_")


def doc_type_of(value: str, where: str) -> ErpDocType:
    found = TYPES.get(_norm(value))
    if found is None:
        raise RowError(where, f"type {value!r} is neither an invoice nor a credit note")
    return found


def date_of(value: str, where: str) -> date:
    text = (value or "").strip()
    try:
        return date.fromisoformat(text[:10]) if len(text) >= 10 else date.fromisoformat(text)
    except ValueError:
        raise RowError(where, f"date {value!r} is not a date (YYYY-MM-DD)") from None


def order_for(reference: str) -> Order | None:
    """Ours by correlation id, else by the channel's order id when one channel has it."""
    if not reference:
        return None
    found = Order.objects.filter(correlation_id=reference).first()
    if found is not None:
        return found
    candidates = list(Order.objects.filter(external_id=reference)[:2])
    return candidates[0] if len(candidates) == 1 else None


def keep_document(run: Run, *, source: str, number: str, doc_type: ErpDocType, on: date,
                  reference: str, currency: str, value: Decimal, raw: Mapping[str, Any],
                  where: str) -> None:  # fmt: skip
    if not number:
        raise RowError(where, "no document number")
    if value < 0:
        if doc_type == ErpDocType.INVOICE:
            raise RowError(where, f"invoice {number} has a negative amount {value} "
                                  "(a credit note exported as an invoice?)")  # fmt: skip
        value = -value
    key = {"source": source, "doc_type": doc_type, "document_number": number}
    kept = ErpDocument.objects.filter(**key).first()
    if kept is not None:
        before = (kept.document_date, kept.currency, kept.amount, kept.reference)
        if before != (on, currency, value, reference[:120]):
            # The same number twice in one file, or a document the ERP changed since: a person
            # decides (the kept row stays as it was; never overwritten silently).
            shown = money.normalize(kept.amount, kept.currency)
            raise RowError(where, f"{kept} is already imported as {shown} "
                                  f"{kept.currency} of {kept.document_date} (reference "
                                  f"{kept.reference or '-'}); this row says {value} {currency} "
                                  f"of {on} (reference {reference or '-'})")  # fmt: skip
    run.keep(
        ErpDocument, key=key,
        values={"document_date": on, "reference": reference[:120], "currency": currency,
                "amount": value, "order": order_for(reference), "raw": dict(raw),
                "import_run": run.row},
        mutable=("order",),
    )  # fmt: skip


# --- CSV export ----------------------------------------------------------------------------------
def import_files(paths: Sequence[Path], *, options: ImportOptions) -> list[ImportRun]:
    if options.source not in (Source.ERP_CSV, Source.NETSUITE):
        raise InvalidInput(f"the ERP importer does not read {options.source}", code="source")
    return [import_csv(Path(path), options=options) for path in paths]


def import_csv(path: Path, *, options: ImportOptions) -> ImportRun:
    name = path.name
    with import_run(source=options.source, origin=name, channel=options.channel,
                    by=options.by) as run:  # fmt: skip
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            run.reject(f"{name}:1", f"not UTF-8 text (byte {exc.start})")
            return run.result
        try:
            dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
        except csv.Error:
            dialect = csv.excel
        reader = csv.reader(io.StringIO(text), dialect)
        header = next(reader, None)
        if header is None:
            run.reject(f"{name}:1", "empty file: no header")
            return run.result
        names = [_norm(h) for h in header]
        if FILEDROP_MARKERS <= set(names):
            run.reject(f"{name}:1", "this is our own ERP file drop (the sales orders we sent), "
                                    "not the ERP's invoices and credit notes: export those "
                                    "from the ERP")  # fmt: skip
            return run.result
        index: dict[str, int] = {}
        for field, spellings in COLUMNS.items():
            for spelling in spellings:
                if spelling in names:
                    index[field] = names.index(spelling)
                    break
        missing = [field for field in COLUMNS if field not in index]
        if missing:
            run.reject(
                f"{name}:1",
                "no column for "
                + ", ".join(
                    f"{field} (one of: {', '.join(COLUMNS[field][:4])})" for field in missing
                ),
            )
            return run.result
        rows = [(reader.line_num, row) for row in reader]  # the line a row ends on
        for line, row in options.progress(rows, total=len(rows), desc=name):
            if not any(cell.strip() for cell in row):
                continue
            where = f"{name}:{line}"
            try:
                if len(row) != len(header):
                    raise RowError(where, f"{len(row)} fields, the header has {len(header)}")
                cell = {field: row[i].strip() for field, i in index.items()}
                cur = currency_code(cell["currency"], where)
                keep_document(
                    run, source=options.source, number=cell["document_number"],
                    doc_type=doc_type_of(cell["type"], where), on=date_of(cell["date"], where),
                    reference=cell["reference"], currency=cur,
                    value=amount(cell["amount"], cur, where),
                    raw=dict(zip(header, row, strict=True)),
                    where=where,
                )  # fmt: skip
            except RowError as exc:
                run.reject(exc.where, exc.message)
    log.info("erp_import.file", source=options.source, file=name, run_id=run.row.pk,
             new=run.new, rejected=run.rejected)  # fmt: skip
    return run.result


# --- NetSuite SuiteQL ----------------------------------------------------------------------------
def suiteql(since: date | None, until: date | None) -> str:
    where = ["t.type IN ('CustInvc', 'CustCred')"]
    if since:
        where.append(f"t.trandate >= TO_DATE('{since.isoformat()}', 'YYYY-MM-DD')")
    if until:
        where.append(f"t.trandate <= TO_DATE('{until.isoformat()}', 'YYYY-MM-DD')")
    # Only dates formatted by isoformat() go into the text: nothing a caller types.
    columns = (
        "t.id, t.tranid, t.type, TO_CHAR(t.trandate, 'YYYY-MM-DD') AS trandate, t.externalid, "
        "t.otherrefnum, t.foreigntotal, BUILTIN.DF(t.currency) AS currency"
    )
    return f"SELECT {columns} FROM transaction t WHERE {' AND '.join(where)} ORDER BY t.id"  # noqa: S608


def import_api(*, options: ImportOptions) -> list[ImportRun]:
    if options.source != Source.NETSUITE:
        raise LookupError(f"{Source(options.source).label} has no API import: give its files")
    base = str(settings.NETSUITE_API_BASE or "").rstrip("/")
    if not (base and settings.NETSUITE_TOKEN):
        raise InvalidInput("NetSuite is not configured (NETSUITE_API_BASE, NETSUITE_TOKEN)",
                           code="netsuite_not_configured")  # fmt: skip
    span = f"{options.since or '…'}..{options.until or '…'}"
    origin = f"NetSuite SuiteQL invoices and credit memos {span}"
    with (
        correlation.bound(correlation.get() or correlation.new()),
        import_run(source=Source.NETSUITE, origin=origin, channel=options.channel,
                   by=options.by) as run,
        integrations.session(
            timeout=settings.DOWNSTREAM_HTTP_TIMEOUT, user_agent=USER_AGENT,
            policy=integrations.RetryPolicy(
                retries=2, methods=integrations.IDEMPOTENT_METHODS_AND_POST),
            error=NetSuiteReadError, log_event="netsuite_read.failed", logger=log,
            prefix="netsuite ", target="netsuite",
        ) as session,
    ):  # fmt: skip
        session.headers["Authorization"] = f"Bearer {settings.NETSUITE_TOKEN}"
        query = suiteql(options.since, options.until)
        offset = 0
        try:
            while True:
                response = session.call(
                    "POST", f"{base}{SUITEQL_PATH}", what="suiteql transaction",
                    params={"limit": PAGE_SIZE, "offset": offset},
                    json={"q": query},
                    headers={"Prefer": "transient", "Accept": "application/json"},
                )  # fmt: skip
                page = session.json_of(response, what="suiteql transaction",
                                       parse_float=Decimal) or {}  # fmt: skip
                items = page.get("items") or []
                for i, item in enumerate(options.progress(items, total=len(items),
                                                          desc="netsuite")):  # fmt: skip
                    _keep_api_item(run, item, where=f"suiteql?offset={offset}#/items/{i}")
                if not page.get("hasMore") or not items:
                    break
                offset += len(items)
        except NetSuiteReadError as exc:
            raise InvalidInput(f"{exc} (what was read before is kept: {run.new} new)",
                               code="netsuite_unavailable") from None  # fmt: skip
    log.info("erp_import.netsuite", run_id=run.row.pk, new=run.new, rejected=run.rejected)
    return [run.result]


def _keep_api_item(run: Run, item: Any, *, where: str) -> None:
    try:
        if not isinstance(item, dict):
            raise RowError(where, "not an object")
        kind = str(item.get("type") or "")
        cur = currency_code(item.get("currency"), f"{where}/currency")
        reference = str(item.get("externalid") or item.get("otherrefnum") or "")
        keep_document(
            run, source=Source.NETSUITE, number=str(item.get("tranid") or ""),
            doc_type=doc_type_of(kind, f"{where}/type"),
            on=date_of(str(item.get("trandate") or ""), f"{where}/trandate"),
            reference=reference, currency=cur,
            value=amount(item.get("foreigntotal"), cur, f"{where}/foreigntotal"),
            raw={k: (str(v) if isinstance(v, Decimal) else v) for k, v in item.items()
                 if k != "links"},
            where=where,
        )  # fmt: skip
    except RowError as exc:
        run.reject(exc.where, exc.message)


__all__ = ["import_api", "import_files", "order_for", "suiteql"]
