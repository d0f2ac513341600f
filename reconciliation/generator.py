"""A generated month for tests, the benchmark and the demo: one Shopify channel's orders (ours,
through ``order_create`` and the capture transition, some refunded through ``refund_issue``),
and the files the vendors would give for them, in their own formats, for the real importers:

- ``shopify_payouts.json``: Shopify Payments payouts (``{"payouts": [...]}``, the shape of
  ``samples/shopify/payouts_list.json``), one payout per day, each paying what was processed
  two days before;
- ``balance_transactions_payout_<id>.json`` per payout (``{"transactions": [...]}``, the shape
  of ``balance_transactions_payout_623721858.json``) and ``balance_transactions_pending.json``
  (transactions no payout has taken yet);
- ``erp_export.csv``: the ERP's invoices and credit notes (the columns ``importers/erp.py``
  reads), referenced by our correlation id;
- ``bank_statement.csv``: the bank's CSV export for a ``BankAccount`` whose column mapping the
  generator saves (``importers/bank.py``): each payout deposited the day after, and a few
  unrelated lines (rent, card fees).

Consistent: with ``plant=False`` (``--no-plant``) the month has no processor fees and no
discrepancy, and ``reconcile`` shows nothing but timing at the month's edges (the last days'
sales paid out next month, the last payouts deposited next month). With ``plant=True`` every
category of ``reconciliation.models.Category`` but ``unexplained`` is planted at known places
(``unexplained=True`` adds one: a payout the bank never received); the manifest
(``manifest.json``, also returned) lists per category the planted items with their comparison,
order (channel order id), payout id and amount, signed as the ``VarianceItem`` that explains
them. Two payouts deposited as one bank line (no payout named in its text) are listed under
``bank_sets``: matching proposes them as a set.

Deterministic for a (period, seed, orders, plant) and safe to run again: an order whose
channel order id exists is taken as it is, refunds are keyed, payment rows got-or-created, and
the files come out the same (the importers dedupe them).

The orders' after-commit work (the validation pipeline's doorbell, the hooks telling the channel
and the ERP of a refund) is dropped unless ``pipeline=True``: the generated orders stand for
orders that went through it long ago, and a month of 50,000 needs no 50,000 pipeline runs.
"""

from __future__ import annotations

import csv
import json
import random
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import structlog
from django.db import transaction

from orders.actors import Actor
from orders.models import Order, OrderPayment
from orders.refunds import refund_issue
from orders.selectors import PIPELINE_SKIPPED
from orders.services import LineInput, OrderInput, order_create, order_transition
from orders.transitions import order_event_record
from reconciliation.importers import ImportOptions, import_files
from reconciliation.models import BankAccount, Category, Comparison, ImportRun, Source
from reconciliation.variance import Period

log = structlog.get_logger(__name__)

CURRENCY = "USD"
FX_CURRENCY = "EUR"
FX_RATE = Decimal("1.0850")  # USD per EUR on the FX order's day
PAYOUT_LAG = 2  # days from processing to the payout
DEPOSIT_LAG = 1  # days from the payout to the bank
DISPUTE_FEE = Decimal("15.00")
GIFT = Decimal("10.00")
DUTIES = Decimal("7.50")
RESERVE_HOLD = Decimal("50.00")
RESERVE_RELEASE = Decimal("20.00")
DEFECT = Decimal("0.50")  # a payout this much above its transactions
ERP_SHORT = Decimal("5.00")
CENT = Decimal("0.01")
BANK_MAPPING = {"date": "Booking date", "value_date": "Value date", "amount": "Amount",
                "currency": "Currency", "text": "Details", "reference": "Reference",
                "entry_reference": "Entry reference"}  # fmt: skip
ACTOR = Actor.system("generator")


