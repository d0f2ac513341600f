"""Write operations on orders and incidents. Each runs in one transaction, locks the row first,
transitions, writes the audit event, and enqueues follow-up work only after commit."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog
from django.db import transaction

from config import correlation
from config.tasks import enqueue_on_commit
from orders import hooks, money
from orders.actors import Actor
from orders.errors import InvalidInput, PermissionRefused, StaleState, TransitionRefused

# Opening incidents lives in orders.incidents (refunds open them too); kept importable here.
from orders.incidents import incident_fingerprint as incident_fingerprint
from orders.incidents import incident_raise as incident_raise
from orders.models import (
    Customer,
    Incident,
    IncidentStatus,
    Order,
    OrderLine,
    OrderStatus,
    customer_may_use_net_terms,
    has_lines,
    payment_secured,
    payment_settled,
)
from orders.personal_data import sees_contact_details
from orders.transitions import (
    CONDITION_MESSAGES,
    Audit,
    atomic_audited,
    fsm_fields,
    order_event_record,
    row_lock,
    transition_apply,
    transition_check,
    transition_permission_check,
    transition_run,
    transitions_of,
)

log = structlog.get_logger(__name__)

# What a refused condition means, in words a person can act on.
CONDITION_MESSAGES.update({
    has_lines: "the order has no lines",
    payment_secured: "the payment must first be authorized, paid or on approved net terms",
    payment_settled: "the payment is not settled yet",
    customer_may_use_net_terms: "the customer is not a business account approved for net terms",
})  # fmt: skip

ORDER_TRANSITIONS = transitions_of(Order)


# --- transitions ------------------------------------------------------------------------------
def order_transition(
    *,
    order_id: int,
    transition: str,
    actor: Actor,
    expected_status: str | None = None,
    reason: str = "",
    amount: Decimal | str | None = None,
    data: Mapping[str, Any] | None = None,
    locked: Order | None = None,
    savepoint: bool = True,
) -> Order:
    """Move an order (status or payment) by one named transition and audit it, in a
    transaction of its own or, inside the caller's, in a savepoint (so a caller that catches a
    refusal carries on with nothing of the move written). ``savepoint=False``: the caller lets
    any error end its whole unit of work (its own transaction or savepoint rolls back), so the
    two statements of a savepoint would buy nothing.

    ``expected_status`` is the state the caller saw (of the field the transition moves): if the
    order has moved on since, the call is refused as stale rather than applied to a state the
    caller never looked at.

    ``locked``: the order's row as the caller's transaction already holds it (locked with
    ``row_lock``, or created in it, and remembered: ``FSMRowMixin.row_remember``), used instead
    of locking and reading it again; it is moved in place. Its save writes only what changed,
    and a state the row no longer has makes the save a ``StaleState``.
    """
    with atomic_audited(savepoint=savepoint):
        return _order_transition(
            order_id=order_id, transition=transition, actor=actor,
            expected_status=expected_status, reason=reason, amount=amount, data=data,
            locked=locked,
        )  # fmt: skip


def _order_transition(
    *,
    order_id: int,
    transition: str,
    actor: Actor,
    expected_status: str | None,
    reason: str,
    amount: Decimal | str | None,
    data: Mapping[str, Any] | None,
    locked: Order | None,
) -> Order:
    field_name = ORDER_TRANSITIONS.get(transition)
    if field_name is None:
        raise InvalidInput(f"Unknown order transition {transition!r}", code="unknown_transition")
    if transition in REFUND_TRANSITIONS:
        return _refund_by_transition(order_id=order_id, transition=transition, actor=actor,
                                     expected_status=expected_status, amount=amount,
                                     reason=reason)  # fmt: skip
    if locked is not None:
        if locked.pk != order_id or not locked.row_remembered():
            raise RuntimeError("order_transition(locked=) takes the remembered row of order_id")
        order = locked
    else:
        # Without the customer: only grant_net_terms' condition reads it (lazily); a join here
        # cost every transition about as much again as the row's own read (SQL compile).
        # FOR NO KEY UPDATE (what an UPDATE of the row takes anyway): it serializes every
        # writer of the order as FOR UPDATE does, but lets other transactions insert rows that
        # point at it (events, outbox actions, tracking) instead of waiting on their foreign
        # key's check; the hot order locks of allocation, orchestration and shipping do too.
        order = row_lock(Order.objects.all(), order_id, of=("self",), no_key=True)
    # A role that may not make this move is refused before its state is looked at (403 whatever
    # the state, stale or not), so the answer never tells it the state.
    transition_permission_check(order, transition, actor=actor)
    before = getattr(order, field_name)
    if expected_status is not None and expected_status != before:
        raise StaleState(
            f"Order {order_id} is now '{before}', not '{expected_status}': reload and try again"
        )
    # Refused first: a move that is not allowed says so before its arguments are looked at.
    transition_check(order, transition, actor=actor)

    kwargs: dict[str, Any] = {}
    if transition in ("hold", "cancel"):
        if transition == "hold" and not reason.strip():
            raise InvalidInput("A hold needs a reason", code="reason_required")
        kwargs["reason"] = reason.strip()
    event_data = dict(data or {})
    if reason:
        event_data["reason"] = reason
    if "amount" in kwargs:
        event_data["amount"] = str(kwargs["amount"])
    transition_run(
        order, transition, actor=actor, kwargs=kwargs, checked=True,
        audit=lambda moved, was: Audit(
            order_id=moved.pk, action=transition, field=field_name, from_state=was,
            to_state=str(getattr(moved, field_name)), data=event_data,
            correlation_id=correlation.get() or moved.correlation_id,
        ),
    )  # fmt: skip
    log.info(
        "order.transition",
        order_id=order.pk,
        transition=transition,
        from_state=str(before),
        to_state=str(getattr(order, field_name)),
        actor_kind=str(actor.kind),
    )
    hooks.fire(transition, order.pk, order=order)
    if transition == "release_hold":
        enqueue_on_commit("orders.order_validate", order_id=order.pk)
    return order


REFUND_TRANSITIONS = ("refund", "refund_partially")


def _refund_by_transition(
    *, order_id: int, transition: str, actor: Actor, expected_status: str | None,
    amount: Decimal | str | None, reason: str,
) -> Order:  # fmt: skip
    """A person's "refund" or "refund partially" on the order: a refund record (source person)
    of the rest, or of ``amount``; the payment state follows from the refunds' sum."""
    from orders import refunds

    order = row_lock(Order.objects.select_related("customer"), order_id, of=("self",))
    transition_permission_check(order, transition, actor=actor)
    if expected_status is not None and expected_status != order.payment_status:
        raise StaleState(
            f"Order {order_id} is now '{order.payment_status}', not '{expected_status}': "
            "reload and try again"
        )
    transition_check(order, transition, actor=actor)
    remaining = order.captured_total - order.refunded_total
    value = remaining if transition == "refund" else _refund_amount(order, amount, remaining)
    refunds.refund_issue(
        order_id=order.pk, actor=actor, amount=value, reason=reason[:64], note=reason,
        key=f"{transition}:{order.refunded_total}:{value}",
    )  # fmt: skip
    order.refresh_from_db()
    hooks.fire(transition, order.pk, order=order)
    return order


