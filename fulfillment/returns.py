"""Returns (RMA): request, policy decision, label, receipt with restock, refund, exchange, close.

``requested -> authorized -> received -> refunded -> closed``, ``rejected`` from requested or
authorized. Each step is one service: it locks the return, moves it, writes the order's
timeline, and writes outbox actions for what leaves the building (the return label, emails).

- **Request** (``return_request``): some units of an order's shipped lines, each with a reason
  from one taxonomy (``ReturnReason``). Units already in another return (not rejected) cannot
  be asked for twice; the requester's key makes a double submit one return.
- **Policy** (``return_policy_verdict``): the active ``ReturnPolicy`` authorizes by itself when
  the return is within its window after delivery, no reason is excluded and its value is under
  the policy's limit; otherwise customer service decides (the return waits as ``requested``).
- **Authorized**: a ``return_label`` outbox action buys the label from the carrier (the local
  carrier renders a return PDF, EasyPost buys a return shipment); a ``return_label`` email
  sends it to the customer once it is there.
- **Received** (``return_receive``): a condition per line (restock, damaged, dispose); only
  restocked units go back on hand, in the warehouse that shipped them.
- **Refund** (``return_refund``), on receipt or on carrier pickup (policy): by the policy for
  a return it authorized itself, else within the refund limit of the person who received (or
  authorized) it; above that limit the return waits, received, for finance. The units' exact
  refund (``orders.refunds``), the shipping when the policy gives it back, less a restocking fee
  for returns the customer caused; recorded under the RMA number, so once. It is sent to the
  channel, the ERP and the customer by ``fulfillment.refunds_out``; the return closes when the
  refund has gone through.
- **Exchange**: instead of a refund, a replacement order for the same SKUs (through the normal
  pipeline, linked to the return), and the return closes at receipt.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone

from config import correlation
from fulfillment.models import (
    MERCHANT_FAULT_REASONS,
    ActionKind,
    ItemCondition,
    RefundShipping,
    RefundTrigger,
    Return,
    ReturnChannel,
    ReturnLine,
    ReturnPolicy,
    ReturnReason,
    ReturnResolution,
    ReturnStatus,
    Shipment,
    ShipmentLine,
    ShipmentStatus,
    StockLevel,
    Warehouse,
)
from fulfillment.selectors import order_delivered_at, return_policy_for
from orders import money, refunds
from orders.actors import Actor
from orders.errors import InvalidInput, PermissionRefused
from orders.models import Order, OrderLine, OrderStatus, RefundSource, RestockType
from orders.transitions import Audit, order_event_record, row_lock, transition_run

log = structlog.get_logger(__name__)

RETURNABLE_ORDER_STATES = (
    OrderStatus.PARTIALLY_SHIPPED, OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.CLOSED,
)  # fmt: skip
# Shipment states whose units reached (or are on their way to) the customer.
LEFT_US = (ShipmentStatus.SHIPPED, ShipmentStatus.IN_TRANSIT, ShipmentStatus.DELIVERED,
           ShipmentStatus.EXCEPTION)  # fmt: skip
OPEN_OR_DONE = [s for s in ReturnStatus.values if s != ReturnStatus.REJECTED]
# Versions of the emails about one return (the outbox key is per order, kind, target, version).
RETURN_LABEL_NOTICE_VERSION_BASE = 1_600_000_000
RETURN_REJECTED_NOTICE_VERSION_BASE = 1_700_000_000
POLICY_ACTOR = Actor.system("return_policy")


@dataclass(frozen=True)
class ReturnLineRequest:
    order_line_id: int
    quantity: int
    reason: str


# --- reads ---------------------------------------------------------------------------------------
def shipped_units(order_id: int) -> dict[int, int]:
    """Units of each order line that left a warehouse (in parcels not voided or returned)."""
    rows = (
        ShipmentLine.objects.filter(shipment__order_id=order_id, shipment__status__in=LEFT_US)
        .values("order_line_id")
        .annotate(units=Sum("quantity"))
    )
    return {row["order_line_id"]: int(row["units"] or 0) for row in rows}


def units_in_returns(order_id: int, *, exclude_return_id: int | None = None) -> dict[int, int]:
    """Units of each order line already in a return that was not rejected."""
    qs = ReturnLine.objects.filter(ret__order_id=order_id, ret__status__in=OPEN_OR_DONE)
    if exclude_return_id is not None:
        qs = qs.exclude(ret_id=exclude_return_id)
    rows = qs.values("order_line_id").annotate(units=Sum("quantity"))
    return {row["order_line_id"]: int(row["units"] or 0) for row in rows}


def returnable_units(order_id: int) -> dict[int, int]:
    """Units of each line a customer may still send back (shipped, not in another return,
    not refunded without a return)."""
    shipped = shipped_units(order_id)
    taken = units_in_returns(order_id)
    refunded = refunds.refunded_units(order_id)
    rma_units = _rma_refunded_units(order_id)
    out = {}
    for line_id, units in shipped.items():
        # Units refunded by a channel or a person (not through a return) cannot come back for
        # a second refund; those refunded through a return are already counted in ``taken``.
        other_refunds = max(refunded.get(line_id, 0) - rma_units.get(line_id, 0), 0)
        left = units - taken.get(line_id, 0) - other_refunds
        if left > 0:
            out[line_id] = left
    return out


def _rma_refunded_units(order_id: int) -> dict[int, int]:
    from orders.models import RefundLine

    rows = (
        RefundLine.objects.filter(refund__order_id=order_id, refund__source=RefundSource.RMA)
        .values("order_line_id")
        .annotate(units=Sum("quantity"))
    )
    return {row["order_line_id"]: int(row["units"] or 0) for row in rows}


def return_window_ends(order: Order, policy: ReturnPolicy | None) -> Any:
    """The end of the return window (None: not delivered yet, or no policy)."""
    if policy is None:
        return None
    delivered = order_delivered_at(order.pk)
    if delivered is None:
        return None
    return delivered + timedelta(days=policy.window_days)


def return_policy_verdict(ret: Return, policy: ReturnPolicy | None) -> dict[str, Any]:
    """Whether the policy authorizes this return by itself, and why (or why not), in words."""
    order = ret.order
    why_not: list[str] = []
    if policy is None:
        return {"auto": False, "why_not": ["no active return policy"], "policy": None}
    ends = return_window_ends(order, policy)
    if ends is None:
        why_not.append("the order has not been delivered yet")
    elif timezone.now() > ends:
        why_not.append(f"the {policy.window_days}-day return window ended on {ends:%Y-%m-%d}")
    excluded = sorted({ln.reason for ln in ret.lines.all()} & set(policy.excluded_reasons or []))
    if excluded:
        why_not.append(f"reason not accepted by the policy: {', '.join(excluded)}")
    value = return_value(ret)
    if policy.auto_authorize_limit is None:
        why_not.append("the policy authorizes no return by itself")
    elif value >= policy.auto_authorize_limit:
        why_not.append(
            f"worth {value} {order.currency}, not under the "
            f"{money.normalize(policy.auto_authorize_limit, order.currency)} limit"
        )
    return {"auto": not why_not, "why_not": why_not, "policy": policy.pk,
            "value": str(value), "window_ends": ends.isoformat() if ends else None}  # fmt: skip


def return_value(ret: Return) -> Decimal:
    """What the returned units are worth (their exact refund, without shipping or fees)."""
    quote = refunds.refund_quote(
        order=ret.order,
        lines=[refunds.LineRequest(order_line_id=ln.order_line_id, quantity=ln.quantity)
               for ln in ret.lines.all()],
    )  # fmt: skip
    return quote.amount


# --- request -------------------------------------------------------------------------------------
def _rma_number() -> str:
    return f"RMA-{timezone.now():%y%m}-{secrets.token_hex(3).upper()}"


def return_request(
    *,
    order_id: int,
    lines: Sequence[ReturnLineRequest],
    via: str,
    actor: Actor,
    note: str = "",
    resolution: str = ReturnResolution.REFUND,
    key: str = "",
) -> Return:
    """Start a return; the policy authorizes it at once when it may (see the module)."""
    ret = _request(order_id=order_id, lines=lines, via=via, actor=actor, note=note,
                   resolution=resolution, key=key)  # fmt: skip
    if ret.status == ReturnStatus.REQUESTED and ret.policy_verdict.get("auto"):
        ret = return_authorize(return_id=ret.pk, actor=POLICY_ACTOR, auto=True,
                               note="Authorized by the return policy")  # fmt: skip
    return ret


@transaction.atomic
def _request(*, order_id: int, lines: Sequence[ReturnLineRequest], via: str, actor: Actor,
             note: str, resolution: str, key: str) -> Return:  # fmt: skip
    if via not in ReturnChannel.values:
        raise InvalidInput(f"Unknown return channel {via!r}", code="invalid")
    if resolution not in ReturnResolution.values:
        raise InvalidInput(
            f"A return is settled by {' or '.join(ReturnResolution.values)}, not {resolution!r}",
            code="invalid",
        )
    order = row_lock(Order.objects.select_related("channel"), order_id, of=("self",))
    key = (key or "").strip()[:100]
    if key:
        same = Return.objects.filter(order=order, request_key=key).first()
        if same is not None:
            return same
    if order.status not in RETURNABLE_ORDER_STATES:
        raise InvalidInput(
            f"Order {order.order_number or order.external_id} has not shipped yet "
            f"(it is {order.get_status_display().lower()}): nothing can be returned",
            code="not_returnable",
        )
    if not lines:
        raise InvalidInput("Choose at least one item to return", code="no_lines")
    policy = return_policy_for(channel_id=order.channel_id)
    if via == ReturnChannel.STATUS_PAGE and policy is not None:
        ends = return_window_ends(order, policy)
        if ends is not None and timezone.now() > ends:
            raise InvalidInput(
                f"The {policy.window_days}-day return window ended on {ends:%d %B %Y}; "
                "please contact us", code="window_closed",
            )  # fmt: skip
    order_lines = {ln.pk: ln for ln in order.lines.all()}
    left = returnable_units(order.pk)
    asked: dict[int, int] = {}
    for item in lines:
        line = order_lines.get(item.order_line_id)
        if line is None:
            raise InvalidInput(
                f"Order line {item.order_line_id} is not on this order", code="unknown_line"
            )
        if item.reason not in ReturnReason.values:
            raise InvalidInput(
                f"{item.reason!r} is not a return reason (one of: "
                f"{', '.join(ReturnReason.values)})", code="invalid_reason",
            )  # fmt: skip
        if isinstance(item.quantity, bool) or not isinstance(item.quantity, int) \
                or item.quantity <= 0:  # fmt: skip
            raise InvalidInput("A returned quantity must be a whole number of at least 1",
                               code="invalid_quantity")  # fmt: skip
        asked[line.pk] = asked.get(line.pk, 0) + item.quantity
        if asked[line.pk] > left.get(line.pk, 0):
            raise InvalidInput(
                f"Only {left.get(line.pk, 0)} unit(s) of {line.title or line.sku} can be "
                f"returned", code="quantity_exceeded",
            )  # fmt: skip
    warehouse = _shipped_from(order.pk, [item.order_line_id for item in lines])
    ret = None
    for _attempt in range(3):
        try:
            with transaction.atomic():
                ret = Return.objects.create(
                    order=order, rma_number=_rma_number(), requested_via=via, request_key=key,
                    customer_note=note.strip()[:2000], resolution=resolution, policy=policy,
                    warehouse=warehouse,
                    correlation_id=correlation.get() or order.correlation_id,
                )  # fmt: skip
            break
        except IntegrityError:
            if key and Return.objects.filter(order=order, request_key=key).exists():
                return Return.objects.get(order=order, request_key=key)
            continue  # an RMA number collision: draw again
    if ret is None:
        raise InvalidInput("Could not number the return; try again", code="conflict")
    ReturnLine.objects.bulk_create(
        ReturnLine(ret=ret, order_line_id=item.order_line_id, quantity=item.quantity,
                   reason=item.reason, sku=order_lines[item.order_line_id].sku)
        for item in lines
    )  # fmt: skip
    verdict = return_policy_verdict(ret, policy)
    Return.objects.filter(pk=ret.pk).update(policy_verdict=verdict)
    ret.policy_verdict = verdict
    _event(ret, "return_requested", actor, to_state=ReturnStatus.REQUESTED,
           via=via, resolution=resolution,
           lines=[{"order_line_id": i.order_line_id, "quantity": i.quantity, "reason": i.reason}
                  for i in lines],
           policy=verdict)  # fmt: skip
    log.info("return.requested", return_id=ret.pk, order_id=order.pk, via=via,
             auto=bool(verdict.get("auto")))  # fmt: skip
    return ret


def _shipped_from(order_id: int, line_ids: Sequence[int]) -> Warehouse | None:
    sl = (
        ShipmentLine.objects.filter(shipment__order_id=order_id, order_line_id__in=line_ids)
        .select_related("shipment__warehouse")
        .order_by("shipment_id")
        .first()
    )
    return sl.shipment.warehouse if sl is not None else None


def _event(ret: Return, action: str, actor: Actor, *, from_state: str = "", to_state: str = "",
           **data: Any) -> None:  # fmt: skip
    order_event_record(
        order_id=ret.order_id, action=action, actor=actor, field="return",
        from_state=from_state, to_state=to_state, correlation_id=ret.correlation_id,
        data={"return_id": ret.pk, "rma_number": ret.rma_number, **data},
    )  # fmt: skip


def _move(ret: Return, name: str, actor: Actor, *, check_permission: bool = True,
          kwargs: Mapping[str, Any] | None = None,
          data: Mapping[str, Any] | None = None) -> Return:  # fmt: skip
    return transition_run(
        ret, name, actor=actor, kwargs=kwargs, check_permission=check_permission,
        say_field=False,
        audit=lambda moved, was: Audit(
            order_id=moved.order_id, action=f"return_{name}", field="return", from_state=was,
            to_state=str(moved.status), correlation_id=moved.correlation_id,
            data={"return_id": moved.pk, "rma_number": moved.rma_number, **(data or {})},
        ),
    )  # fmt: skip


def _lock(return_id: int) -> Return:
    return row_lock(Return.objects.select_related("order__channel", "policy"), return_id,
                    of=("self",))  # fmt: skip


# --- decisions -----------------------------------------------------------------------------------
def label_carrier_for(ret: Return) -> str:
    """The carrier of the return label: the policy's, else the one that shipped the order,
    else the built-in local carrier."""
    if ret.policy is not None and ret.policy.label_carrier:
        return ret.policy.label_carrier
    carrier = (
        Shipment.objects.filter(order_id=ret.order_id).exclude(carrier="")
        .order_by("created_at").values_list("carrier", flat=True).first()
    )  # fmt: skip
    return carrier or str(getattr(settings, "RETURN_LABEL_CARRIER", "") or "local")


@transaction.atomic
def return_authorize(*, return_id: int, actor: Actor, note: str = "", auto: bool = False) -> Return:
    """Accept a return: buy its label and email it to the customer (through the outbox)."""
    from fulfillment.outbox import services as outbox

    ret = _lock(return_id)
    by = actor.user
    words = {"note": note.strip()} if note.strip() else {}
    _move(ret, "authorize", actor, kwargs={"by": by, "auto": auto, "note": note.strip()},
          data={"auto": auto, **words})  # fmt: skip
    carrier = label_carrier_for(ret)
    outbox.action_write(
        order_id=ret.order_id, kind=ActionKind.RETURN_LABEL, target=carrier,
        payload={"return_id": ret.pk}, lane="fulfillment", version=ret.pk,
        correlation_id=ret.correlation_id,
    )  # fmt: skip
    outbox.customer_notice_write(
        order_id=ret.order_id, template="return_label", return_id=ret.pk,
        version=RETURN_LABEL_NOTICE_VERSION_BASE + ret.pk, correlation_id=ret.correlation_id,
    )  # fmt: skip
    return ret


@transaction.atomic
def return_reject(*, return_id: int, actor: Actor, note: str) -> Return:
    """Turn a return down, with the reason the customer is told."""
    from fulfillment.outbox import services as outbox

    if not note.strip():
        raise InvalidInput("Say why the return is rejected (the customer is told)",
                           code="reason_required")  # fmt: skip
    ret = _lock(return_id)
    _move(ret, "reject", actor, kwargs={"by": actor.user, "note": note.strip()},
          data={"note": note.strip()})  # fmt: skip
    outbox.customer_notice_write(
        order_id=ret.order_id, template="return_rejected", return_id=ret.pk,
        version=RETURN_REJECTED_NOTICE_VERSION_BASE + ret.pk, correlation_id=ret.correlation_id,
    )  # fmt: skip
    return ret


# --- receipt -------------------------------------------------------------------------------------
def stock_return(*, sku: str, warehouse: Warehouse, quantity: int) -> None:
    """Put ``quantity`` units of ``sku`` back on hand at ``warehouse`` (a conditional update:
    nothing read and written back in Python)."""
    if quantity <= 0 or not sku:
        return
    updated = StockLevel.objects.filter(sku=sku, warehouse=warehouse).update(
        on_hand=F("on_hand") + quantity, updated_at=timezone.now()
    )
    if not updated:
        try:
            with transaction.atomic():
                StockLevel.objects.create(sku=sku, warehouse=warehouse, on_hand=quantity)
        except IntegrityError:  # created meanwhile: add to it
            StockLevel.objects.filter(sku=sku, warehouse=warehouse).update(
                on_hand=F("on_hand") + quantity, updated_at=timezone.now()
            )


def return_receive(
    *, return_id: int, actor: Actor, conditions: Mapping[int, str], note: str = ""
) -> Return:
    """The warehouse has the parcel: record each line's condition (by return line id), put the
    restocked units back on hand, then refund (or exchange) as the policy says."""
    ret = _receive(return_id=return_id, actor=actor, conditions=conditions, note=note)
    if ret.resolution == ReturnResolution.EXCHANGE:
        return return_exchange(return_id=ret.pk, actor=actor)
    if ret.refund_id is None:
        ret = _refund_as_agreed(ret, person=actor)
    return ret


def _refund_as_agreed(ret: Return, *, person: Actor | None) -> Return:
    """The refund that follows receipt (or pickup). A return the policy authorized by itself
    is refunded by the policy; one a person authorized is refunded within that person's refund
    limit (``person``: who received it, else who authorized it). Above the limit the return
    waits, received, for someone whose limit covers it (finance), and the timeline says so."""
    if ret.auto_authorized:
        by = POLICY_ACTOR
    elif person is not None and person.user is not None:
        by = person
    elif ret.decided_by is not None:
        by = Actor.for_user(ret.decided_by)
    else:
        by = POLICY_ACTOR
    try:
        return return_refund(return_id=ret.pk, actor=by)
    except PermissionRefused as exc:
        with transaction.atomic():
            _event(ret, "return_refund_waiting", by, reason=str(exc))
        log.info("return.refund_waiting", return_id=ret.pk, code=exc.code)
        return Return.objects.get(pk=ret.pk)


@transaction.atomic
def _receive(*, return_id: int, actor: Actor, conditions: Mapping[int, str], note: str) -> Return:
    ret = _lock(return_id)
    lines = list(ret.lines.select_related("order_line"))
    missing = [ln.pk for ln in lines if ln.pk not in conditions]
    if missing:
        raise InvalidInput(
            f"Say the condition of every returned line (missing: {', '.join(map(str, missing))})",
            code="condition_required",
        )
    bad = {v for v in conditions.values() if v not in ItemCondition.values}
    if bad:
        raise InvalidInput(
            f"Unknown condition {sorted(bad)[0]!r} (one of: {', '.join(ItemCondition.values)})",
            code="invalid_condition",
        )
    if ret.warehouse is None:
        raise InvalidInput("This return has no warehouse to come back to", code="no_warehouse")
    _move(ret, "receive", actor,
          data={"lines": [{"return_line_id": ln.pk, "sku": ln.sku, "quantity": ln.quantity,
                           "condition": conditions[ln.pk]} for ln in lines],
                **({"note": note} if note else {})})  # fmt: skip
    for ln in lines:
        condition = conditions[ln.pk]
        restocked = ln.quantity if condition == ItemCondition.RESTOCK else 0
        ReturnLine.objects.filter(pk=ln.pk).update(condition=condition,
                                                   restocked_quantity=restocked)  # fmt: skip
        if restocked:
            stock_return(sku=ln.sku or ln.order_line.sku, warehouse=ret.warehouse,
                         quantity=restocked)  # fmt: skip
            _event(ret, "restocked", actor, sku=ln.sku, quantity=restocked,
                   warehouse=ret.warehouse.code)  # fmt: skip
    _mark_shipments_returned(ret, actor)
    return ret


def _mark_shipments_returned(ret: Return, actor: Actor) -> None:
    """A parcel all of whose units came back is ``returned``."""
    received = (
        ReturnLine.objects.filter(ret__order_id=ret.order_id,
                                  ret__status__in=[ReturnStatus.RECEIVED, ReturnStatus.REFUNDED,
                                                   ReturnStatus.CLOSED])
        .values("order_line_id").annotate(units=Sum("quantity"))
    )  # fmt: skip
    back = {row["order_line_id"]: int(row["units"]) for row in received}
    for shipment in Shipment.objects.filter(order_id=ret.order_id, status__in=LEFT_US):
        units = list(shipment.lines.values_list("order_line_id", "quantity"))
        if units and all(back.get(line_id, 0) >= qty for line_id, qty in units):
            locked = row_lock(Shipment.objects.all(), shipment.pk)
            transition_run(
                locked, "mark_returned", actor=actor,
                audit=lambda moved, was: Audit(
                    order_id=moved.order_id, action="shipment_returned", field="shipment",
                    from_state=was, to_state=str(moved.status),
                    data={"shipment_id": moved.pk, "rma_number": ret.rma_number},
                ),
            )  # fmt: skip
            for line_id, qty in units:
                back[line_id] = back.get(line_id, 0) - qty


# --- refund --------------------------------------------------------------------------------------
def refund_terms(ret: Return) -> tuple[bool, Decimal]:
    """(refund the shipping?, restocking fee percent) for this return under its policy."""
    policy = ret.policy
    reasons = {ln.reason for ln in ret.lines.all()}
    ours = bool(reasons & MERCHANT_FAULT_REASONS)
    if policy is None:
        return ours, Decimal(0)
    if policy.refund_shipping == RefundShipping.ALWAYS:
        shipping = True
    elif policy.refund_shipping == RefundShipping.MERCHANT_FAULT:
        shipping = ours
    else:
        shipping = False
    fee = Decimal(0) if ours else Decimal(policy.restocking_fee_percent or 0)
    return shipping, fee


def return_refund(*, return_id: int, actor: Actor) -> Return:
    """Refund the return's units exactly (once: its RMA number is the refund's key)."""
    with transaction.atomic():
        ret = _lock(return_id)
        if ret.refund_id is not None:
            return ret
        if ret.resolution != ReturnResolution.REFUND:
            raise InvalidInput(f"{ret.rma_number} is an exchange: it is not refunded",
                               code="not_a_refund")  # fmt: skip
        if ret.status not in (ReturnStatus.AUTHORIZED, ReturnStatus.RECEIVED):
            raise InvalidInput(
                f"{ret.rma_number} is {ret.get_status_display().lower()}: only an authorized "
                "or received return is refunded", code="transition_not_allowed",
            )  # fmt: skip
        lines = list(ret.lines.all())
        shipping, fee = refund_terms(ret)
        result = refunds.refund_issue(
            order_id=ret.order_id, actor=actor, key=ret.rma_number, source=RefundSource.RMA,
            lines=[refunds.LineRequest(
                order_line_id=ln.order_line_id, quantity=ln.quantity,
                restock_type=RestockType.RETURN if ln.condition == ItemCondition.RESTOCK
                else RestockType.NO_RESTOCK) for ln in lines],
            shipping=shipping, restocking_fee_percent=fee,
            reason=_refund_reason(lines), note=f"Return {ret.rma_number}",
        )  # fmt: skip
        Return.objects.filter(pk=ret.pk).update(refund=result.refund)
        ret.refund = result.refund
        _move(ret, "mark_refunded", actor, check_permission=False,
              data={"refund_id": result.refund.pk, "reference": result.refund.reference,
                    "amount": str(result.refund.amount)})  # fmt: skip
    return ret


def _refund_reason(lines: Sequence[ReturnLine]) -> str:
    reasons = sorted({ln.reason for ln in lines})
    return reasons[0] if len(reasons) == 1 else "mixed"


def on_refund_status(refund_id: int) -> None:
    """A return whose refund went through is closed (called in the refund's transaction)."""
    ret = Return.objects.filter(refund_id=refund_id, status=ReturnStatus.REFUNDED).first()
    if ret is None or ret.refund is None or ret.refund.status != "succeeded":
        return
    locked = _lock(ret.pk)
    _move(locked, "close", Actor.system("returns"), check_permission=False)


def return_pickup(*, return_id: int, actor: Actor) -> Return:
    """The carrier has the return parcel: refund now when the policy says so."""
    with transaction.atomic():
        ret = _lock(return_id)
        if ret.picked_up_at is not None:
            return ret
        Return.objects.filter(pk=ret.pk).update(picked_up_at=timezone.now())
        _event(ret, "return_picked_up", actor, tracking_number=ret.tracking_number)
    if (ret.policy is not None and ret.policy.refund_trigger == RefundTrigger.PICKUP
            and ret.resolution == ReturnResolution.REFUND
            and ret.status == ReturnStatus.AUTHORIZED):  # fmt: skip
        return _refund_as_agreed(ret, person=None)
    return Return.objects.get(pk=ret.pk)


# --- exchange ------------------------------------------------------------------------------------
def return_exchange(*, return_id: int, actor: Actor) -> Return:
    """The replacement order for an exchange: the same SKUs and quantities, nothing to pay,
    through the normal pipeline (validation, stock, label, ERP...), linked to the return."""
    from orders.services import LineInput, OrderInput, order_create, order_transition

    with transaction.atomic():
        ret = _lock(return_id)
        if ret.exchange_order_id is not None:
            return ret
        if ret.resolution != ReturnResolution.EXCHANGE or ret.status != ReturnStatus.RECEIVED:
            raise InvalidInput(f"{ret.rma_number} is not a received exchange",
                               code="not_an_exchange")  # fmt: skip
        order = ret.order
        lines: list[OrderLine] = [ln.order_line for ln in ret.lines.select_related("order_line")]
        quantities = {ln.order_line_id: ln.quantity for ln in ret.lines.all()}
        replacement = order_create(
            actor=actor,
            data=OrderInput(
                channel_id=order.channel_id, external_id=f"{order.external_id}-{ret.rma_number}",
                currency=order.currency, placed_at=timezone.now(), customer_id=order.customer_id,
                lines=[LineInput(sku=ln.sku, quantity=quantities[ln.pk], unit_price=Decimal(0),
                                 title=ln.title, channel_sku=ln.channel_sku,
                                 variant_ref=ln.variant_ref) for ln in lines],
                shipping_address=dict(order.shipping_address),
                billing_address=dict(order.billing_address),
                payment_method="exchange",
                order_number=f"{order.order_number or order.external_id}-X",
                source={"exchange_for": order.pk, "rma_number": ret.rma_number},
            ),
        )  # fmt: skip
        # Nothing to pay: the returned goods paid for it.
        order_transition(order_id=replacement.pk, transition="capture_payment",
                         actor=Actor.system("returns"))  # fmt: skip
        Return.objects.filter(pk=ret.pk).update(exchange_order=replacement)
        ret.exchange_order = replacement
        _event(ret, "exchange_order_created", actor, exchange_order_id=replacement.pk)
        _move(ret, "close", actor, check_permission=False,
              data={"exchange_order_id": replacement.pk})  # fmt: skip
    return ret
