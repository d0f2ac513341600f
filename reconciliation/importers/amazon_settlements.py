"""Amazon settlements: the Settlement Report V2 flat file and the Finances API's event groups.

**Settlement Report V2 flat file** (``GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2``, tab-separated,
read by header name). The summary row (settlement dates, deposit-date and total-amount filled,
no transaction-type) is one ``Payout``: external_id and trace_id = settlement-id, amount =
total-amount, paid_on = deposit-date. Every other row is one ``ProcessorTransaction`` of its
single amount (fee 0, net = amount; a fee is its own row with a negative amount), keyed by
settlement-id + a hash of the row's own columns + an occurrence counter for identical rows in
the settlement. The settlement's rows must sum to its total-amount, else the payout carries
``total_mismatch`` (what the file says) next to ``payout_check``'s verdict on what we hold.
Dates come ISO (``2026-11-03T07:00:00+00:00``) or European (``03.11.2026 07:00:00 UTC``) by
marketplace, amounts with a decimal point or comma; a row whose date or amount cannot be read is
rejected (``file:line``), the rest imports.

**Finances API** (v0). ``listFinancialEventGroups`` groups are payouts (external_id =
FinancialEventGroupId, amount = OriginalTotal, paid_on = FundTransferDate, else the group's end,
trace_id = TraceId, BeginningBalance / ConvertedTotal / AccountTail in ``summary``);
``listFinancialEventsByGroupId`` events are one ``ProcessorTransaction`` per money component of
an event (a charge, fee, promotion, withheld tax...). Totals an event states next to its parts
(``TotalExpense``, ``TotalAmount``, ``transactionValue``) are not rows: they are checked against
the parts (``total_mismatch`` on the event's rows); ``TaxWithholdingEvent.BaseAmount`` is the
base of a withholding, not money moved. Files: those answers as saved
(``payload.FinancialEventGroupList`` / ``payload.FinancialEvents``; an events file names its group
by the events' ``FinancialEventGroupId``); ``import_api`` reads them through the channel's SP-API
client (LWA token, pacing, retries, ``NextToken``). There is no map from a settlement-id to a
group id (selling-partner-api-models#5143): both come in, each as its own payout.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import structlog
from django.utils import timezone

from channels.adapters.amazon import SpApiClient
from channels.adapters.base import AdapterError
from channels.services import channel_config
from orders.errors import InvalidInput
from reconciliation.importers import ImportOptions
from reconciliation.imports import (
    RowError,
    Run,
    amount,
    attach_transactions,
    currency_code,
    defect,
    import_run,
)
from reconciliation.models import (
    Defect,
    ImportRun,
    Payout,
    PayoutStatus,
    ProcessorTransaction,
    Source,
    TxCategory,
)

log = structlog.get_logger(__name__)

# --- the flat file ------------------------------------------------------------------------------
SUMMARY_COLUMNS = ("settlement-id", "settlement-start-date", "settlement-end-date",
                   "deposit-date", "total-amount", "currency")  # fmt: skip
# The row's own columns, in the file's order: what makes one transaction row (with its amount).
ROW_KEY_COLUMNS = (
    "transaction-type", "order-id", "merchant-order-id", "adjustment-id", "shipment-id",
    "marketplace-name", "amount-type", "amount-description", "amount", "fulfillment-id",
    "posted-date", "posted-date-time", "order-item-code", "merchant-order-item-id",
    "merchant-adjustment-item-id", "sku", "quantity-purchased", "promotion-id",
)  # fmt: skip
REQUIRED_COLUMNS = ("settlement-id", "total-amount", "currency", "transaction-type", "amount",
                    "amount-type", "amount-description")  # fmt: skip
# Ids go into keys of at most 120 characters (``<settlement-id>:<24>:<n>``, ``ev:<group>:<32>``);
# Amazon's are 11 digits and about 40 characters.
MAX_ID_CHARS = 80
RESERVE_RELEASE = "previous reserve amount balance"
RESERVE_HOLD = "current reserve amount"
# Amazon's day-first marketplaces (DE, FR, IT, ES...) write dates so, with the zone spelt out;
# others write year first. A slashed day-first date is not guessed (03/11 is March in the US).
DATE_TIME_FORMATS = ("%d.%m.%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S")
DATE_FORMATS = ("%d.%m.%Y", "%Y-%m-%d", "%Y/%m/%d")
UTC_NAMES = ("UTC", "GMT", "Z")


def _when(value: str, where: str, column: str) -> datetime:
    """A flat-file date (ISO with an offset, or day-first with a UTC/GMT suffix) as aware UTC."""
    text = value.strip()
    if not text:
        raise RowError(where, f"{column} is empty")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = None
    if parsed is None:
        bare = text
        for name in UTC_NAMES:
            if bare.upper().endswith(name):
                bare = bare[: -len(name)].strip()
                break
        for fmt in DATE_TIME_FORMATS + DATE_FORMATS:
            try:
                parsed = datetime.strptime(bare, fmt).replace(tzinfo=UTC)
                break
            except ValueError:
                continue
        if parsed is None:  # a zone other than UTC spelt by name (PST, CET) is not guessed
            raise RowError(where, f"{column} {value!r} is not a date we can read")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _flat_amount(value: str, currency: str, where: str, column: str) -> Decimal:
    """An amount as the marketplace writes it: ``-12.34`` or (day-first marketplaces) ``-12,34``."""
    text = value.strip()
    if not text:
        raise RowError(where, f"{column} is empty")
    if "," in text and "." not in text and text.count(",") == 1:
        text = text.replace(",", ".")
    try:
        return amount(text, currency, where)
    except RowError as exc:
        if "decimals" in exc.message:
            raise RowError(where, f"{column} {value!r} has more decimals than {currency} has"
                           ) from None  # fmt: skip
        raise RowError(where, f"{column} {value!r} is not an amount") from None


def flat_category(transaction_type: str, amount_type: str, description: str) -> TxCategory:
    """The category of a flat-file row (reserves, chargebacks, fees, orders, refunds, the rest)."""
    kind, atype, desc = (transaction_type.strip().lower(), amount_type.strip().lower(),
                         description.strip().lower())  # fmt: skip
    if desc == RESERVE_RELEASE:
        return TxCategory.RESERVE_RELEASE
    if desc == RESERVE_HOLD:
        return TxCategory.RESERVE_HOLD
    if "chargeback" in kind or "a-to-z" in kind or "guarantee claim" in kind:
        return TxCategory.DISPUTE
    if (
        atype in ("itemfees", "shipmentfees", "orderfees")
        or "commission" in desc
        or desc.startswith("fba")
        or kind.endswith("servicefee")
        or "fee" in atype
    ):
        return TxCategory.FEE  # fmt: skip
    if "withheldtax" in atype:  # marketplace facilitator tax Amazon keeps and remits
        return TxCategory.ADJUSTMENT
    if kind == "order":
        return TxCategory.CHARGE
    if kind == "refund":
        return TxCategory.REFUND
    return TxCategory.ADJUSTMENT


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")  # older EU reports


@dataclass
class _Settlement:
    summary: dict[str, str] | None = None
    where: str = ""
    payout_values: dict[str, Any] | None = None
    currency: str = ""
    rows_sum: Decimal = Decimal(0)
    by_category: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    rows: int = 0
    rejected: int = 0
    counters: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def _summary_values(settlement_id: str, row: Mapping[str, str], where: str) -> dict[str, Any]:
    currency = currency_code(row.get("currency"), where)
    total = _flat_amount(row.get("total-amount") or "", currency, where, "total-amount")
    deposit = _when(row.get("deposit-date") or "", where, "deposit-date")
    start = _when(row.get("settlement-start-date") or "", where, "settlement-start-date")
    end = _when(row.get("settlement-end-date") or "", where, "settlement-end-date")
    return {
        "currency": currency, "amount": total, "paid_on": deposit.date(), "period_start": start,
        "period_end": end, "trace_id": settlement_id, "status": PayoutStatus.PAID,
        "raw": {k: v for k, v in row.items() if v},
    }  # fmt: skip


def row_key(row: Mapping[str, str]) -> str:
    """A hash of the row's own columns (not its settlement's): two rows differing in any of them
    are two rows; identical ones are told apart by their occurrence counter."""
    material = "\x1f".join((row.get(c) or "").strip() for c in ROW_KEY_COLUMNS)
    return hashlib.sha256(material.encode()).hexdigest()[:24]


def import_flat_file(path: Path, *, options: ImportOptions) -> ImportRun:
    """One settlement report file: its payout(s) and their transaction rows."""
    name = path.name
    with import_run(source=Source.AMAZON, origin=name, channel=options.channel,
                    by=options.by) as run:  # fmt: skip
        reader = csv.reader(io.StringIO(_decode(path.read_bytes()), newline=""),
                            delimiter="\t", quoting=csv.QUOTE_NONE)  # fmt: skip
        header = [h.strip().lower() for h in next(reader, [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            run.reject(f"{name}:1", f"not a settlement report V2 flat file: no column "
                                    f"{', '.join(missing)}")  # fmt: skip
            return run.result
        lines = [(reader.line_num, cells) for cells in reader if any(c.strip() for c in cells)]
        settlements: dict[str, _Settlement] = defaultdict(_Settlement)
        transactions: list[tuple[str, dict[str, Any], str]] = []
        for line, cells in lines:
            where = f"{name}:{line}"
            row = dict(zip(header, cells, strict=False))
            if len(cells) > len(header):
                run.reject(where, f"{len(cells)} columns, the header has {len(header)}")
                continue
            settlement_id = (row.get("settlement-id") or "").strip()
            if not settlement_id or len(settlement_id) > MAX_ID_CHARS:
                run.reject(where, f"settlement-id {settlement_id!r} is not a settlement id")
                continue
            settlement = settlements[settlement_id]
            try:
                if not (row.get("transaction-type") or "").strip():
                    if settlement.summary is not None:
                        raise RowError(
                            where,
                            f"a second summary row for settlement "
                            f"{settlement_id} ({settlement.where} is the first)",
                        )
                    settlement.summary, settlement.where = row, where
                    # Its rows have no currency of their own: they take it even when a date
                    # of the summary cannot be read (the payout then waits for a good file).
                    settlement.currency = currency_code(row.get("currency"), where)
                    settlement.payout_values = _summary_values(settlement_id, row, where)
                    continue
                transactions.append((settlement_id, row, where))
            except RowError as exc:
                run.reject(exc.where, exc.message)
        for settlement_id, row, where in options.progress(transactions, total=len(transactions),
                                                          desc=name):  # fmt: skip
            settlement = settlements[settlement_id]
            try:
                values = _transaction_values(settlement_id, row, where, settlement)
            except RowError as exc:
                settlement.rejected += 1
                run.reject(exc.where, exc.message)
                continue
            key = row_key(row)
            settlement.counters[key] += 1
            external_id = f"{settlement_id}:{key}:{settlement.counters[key]}"
            settlement.rows += 1
            settlement.rows_sum += values["amount"]
            settlement.by_category[values["category"]] += values["amount"]
            run.keep(ProcessorTransaction, key={"source": Source.AMAZON,
                                                "external_id": external_id},
                     values={**values, "channel": options.channel})  # fmt: skip
        for settlement_id, settlement in settlements.items():
            _keep_settlement(run, settlement_id, settlement, options)
        attach_transactions(Source.AMAZON, list(settlements))
    log.info("amazon_settlements.flat_file_imported", origin=name, new=run.new,
             rejected=run.rejected)  # fmt: skip
    return run.result


def _transaction_values(
    settlement_id: str, row: Mapping[str, str], where: str, settlement: _Settlement
) -> dict[str, Any]:
    own = (row.get("currency") or "").strip()
    if own:
        currency = currency_code(own, where)
    elif settlement.currency:
        currency = settlement.currency
    else:
        raise RowError(where, f"no currency: the row has none and settlement {settlement_id} "
                              "has no readable summary row")  # fmt: skip
    value = _flat_amount(row.get("amount") or "", currency, where, "amount")
    posted_text = (row.get("posted-date-time") or "").strip()
    column = "posted-date-time"
    if not posted_text:
        posted_text, column = (row.get("posted-date") or "").strip(), "posted-date"
    if not posted_text:
        raise RowError(where, "posted-date and posted-date-time are empty")
    posted = _when(posted_text, where, column)
    kind = (row.get("transaction-type") or "").strip()
    atype = (row.get("amount-type") or "").strip()
    desc = (row.get("amount-description") or "").strip()
    return {
        "category": flat_category(kind, atype, desc),
        "vendor_type": f"{kind}/{atype}/{desc}"[:60], "currency": currency, "amount": value,
        "fee": Decimal(0), "net": value, "occurred_at": posted,
        "payout_external_id": settlement_id,
        "source_order_id": (row.get("order-id") or "").strip()[:120],
        "source_reference": (row.get("order-item-code") or row.get("adjustment-id")
                             or row.get("shipment-id") or "").strip()[:120],
        "raw": {k: v for k, v in row.items() if v and k not in SUMMARY_COLUMNS[1:]},
        "defects": [],
    }  # fmt: skip


def _keep_settlement(
    run: Run, settlement_id: str, settlement: _Settlement, options: ImportOptions
) -> None:
    values = settlement.payout_values
    if values is None:
        return  # no (readable) summary row: its transactions wait for the payout
    total: Decimal = values["amount"]
    found = []
    if settlement.rows_sum != total:
        rejected = (f" ({settlement.rejected} of its rows rejected: see the import run)"
                    if settlement.rejected else "")  # fmt: skip
        message = (f"its {settlement.rows} rows sum to {settlement.rows_sum} "
                   f"{values['currency']}; total-amount is {total}{rejected}")  # fmt: skip
        found.append(defect(Defect.TOTAL_MISMATCH, message))
    summary = {
        "rows": settlement.rows, "rows_sum": str(settlement.rows_sum),
        "by_category": {k: str(v) for k, v in sorted(settlement.by_category.items())},
    }  # fmt: skip
    payout, created = run.keep(
        Payout, key={"source": Source.AMAZON, "external_id": settlement_id},
        values={**values, "channel": options.channel, "summary": summary, "defects": found},
        mutable=("status",),
    )  # fmt: skip
    if not created:
        # The file's verdict replaces the earlier one; payout_check's (renewed by
        # attach_transactions) stays.
        ours = [d for d in payout.defects or [] if d.get("code") == Defect.TOTAL_MISMATCH]
        if ours != found:
            others = [d for d in payout.defects or [] if d.get("code") != Defect.TOTAL_MISMATCH]
            Payout.objects.filter(pk=payout.pk).update(defects=found + others)


# --- the Finances API -----------------------------------------------------------------------
FUND_TRANSFER_STATUS = {
    "succeeded": PayoutStatus.PAID, "transfered": PayoutStatus.PAID,  # the sandbox's spelling
    "transferred": PayoutStatus.PAID, "initiated": PayoutStatus.IN_TRANSIT,
    "processing": PayoutStatus.IN_TRANSIT, "failed": PayoutStatus.FAILED,
    "canceled": PayoutStatus.CANCELED, "cancelled": PayoutStatus.CANCELED,
}  # fmt: skip
# Event lists whose every component is of one kind; elsewhere a fee is a fee, an order a charge.
LIST_CATEGORY = {
    "ChargebackEventList": TxCategory.DISPUTE, "GuaranteeClaimEventList": TxCategory.DISPUTE,
    "RefundEventList": TxCategory.REFUND, "ShipmentEventList": TxCategory.CHARGE,
    "ServiceFeeEventList": TxCategory.FEE, "ProductAdsPaymentEventList": TxCategory.FEE,
    "SellerDealPaymentEventList": TxCategory.FEE, "CouponPaymentEventList": TxCategory.FEE,
    "ImagingServicesFeeEventList": TxCategory.FEE, "TrialShipmentEventList": TxCategory.FEE,
}  # fmt: skip
DISPUTE_LISTS = frozenset({"ChargebackEventList", "GuaranteeClaimEventList"})
TOTAL_KEYS = frozenset({"TotalExpense", "TotalAmount", "transactionValue"})
NOT_MOVED = frozenset({("TaxWithholdingEventList", "BaseAmount")})
TYPE_KEYS = ("ChargeType", "FeeType", "PromotionType", "DirectPaymentType", "TaxCollectionModel")
EVENT_IDS = ("AmazonOrderId", "SellerOrderId", "PostedDate")


def _plain(value: Any) -> Any:
    """Amazon's Decimals as strings for a JSON field (exactly as written, never a float)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _iso(value: Any, where: str, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise RowError(where, f"{name} {value!r} is not a date-time") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _money(value: Any, where: str) -> tuple[str, Decimal]:
    if not isinstance(value, dict):
        raise RowError(where, f"{value!r} is not a Currency object")
    code = currency_code(value.get("CurrencyCode"), f"{where}/CurrencyCode")
    return code, amount(value.get("CurrencyAmount"), code, f"{where}/CurrencyAmount")