def _refund_amount(order: Order, amount: Decimal | str | None, remaining: Decimal) -> Decimal:
    if amount is None:
        raise InvalidInput("A partial refund needs an amount", code="amount_required")
    value = money.to_decimal(amount)
    quantized = value.quantize(Decimal(1).scaleb(-money.minor_units(order.currency)))
    if quantized != value or value <= 0:
        raise InvalidInput(
            f"Refund amount must be positive with at most {money.minor_units(order.currency)} "
            f"decimals for {order.currency}",
            code="invalid_amount",
        )
    if value >= remaining:
        raise InvalidInput(
            f"A partial refund must be less than the {remaining} {order.currency} still refundable;"
            " use a full refund instead",
            code="invalid_amount",
        )
    return value


def order_available_transitions(*, order: Order, user: Any) -> list[dict[str, str]]:
    """The transitions this user may apply now (state, conditions and permissions all met)."""
    result = []
    for fsm_field in fsm_fields(Order):
        getter = getattr(order, f"get_available_user_{fsm_field.name}_transitions")
        for t in getter(user):
            result.append({"name": t.name, "field": fsm_field.name, "target": str(t.target)})
    return result


# --- creating orders ---------------------------------------------------------------------------
@dataclass
class LineInput:
    sku: str
    quantity: int
    unit_price: Decimal
    title: str = ""
    external_line_id: str = ""
    discount: Decimal | None = None  # line-level; None: share of the order-level discount
    tax: Decimal | None = None
    channel_sku: str = ""
    variant_ref: str = ""
    tax_lines: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class OrderInput:
    channel_id: int
    external_id: str
    currency: str
    lines: list[LineInput]
    placed_at: datetime
    customer_id: int | None = None
    discount_total: Decimal = Decimal("0")
    shipping_total: Decimal = Decimal("0")
    tax_total: Decimal = Decimal("0")
    shipping_tax: Decimal = Decimal("0")
    total: Decimal | None = None  # as the channel states it; None: computed
    shipping_address: dict[str, Any] = field(default_factory=dict)
    billing_address: dict[str, Any] = field(default_factory=dict)
    payment_method: str = ""
    rounding: str = money.ROUND_HALF_UP
    correlation_id: str = ""
    subtotal: Decimal | None = None  # as the channel states it; None: computed from the lines
    taxes_included: bool = False
    order_number: str = ""
    tax_lines: list[dict[str, Any]] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    source_updated_at: datetime | None = None


