"""Bank statements into ``BankLine``: CSV (a column mapping per account), ISO 20022 camt.053 and
SWIFT MT940. Every import names its account (``options.account``); an entry in another currency
than the account's is rejected (a statement of the wrong account, or a currency sub-account
that needs its own ``BankAccount``).

Each line once (``BankLine`` is unique per account and ``dedup_key``):

- the bank's own reference for the entry when there is one (camt.053 ``AcctSvcrRef``, else
  ``NtryRef``; MT940's bank reference after ``//`` on ``:61:``; the CSV column mapped as
  ``entry_reference``);
- else ``sha256:`` + a hash of (booking date, amount, text, reference) + ``:n``, the n-th such
  line in the file: two identical coffee payments on one day are two lines, and the same file
  read twice finds the same two keys. (A later statement holding one more identical line on a
  day an earlier file already had is a new line, as it should be; overlapping statements whose
  identical lines have no bank reference are the one case this cannot tell apart.)

CSV mapping (``BankAccount.csv_mapping``, checked by ``mapping_problems``; the admin refuses a
mapping with a problem): ``date`` (column), ``amount`` or ``credit`` + ``debit`` (columns; a
debit is money out whatever its sign), ``text`` (a column or a list of columns joined),
optional ``reference``, ``entry_reference``, ``value_date``, ``counterparty``, ``currency``
(columns), ``date_format`` (strptime, default ``%Y-%m-%d``), ``decimal`` (``.`` or ``,``; the
other one may group thousands), ``delimiter`` (default: sniffed), ``encoding`` (default
``utf-8-sig``), ``skip_rows`` (lines before the header, for banks that print a preamble).

camt.053: the standard library's ElementTree, namespaced, versions camt.053.001.02 to .08
(the names used here did not change across them). Why no library: ``pycamt`` (1.1.1) flattens
an entry into one row per ``TxDtls`` (a batch would become several lines), searches the entry's
descendants for ``AcctSvcrRef`` (a transaction's reference would pass for the entry's), reads
no ``NtryRef`` and gives no place in the file for an error; ``camt053`` (0.0.23, a first-year
release series built for reversing entries) is not yet a parser to pin for money. The entry's
``Sts`` must be booked (``BOOK``; ``PDNG``/``INFO`` entries are not bank lines yet: skipped).
A batch entry (several ``TxDtls``) is one line, its ``Ustrd`` texts joined. An error names the
entry as ``file:/Document/BkToCstmrStmt/Stmt[i]/Ntry[j]``.

MT940: the ``mt-940`` package (pinned). It stops a statement at the first ``:61:`` it cannot
read, so such an entry is rejected at its line and the file is read again without it (the rest
imports). ``:61:`` value date -> ``value_on``, its entry date -> ``booked_on``, ``:86:`` ->
text, the customer reference (unless ``NONREF``) -> reference.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import io
import logging
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import mt940
import structlog

from orders.errors import InvalidInput
from reconciliation.importers import ImportOptions
from reconciliation.imports import RowError, Run, amount, currency_code, import_run
from reconciliation.models import BankAccount, BankLine, ImportRun, Source

log = structlog.get_logger(__name__)
# mt-940 logs the text of a tag it cannot read at ERROR: a :86: may name a person.
logging.getLogger("mt940").setLevel(logging.CRITICAL)

CAMT_NS = re.compile(r"^\{urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.0([2-8])\}Document$")
COLUMN_KEYS = ("date", "value_date", "amount", "credit", "debit", "reference",
               "entry_reference", "counterparty", "currency")  # fmt: skip
OPTION_KEYS = ("text", "date_format", "decimal", "delimiter", "encoding", "skip_rows")


@dataclass
class Entry:
    """One statement entry, as read, before it becomes a ``BankLine``."""

    where: str
    booked_on: date
    amount: Decimal
    currency: str
    text: str = ""
    reference: str = ""
    bank_reference: str = ""
    value_on: date | None = None
    counterparty: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


# --- the shared part -----------------------------------------------------------------------------
def import_files(paths: Sequence[Path], *, options: ImportOptions) -> list[ImportRun]:
    account = options.account
    if not isinstance(account, BankAccount):
        raise InvalidInput("a bank statement needs its bank account (--account NAME)",
                           code="account_required")  # fmt: skip
    readers = {Source.BANK_CSV: read_csv, Source.CAMT053: read_camt053, Source.MT940: read_mt940}
    reader = readers.get(Source(options.source))
    if reader is None:
        raise InvalidInput(f"the bank importer does not read {options.source}", code="source")
    if options.source == Source.BANK_CSV:
        problems = mapping_problems(account.csv_mapping)
        if problems:
            raise InvalidInput(f"bank account {account.name}: its CSV mapping: "
                               + "; ".join(problems), code="csv_mapping")  # fmt: skip
    runs = []
    for path in paths:
        path = Path(path)
        with import_run(source=options.source, origin=path.name, channel=options.channel,
                        by=options.by) as run:  # fmt: skip
            try:
                entries = list(reader(path, account, run))
            except RowError as exc:  # the file as a whole cannot be read
                run.reject(exc.where, exc.message)
                entries = []
            keep_entries(run, account, options, entries, desc=path.name)
        log.info("bank_import.file", source=options.source, account_id=account.pk,
                 file=path.name, run_id=run.row.pk, new=run.new,
                 rejected=run.rejected)  # fmt: skip
        runs.append(run.result)
    return runs


def line_hash(entry: Entry) -> str:
    text = "\x1f".join([entry.booked_on.isoformat(), format(entry.amount, "f"), entry.text,
                        entry.reference])  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def keep_entries(run: Run, account: BankAccount, options: ImportOptions, entries: list[Entry],
                 *, desc: str) -> None:  # fmt: skip
    seen: Counter[str] = Counter()
    for entry in options.progress(entries, total=len(entries), desc=desc):
        if entry.currency != account.currency:
            run.reject(entry.where, f"entry in {entry.currency}; the account {account.name} is "
                                    f"in {account.currency}")  # fmt: skip
            continue
        if entry.bank_reference:
            key = entry.bank_reference[:200]
        else:
            digest = line_hash(entry)
            seen[digest] += 1
            key = f"sha256:{digest}:{seen[digest]}"
        run.keep(
            BankLine, key={"account": account, "dedup_key": key},
            values={"source": options.source, "booked_on": entry.booked_on,
                    "value_on": entry.value_on, "currency": entry.currency,
                    "amount": entry.amount, "text": entry.text,
                    "reference": entry.reference[:200],
                    "counterparty": entry.counterparty[:200], "raw": entry.raw,
                    "import_run": run.row},
        )  # fmt: skip


# --- CSV -----------------------------------------------------------------------------------------
def mapping_problems(mapping: Any) -> list[str]:
    """What is wrong with a ``csv_mapping`` (empty: nothing)."""
    if not isinstance(mapping, dict):
        return ["it must be a JSON object"]
    problems = []
    unknown = sorted(set(mapping) - set(COLUMN_KEYS) - set(OPTION_KEYS))
    if unknown:
        problems.append(f"unknown keys {', '.join(unknown)} (known: "
                        f"{', '.join(COLUMN_KEYS + OPTION_KEYS)})")  # fmt: skip
    for key in COLUMN_KEYS:
        if key in mapping and not (isinstance(mapping[key], str) and mapping[key].strip()):
            problems.append(f"{key} must be a column name")
    if not mapping.get("date"):
        problems.append("date (the booking date's column) is required")
    if "amount" in mapping:
        if "credit" in mapping or "debit" in mapping:
            problems.append("give amount, or credit and debit, not both")
    elif not ("credit" in mapping and "debit" in mapping):
        problems.append("amount (or credit and debit) is required")
    text = mapping.get("text", "")
    if not (isinstance(text, str) or (isinstance(text, list)
                                      and all(isinstance(t, str) for t in text))):  # fmt: skip
        problems.append("text must be a column name or a list of column names")
    if mapping.get("decimal", ".") not in (".", ","):
        problems.append('decimal must be "." or ","')
    fmt = mapping.get("date_format", "%Y-%m-%d")
    if not (isinstance(fmt, str) and "%" in fmt):
        problems.append("date_format must be a strptime format such as %d.%m.%Y")
    delimiter = mapping.get("delimiter")
    if delimiter is not None and not (isinstance(delimiter, str) and len(delimiter) == 1):
        problems.append("delimiter must be one character")
    encoding = mapping.get("encoding", "utf-8-sig")
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        problems.append(f"encoding {encoding!r} is not an encoding")
    skip = mapping.get("skip_rows", 0)
    if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
        problems.append("skip_rows must be a whole number")
    return problems


def bank_amount(value: str, decimal_sep: str, currency: str, where: str) -> Decimal:
    """``1.234,56`` / ``-12,30`` / ``1,234.56``: the mapped decimal separator, the other one
    only as a thousands separator in groups of three."""
    text = value.strip().replace(" ", "").replace("\u00a0", "")
    group = "." if decimal_sep == "," else ","
    g, d = re.escape(group), re.escape(decimal_sep)
    if not re.fullmatch(rf"[+-]?(\d{{1,3}}({g}\d{{3}})+|\d+)({d}\d+)?", text):
        raise RowError(where, f"amount {value!r} is not an amount")
    return amount(text.replace(group, "").replace(decimal_sep, "."), currency, where)


def read_csv(path: Path, account: BankAccount, run: Run) -> Iterator[Entry]:
    mapping: dict[str, Any] = dict(account.csv_mapping)
    name = path.name
    try:
        data = path.read_bytes().decode(mapping.get("encoding", "utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise RowError(f"{name}:1", f"not {mapping.get('encoding', 'utf-8-sig')} text "
                                    f"(byte {exc.start})") from None  # fmt: skip
    skip = int(mapping.get("skip_rows", 0))
    lines = data.splitlines(keepends=True)
    body = "".join(lines[skip:])
    delimiter = mapping.get("delimiter")
    if not delimiter:
        try:
            delimiter = csv.Sniffer().sniff(body[:4096], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    reader = csv.reader(io.StringIO(body), delimiter=delimiter)
    header = [h.strip() for h in next(reader, [])]
    texts = mapping.get("text", [])
    text_columns = [texts] if isinstance(texts, str) else list(texts)
    wanted = [mapping[k] for k in COLUMN_KEYS if k in mapping] + text_columns
    missing = [c for c in wanted if c not in header]
    if missing:
        raise RowError(f"{name}:{skip + 1}", "no column " + ", ".join(repr(c) for c in missing)
                       + f" (the header has: {', '.join(header)})")  # fmt: skip
    fmt = mapping.get("date_format", "%Y-%m-%d")
    sep = mapping.get("decimal", ".")
    for row in reader:
        line = skip + reader.line_num
        where = f"{name}:{line}"
        if not any(cell.strip() for cell in row):
            continue
        try:
            if len(row) < len(header):
                raise RowError(where, f"{len(row)} fields, the header has {len(header)}")
            cell = dict(zip(header, (c.strip() for c in row), strict=False))

            cur = (currency_code(cell[mapping["currency"]], where) if "currency" in mapping
                   else account.currency)  # fmt: skip
            if "amount" in mapping:
                value = bank_amount(cell[mapping["amount"]], sep, cur, where)
            else:
                credit, debit = cell[mapping["credit"]], cell[mapping["debit"]]
                if not credit and not debit:
                    raise RowError(where, "neither a credit nor a debit amount")
                value = (bank_amount(credit, sep, cur, where) if credit else Decimal(0)) - (
                    abs(bank_amount(debit, sep, cur, where)) if debit else Decimal(0)
                )
            booked = _csv_date(cell, mapping, "date", fmt, where)
            assert booked is not None
            yield Entry(
                where=where, booked_on=booked,
                value_on=_csv_date(cell, mapping, "value_date", fmt, where),
                amount=value, currency=cur,
                text=" ".join(cell[c] for c in text_columns if cell[c]),
                reference=cell.get(mapping.get("reference", ""), ""),
                bank_reference=cell.get(mapping.get("entry_reference", ""), ""),
                counterparty=cell.get(mapping.get("counterparty", ""), ""),
                raw={"line": line, **cell},
            )  # fmt: skip
        except RowError as exc:
            run.reject(exc.where, exc.message)


def _csv_date(cell: Mapping[str, str], mapping: Mapping[str, Any], key: str, fmt: str,
              where: str) -> date | None:  # fmt: skip
    """The mapped column's date; ``None`` when an optional column (value date) is empty."""
    value = cell.get(mapping[key], "") if key in mapping else ""
    if not value and key != "date":
        return None
    try:
        # A bank's booking date is a calendar day, not an instant: no time zone to attach.
        return datetime.strptime(value, fmt).date()  # noqa: DTZ007
    except ValueError:
        raise RowError(where, f"{key} {value!r} is not a date ({fmt})") from None