def _group_values(group: Mapping[str, Any], where: str, channel: Any) -> dict[str, Any]:
    currency, total = _money(group.get("OriginalTotal"), f"{where}/OriginalTotal")
    start = _iso(group.get("FinancialEventGroupStart"), f"{where}/FinancialEventGroupStart",
                 "FinancialEventGroupStart")  # fmt: skip
    end = _iso(group.get("FinancialEventGroupEnd"), f"{where}/FinancialEventGroupEnd",
               "FinancialEventGroupEnd")  # fmt: skip
    transfer = _iso(group.get("FundTransferDate"), f"{where}/FundTransferDate",
                    "FundTransferDate")  # fmt: skip
    paid = transfer or end
    if paid is None:
        raise RowError(where, "no FundTransferDate and no FinancialEventGroupEnd: an open group "
                              "has no payout date yet")  # fmt: skip
    transfer_status = str(group.get("FundTransferStatus") or "")
    processing = str(group.get("ProcessingStatus") or "")
    status = FUND_TRANSFER_STATUS.get(transfer_status.lower())
    if status is None:
        status = PayoutStatus.SCHEDULED if processing.lower() == "open" or not transfer else (
            PayoutStatus.IN_TRANSIT)  # fmt: skip
    summary: dict[str, Any] = {"ProcessingStatus": processing,
                               "FundTransferStatus": transfer_status,
                               "AccountTail": str(group.get("AccountTail") or "")}  # fmt: skip
    for name in ("BeginningBalance", "ConvertedTotal"):
        if group.get(name) is not None:
            code, value = _money(group[name], f"{where}/{name}")
            summary[name] = {"currency": code, "amount": str(value)}
    return {
        "channel": channel, "status": status, "currency": currency, "amount": total,
        "paid_on": paid.date(), "period_start": start, "period_end": end,
        "trace_id": str(group.get("TraceId") or "")[:200], "summary": summary,
        "raw": _plain(dict(group)), "defects": [],
    }  # fmt: skip