def q(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass
class Tx:
    id: int
    type: str
    amount: Decimal
    fee: Decimal
    at: datetime
    order: str | None = None  # the channel's order id
    source_type: str = "charge"

    @property
    def net(self) -> Decimal:
        return self.amount - self.fee


@dataclass
class Generated:
    """What ``generate_month`` returns: the manifest (also written as ``manifest.json``)."""

    out: Path
    manifest: dict[str, Any]
    channel: Any
    account: BankAccount
    period: Period
    files: dict[str, list[Path]] = field(default_factory=dict)


@contextmanager
def _after_commit_dropped(keep: bool) -> Iterator[None]:
    """One transaction whose on-commit callbacks are dropped (unless ``keep``)."""
    with transaction.atomic():
        pending = transaction.get_connection().run_on_commit
        already = len(pending)
        yield
        if not keep:
            del pending[already:]


def _fee(total: Decimal, plant: bool) -> Decimal:
    return q(total * Decimal("0.029") + Decimal("0.30")) if plant else Decimal(0)


def _at(day: date, rng: random.Random) -> datetime:
    return datetime.combine(day, time(rng.randint(0, 21), rng.randint(0, 59)), tzinfo=UTC)


def id_prefix(slug: str) -> int:
    """Vendor ids of one channel's generated months never meet another channel's."""
    return (zlib.crc32(slug.encode()) % 900 + 100) * 10**11


def channel_ensure(slug: str) -> Any:
    from channels.models import ChannelKind, SalesChannel

    channel, _ = SalesChannel.objects.get_or_create(
        slug=slug, defaults={"kind": ChannelKind.SHOPIFY, "name": f"Generated shop ({slug})",
                             "default_currency": CURRENCY},
    )  # fmt: skip
    return channel


def account_ensure(slug: str) -> BankAccount:
    account, _ = BankAccount.objects.get_or_create(
        name=f"{slug} operating", defaults={"currency": CURRENCY, "csv_mapping": BANK_MAPPING,
                                            "account_number": "GEN-0001"},
    )  # fmt: skip
    return account


def generate_month(*, period: str, orders: int, out: Path | str, seed: int = 1,
                   plant: bool = True, unexplained: bool = False, slug: str = "gen-shop",
                   pipeline: bool = False,
                   progress: Callable[[int], Any] | None = None) -> Generated:  # fmt: skip
    """Create the month's orders (``orders`` of them) and write its files to ``out``."""
    month = Period.parse(period)
    if orders < (20 if plant else 1):
        raise ValueError("a planted month needs at least 20 orders")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("balance_transactions_*.json"):
        old.unlink()
    rng = random.Random(f"{period}:{seed}")
    channel = channel_ensure(slug)
    account = account_ensure(slug)
    days = (month.end - month.start).days + 1
    after = month.end + timedelta(days=1)
    prefix = id_prefix(slug) + int(f"{month.start:%y%m}") * 10**7 + (seed % 100) * 10**5
    planted: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def plant_item(category: str, comparison: str, value: Decimal, what: str,
                   order: str | None = None, payout: int | None = None,
                   currency: str = CURRENCY) -> None:  # fmt: skip
        planted[category].append(
            {
                "comparison": str(comparison),
                "amount": str(value),
                "currency": currency,
                "order": order,
                "payout": str(payout) if payout else None,
                "what": what,
            }
        )

    # Plan the orders: day, lines, and the role a planted one plays (kept off the month's edges).
    roles = ["missing_in_erp", "duplicated_in_erp", "erp_timing", "rounding", "amount_mismatch",
             "gift_card", "shipping_extras", "refund_after_payout", "chargeback", "fx"]  # fmt: skip
    plan: list[dict[str, Any]] = []
    for i in range(orders):
        day = month.start + timedelta(days=rng.randrange(days))
        n_lines = rng.randint(1, 3)
        lines = [(f"GEN-{rng.randint(1, 40):03d}", rng.randint(1, 3),
                  Decimal(rng.randint(500, 12000)) / 100) for _ in range(n_lines)]  # fmt: skip
        plan.append(
            {
                "i": i,
                "day": day,
                "lines": lines,
                "role": "",
                "shipping": rng.choice([Decimal(0), Decimal("4.90"), Decimal("9.90")]),
            }
        )
    if plant:
        middle = [p for p in plan if 3 <= (p["day"] - month.start).days <= days - 8]
        if len(middle) < len(roles):
            middle = plan[: len(roles)]
            for p in middle:
                p["day"] = month.start + timedelta(days=5)
        for role, p in zip(roles, middle, strict=False):
            p["role"] = role
            if role == "rounding" and len(p["lines"]) < 2:
                p["lines"].append(("GEN-002", 1, Decimal("12.00")))
    for p in plan:
        if not p["role"] and rng.random() < 0.06 and (month.end - p["day"]).days >= 4:
            p["role"] = "refund"

    # Orders (ours) and what the processor and the ERP saw of them.
    txs: list[Tx] = []
    erp: list[dict[str, str]] = []
    tx_ids = iter(range(prefix + 1, prefix + 10_000_000))
    chunk = 500
    for start in range(0, len(plan), chunk):
        with _after_commit_dropped(pipeline):
            for p in plan[start : start + chunk]:
                _order(
                    p, channel, prefix, rng, txs, erp, tx_ids, plant, plant_item, month, pipeline
                )
        if progress is not None:
            progress(min(start + chunk, len(plan)))
    if plant:
        first_day = month.start + timedelta(days=7)
        txs.append(
            Tx(
                next(tx_ids),
                "reserve",
                -RESERVE_HOLD,
                Decimal(0),
                datetime.combine(first_day, time(6), tzinfo=UTC),
                source_type="reserve",
            )
        )
        txs.append(Tx(next(tx_ids), "reserve", RESERVE_RELEASE, Decimal(0),
                      datetime.combine(month.start + timedelta(days=19), time(6), tzinfo=UTC),
                      source_type="reserve"))  # fmt: skip
        plant_item(Category.RESERVES, Comparison.PROCESSOR_PAYOUTS, RESERVE_HOLD,
                   "reserve held on day 8")  # fmt: skip
        plant_item(Category.RESERVES, Comparison.PROCESSOR_PAYOUTS, -RESERVE_RELEASE,
                   "reserve released on day 20")  # fmt: skip
        fees = sum((t.fee for t in txs if t.at.date() <= month.end), Decimal(0))
        plant_item(Category.FEES, Comparison.PROCESSOR_PAYOUTS, fees,
                   "the processor's fees on the month's transactions")  # fmt: skip

    # Payouts: a transaction processed on day D is paid out on D + 2; one payout a day.
    by_day: dict[date, list[Tx]] = defaultdict(list)
    pending: list[Tx] = []
    for t in txs:
        if t.at.date() > month.end:
            pending.append(t)  # after the month: no payout yet
        else:
            by_day[t.at.date() + timedelta(days=PAYOUT_LAG)].append(t)
    payouts: list[dict[str, Any]] = []
    for paid_on in sorted(by_day):
        group = by_day[paid_on]
        net = sum((t.net for t in group), Decimal(0))
        payouts.append({"id": id_prefix(slug) + int(f"{paid_on:%Y%m%d}") * 100 + seed % 100,
                        "date": paid_on, "amount": net, "txs": group})  # fmt: skip
    in_month = [p for p in payouts if p["date"] in month]
    special: dict[str, dict[str, Any]] = {}
    if len(in_month) >= 12:
        third = len(in_month) // 3
        lost = next((p for p in in_month[1:6] if p["amount"] > 0), in_month[1])
        special = {"defect": in_month[len(in_month) // 2 + 1], "set_a": in_month[third],
                   "set_b": in_month[third + 1], "missing": lost}  # fmt: skip
    if plant and "defect" in special:
        p = special["defect"]
        p["amount"] += DEFECT
        plant_item(
            Category.VENDOR_DEFECT,
            Comparison.PROCESSOR_PAYOUTS,
            -DEFECT,
            f"payout {p['id']} is {DEFECT} more than its transactions",
            payout=p["id"],
        )
    for p in payouts:
        later = sorted({t.at.date() for t in p["txs"]})
        if p["date"] > month.end:
            value = sum((t.net for t in p["txs"]), Decimal(0))
            plant_item(Category.TIMING, Comparison.PROCESSOR_PAYOUTS, value,
                       f"sales of {', '.join(d.isoformat() for d in later)} paid out "
                       f"{p['date'].isoformat()}", payout=None)  # fmt: skip

    # The bank: each payout deposited the next day; two payouts in one line; noise.
    bank: list[dict[str, str]] = []
    missing = special.get("missing") if unexplained else None
    for p in payouts:
        if p is missing:
            plant_item(Category.UNEXPLAINED, Comparison.PAYOUTS_BANK, p["amount"],
                       f"payout {p['id']} never reached the bank", payout=p["id"])  # fmt: skip
            continue
        if p is special.get("set_b"):
            continue
        booked = p["date"] + timedelta(days=DEPOSIT_LAG)
        value = p["amount"]
        text = f"SHOPIFY PAYMENTS PAYOUT {p['id']}"
        if p is special.get("set_a"):
            value += special["set_b"]["amount"]
            booked = special["set_b"]["date"] + timedelta(days=DEPOSIT_LAG)
            text = "SHOPIFY PAYMENTS TRANSFER"
        bank.append({"Booking date": booked.isoformat(), "Value date": booked.isoformat(),
                     "Amount": str(value), "Currency": CURRENCY, "Details": text,
                     "Reference": "", "Entry reference": f"GEN{p['id']}"})  # fmt: skip
        if p["date"] in month and booked > month.end:
            plant_item(
                Category.TIMING,
                Comparison.PAYOUTS_BANK,
                p["amount"],
                f"payout {p['id']} deposited {booked.isoformat()}",
                payout=p["id"],
            )
    for n, day in enumerate((month.start + timedelta(days=2), month.start + timedelta(days=14))):
        bank.append({"Booking date": day.isoformat(), "Value date": day.isoformat(),
                     "Amount": str(-Decimal("1200.00") - n), "Currency": CURRENCY,
                     "Details": "RENT WAREHOUSE" if n == 0 else "CARD TERMINAL FEES",
                     "Reference": "", "Entry reference": f"GENX{prefix}{n}"})  # fmt: skip
    bank.sort(key=lambda r: (r["Booking date"], r["Entry reference"]))

    files = _write(out, payouts, pending, erp, bank, month, after)
    manifest: dict[str, Any] = {
        "period": month.label, "channel": channel.slug, "bank_account": account.name,
        "seed": seed, "orders": orders, "plant": plant, "currency": CURRENCY,
        "files": {str(source): [p.name for p in paths] for source, paths in files.items()},
        "planted": {k: v for k, v in sorted(planted.items())},
        "bank_sets": ([{"payouts": [str(special["set_a"]["id"]), str(special["set_b"]["id"])],
                        "amount": str(special["set_a"]["amount"] + special["set_b"]["amount"])}]
                      if "set_a" in special else []),
        "payouts": len(payouts), "transactions": len(txs), "erp_documents": len(erp),
        "bank_lines": len(bank),
    }  # fmt: skip
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str) + "\n")
    log.info("reconciliation.generated", period=month.label, orders=orders, plant=plant,
             payouts=len(payouts), transactions=len(txs))  # fmt: skip
    return Generated(out=out, manifest=manifest, channel=channel, account=account, period=month,
                     files=files)  # fmt: skip