def _allocations(
    amount: Decimal, given: list[Decimal | None], weights: list[Decimal], cur: str, rounding: str
) -> list[Decimal]:
    """Line shares of an order-level amount: the lines' own where given, else allocated."""
    if all(g is not None for g in given):
        return [money.quantize(g, cur, rounding=rounding) for g in given]  # type: ignore[arg-type]
    return money.allocate(amount, weights, cur)


@transaction.atomic
def order_create(*, data: OrderInput, actor: Actor) -> Order:
    """Create an order with its lines (amounts quantized, discount and tax allocated to lines),
    audit it, and start the validation pipeline after commit."""
    cur = money.validate_currency(data.currency)
    if not data.lines:
        raise InvalidInput("An order needs at least one line", code="no_lines")

    def q(value: Decimal | str | int) -> Decimal:
        return money.quantize(value, cur, rounding=data.rounding)

    unit_prices = [q(line.unit_price) for line in data.lines]
    gross = [p * line.quantity for p, line in zip(unit_prices, data.lines, strict=True)]
    subtotal = q(data.subtotal) if data.subtotal is not None else sum(gross, Decimal(0))
    discount_total, shipping_total, tax_total = (
        q(data.discount_total), q(data.shipping_total), q(data.tax_total),
    )  # fmt: skip
    discounts = _allocations(
        discount_total, [line.discount for line in data.lines], gross, cur, data.rounding
    )
    taxable = [g - d for g, d in zip(gross, discounts, strict=True)]
    shipping_tax = q(data.shipping_tax)
    taxes = _allocations(
        tax_total - shipping_tax, [line.tax for line in data.lines], taxable, cur, data.rounding
    )
    computed = subtotal - discount_total + shipping_total
    if not data.taxes_included:
        computed += tax_total
    total = q(data.total) if data.total is not None else computed

    cid = data.correlation_id or correlation.get() or correlation.new()
    order = Order.objects.create(
        channel_id=data.channel_id,
        external_id=data.external_id,
        order_number=data.order_number,
        customer_id=data.customer_id,
        currency=cur,
        taxes_included=data.taxes_included,
        tax_lines=data.tax_lines,
        source=data.source,
        source_updated_at=data.source_updated_at,
        subtotal=subtotal,
        discount_total=discount_total,
        shipping_total=shipping_total,
        tax_total=tax_total,
        shipping_tax=shipping_tax,
        total=total,
        shipping_address=data.shipping_address,
        billing_address=data.billing_address,
        ship_to_country=str(data.shipping_address.get("country_code", "")).upper()[:2],
        payment_method=data.payment_method,
        placed_at=data.placed_at,
        correlation_id=cid,
    )
    OrderLine.objects.bulk_create(
        OrderLine(
            order=order,
            currency=cur,
            line_no=i,
            external_line_id=line.external_line_id,
            sku=line.sku,
            channel_sku=line.channel_sku,
            variant_ref=line.variant_ref,
            tax_lines=line.tax_lines,
            title=line.title,
            quantity=line.quantity,
            unit_price=unit_prices[i - 1],
            discount_allocation=discounts[i - 1],
            tax_allocation=taxes[i - 1],
        )
        for i, line in enumerate(data.lines, start=1)
    )
    order_event_record(
        order_id=order.pk,
        action="received",
        actor=actor,
        field="status",
        to_state=order.status,
        data={"lines": len(data.lines), "total": str(total), "currency": cur},
        correlation_id=cid,
    )
    # Not a transition, but a milestone higher apps hear of like one (the CRM's "received").
    hooks.fire(hooks.RECEIVED, order.pk)
    enqueue_on_commit("orders.order_validate", order_id=order.pk)
    return order