def keep_groups(run: Run, groups: Iterable[tuple[str, Any]], *, channel: Any) -> list[str]:
    """``(JSON pointer, group)`` pairs as payouts; the ids kept."""
    kept = []
    for where, group in groups:
        try:
            if not isinstance(group, dict) or not group.get("FinancialEventGroupId"):
                raise RowError(where, "no FinancialEventGroupId")
            if len(str(group["FinancialEventGroupId"])) > MAX_ID_CHARS:
                raise RowError(f"{where}/FinancialEventGroupId", "longer than a group id can be")
            values = _group_values(group, where, channel)
        except RowError as exc:
            run.reject(exc.where, exc.message)
            continue
        group_id = str(group["FinancialEventGroupId"])
        run.keep(Payout, key={"source": Source.AMAZON, "external_id": group_id}, values=values,
                 mutable=("status", "paid_on", "period_end", "trace_id", "summary",
                          "raw"))  # fmt: skip
        kept.append(group_id)
    return kept


@dataclass(frozen=True)
class _Component:
    pointer: str  # inside the event
    money: Any
    name: str  # the key holding it (ChargeAmount, FeeAmount, TaxAmount...)
    kind: str  # ChargeType / FeeType ... of its entry, else ``name``
    path: str  # the keys down to it, no indices


