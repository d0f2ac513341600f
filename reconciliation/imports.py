"""What every import shares: one ``ImportRun`` per file or API read, each source row kept once by
its unique key, a clear error per row that cannot be read, and the invariant checks.

An importer reads its vendor's rows and, per row, either calls ``run.keep(...)`` (insert it once;
a row already there is left as it is, except the fields a vendor may legitimately move on, such
as a payout's status) or ``run.reject(where, message)`` (nothing kept; the run lists it). A
vendor's own inconsistency is not a rejection: the row is kept with its ``defects``.

    with import_run(source=Source.STRIPE, origin="balance_transactions.json") as run:
        for i, row in enumerate(rows):
            ...
            run.keep(ProcessorTransaction, key={...}, values={...})
    run.result  # the finished ImportRun: counts and errors

Amounts go through ``amount()``: a string, an int, or a Decimal, never a float (``bad
amount``); minor-unit integers (Stripe) through ``minor()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from django.db import IntegrityError, models, transaction
from django.db.models import Sum
from django.utils import timezone

from orders import money
from orders.errors import InvalidInput
from reconciliation.models import Defect, ImportRun, Payout, ProcessorTransaction, Source

M = TypeVar("M", bound=models.Model)
MAX_ERRORS = 1000  # kept on the run; the count goes on


class RowError(Exception):
    """A row that cannot be read: where it is and what is wrong (the run lists it)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where, self.message = where, message


@dataclass
class Run:
    row: ImportRun
    new: int = 0
    unchanged: int = 0
    updated: int = 0
    rejected: int = 0
    defects: int = 0
    read: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)

    def reject(self, where: str, message: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"where": where, "message": message})

    def keep(self, model: type[M], *, key: Mapping[str, Any], values: Mapping[str, Any],
             mutable: Sequence[str] = ()) -> tuple[M, bool]:  # fmt: skip
        """Insert the row once (by its unique ``key``); an existing row is left as it is but for
        the ``mutable`` fields, which take the new values. Returns (row, created)."""
        self.read += 1
        if values.get("defects"):
            self.defects += 1
        found = model._default_manager.filter(**key).first()
        if found is None:
            try:
                with transaction.atomic():
                    created = model._default_manager.create(**key, **values)
                self.new += 1
                return created, True
            except IntegrityError:  # another import inserted it meanwhile
                found = model._default_manager.get(**key)
        changed = {name: values[name] for name in mutable
                   if name in values and getattr(found, name) != values[name]}  # fmt: skip
        if changed:
            model._default_manager.filter(pk=found.pk).update(**changed)
            for name, value in changed.items():
                setattr(found, name, value)
            self.updated += 1
        else:
            self.unchanged += 1
        return found, False

    @property
    def result(self) -> ImportRun:
        return self.row


@contextmanager
def import_run(*, source: str, origin: str, channel: Any = None, by: Any = None) -> Iterator[Run]:
    """One import: the rows kept inside, the run's counts and errors saved at the end (also when
    the import stops on an error it could not get past: what was read is kept)."""
    row = ImportRun.objects.create(source=source, origin=origin[:500], channel=channel, by=by)
    run = Run(row=row)
    try:
        yield run
    finally:
        row.finished_at = timezone.now()
        row.rows_read = run.read + run.rejected
        row.rows_new = run.new
        row.rows_unchanged = run.unchanged + run.updated
        row.rows_rejected = run.rejected
        row.defects = run.defects
        row.errors = run.errors
        row.save()


# --- amounts -------------------------------------------------------------------------------------
def amount(value: Any, currency: str, where: str) -> Decimal:
    """A vendor's amount in ``currency``'s minor units, exactly as given (a float or text that is
    no number is a RowError; more decimals than the currency has too)."""
    try:
        exact = money.to_decimal(value)
    except InvalidInput as exc:
        raise RowError(where, f"{value!r} is not an amount ({exc})") from None
    try:
        places = money.minor_units(currency)
    except InvalidInput:
        raise RowError(where, f"{currency!r} is not a currency") from None
    if exact != exact.quantize(Decimal(1).scaleb(-places)):
        raise RowError(where, f"{value!r} has more decimals than {currency} has")
    return exact


def minor(value: Any, currency: str, where: str) -> Decimal:
    """An integer count of minor units (Stripe's 999 = 9.99 USD) as an amount."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise RowError(where, f"{value!r} is not a whole number of minor units")
    try:
        places = money.minor_units(currency)
    except InvalidInput:
        raise RowError(where, f"{currency!r} is not a currency") from None
    return Decimal(value).scaleb(-places)


def currency_code(value: Any, where: str) -> str:
    code = str(value or "").strip().upper()
    try:
        money.minor_units(code)
    except InvalidInput:
        raise RowError(where, f"{value!r} is not a currency") from None
    return code


# --- invariants ----------------------------------------------------------------------------------
def defect(code: Defect, message: str) -> dict[str, str]:
    return {"code": str(code), "message": message}


def net_defects(
    amount_: Decimal, fee: Decimal, net: Decimal, currency: str
) -> list[dict[str, str]]:
    """amount - fee = net, per transaction (fees are positive, taken from the amount)."""
    if amount_ - fee == net:
        return []
    return [defect(Defect.NET_MISMATCH,
                   f"amount {amount_} - fee {fee} = {amount_ - fee} {currency}, "
                   f"but the vendor says net {net}")]  # fmt: skip


def payout_check(payout: Payout) -> list[dict[str, str]]:
    """The payout's own invariants, from the transactions that name it: one currency, and their
    nets summing to its amount. Saved on the payout (replacing the earlier verdict)."""
    found: list[dict[str, str]] = [d for d in payout.defects or []
                                   if d.get("code") not in (Defect.PAYOUT_SUM_MISMATCH,
                                                            Defect.CURRENCY_MIXED)]  # fmt: skip
    txs = ProcessorTransaction.objects.filter(payout=payout).exclude(category="payout")
    currencies = sorted(set(txs.values_list("currency", flat=True)))
    if currencies and currencies != [payout.currency]:
        found.append(defect(Defect.CURRENCY_MIXED,
                            f"transactions in {', '.join(currencies)}; the payout is in "
                            f"{payout.currency}"))  # fmt: skip
    if txs.exists():
        total = txs.aggregate(total=Sum("net"))["total"] or Decimal(0)
        if total != payout.amount:
            shown = money.normalize(total, payout.currency)
            found.append(defect(Defect.PAYOUT_SUM_MISMATCH,
                                f"its {txs.count()} transactions sum to {shown} "
                                f"{payout.currency}; the payout is {payout.amount}"))  # fmt: skip
    if found != (payout.defects or []):
        Payout.objects.filter(pk=payout.pk).update(defects=found)
        payout.defects = found
    return found


def attach_transactions(source: Source | str, payout_ids: Iterable[str]) -> int:
    """Point transactions at the payouts they name (either may arrive first); then check each
    payout. Returns how many transactions were attached."""
    attached = 0
    for payout in Payout.objects.filter(source=source, external_id__in=list(payout_ids)):
        attached += ProcessorTransaction.objects.filter(
            source=source, payout_external_id=payout.external_id, payout__isnull=True
        ).update(payout=payout)
        payout_check(payout)
    return attached