# --- camt.053 ------------------------------------------------------------------------------------
def read_camt053(path: Path, account: BankAccount, run: Run) -> Iterator[Entry]:
    name = path.name
    data = path.read_bytes()
    if b"<!DOCTYPE" in data[:4096].upper() or b"<!ENTITY" in data.upper():
        # A bank statement has no DTD; refusing one keeps entity tricks out of the parser
        # (ElementTree resolves no external entity, and expat caps entity expansion too).
        raise RowError(f"{name}:1", "a statement with a DTD or entities is not read")
    try:
        root = ET.fromstring(data)  # noqa: S314 (no DTD, checked above)
    except ET.ParseError as exc:
        raise RowError(f"{name}:{exc.position[0]}", f"not XML ({exc})") from None
    found = CAMT_NS.match(root.tag)
    if not found:
        raise RowError(f"{name}:/{root.tag.rsplit('}', 1)[-1]}",
                       f"not a camt.053.001.02 to .08 statement (root {root.tag})")  # fmt: skip
    ns = {"c": root.tag[1:].split("}", 1)[0]}
    for i, stmt in enumerate(root.findall("c:BkToCstmrStmt/c:Stmt", ns), start=1):
        place = f"{name}:/Document/BkToCstmrStmt/Stmt[{i}]"
        iban = _text(stmt, "c:Acct/c:Id/c:IBAN", ns) or _text(stmt, "c:Acct/c:Id/c:Othr/c:Id", ns)
        ours = re.sub(r"\s", "", account.account_number).upper()
        if ours and iban and re.sub(r"\s", "", iban).upper() != ours:
            run.reject(place, f"the statement is for account {iban}, not {account.name}'s")
            continue
        for j, ntry in enumerate(stmt.findall("c:Ntry", ns), start=1):
            where = f"{place}/Ntry[{j}]"
            try:
                entry = _camt_entry(ntry, ns, where)
            except RowError as exc:
                run.reject(exc.where, exc.message)
                continue
            if entry is not None:
                entry.raw["statement_id"] = _text(stmt, "c:Id", ns)
                yield entry