def _components(value: Any, pointer: str = "", path: str = "", kind: str = ""
                ) -> Iterator[_Component]:  # fmt: skip
    if isinstance(value, dict):
        if "CurrencyAmount" in value or "CurrencyCode" in value:
            name = path.rsplit("/", 1)[-1]
            yield _Component(pointer, value, name, kind or name, path)
            return
        own = next((str(value[k]) for k in TYPE_KEYS if value.get(k)), kind)
        for key, child in value.items():
            yield from _components(child, f"{pointer}/{key}", f"{path}/{key}", own)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _components(child, f"{pointer}/{i}", path, kind)


def event_category(list_name: str, component: _Component) -> TxCategory:
    """Disputes whole; else a fee or the cost of points granted is a fee, tax Amazon withheld
    (marketplace facilitator) an adjustment, the rest what its event list is."""
    if list_name in DISPUTE_LISTS:
        return TxCategory.DISPUTE
    if "Fee" in component.path or "CostOfPoints" in component.path:
        return TxCategory.FEE
    if "TaxWithheld" in component.path or "TaxesWithheld" in component.path:
        return TxCategory.ADJUSTMENT
    return LIST_CATEGORY.get(list_name, TxCategory.ADJUSTMENT)


def event_vendor_type(list_name: str, component: _Component) -> str:
    """``Event/ItsList/Type``: ``Shipment/ItemFeeList/FBAPerUnitFulfillmentFee``."""
    keys = component.path.strip("/").split("/")
    holder = keys[-2] if len(keys) > 1 else ""
    parts = [list_name.removesuffix("EventList"), holder, component.kind]
    return "/".join(p for p in parts if p)[:60]


