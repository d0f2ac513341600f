"""Refunds as records: the arithmetic, recording one refund exactly once, and the payment state.

Arithmetic. A line's refund for some of its units is its unit price times the units, less the
units' share of the line's discount allocation, plus their share of its tax allocation. Shares
are cumulative: the first ``m`` units of a line carry ``floor(allocation * m / quantity)`` (in
minor units) and all of its units carry the whole allocation, so refunding units ``[a, a+k)`` is
``share(a+k) - share(a)``. Whatever the partition (one unit today, two next week), the parts sum
exactly to the line; every unit of every line plus the shipping is the order total, with no
residue cent anywhere.

Recording. ``refund_record`` locks the order row, finds a refund already recorded under the same
(order, source, external id) and returns it (a duplicated webhook, a replay, a double click),
else writes the refund with its lines and payment splits and adds its amount to the order's
``refunded_total`` and to each payment method's refunded sum. CHECK constraints keep
``refunded_total <= captured_total`` per order and ``refunded <= captured`` per payment method
(where the split is known); the row lock makes a second concurrent refund wait for the first and
see its sum, so two refunds that together exceed the captured money cannot both pass. The
payment state then follows the sums: ``partially_refunded`` or ``refunded``.

Where a channel computed the refund, its numbers are kept as they are (``channel_figures``, the
lines' amounts, the total it moved) and compared with ours for the same units; a difference opens
a ``refund_mismatch`` incident rather than being "fixed".

Higher apps act on a recorded refund (restock, send it to the channel, an ERP credit note, an
email) through ``on_refund_recorded``, called in the recording transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any

import structlog
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from config import correlation
from orders import money
from orders.actors import Actor
from orders.errors import InvalidInput, NotFound, PermissionRefused, TransitionRefused
from orders.incidents import incident_raise
from orders.models import (
    IncidentCategory,
    Order,
    OrderLine,
    OrderPayment,
    PaymentStatus,
    Refund,
    RefundLimit,
    RefundLine,
    RefundPayment,
    RefundSource,
    RefundStatus,
    RestockType,
)
from orders.transitions import Audit, order_event_record, row_lock, transition_run

log = structlog.get_logger(__name__)

PERM_ISSUE = "orders.issue_refund"
PERM_ISSUE_ANY = "orders.issue_any_refund"
# Refunds that count: a failed one moved no money and holds nothing back.
COUNTING = ~Q(status=RefundStatus.FAILED)
ORIGINAL_PAYMENT = "original payment"


class OverRefund(TransitionRefused):
    """More would go back than was captured (per order, or per payment method)."""

    code = "over_refund"


# --- arithmetic -------------------------------------------------------------------------------
def _exp(currency: str) -> Decimal:
    return Decimal(1).scaleb(-money.minor_units(currency))


def _share(allocation: Decimal, units: Decimal | int, quantity: Decimal | int,
           currency: str) -> Decimal:  # fmt: skip
    """What the first ``units`` of ``quantity`` units carry of ``allocation``: floored to minor
    units, the whole allocation at ``units == quantity``."""
    if units >= quantity:
        return allocation
    if units <= 0:
        return Decimal(0).quantize(_exp(currency))
    return (allocation * units / quantity).quantize(_exp(currency), rounding=ROUND_DOWN)


@dataclass(frozen=True)
class LineAmounts:
    goods: Decimal  # unit price x units, less the units' discount share
    tax: Decimal  # the units' tax share (inside ``goods`` when prices include tax)
    money: Decimal  # what the customer gets back for these units


def line_refund(line: OrderLine, *, units: int, already: int = 0,
                taxes_included: bool = False) -> LineAmounts:  # fmt: skip
    """The refund for ``units`` more units of ``line`` when ``already`` were refunded before."""
    if units < 0 or already < 0 or already + units > line.quantity:
        raise InvalidInput(
            f"Line {line.line_no} has {line.quantity} unit(s), {already} refunded already: "
            f"{units} more cannot be refunded",
            code="quantity_exceeded",
        )
    currency = line.currency
    q = line.quantity
    discount = _share(line.discount_allocation, already + units, q, currency) - _share(
        line.discount_allocation, already, q, currency
    )
    tax = _share(line.tax_allocation, already + units, q, currency) - _share(
        line.tax_allocation, already, q, currency
    )
    goods = (line.unit_price * units - discount).quantize(_exp(currency))
    tax = tax.quantize(_exp(currency))
    return LineAmounts(goods=goods, tax=tax, money=goods if taxes_included else goods + tax)


def refunded_units(order_id: int) -> dict[int, int]:
    """Units refunded so far per order line id (failed refunds do not count)."""
    rows = (
        RefundLine.objects.filter(refund__order_id=order_id)
        .filter(refund__status__in=_counting_statuses())
        .values("order_line_id")
        .annotate(units=Sum("quantity"))
    )
    return {row["order_line_id"]: int(row["units"] or 0) for row in rows}


def _counting_statuses() -> list[str]:
    return [s for s in RefundStatus.values if s != RefundStatus.FAILED]


def refunded_shipping(order_id: int) -> Decimal:
    total = Refund.objects.filter(order_id=order_id, status__in=_counting_statuses()).aggregate(
        s=Sum("shipping")
    )["s"]
    return Decimal(total or 0)


@dataclass(frozen=True)
class QuoteLine:
    order_line_id: int
    quantity: int
    amount: Decimal
    tax: Decimal
    restock_type: str = RestockType.NO_RESTOCK


@dataclass(frozen=True)
class Quote:
    """Our refund for some units of some lines, shipping and a restocking fee."""

    currency: str
    lines: list[QuoteLine]
    lines_amount: Decimal
    lines_tax: Decimal
    shipping: Decimal
    shipping_tax: Decimal
    restocking_fee: Decimal
    amount: Decimal
    refundable: Decimal  # captured and not refunded yet, before this refund

    def as_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "lines": [{"order_line_id": ln.order_line_id, "quantity": ln.quantity,
                       "amount": str(ln.amount), "tax": str(ln.tax)} for ln in self.lines],
            "lines_amount": str(self.lines_amount), "lines_tax": str(self.lines_tax),
            "shipping": str(self.shipping), "shipping_tax": str(self.shipping_tax),
            "restocking_fee": str(self.restocking_fee), "amount": str(self.amount),
        }  # fmt: skip


@dataclass(frozen=True)
class LineRequest:
    order_line_id: int
    quantity: int
    restock_type: str = RestockType.NO_RESTOCK


def refund_quote(
    *,
    order: Order,
    lines: Sequence[LineRequest],
    shipping: bool | Decimal = False,
    restocking_fee_percent: Decimal = Decimal(0),
) -> Quote:
    """Compute (write nothing) the refund of ``lines``; ``shipping`` True refunds what is left
    of the shipping (and its tax), a Decimal that much of it (tax in proportion). The restocking
    fee is a percent of the goods, rounded by the channel's rule."""
    currency = order.currency
    exp = _exp(currency)
    by_id = {ln.pk: ln for ln in order.lines.all()}
    done = refunded_units(order.pk)
    seen: dict[int, int] = {}
    out: list[QuoteLine] = []
    for req in lines:
        line = by_id.get(req.order_line_id)
        if line is None:
            raise InvalidInput(
                f"Order line {req.order_line_id} is not on order {order.pk}", code="unknown_line"
            )
        if req.quantity <= 0:
            raise InvalidInput("A refunded quantity must be at least 1", code="invalid_quantity")
        already = done.get(line.pk, 0) + seen.get(line.pk, 0)
        part = line_refund(line, units=req.quantity, already=already,
                           taxes_included=order.taxes_included)  # fmt: skip
        seen[line.pk] = seen.get(line.pk, 0) + req.quantity
        out.append(QuoteLine(order_line_id=line.pk, quantity=req.quantity, amount=part.goods,
                             tax=part.tax, restock_type=req.restock_type))  # fmt: skip
    ship, ship_tax = _shipping_part(order, shipping)
    goods = sum((ln.amount for ln in out), Decimal(0)).quantize(exp)
    tax = sum((ln.tax for ln in out), Decimal(0)).quantize(exp)
    fee = Decimal(0).quantize(exp)
    if restocking_fee_percent:
        fee = money.quantize(goods * money.to_decimal(restocking_fee_percent) / 100, currency,
                             rounding=order.channel.rounding or money.ROUND_HALF_UP)  # fmt: skip
    amount = goods + ship - fee
    if not order.taxes_included:
        amount += tax + ship_tax
    refundable = order.captured_total - order.refunded_total
    return Quote(
        currency=currency, lines=out, lines_amount=goods, lines_tax=tax, shipping=ship,
        shipping_tax=ship_tax, restocking_fee=fee, amount=max(amount, Decimal(0)).quantize(exp),
        refundable=refundable,
    )  # fmt: skip