@transaction.atomic
def customer_create(
    *,
    email: str,
    name: str = "",
    phone: str = "",
    account_type: str = "consumer",
    company_name: str = "",
    net_terms_days: int = 0,
    net_terms_approved: bool = False,
    credit_limit: Decimal = Decimal("0"),
    credit_currency: str = "USD",
    accepts_marketing: bool = False,
) -> Customer:
    """Create a customer (consumer, or business with optional net terms and a credit limit)."""
    return Customer.objects.create(
        accepts_marketing=accepts_marketing,
        email=email.strip().lower(),
        name=name,
        phone=phone,
        account_type=account_type,
        company_name=company_name,
        net_terms_days=net_terms_days,
        net_terms_approved=net_terms_approved,
        credit_limit=money.quantize(credit_limit, credit_currency, rounding=money.ROUND_HALF_UP),
        credit_currency=money.validate_currency(credit_currency),
    )


# --- incidents ---------------------------------------------------------------------------------
def _incident_audit(transition: str) -> Callable[[Incident, str], Audit]:
    def audit(incident: Incident, before: str) -> Audit:
        return Audit(
            order_id=incident.order_id, action=f"incident_{transition}", from_state=before,
            to_state=incident.status,
            data={"incident_id": incident.pk, "category": incident.category},
        )  # fmt: skip

    return audit


@transaction.atomic
def incident_transition(
    *, incident_id: int, transition: str, actor: Actor, note: str = ""
) -> Incident:
    """Acknowledge or resolve an incident; writes an order event when it belongs to an order."""
    if transition not in ("acknowledge", "resolve"):
        raise InvalidInput(f"Unknown incident transition {transition!r}", code="unknown_transition")
    kwargs: dict[str, Any] = {"by": actor.user}
    if transition == "resolve":
        kwargs["note"] = note
    return transition_apply(
        Incident.objects.all(), incident_id, transition, actor=actor, kwargs=kwargs,
        check_permission=True, audit=_incident_audit(transition),
    )  # fmt: skip


@transaction.atomic
def incidents_resolve(
    *, fingerprints: str | Collection[str], actor: Actor, note: str
) -> list[Incident]:
    """Resolve the unresolved incidents of one fingerprint, or of a set of them (one query),
    each with ``actor`` and ``note`` and its ``incident_resolve`` order event. Returns them;
    none unresolved: nothing happens (a second settle is a no-op)."""
    wanted = [fingerprints] if isinstance(fingerprints, str) else sorted(set(fingerprints))
    if not wanted:
        return []
    open_ids = list(
        Incident.objects.filter(fingerprint__in=wanted)
        .exclude(status=IncidentStatus.RESOLVED)
        .values_list("pk", flat=True)
    )
    return [
        incident_transition(incident_id=pk, transition="resolve", actor=actor, note=note)
        for pk in open_ids
    ]