def _canonical(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"))


def keep_events(
    run: Run, events: Mapping[str, Any], *, where: str, group_id: str,
    posted_default: datetime | None, channel: Any, progress: Any, seen: dict[str, int],
) -> None:  # fmt: skip
    """One page's ``FinancialEvents`` as transactions, one per money component. ``seen``
    counts identical events across the group's pages (the second is a row of its own)."""
    prefix = f"ev:{group_id}"  # at most 3 + 80 + 1 + 32 of the 120 an external id has
    items = [(list_name, i, event) for list_name, entries in events.items()
             if isinstance(entries, list) for i, event in enumerate(entries)]  # fmt: skip
    for list_name, i, event in progress(items, total=len(items), desc="financialEvents"):
        at = f"{where}/{list_name}/{i}"
        if not isinstance(event, dict):
            run.reject(at, "not an event object")
            continue
        try:
            posted = _iso(event.get("PostedDate"), f"{at}/PostedDate", "PostedDate")
            posted = posted or posted_default
            if posted is None:
                raise RowError(
                    f"{at}/PostedDate",
                    "no PostedDate (Amazon leaves it out of some "
                    "events; the API import uses its group's end)",
                )
            rows = []
            totals: list[tuple[str, Decimal]] = []
            for component in _components(event):
                cat = event_category(list_name, component)
                currency, value = _money(component.money, f"{at}{component.pointer}")
                if component.name in TOTAL_KEYS:
                    totals.append((currency, value))
                    continue
                if (list_name, component.name) in NOT_MOVED:
                    continue
                rows.append((component, cat, currency, value))
        except RowError as exc:
            run.reject(exc.where, exc.message)
            continue
        event_hash = hashlib.sha256(f"{list_name}|{_canonical(event)}".encode()).hexdigest()
        seen[event_hash] += 1
        found = []
        parts = sum((r[3] for r in rows), Decimal(0))
        for currency, total in totals:
            if parts != total:
                found.append(defect(Defect.TOTAL_MISMATCH,
                                    f"the event's parts sum to {parts} {currency}; it states a "
                                    f"total of {total}"))  # fmt: skip
        for component, cat, currency, value in rows:
            digest = hashlib.sha256(
                f"{event_hash}|{seen[event_hash]}|{component.pointer}".encode()
            ).hexdigest()[:32]
            run.keep(ProcessorTransaction, key={"source": Source.AMAZON,
                                                "external_id": f"{prefix}:{digest}"},
                     values={
                         "channel": channel, "category": cat,
                         "vendor_type": event_vendor_type(list_name, component),
                         "currency": currency, "amount": value, "fee": Decimal(0), "net": value,
                         "occurred_at": posted,
                         "payout_external_id": group_id,
                         "source_order_id": str(event.get("AmazonOrderId") or "")[:120],
                         "source_reference": str(event.get("SellerOrderId") or "")[:120],
                         "raw": {"list": list_name, "pointer": component.pointer,
                                 "type": component.kind, "money": _plain(component.money),
                                 **{k: str(event[k]) for k in EVENT_IDS if event.get(k)}},
                         "defects": found,
                     })  # fmt: skip


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes(), parse_float=Decimal)
    except ValueError as exc:
        raise RowError(f"{path.name}#", f"not JSON ({exc})") from None