def _shipping_part(order: Order, shipping: bool | Decimal) -> tuple[Decimal, Decimal]:
    exp = _exp(order.currency)
    zero = Decimal(0).quantize(exp)
    if shipping is False or not order.shipping_total:
        return zero, zero
    left = order.shipping_total - refunded_shipping(order.pk)
    if left <= 0:
        return zero, zero
    if shipping is True:
        portion = left
    else:
        portion = min(money.to_decimal(shipping), left)
    if portion <= 0:
        return zero, zero
    # The shipping tax goes back in proportion, cumulatively like a line's tax.
    before = order.shipping_total - left
    whole = order.shipping_total
    tax = _share(order.shipping_tax, before + portion, whole, order.currency) - _share(
        order.shipping_tax, before, whole, order.currency
    )
    return portion.quantize(exp), tax.quantize(exp)


# --- recording --------------------------------------------------------------------------------
@dataclass(frozen=True)
class RefundLineInput:
    order_line_id: int
    quantity: int
    amount: Decimal | None = None  # the channel's figure for the goods; None: ours
    tax: Decimal | None = None
    restock_type: str = RestockType.NO_RESTOCK
    channel_restock_type: str = ""
    restock_warehouse: str = ""  # the channel's location, mapped to our warehouse code


@dataclass(frozen=True)
class PaymentInput:
    method: str
    amount: Decimal
    external_id: str = ""