def _order(p: dict[str, Any], channel: Any, prefix: int, rng: random.Random, txs: list[Tx],
           erp: list[dict[str, str]], tx_ids: Iterator[int], plant: bool,
           plant_item: Callable[..., None], month: Period,
           pipeline: bool) -> None:  # fmt: skip
    role = p["role"]
    external_id = str(prefix + p["i"] + 1)
    cur = FX_CURRENCY if role == "fx" else CURRENCY
    placed = _at(p["day"], rng)
    order = Order.objects.filter(channel=channel, external_id=external_id).first()
    if order is None:
        subtotal = sum((price * qty for _sku, qty, price in p["lines"]), Decimal(0))
        order = order_create(
            data=OrderInput(
                channel_id=channel.pk, external_id=external_id, order_number=f"#G{external_id}",
                currency=cur, placed_at=placed, shipping_total=p["shipping"],
                tax_total=q(subtotal * Decimal("0.08")), payment_method="shopify_payments",
                lines=[LineInput(sku=sku, quantity=qty, unit_price=price)
                       for sku, qty, price in p["lines"]],
                shipping_address={"country_code": "DE" if role == "fx" else "US"},
            ),
            actor=ACTOR,
        )  # fmt: skip
        order = order_transition(order_id=order.pk, transition="capture_payment", actor=ACTOR)
        if not pipeline:
            # History: the pipeline is not run for it, now or by the stuck-order sweeper.
            order_event_record(
                order_id=order.pk, action=PIPELINE_SKIPPED, actor=ACTOR,
                correlation_id=order.correlation_id,
                data={"reason": "a generated finance month: its orders stand for orders that "
                                "went through the pipeline long ago"},
            )  # fmt: skip
    total, ref = order.total, order.correlation_id
    at = order.placed_at
    charged = total
    if role == "gift_card":
        OrderPayment.objects.get_or_create(
            order=order, method="gift_card", defaults={"currency": cur, "captured": GIFT}
        )
        charged -= GIFT
        plant_item(Category.GIFT_CARDS, Comparison.SALES_PROCESSOR, GIFT,
                   f"{GIFT} paid with a gift card", order=external_id)  # fmt: skip
    if role == "shipping_extras":
        OrderPayment.objects.get_or_create(
            order=order, method="duties", defaults={"currency": cur, "captured": DUTIES}
        )
        charged -= DUTIES
        plant_item(Category.SHIPPING_EXTRAS, Comparison.SALES_PROCESSOR, DUTIES,
                   f"{DUTIES} of duties collected by the carrier", order=external_id)  # fmt: skip
    if role == "fx":
        usd = q(total * FX_RATE)
        txs.append(Tx(next(tx_ids), "charge", usd, _fee(usd, plant), at + timedelta(minutes=1),
                      order=external_id))  # fmt: skip
        plant_item(Category.FX, Comparison.SALES_PROCESSOR, total,
                   f"a {cur} order settled as {usd} {CURRENCY}", order=external_id,
                   currency=cur)  # fmt: skip
    else:
        txs.append(Tx(next(tx_ids), "charge", charged, _fee(charged, plant),
                      at + timedelta(minutes=1), order=external_id))  # fmt: skip

    def doc(number: str, kind: str, on: date, value: Decimal) -> None:
        erp.append({"Document Number": number, "Date": on.isoformat(), "Reference": ref,
                    "Amount": str(value), "Currency": cur, "Type": kind})  # fmt: skip

    invoice = f"INV-{external_id}"
    if role == "missing_in_erp":
        plant_item(Category.MISSING_IN_ERP, Comparison.SALES_ERP, total,
                   "no invoice in the ERP", order=external_id)  # fmt: skip
    elif role == "duplicated_in_erp":
        doc(invoice, "Invoice", at.date(), total)
        doc(f"{invoice}-B", "Invoice", at.date() + timedelta(days=1), total)
        plant_item(Category.DUPLICATED_IN_ERP, Comparison.SALES_ERP, -total,
                   "invoiced twice", order=external_id)  # fmt: skip
    elif role == "erp_timing":
        doc(invoice, "Invoice", month.end + timedelta(days=1), total)
        plant_item(Category.TIMING, Comparison.SALES_ERP, total,
                   "invoice dated the first day of next month", order=external_id)  # fmt: skip
    elif role == "rounding":
        doc(invoice, "Invoice", at.date(), total - CENT)
        plant_item(Category.ROUNDING, Comparison.SALES_ERP, CENT,
                   "the ERP rounded a line a cent down", order=external_id)  # fmt: skip
    elif role == "amount_mismatch":
        doc(invoice, "Invoice", at.date(), total - ERP_SHORT)
        plant_item(Category.AMOUNT_MISMATCH, Comparison.SALES_ERP, ERP_SHORT,
                   f"the ERP invoiced {ERP_SHORT} less", order=external_id)  # fmt: skip
    else:
        doc(invoice, "Invoice", at.date(), total)

    if role == "chargeback":
        txs.append(
            Tx(
                next(tx_ids),
                "dispute",
                -charged,
                DISPUTE_FEE if plant else Decimal(0),
                at + timedelta(days=5),
                order=external_id,
                source_type="dispute",
            )
        )
        plant_item(Category.CHARGEBACKS, Comparison.PROCESSOR_PAYOUTS, charged,
                   "a chargeback of the whole order", order=None)  # fmt: skip
    if role in ("refund", "refund_after_payout"):
        value = total if role == "refund_after_payout" else q(total * Decimal("0.5"))
        refund_issue(order_id=order.pk, actor=ACTOR, key=f"gen-{external_id}", amount=value,
                     reason="generated")  # fmt: skip
        when = (
            datetime.combine(month.end + timedelta(days=2), time(9), tzinfo=UTC)
            if role == "refund_after_payout"
            else at + timedelta(days=rng.randint(1, 3))
        )
        txs.append(Tx(next(tx_ids), "refund", -value, Decimal(0), when, order=external_id,
                      source_type="refund"))  # fmt: skip
        credit_on = at.date() + timedelta(days=1) if role == "refund_after_payout" else when.date()
        doc(f"CN-{external_id}", "Credit Memo", credit_on, value)
        if role == "refund_after_payout":
            plant_item(Category.REFUNDS_AFTER_PAYOUT, Comparison.SALES_PROCESSOR, -value,
                       "refunded by us in the month, by the processor next month",
                       order=external_id)  # fmt: skip