def import_json_file(path: Path, *, options: ImportOptions) -> ImportRun:
    name = path.name
    with import_run(source=Source.AMAZON, origin=name, channel=options.channel,
                    by=options.by) as run:  # fmt: skip
        try:
            body = _load(path)
            payload = body.get("payload") if isinstance(body, dict) else None
            if not isinstance(payload, dict):
                raise RowError(f"{name}#/payload", "no payload object")
        except RowError as exc:
            run.reject(exc.where, exc.message)
            return run.result
        if isinstance(payload.get("FinancialEventGroupList"), list):
            groups = payload["FinancialEventGroupList"]
            pointed = [(f"{name}#/payload/FinancialEventGroupList/{i}", g)
                       for i, g in enumerate(groups)]  # fmt: skip
            ids = keep_groups(
                run,
                options.progress(pointed, total=len(pointed), desc=name),
                channel=options.channel,
            )
            attach_transactions(Source.AMAZON, ids)
        elif isinstance(payload.get("FinancialEvents"), dict):
            events = payload["FinancialEvents"]
            # A saved answer does not say which group it was asked for: its events do.
            named = {str(e["FinancialEventGroupId"]) for entries in events.values()
                     if isinstance(entries, list) for e in entries
                     if isinstance(e, dict) and e.get("FinancialEventGroupId")}  # fmt: skip
            group_id = named.pop() if len(named) == 1 else ""
            group_id = group_id if len(group_id) <= MAX_ID_CHARS else ""
            keep_events(run, events, where=f"{name}#/payload/FinancialEvents", group_id=group_id,
                        posted_default=None, channel=options.channel,
                        progress=options.progress, seen=defaultdict(int))  # fmt: skip
            if group_id:
                attach_transactions(Source.AMAZON, [group_id])
        else:
            run.reject(f"{name}#/payload", "neither FinancialEventGroupList nor FinancialEvents")
    return run.result