@transaction.atomic
def order_lines_assign_skus(*, order_id: int, skus: Mapping[int, str], actor: Actor) -> int:
    """Give lines their catalogue SKU (found through a mapping added after the order came in)."""
    lines = {ln.pk: ln for ln in OrderLine.objects.select_for_update().filter(order_id=order_id)}
    assigned = {}
    for line_id, sku in skus.items():
        line = lines.get(line_id)
        if line is not None and not line.sku and sku:
            OrderLine.objects.filter(pk=line_id).update(sku=sku)
            assigned[line.line_no] = sku
    if assigned:
        order_event_record(
            order_id=order_id, action="sku_resolved", actor=actor,
            data={"lines": {str(k): v for k, v in assigned.items()}},
        )  # fmt: skip
    return len(assigned)


# --- address corrections ---------------------------------------------------------------------
# The parts of a shipping address a person corrects; name, company and phone stay as they came.
ADDRESS_FIX_FIELDS = ("line1", "line2", "city", "region_code", "postal_code", "country_code")
ADDRESS_FIX_REQUIRED = ("line1", "city", "country_code")
ADDRESS_FIX_MAX = {"line1": 200, "line2": 200, "city": 100, "region_code": 10, "postal_code": 20,
                   "country_code": 2}  # fmt: skip


def _address_fix_clean(address: Mapping[str, Any]) -> dict[str, str]:
    clean = {key: str(address.get(key) or "").strip() for key in ADDRESS_FIX_FIELDS}
    clean["country_code"] = clean["country_code"].upper()
    clean["region_code"] = clean["region_code"].upper()
    errors = {key: "is required" for key in ADDRESS_FIX_REQUIRED if not clean[key]}
    errors.update({key: f"is longer than {most} characters"
                   for key, most in ADDRESS_FIX_MAX.items() if len(clean[key]) > most})  # fmt: skip
    if clean["country_code"] and not (len(clean["country_code"]) == 2
                                      and clean["country_code"].isalpha()):  # fmt: skip
        errors["country_code"] = "must be a two-letter ISO country code (US, DE)"
    if errors:
        words = "; ".join(f"{key} {problem}" for key, problem in errors.items())
        raise InvalidInput(f"The corrected address is incomplete: {words}", code="invalid_address")
    return clean


@transaction.atomic
def order_shipping_address_correct(
    *, order_id: int, address: Mapping[str, Any], actor: Actor, release: bool = True
) -> Order:
    """Record a corrected shipping address on a held order and (by default) release its hold,
    so the pipeline checks the new address after commit. Audited: a
    ``shipping_address_corrected`` event with the fields before and after (street lines are
    redacted for roles without raw payloads, as every snapshot is).

    Needs the right to see street lines (``orders.view_contact_details``: one cannot correct
    what one may not read) and to release holds (``orders.hold_order``, checked by the
    transition). Only an order on hold is corrected: later the address is the carrier's.
    """
    if actor.user is not None and not sees_contact_details(actor.user):
        raise PermissionRefused("You do not have permission to correct shipping addresses")
    clean = _address_fix_clean(address)
    order = row_lock(Order.objects.all(), order_id, of=("self",))
    transition_permission_check(order, "release_hold", actor=actor)
    if order.status != OrderStatus.ON_HOLD:
        raise TransitionRefused(
            f"Order {order_id} is '{order.status}', not on hold: its address is not corrected here",
            code="not_on_hold",
        )
    current = dict(order.shipping_address or {})
    before = {key: str(current.get(key) or "") for key in ADDRESS_FIX_FIELDS}
    if before != clean:
        Order.objects.filter(pk=order.pk).update(
            shipping_address={**current, **clean}, ship_to_country=clean["country_code"]
        )
        order_event_record(
            order_id=order.pk, action="shipping_address_corrected", actor=actor,
            data={"before": before, "after": clean,
                  "changed": sorted(k for k in ADDRESS_FIX_FIELDS if before[k] != clean[k])},
        )  # fmt: skip
    log.info("order.address_corrected", order_id=order.pk, changed=before != clean,
             release=release, actor_kind=str(actor.kind))  # fmt: skip
    if release:
        return order_transition(
            order_id=order.pk, transition="release_hold", actor=actor,
            expected_status=OrderStatus.ON_HOLD, reason="Shipping address corrected",
        )  # fmt: skip
    order.refresh_from_db()
    return order