@dataclass(frozen=True)
class RefundInput:
    source: str
    external_id: str
    lines: Sequence[RefundLineInput] = ()
    shipping: Decimal = Decimal(0)
    shipping_tax: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    restocking_fee: Decimal = Decimal(0)
    adjustment: Decimal = Decimal(0)
    payments: Sequence[PaymentInput] = ()  # the channel's split; empty: ours decides
    total: Decimal | None = None  # the money the channel moved; None: ours computed
    reason: str = ""
    note: str = ""
    channel_figures: Mapping[str, Any] = field(default_factory=dict)
    processed_at: datetime | None = None
    status: str = RefundStatus.SUCCEEDED
    created_by: Any = None


@dataclass(frozen=True)
class RefundResult:
    refund: Refund
    created: bool


Hook = Callable[[int], None]
_ON_RECORDED: list[Hook] = []
_ON_STATUS: list[Hook] = []


def on_refund_recorded(hook: Hook) -> None:
    """Call ``hook(refund_id)`` in the transaction that recorded a new refund."""
    if hook not in _ON_RECORDED:
        _ON_RECORDED.append(hook)


def on_refund_status(hook: Hook) -> None:
    """Call ``hook(refund_id)`` in the transaction that moved a refund's status."""
    if hook not in _ON_STATUS:
        _ON_STATUS.append(hook)


def marker(reference: str) -> str:
    """What we write into the note of a refund we send to a channel, so that the channel's own
    webhook about it finds our row instead of recording the money twice."""
    return f"[{reference}]"


def _new_reference() -> str:
    return f"RF-{secrets.token_hex(4).upper()}"


def _twin_of_ours(order: Order, data: RefundInput) -> Refund | None:
    """A channel's refund that is one we sent it: by the id it gave us, or by our marker in
    its note (its webhook may come before our call's answer)."""
    if data.source != RefundSource.CHANNEL:
        return None
    ours = Refund.objects.filter(order=order).exclude(source=RefundSource.CHANNEL)
    found = ours.filter(channel_refund_id=data.external_id).first()
    if found is not None:
        return found
    note = f"{data.note} {data.reason}"
    for refund in ours.only("id", "reference"):
        if marker(refund.reference) in note:
            return refund
    return None