def import_files(paths: Sequence[Path], *, options: ImportOptions) -> list[ImportRun]:
    """Settlement report flat files (``.txt``/``.tsv``) and saved Finances answers (``.json``)."""
    return [import_json_file(p, options=options) if p.suffix.lower() == ".json"
            else import_flat_file(p, options=options) for p in paths]  # fmt: skip


# --- the API ----------------------------------------------------------------------------------
DEFAULT_DAYS = 30
PAGE_SIZE = "100"
# Amazon wants FinancialEventGroupStartedBefore at least two minutes in the past.
API_LAG = timedelta(minutes=3)


def _pages(client: Any, path: str, *, operation: str, params: dict[str, str],
           key: str) -> Iterator[tuple[int, Any]]:  # fmt: skip
    """Each page's ``payload[key]``, following NextToken (a token seen twice stops the read)."""
    seen: set[str] = set()
    page_no = 0
    while True:
        payload = client.get(path, operation=operation, params=params, parse_float=Decimal)
        yield page_no, payload.get(key)
        token = payload.get("NextToken")
        if not token:
            return
        if token in seen:
            raise AdapterError(f"Amazon {operation}: NextToken {token!r} came twice",
                               retryable=False)  # fmt: skip
        seen.add(str(token))
        page_no += 1
        params = {"NextToken": str(token)}