def _text(element: ET.Element, xpath: str, ns: dict[str, str]) -> str:
    found = element.find(xpath, ns)
    return (found.text or "").strip() if found is not None else ""


def _camt_date(ntry: ET.Element, tag: str, ns: dict[str, str], where: str) -> date | None:
    value = _text(ntry, f"c:{tag}/c:Dt", ns) or _text(ntry, f"c:{tag}/c:DtTm", ns)
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise RowError(f"{where}/{tag}", f"{value!r} is not a date") from None


def _camt_entry(ntry: ET.Element, ns: dict[str, str], where: str) -> Entry | None:
    status = _text(ntry, "c:Sts/c:Cd", ns) or _text(ntry, "c:Sts", ns)
    if status and status != "BOOK":
        return None  # pending or information only: not on the account yet
    amt = ntry.find("c:Amt", ns)
    if amt is None:
        raise RowError(f"{where}/Amt", "no amount")
    cur = currency_code(amt.get("Ccy"), f"{where}/Amt/@Ccy")
    value = amount((amt.text or "").strip(), cur, f"{where}/Amt")
    sign = _text(ntry, "c:CdtDbtInd", ns)
    if sign not in ("CRDT", "DBIT"):
        raise RowError(f"{where}/CdtDbtInd", f"{sign!r} is neither CRDT nor DBIT")
    booked = _camt_date(ntry, "BookgDt", ns, where)
    if booked is None:
        raise RowError(f"{where}/BookgDt", "no booking date")
    texts = [(u.text or "").strip() for u in ntry.findall(
        "c:NtryDtls/c:TxDtls/c:RmtInf/c:Ustrd", ns)]  # fmt: skip
    extra = _text(ntry, "c:AddtlNtryInf", ns)
    refs = [(e.text or "").strip() for e in ntry.findall(
        "c:NtryDtls/c:TxDtls/c:Refs/c:EndToEndId", ns)]  # fmt: skip
    refs = [r for r in refs if r and r != "NOTPROVIDED"]
    party = "Dbtr" if sign == "CRDT" else "Cdtr"
    counterparty = (_text(ntry, f"c:NtryDtls/c:TxDtls/c:RltdPties/c:{party}/c:Nm", ns)
                    or _text(ntry, f"c:NtryDtls/c:TxDtls/c:RltdPties/c:{party}/c:Pty/c:Nm",
                             ns))  # fmt: skip
    bank_ref = _text(ntry, "c:AcctSvcrRef", ns) or _text(ntry, "c:NtryRef", ns)
    return Entry(
        where=where, booked_on=booked, value_on=_camt_date(ntry, "ValDt", ns, where),
        amount=value if sign == "CRDT" else -value, currency=cur,
        text=" ".join(t for t in [*texts, extra] if t), reference=refs[0] if refs else "",
        bank_reference=bank_ref, counterparty=counterparty,
        raw={"entry": where.split(":", 1)[1], "acct_svcr_ref": _text(ntry, "c:AcctSvcrRef", ns),
             "ntry_ref": _text(ntry, "c:NtryRef", ns), "cdt_dbt": sign, "amount": amt.text,
             "currency": cur, "transactions": len(ntry.findall("c:NtryDtls/c:TxDtls", ns)),
             "end_to_end_ids": refs, "bank_tx_code": _text(
                 ntry, "c:BkTxCd/c:Domn/c:Fmly/c:SubFmlyCd", ns)},
    )  # fmt: skip