@transaction.atomic
def refund_record(*, order_id: int, data: RefundInput, actor: Actor) -> RefundResult:
    """Record one refund exactly once (see the module docstring)."""
    if data.source not in RefundSource.values:
        raise InvalidInput(f"Unknown refund source {data.source!r}", code="invalid_source")
    external_id = str(data.external_id or "").strip()[:100]
    if not external_id:
        raise InvalidInput("A refund needs an external id (its idempotency key)", code="invalid")
    order = row_lock(Order.objects.select_related("channel"), order_id, of=("self",))
    existing = Refund.objects.filter(order=order, source=data.source, external_id=external_id)
    found = existing.first() or _twin_of_ours(order, data)
    if found is not None:
        if data.source == RefundSource.CHANNEL and found.source != RefundSource.CHANNEL \
                and not found.channel_refund_id:  # fmt: skip
            Refund.objects.filter(pk=found.pk).update(channel_refund_id=external_id)
        return RefundResult(refund=found, created=False)

    currency = order.currency
    exp = _exp(currency)
    q = lambda v: money.to_decimal(v).quantize(exp)  # noqa: E731
    by_id = {ln.pk: ln for ln in order.lines.all()}
    done = refunded_units(order.pk)
    seen: dict[int, int] = {}
    lines: list[tuple[RefundLineInput, OrderLine, LineAmounts]] = []
    differences: list[dict[str, Any]] = []
    for item in data.lines:
        line = by_id.get(item.order_line_id)
        if line is None:
            raise InvalidInput(
                f"Order line {item.order_line_id} is not on order {order.pk}", code="unknown_line"
            )
        if item.quantity <= 0:
            raise InvalidInput("A refunded quantity must be at least 1", code="invalid_quantity")
        already = done.get(line.pk, 0) + seen.get(line.pk, 0)
        seen[line.pk] = seen.get(line.pk, 0) + item.quantity
        if already + item.quantity > line.quantity:
            if data.source != RefundSource.CHANNEL:
                raise InvalidInput(
                    f"Line {line.line_no} ({line.sku or line.channel_sku}) has {line.quantity} "
                    f"unit(s), {already} refunded already: {item.quantity} more cannot be "
                    "refunded", code="quantity_exceeded",
                )  # fmt: skip
            differences.append({"order_line_id": line.pk, "what": "quantity",
                                "channel": item.quantity,
                                "ours": max(line.quantity - already, 0)})  # fmt: skip
            ours = line_refund(line, units=max(min(item.quantity, line.quantity - already), 0),
                               already=min(already, line.quantity),
                               taxes_included=order.taxes_included)  # fmt: skip
        else:
            ours = line_refund(line, units=item.quantity, already=already,
                               taxes_included=order.taxes_included)  # fmt: skip
        if item.amount is not None and q(item.amount) != ours.goods:
            differences.append({"order_line_id": line.pk, "what": "amount",
                                "channel": str(q(item.amount)),
                                "ours": str(ours.goods)})  # fmt: skip
        if item.tax is not None and q(item.tax) != ours.tax:
            differences.append({"order_line_id": line.pk, "what": "tax",
                                "channel": str(q(item.tax)), "ours": str(ours.tax)})  # fmt: skip
        lines.append((item, line, ours))

    def goods(item: RefundLineInput, ours: LineAmounts) -> Decimal:
        return q(item.amount) if item.amount is not None else ours.goods

    def tax(item: RefundLineInput, ours: LineAmounts) -> Decimal:
        return q(item.tax) if item.tax is not None else ours.tax

    lines_amount = sum((goods(i, o) for i, _ln, o in lines), Decimal(0))
    lines_tax = sum((tax(i, o) for i, _ln, o in lines), Decimal(0))
    shipping, shipping_tax = q(data.shipping), q(data.shipping_tax)
    fees, fee, adjustment = q(data.fees), q(data.restocking_fee), q(data.adjustment)
    parts = lines_amount + shipping + fees - fee + adjustment
    if not order.taxes_included:
        parts += lines_tax + shipping_tax
    payments_sum = sum((q(p.amount) for p in data.payments), Decimal(0))
    if data.total is not None:
        amount = q(data.total)
    elif data.payments:
        amount = payments_sum
    else:
        amount = parts
    if amount < 0:
        raise InvalidInput(f"A refund cannot take money ({amount} {currency})", code="invalid")
    # A channel's refund with no lines nor shipping (a refunded amount only) has nothing of
    # ours to compare with; one that names lines must add up to the money it moved.
    itemized = bool(data.lines) or bool(shipping) or bool(fees)
    if data.source == RefundSource.CHANNEL and itemized and amount != parts:
        differences.append({"what": "total", "channel": str(amount), "ours": str(parts)})
    if data.payments and payments_sum != amount:
        raise InvalidInput(
            f"The refund's payments sum to {payments_sum} {currency}, not its {amount}",
            code="payments_mismatch",
        )

    refundable = order.captured_total - order.refunded_total
    if amount > refundable:
        raise OverRefund(
            f"Refunding {amount} {currency} would exceed what was captured: "
            f"{refundable} {currency} of {order.captured_total} is left to refund"
        )

    refund = _create(order, data, external_id, amount=amount, lines_amount=lines_amount,
                     lines_tax=lines_tax, shipping=shipping, shipping_tax=shipping_tax, fees=fees,
                     restocking_fee=fee, adjustment=adjustment, lines=lines,
                     differences=differences, goods=goods, tax=tax)  # fmt: skip
    _apply_payments(order, refund, data.payments or _our_split(order, amount))
    Order.objects.filter(pk=order.pk).update(refunded_total=F("refunded_total") + amount)
    _follow_payment_state(order, refund, actor)
    order_event_record(
        order_id=order.pk, action="refund_recorded", actor=actor,
        correlation_id=refund.correlation_id,
        data={"refund_id": refund.pk, "reference": refund.reference, "source": refund.source,
              "external_id": external_id, "amount": str(amount), "currency": currency,
              "status": refund.status,
              "payments": [{"method": p.method, "amount": str(p.amount)}
                           for p in refund.payments.all()],
              "lines": [{"order_line_id": ln.pk, "quantity": i.quantity} for i, ln, _o in lines]},
    )  # fmt: skip
    if differences:
        incident_raise(
            category=IncidentCategory.REFUND_MISMATCH, order_id=order.pk, severity="medium",
            summary=f"{order.channel.slug} refund {external_id}: the channel's figures differ "
            f"from ours ({len(differences)} difference(s))",
            details={"refund_id": refund.pk, "differences": differences[:20]},
            key=f"refund:{external_id}",
        )  # fmt: skip
    log.info("refund.recorded", order_id=order.pk, refund_id=refund.pk, source=str(refund.source),
             amount=str(amount), currency=currency)  # fmt: skip
    for hook in _ON_RECORDED:
        hook(refund.pk)
    return RefundResult(refund=refund, created=True)