def import_api(*, options: ImportOptions) -> list[ImportRun]:
    """Event groups started in [since, until] and each group's events, through the channel's
    SP-API client: one run for the groups, one per group's events."""
    channel = options.channel
    if channel is None or channel.kind != "amazon":
        raise InvalidInput("Give the Amazon channel (--channel SLUG)", code="channel_required")
    today = timezone.now().date()
    since = options.since or today - timedelta(days=DEFAULT_DAYS)
    if options.until is not None and options.until < since:
        raise InvalidInput(f"--until {options.until} is before --since {since}",
                           code="invalid_range")  # fmt: skip
    after = datetime.combine(since, time.min, tzinfo=UTC)
    before = timezone.now() - API_LAG
    if options.until is not None:
        before = min(before, datetime.combine(options.until + timedelta(days=1), time.min,
                                              tzinfo=UTC))  # fmt: skip
    client = SpApiClient(channel_config(channel))
    runs: list[ImportRun] = []
    try:
        params = {
            "FinancialEventGroupStartedAfter": _z(after),
            "FinancialEventGroupStartedBefore": _z(before),
            "MaxResultsPerPage": PAGE_SIZE,
        }
        origin = f"SP-API listFinancialEventGroups {since.isoformat()}..{_until(before)}"
        groups: list[tuple[str, dict[str, Any]]] = []
        with import_run(source=Source.AMAZON, origin=origin, channel=channel,
                        by=options.by) as run:  # fmt: skip
            for page, entries in _pages(client, "/finances/v0/financialEventGroups",
                                        operation="listFinancialEventGroups", params=params,
                                        key="FinancialEventGroupList"):  # fmt: skip
                for i, group in enumerate(entries or []):
                    groups.append((f"page{page}#/payload/FinancialEventGroupList/{i}", group))
            ids = keep_groups(run, options.progress(groups, total=len(groups), desc=origin),
                              channel=channel)  # fmt: skip
        runs.append(run.result)
        by_id = {str(g.get("FinancialEventGroupId")): g for _w, g in groups
                 if isinstance(g, dict)}  # fmt: skip
        for group_id in ids:
            group = by_id[group_id]
            default = (_iso(group.get("FinancialEventGroupEnd"), "", "end")
                       or _iso(group.get("FinancialEventGroupStart"), "", "start"))  # fmt: skip
            path = f"/finances/v0/financialEventGroups/{quote(group_id, safe='')}/financialEvents"
            origin = f"SP-API listFinancialEventsByGroupId {group_id}"
            seen: dict[str, int] = defaultdict(int)
            with import_run(source=Source.AMAZON, origin=origin, channel=channel,
                            by=options.by) as run:  # fmt: skip
                for page, events in _pages(client, path, operation="listFinancialEventsByGroupId",
                                           params={"MaxResultsPerPage": PAGE_SIZE},
                                           key="FinancialEvents"):  # fmt: skip
                    if not isinstance(events, dict):
                        run.reject(f"page{page}#/payload/FinancialEvents", "not an object")
                        continue
                    keep_events(run, events, where=f"page{page}#/payload/FinancialEvents",
                                group_id=group_id, posted_default=default, channel=channel,
                                progress=options.progress, seen=seen)  # fmt: skip
            runs.append(run.result)
        attach_transactions(Source.AMAZON, ids)
    finally:
        client.close()
    return runs


def _z(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _until(before: datetime) -> str:
    last: date = (before - timedelta(microseconds=1)).date()
    return last.isoformat()