def _tx_json(t: Tx, payout_id: int | None) -> dict[str, Any]:
    return {
        "id": t.id, "type": t.type, "test": False, "payout_id": payout_id,
        "payout_status": "paid" if payout_id else "pending", "currency": CURRENCY,
        "amount": str(t.amount), "fee": str(t.fee), "net": str(t.net),
        "source_id": t.id + 500_000_000, "source_type": t.source_type,
        "source_order_id": int(t.order) if t.order else None,
        "source_order_transaction_id": t.id + 700_000_000 if t.order else None,
        "processed_at": t.at.isoformat(), "adjustment_order_transactions": [],
    }  # fmt: skip


def _write(out: Path, payouts: list[dict[str, Any]], pending: list[Tx],
           erp: list[dict[str, str]], bank: list[dict[str, str]], month: Period,
           after: date) -> dict[str, list[Path]]:  # fmt: skip
    shopify: list[Path] = []
    listed = []
    for p in payouts:
        gross = {k: Decimal(0) for k in ("charges", "refunds", "adjustments", "reserved_funds")}
        fee = dict.fromkeys(gross, Decimal(0))
        for t in p["txs"]:
            kind = {"charge": "charges", "refund": "refunds", "reserve": "reserved_funds"}.get(
                t.type, "adjustments")  # fmt: skip
            gross[kind] += t.amount
            fee[kind] += t.fee
        summary = {f"{k}_{w}_amount": str(v) for w, src in (("gross", gross), ("fee", fee))
                   for k, v in src.items()}  # fmt: skip
        summary |= {"retried_payouts_fee_amount": "0.00", "retried_payouts_gross_amount": "0.00"}
        status = "paid" if p["date"] <= after + timedelta(days=3) else "scheduled"
        listed.append({"id": p["id"], "status": status, "date": p["date"].isoformat(),
                       "currency": CURRENCY, "amount": str(p["amount"]),
                       "summary": dict(sorted(summary.items()))})  # fmt: skip
        path = out / f"balance_transactions_payout_{p['id']}.json"
        path.write_text(json.dumps({"transactions": [_tx_json(t, p["id"]) for t in p["txs"]]}))
        shopify.append(path)
    path = out / "balance_transactions_pending.json"
    path.write_text(json.dumps({"transactions": [_tx_json(t, None) for t in pending]}))
    shopify.append(path)
    payouts_path = out / "shopify_payouts.json"
    payouts_path.write_text(json.dumps({"payouts": listed[::-1]}))  # newest first, as Shopify
    erp_path = out / "erp_export.csv"
    with erp_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["Document Number", "Date", "Reference", "Amount",
                                               "Currency", "Type"])  # fmt: skip
        writer.writeheader()
        writer.writerows(erp)
    bank_path = out / "bank_statement.csv"
    with bank_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(BANK_MAPPING.values()))
        writer.writeheader()
        writer.writerows(bank)
    return {Source.SHOPIFY_PAYMENTS: [payouts_path, *shopify], Source.ERP_CSV: [erp_path],
            Source.BANK_CSV: [bank_path]}  # fmt: skip


def import_month(generated: Generated, *, by: Any = None,
                 progress: Callable[..., Any] | None = None) -> list[ImportRun]:  # fmt: skip
    """Every file of a generated month through its real importer."""
    extra: dict[str, Any] = {"progress": progress} if progress is not None else {}
    runs: list[ImportRun] = []
    for source, paths in generated.files.items():
        options = ImportOptions(source=source, channel=generated.channel, by=by,
                                account=generated.account if source == Source.BANK_CSV
                                else None, **extra)  # fmt: skip
        runs += import_files(paths, options=options)
    return runs


def load(out: Path | str) -> Generated:
    """A month generated earlier (its ``manifest.json`` read back), ready for ``import_month``."""
    out = Path(out)
    manifest = json.loads((out / "manifest.json").read_text())
    return Generated(
        out=out, manifest=manifest, channel=channel_ensure(manifest["channel"]),
        account=BankAccount.objects.get(name=manifest["bank_account"]),
        period=Period.parse(manifest["period"]),
        files={source: [out / name for name in names]
               for source, names in manifest["files"].items()},
    )  # fmt: skip