def _create(order: Order, data: RefundInput, external_id: str, *, amount: Decimal,
            lines: list[tuple[RefundLineInput, OrderLine, LineAmounts]],
            differences: list[dict[str, Any]], goods: Callable[..., Decimal],
            tax: Callable[..., Decimal], **amounts: Decimal) -> Refund:  # fmt: skip
    computed = {
        "lines": [{"order_line_id": ln.pk, "quantity": i.quantity, "amount": str(o.goods),
                   "tax": str(o.tax)} for i, ln, o in lines],
        "differences": differences,
    }  # fmt: skip
    for _attempt in range(3):
        try:
            with transaction.atomic():
                refund = Refund.objects.create(
                    order=order, source=data.source, external_id=external_id,
                    reference=_new_reference(), currency=order.currency,
                    reason=data.reason[:64], note=data.note[:500], amount=amount,
                    computed=computed, channel_figures=dict(data.channel_figures or {}),
                    status=data.status, correlation_id=correlation.get() or order.correlation_id,
                    created_by=data.created_by, processed_at=data.processed_at or timezone.now(),
                    **amounts,
                )  # fmt: skip
                break
        except IntegrityError:
            if Refund.objects.filter(order=order, source=data.source,
                                     external_id=external_id).exists():  # fmt: skip
                raise  # impossible under the row lock; let the caller see it
            continue  # a reference collision: draw again
    else:
        raise TransitionRefused("Could not number the refund; try again", code="conflict")
    RefundLine.objects.bulk_create(
        RefundLine(
            refund=refund, order_line=ln, currency=order.currency, quantity=i.quantity,
            amount=goods(i, o), tax=tax(i, o),
            restock_type=i.restock_type or RestockType.NO_RESTOCK,
            channel_restock_type=i.channel_restock_type[:32],
            restock_warehouse=i.restock_warehouse[:32],
        )
        for i, ln, o in lines
    )  # fmt: skip
    return refund