# --- MT940 ---------------------------------------------------------------------------------------
def read_mt940(path: Path, account: BankAccount, run: Run) -> Iterator[Entry]:
    name = path.name
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        text = path.read_bytes().decode("latin-1")  # SWIFT's character set fits in it
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    dropped: set[int] = set()
    while True:
        transactions = mt940.models.Transactions()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                transactions.parse("\n".join(lines))
            break
        except RuntimeError as exc:
            bad = str(exc.args[2]).split("\n", 1)[0] if len(exc.args) > 2 else ""
            index = _line_of(lines, bad, dropped)
            if index is None:
                raise RowError(f"{name}:1", f"not an MT940 statement ({exc.args[0]})") from None
            run.reject(f"{name}:{index + 1}", f"{lines[index][:40]!r} cannot be read as "
                                              "an MT940 entry")  # fmt: skip
            # Drop the tag and its continuation lines (its :86: too, for a :61:) and read again.
            end = index + 1
            while end < len(lines) and (not lines[end].startswith(":")
                                        or lines[end].startswith(":86:")):  # fmt: skip
                end += 1
            for k in range(index, end):
                lines[k] = ""
                dropped.add(k)
    statement_lines = [i for i, line in enumerate(lines) if line.startswith(":61:")]
    for position, tx in zip(statement_lines, transactions, strict=False):
        where = f"{name}:{position + 1}"
        data = tx.data
        money_ = data.get("amount")
        if money_ is None:
            run.reject(where, "no amount")
            continue
        cur = str(money_.currency or data.get("currency") or "")
        try:
            cur = currency_code(cur, where)
            value = amount(Decimal(money_.amount), cur, where)
        except RowError as exc:
            run.reject(exc.where, exc.message)
            continue
        booked = data.get("entry_date") or data.get("date")
        if booked is None:
            run.reject(where, "no date")
            continue
        customer_ref = str(data.get("customer_reference") or "").strip()
        details = " ".join(str(data.get("transaction_details") or "").split())
        if "transaction_details" not in data:  # a structured :86: (?00 posting text, ?20 purpose)
            parts = [data.get(k) for k in ("posting_text", "purpose", "additional_purpose")]
            details = " ".join(str(p) for p in parts if p)
        party = data.get("applicant_name") or data.get("recipient_name") or ""
        yield Entry(
            where=where, booked_on=date(booked.year, booked.month, booked.day),
            value_on=(date(data["date"].year, data["date"].month, data["date"].day)
                      if data.get("date") else None),
            amount=value, currency=cur, text=details,
            reference="" if customer_ref.upper() == "NONREF" else customer_ref,
            bank_reference=str(data.get("bank_reference") or "").strip(),
            counterparty=str(party),
            raw={"line": position + 1, "statement": data.get("transaction_reference"),
                 "id": data.get("id"), "status": data.get("status"),
                 "customer_reference": customer_ref,
                 "bank_reference": data.get("bank_reference"),
                 "extra_details": data.get("extra_details")},
        )  # fmt: skip


def _line_of(lines: list[str], content: str, dropped: set[int]) -> int | None:
    """The index of the tag line holding ``content`` (the tag's first line)."""
    for i, line in enumerate(lines):
        if i not in dropped and line.startswith(":") and content and content in line:
            return i
    return None