def _our_split(order: Order, amount: Decimal) -> list[PaymentInput]:
    """How our own refund goes back: to the methods that took the money, in proportion to what
    each still holds (where the split is known); else all to the order's payment method."""
    if amount <= 0:
        return []
    known = [p for p in order.payments.all() if p.captured is not None]
    left = [(p, p.captured - p.refunded) for p in known if p.captured is not None]
    left = [(p, rest) for p, rest in left if rest > 0]
    if not left:
        return [PaymentInput(method=order.payment_method or ORIGINAL_PAYMENT, amount=amount)]
    parts = money.allocate(amount, [rest for _p, rest in left], order.currency)
    pairs = zip(left, parts, strict=True)
    return [PaymentInput(method=p.method, amount=part) for (p, _r), part in pairs if part]


def _apply_payments(order: Order, refund: Refund, payments: Sequence[PaymentInput]) -> None:
    exp = _exp(order.currency)
    for p in payments:
        amount = money.to_decimal(p.amount).quantize(exp)
        method = (p.method or ORIGINAL_PAYMENT)[:64]
        RefundPayment.objects.create(refund=refund, method=method, currency=order.currency,
                                     amount=amount,
                                     external_id=str(p.external_id)[:100])  # fmt: skip
        row, _ = OrderPayment.objects.get_or_create(
            order=order, method=method, defaults={"currency": order.currency}
        )
        try:
            with transaction.atomic():
                OrderPayment.objects.filter(pk=row.pk).update(refunded=F("refunded") + amount)
        except IntegrityError:
            raise OverRefund(
                f"Refunding {amount} {order.currency} to {method} would exceed what it captured"
            ) from None


def _follow_payment_state(order: Order, refund: Refund, actor: Actor) -> None:
    if refund.amount <= 0:
        return
    order.refresh_from_db(fields=["refunded_total", "captured_total", "payment_status"])
    full = order.refunded_total >= order.captured_total
    name = "refund" if full else "refund_partially"
    if order.payment_status == PaymentStatus.REFUNDED and full:
        return
    transition_run(
        order, name, actor=actor, checked=False,
        audit=lambda moved, was: Audit(
            order_id=moved.pk, action=name, field="payment_status", from_state=was,
            to_state=str(moved.payment_status), correlation_id=refund.correlation_id,
            data={"refund_id": refund.pk, "amount": str(refund.amount),
                  "refunded_total": str(moved.refunded_total),
                  "captured_total": str(moved.captured_total)},
        ),
    )  # fmt: skip


# --- status ------------------------------------------------------------------------------------
@transaction.atomic
def refund_transition(*, refund_id: int, transition: str, actor: Actor,
                      **kwargs: Any) -> Refund:  # fmt: skip
    """Move a refund's status (the channel confirmed it, failed it, a person refunded it by
    hand) and audit it on the order's timeline."""
    if transition not in ("succeed", "hand_over", "confirm_manual", "fail"):
        raise InvalidInput(f"Unknown refund transition {transition!r}", code="unknown_transition")
    refund = row_lock(Refund.objects.all(), refund_id)
    transition_run(
        refund, transition, actor=actor, kwargs=kwargs,
        audit=lambda moved, was: Audit(
            order_id=moved.order_id, action=f"refund_{transition}", field="refund",
            from_state=was, to_state=str(moved.status), correlation_id=moved.correlation_id,
            data={"refund_id": moved.pk, "reference": moved.reference,
                  **({"reason": moved.failure_reason} if moved.failure_reason else {})},
        ),
    )  # fmt: skip
    for hook in _ON_STATUS:
        hook(refund.pk)
    return refund


# --- a person's refund -------------------------------------------------------------------------
def refund_limit_for(user: Any, currency: str) -> Decimal | None:
    """The largest refund ``user`` may issue in ``currency``: None for no limit (finance, a
    superuser), ``0`` for a user who may not refund at all."""
    if user is None or getattr(user, "is_superuser", False) or user.has_perm(PERM_ISSUE_ANY):
        return None
    if not user.has_perm(PERM_ISSUE):
        return Decimal(0)
    limits = RefundLimit.objects.filter(group__user=user, currency=currency.upper())
    best = limits.order_by("-max_amount").values_list("max_amount", flat=True).first()
    return Decimal(best) if best is not None else Decimal(0)


def refund_authorize(*, actor: Actor, amount: Decimal, currency: str) -> None:
    """Refuse a person's refund above their role's limit (the system's own are not limited)."""
    if actor.user is None:
        return
    limit = refund_limit_for(actor.user, currency)
    if limit is None:
        return
    if limit <= 0:
        raise PermissionRefused("You do not have permission to issue refunds (orders.issue_refund)")
    if amount > limit:
        raise PermissionRefused(
            f"A refund of {amount} {currency} is above your limit of "
            f"{money.normalize(limit, currency)} {currency}: finance must issue it",
            code="refund_limit_exceeded",
        )  # fmt: skip


def refund_issue(
    *,
    order_id: int,
    actor: Actor,
    key: str,
    lines: Sequence[LineRequest] = (),
    shipping: bool | Decimal = False,
    amount: Decimal | None = None,
    reason: str = "",
    note: str = "",
    source: str = RefundSource.PERSON,
    restocking_fee_percent: Decimal = Decimal(0),
) -> RefundResult:
    """Issue our own refund (a person's, or an RMA's): lines by quantity (computed exactly),
    shipping, or a plain ``amount`` (a goodwill refund). ``key`` makes it once: the same key
    twice (a double click) finds the first refund. It is sent to the channel, the ERP and the
    customer by the hooks (``fulfillment.refunds_out``)."""
    if not lines and amount is None and shipping is False:
        raise InvalidInput("Say what to refund: lines, shipping or an amount", code="invalid")
    try:
        order = Order.objects.select_related("channel").get(pk=order_id)
    except Order.DoesNotExist:
        raise NotFound(f"Order {order_id} does not exist") from None
    existing = Refund.objects.filter(order=order, source=source, external_id=key[:100]).first()
    if existing is not None:
        return RefundResult(refund=existing, created=False)
    quote = refund_quote(order=order, lines=lines, shipping=shipping,
                         restocking_fee_percent=restocking_fee_percent)  # fmt: skip
    total = quote.amount
    if amount is not None:
        total = money.to_decimal(amount)
        if total != total.quantize(_exp(order.currency)) or total <= 0:
            raise InvalidInput(
                f"A refund amount must be positive with at most "
                f"{money.minor_units(order.currency)} decimals for {order.currency}",
                code="invalid_amount",
            )
        if lines and total > quote.amount:
            raise InvalidInput(
                f"{total} {order.currency} is more than the lines come to ({quote.amount})",
                code="invalid_amount",
            )
    refund_authorize(actor=actor, amount=total, currency=order.currency)
    return refund_record(
        order_id=order.pk, actor=actor,
        data=RefundInput(
            source=source, external_id=key,
            lines=[RefundLineInput(order_line_id=ln.order_line_id, quantity=ln.quantity,
                                   amount=ln.amount, tax=ln.tax, restock_type=ln.restock_type)
                   for ln in quote.lines],
            shipping=quote.shipping, shipping_tax=quote.shipping_tax,
            restocking_fee=quote.restocking_fee, total=total if amount is not None else None,
            adjustment=Decimal(0), reason=reason, note=note, status=RefundStatus.PENDING,
            created_by=actor.user,
        ),
    )  # fmt: skip
