"""Stock write operations: warehouses, restocking, and reserving stock for orders.

No oversell under any interleaving: every change to ``StockLevel`` is one conditional
``UPDATE`` (``... SET reserved = reserved + q WHERE on_hand - reserved >= q``) whose row count
says whether it happened, backed by the table's CHECK constraints; nothing is read, changed in
Python and written back. Reservation states move only by their FSM transitions, through
``orders.transitions`` (a lost race is ``StaleState``), each in the same transaction as its
stock update and an audit event on the order.

Lock order, the same everywhere so that PostgreSQL never deadlocks: the order row, then
reservation rows, then stock rows sorted by (sku, warehouse id).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as dt_time
from typing import Any

import structlog
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone

from config.metrics import timed
from fulfillment.models import (
    Reservation,
    ReservationStatus,
    StockLevel,
    Warehouse,
    WarehouseKind,
    validate_time_zone,
)
from orders.actors import Actor
from orders.errors import DomainError, InvalidInput, NotFound
from orders.models import Order, OrderLine, OrderStatus
from orders.services import order_transition
from orders.transitions import Audit, transition_run
from orders.validation import Allocation

log = structlog.get_logger(__name__)

ACTIVE = ReservationStatus.ACTIVE
# The pipeline reserves while the order is still `received`; order_allocate retries
# `validated` (after review) and `backordered` orders. Any other state gets nothing new.
RESERVABLE_STATES = {
    OrderStatus.RECEIVED, OrderStatus.VALIDATED, OrderStatus.IN_REVIEW, OrderStatus.BACKORDERED,
}  # fmt: skip
# Being picked or packed: the warehouse works from these units, expiry must not free them.
NOT_EXPIRABLE_STATES = {OrderStatus.FULFILLING, OrderStatus.PARTIALLY_SHIPPED}
# A lost race re-plans from fresh numbers; each loss means another order took the stock.
MAX_ATTEMPTS = 25

# Macro regions for proximity when a warehouse's region is an area rather than a subdivision.
EU = {"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
      "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"}  # fmt: skip
AREAS: dict[str, set[str]] = {
    "EU": EU,
    "EEA": EU | {"IS", "LI", "NO"},
    "EUROPE": EU | {"GB", "CH", "NO", "IS", "LI", "UA", "RS", "BA", "ME", "MK", "AL", "MD"},
    "UK": {"GB"},
    "NA": {"US", "CA", "MX"},
    "NAFTA": {"US", "CA", "MX"},
    "LATAM": {"MX", "BR", "AR", "CL", "CO", "PE", "UY", "PY", "BO", "EC", "VE"},
    "APAC": {"JP", "CN", "KR", "TW", "HK", "SG", "AU", "NZ", "IN", "TH", "MY", "ID", "PH", "VN"},
    "ANZ": {"AU", "NZ"},
}
# CLDR territories with two letters that are not countries one can ship to.
NOT_COUNTRIES = {"ZZ", "EU", "EZ", "UN", "QO", "XA", "XB"}
CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


class _LostRace(Exception):
    """A conditional update found less stock than planned: roll back and plan again."""


class StockInconsistent(RuntimeError):
    """A release or consume found fewer reserved units than the reservation holds. The CHECK
    constraints make this impossible unless someone edited stock by hand; refuse loudly."""


def _ttl() -> timedelta:
    return timedelta(minutes=int(settings.RESERVATION_TTL_MINUTES))


def _split_allowed() -> bool:
    return bool(settings.ALLOCATION_ALLOW_SPLIT)


# --- warehouses and stock ----------------------------------------------------------------------
def valid_country(code: str) -> bool:
    from babel import Locale

    code = code.upper()
    return (
        len(code) == 2 and code.isalpha() and code not in NOT_COUNTRIES
        and code in Locale("en").territories
    )  # fmt: skip


@dataclass(frozen=True)
class WarehouseResult:
    warehouse: Warehouse
    created: bool
    changed: list[str]


@transaction.atomic
def warehouse_upsert(
    *,
    code: str,
    country: str,
    kind: str | None = None,
    priority: int | None = None,
    name: str | None = None,
    region: str | None = None,
    ships_international: bool | None = None,
    is_active: bool | None = None,
    cutoff_time: dt_time | None = None,
    time_zone: str | None = None,
) -> WarehouseResult:
    """Create a warehouse, or update the fields given for an existing one (safe to repeat)."""
    code = code.strip()
    if not CODE_RE.match(code):
        raise InvalidInput(
            f"Warehouse code {code!r} must be 1-32 letters, digits, '.', '_' or '-'",
            code="invalid_code",
        )
    country = country.strip().upper()
    if not valid_country(country):
        raise InvalidInput(f"Country {country!r} is not an ISO 3166-1 alpha-2 code", code="invalid")
    if kind is not None and kind not in WarehouseKind.values:
        raise InvalidInput(
            f"Kind {kind!r} is not one of {', '.join(WarehouseKind.values)}", code="invalid"
        )
    if priority is not None and not 0 <= priority <= 1_000_000:
        raise InvalidInput("Priority must be between 0 and 1000000", code="invalid")
    if time_zone is not None:
        try:
            validate_time_zone(time_zone.strip())
        except ValidationError as exc:
            raise InvalidInput(exc.messages[0], code="invalid") from exc
    wanted: dict[str, Any] = {"country": country}
    for field_name, value in (("kind", kind), ("priority", priority), ("name", name),
                              ("region", region), ("ships_international", ships_international),
                              ("is_active", is_active), ("cutoff_time", cutoff_time),
                              ("time_zone", time_zone)):  # fmt: skip
        if value is not None:
            wanted[field_name] = value.strip() if isinstance(value, str) else value
    if "region" in wanted:
        wanted["region"] = wanted["region"].upper()[:32]
    if "name" in wanted:
        wanted["name"] = wanted["name"][:100]
    warehouse, created = Warehouse.objects.select_for_update().get_or_create(
        code=code, defaults={"name": code, **wanted}
    )
    if created:
        log.info("warehouse.created", warehouse_id=warehouse.pk)
        return WarehouseResult(warehouse, True, [])
    changed = [f for f, v in wanted.items() if getattr(warehouse, f) != v]
    if changed:
        for f in changed:
            setattr(warehouse, f, wanted[f])
        warehouse.save(update_fields=[*changed, "updated_at"])
        log.info("warehouse.updated", warehouse_id=warehouse.pk, fields=changed)
    return WarehouseResult(warehouse, False, changed)


def stock_restock(*, sku: str, warehouse_code: str, on_hand: int) -> StockLevel:
    """Set a SKU's on-hand count in a warehouse (a stock count or a delivery); never below what
    is reserved there. Creates the stock row if it is the first time."""
    sku = sku.strip()
    if not sku or len(sku) > 100:
        raise InvalidInput("A SKU must be 1 to 100 characters", code="invalid")
    if isinstance(on_hand, bool) or not isinstance(on_hand, int) or on_hand < 0:
        raise InvalidInput(f"on_hand must be a whole number >= 0, not {on_hand!r}", code="invalid")
    warehouse = Warehouse.objects.filter(code=warehouse_code).first()
    if warehouse is None:
        raise NotFound(f"Warehouse {warehouse_code!r} does not exist")
    for _attempt in range(2):
        with transaction.atomic():
            # Conditional: the database compares with `reserved` as it is at this instant.
            updated = StockLevel.objects.filter(
                sku=sku, warehouse=warehouse, reserved__lte=on_hand
            ).update(on_hand=on_hand, updated_at=timezone.now())
            if updated:
                return StockLevel.objects.get(sku=sku, warehouse=warehouse)
            current = StockLevel.objects.filter(sku=sku, warehouse=warehouse).first()
            if current is not None:
                raise InvalidInput(
                    f"Cannot set on_hand of {sku} at {warehouse.code} to {on_hand}: "
                    f"{current.reserved} unit(s) are reserved there (release or consume them "
                    "first, or count again)",
                    code="below_reserved",
                )
            try:
                with transaction.atomic():
                    return StockLevel.objects.create(sku=sku, warehouse=warehouse, on_hand=on_hand)
            except IntegrityError:
                continue  # created by someone else meanwhile: update theirs
    raise InvalidInput(f"Could not restock {sku} at {warehouse.code}; try again", code="conflict")


# --- reserving ---------------------------------------------------------------------------------
def _same_area(warehouse: Warehouse, country: str) -> bool:
    area = warehouse.region.upper().split("-", 1)[0]
    if country in AREAS.get(area, set()):
        return True
    return any(country in members and warehouse.country in members for members in AREAS.values())


def _closeness(warehouse: Warehouse, country: str, subdivision: str) -> int:
    """0: same subdivision, 1: same country, 2: same area (EU, NA...), 3: anywhere else."""
    if not country:
        return 3
    if warehouse.country == country:
        return 0 if subdivision and warehouse.region.upper() == subdivision else 1
    return 2 if _same_area(warehouse, country) else 3


def ranked_warehouses(*, country: str, subdivision: str = "") -> list[Warehouse]:
    """Warehouses that may ship to ``country``: closest first, then by priority, then code."""
    country = country.upper()
    candidates = [w for w in Warehouse.objects.filter(is_active=True) if w.can_ship_to(country)]
    return sorted(
        candidates, key=lambda w: (_closeness(w, country, subdivision), w.priority, w.code)
    )


def _subdivision(order: Order) -> str:
    code = str((order.shipping_address or {}).get("region_code") or "").strip().upper()
    if not code or not order.ship_to_country:
        return ""
    return (
        code if code.startswith(order.ship_to_country + "-") else f"{order.ship_to_country}-{code}"
    )


@dataclass
class _Line:
    id: int
    line_no: int
    sku: str
    remaining: int


def _plan(
    need: dict[str, int], ranked: list[Warehouse], available: dict[tuple[str, int], int],
    allow_split: bool,
) -> dict[tuple[str, int], int] | None:  # fmt: skip
    """Units to take per (sku, warehouse id), or None if the order cannot be covered."""
    for w in ranked:  # one warehouse for the whole order if any can
        if all(available.get((sku, w.pk), 0) >= q for sku, q in need.items()):
            return {(sku, w.pk): q for sku, q in need.items()}
    if not allow_split:
        return None
    plan: dict[tuple[str, int], int] = {}
    for sku, q in need.items():
        left = q
        for w in ranked:
            take = min(left, available.get((sku, w.pk), 0))
            if take > 0:
                plan[(sku, w.pk)] = take
                left -= take
            if left == 0:
                break
        if left:
            return None
    return plan


def _short_details(
    need: dict[str, int], ranked: list[Warehouse], available: dict[tuple[str, int], int],
    allow_split: bool,
) -> dict[str, Any]:  # fmt: skip
    total = {sku: sum(available.get((sku, w.pk), 0) for w in ranked) for sku in need}
    best = {sku: max([available.get((sku, w.pk), 0) for w in ranked] or [0]) for sku in need}
    short = [sku for sku, q in need.items() if (total if allow_split else best)[sku] < q]
    reason = "not enough stock"
    if not short:
        # Each SKU is somewhere, but no single warehouse holds the whole order.
        reason = "no single warehouse holds the whole order and splitting is off"
        short = list(need)
    return {
        "short_skus": sorted(short),
        "requested": dict(sorted(need.items())),
        "available": dict(sorted(total.items())),
        "split_allowed": allow_split,
        "reason": reason,
    }


def _allocation_summary(
    order_id: int, reserved_now: int, rows: list[tuple[int, str, str, int]] | None = None
) -> Allocation:
    """What the order holds: its active reservations by line (line number, SKU, warehouse
    code, quantity), read from the database unless the caller has them all (``rows``: an
    order reserved for the first time, whose reservations are exactly the ones it created)."""
    if rows is None:
        rows = [
            (r.order_line.line_no, r.sku, r.warehouse.code, r.quantity)
            for r in Reservation.objects.filter(order_id=order_id, status=ACTIVE)
            .select_related("warehouse", "order_line")
            .order_by("order_line__line_no", "warehouse__code")
        ]
    lines: dict[str, list[dict[str, Any]]] = defaultdict(list)
    warehouses: list[str] = []
    for line_no, sku, code, quantity in sorted(rows, key=lambda row: (row[0], row[2])):
        lines[str(line_no)].append({"sku": sku, "warehouse": code, "quantity": quantity})
        if code not in warehouses:
            warehouses.append(code)
    return Allocation(
        "reserved",
        {"warehouses": warehouses, "lines": dict(lines), "reserved_now": reserved_now},
    )


@timed("allocation")
def stock_reserve_for_order(*, order_id: int) -> Allocation:
    """Reserve stock for every line of an order not yet covered (the pipeline's allocator).

    Prefers one warehouse for the whole order (closest to the destination, then priority);
    splits across warehouses only when ``ALLOCATION_ALLOW_SPLIT``. All or nothing: when the
    order cannot be covered, nothing new is reserved and the answer is ``short``. Idempotent:
    lines already covered by active reservations are left as they are.
    """
    allow_split = _split_allowed()
    for attempt in range(MAX_ATTEMPTS):
        try:
            with transaction.atomic():
                return _reserve_once(order_id, allow_split)
        except _LostRace:
            # Another order took the units between our read and our update: everything this
            # attempt reserved rolled back with it; plan again from fresh numbers.
            log.info("stock.reserve_retry", order_id=order_id, attempt=attempt + 1)
    log.warning("stock.reserve_gave_up", order_id=order_id, attempts=MAX_ATTEMPTS)
    skus = sorted(set(OrderLine.objects.filter(order_id=order_id).values_list("sku", flat=True)))
    return Allocation(
        "short", {"short_skus": skus, "requested": {}, "available": {},
                  "reason": "too much contention; the backorder retry will try again"},
    )  # fmt: skip


def allocate(order_id: int) -> Allocation:
    """``stock_reserve_for_order`` as ``orders.validation`` calls an allocator (positional id)."""
    return stock_reserve_for_order(order_id=order_id)


def _reserve_once(order_id: int, allow_split: bool) -> Allocation:
    # The order row first: serializes this with a cancel and with another allocation of it.
    # Only what the plan reads of it (its state, where it goes): a whole row costs as much
    # again to build as the lock itself.
    order = (
        Order.objects.select_for_update(of=("self",), no_key=True)
        .only("id", "status", "ship_to_country", "shipping_address")
        .filter(pk=order_id)
        .first()
    )
    if order is None:
        raise NotFound(f"Order {order_id} does not exist")
    if order.status not in RESERVABLE_STATES:
        return Allocation(
            "short", {"short_skus": [], "requested": {}, "available": {},
                      "reason": f"order is {order.status}: nothing is reserved"},
        )  # fmt: skip
    covered: dict[int, int] = defaultdict(int)
    active_at: dict[tuple[int, int], int] = {}
    # Then its active reservations (a top-up below changes them), then stock rows.
    for r in (
        Reservation.objects.select_for_update()
        .filter(order_id=order_id, status=ACTIVE)
        .order_by("pk")
    ):
        covered[r.order_line_id] += r.quantity
        active_at[(r.order_line_id, r.warehouse_id)] = r.pk
    lines = [
        _Line(ln.pk, ln.line_no, ln.sku, ln.quantity - covered[ln.pk])
        for ln in OrderLine.objects.filter(order_id=order_id).order_by("line_no")
    ]
    lines = [ln for ln in lines if ln.remaining > 0]
    if not lines:
        return _allocation_summary(order_id, 0)
    unmapped = [f"line {ln.line_no} (no SKU)" for ln in lines if not ln.sku]
    need: dict[str, int] = defaultdict(int)
    for ln in lines:
        if ln.sku:
            need[ln.sku] += ln.remaining
    ranked = ranked_warehouses(country=order.ship_to_country, subdivision=_subdivision(order))
    # Unordered (the model's ordering joins the warehouse for its code) and only the numbers.
    available = {
        (sku, warehouse_id): on_hand - reserved
        for sku, warehouse_id, on_hand, reserved in StockLevel.objects.filter(
            sku__in=list(need), warehouse__in=ranked
        )
        .order_by()
        .values_list("sku", "warehouse_id", "on_hand", "reserved")
    }
    plan = None if unmapped else _plan(dict(need), ranked, available, allow_split)
    if plan is None:
        details = _short_details(dict(need), ranked, available, allow_split)
        if unmapped:  # the sku_mapped check holds such orders first; never guess here
            details.update(short_skus=unmapped, reason="lines without a SKU")
        return Allocation("short", details)

    # Fixed lock order: (sku, warehouse id). Each update succeeds only if the units are there.
    for (sku, warehouse_id), qty in sorted(plan.items()):
        taken = StockLevel.objects.filter(
            sku=sku, warehouse_id=warehouse_id, on_hand__gte=F("reserved") + qty
        ).update(reserved=F("reserved") + qty, updated_at=timezone.now())
        if taken != 1:
            raise _LostRace
    # Hand the units taken per (sku, warehouse) to the lines, in line order.
    pool = dict(plan)
    order_of = {w.pk: i for i, w in enumerate(ranked)}
    expires_at = timezone.now() + _ttl()
    new: list[Reservation] = []
    for ln in lines:
        left = ln.remaining
        for key in sorted((k for k in pool if k[0] == ln.sku), key=lambda k: order_of[k[1]]):
            take = min(left, pool[key])
            if take <= 0:
                continue
            pool[key] -= take
            left -= take
            existing = active_at.get((ln.id, key[1]))
            if existing is not None:
                # Partly covered here already: top up the active reservation (one per line
                # and warehouse); its state does not change.
                Reservation.objects.filter(pk=existing, status=ACTIVE).update(
                    quantity=F("quantity") + take
                )
            else:
                new.append(Reservation(order_id=order_id, order_line_id=ln.id,
                                       warehouse_id=key[1], sku=ln.sku, quantity=take,
                                       expires_at=expires_at))  # fmt: skip
            if left == 0:
                break
    Reservation.objects.bulk_create(new)
    reserved_now = sum(plan.values())
    log.info("stock.reserved", order_id=order_id, units=reserved_now, reservations=len(new))
    if active_at:  # topped up: the summary holds the reservations made before, too
        return _allocation_summary(order_id, reserved_now)
    code_of = {w.pk: w.code for w in ranked}
    line_no_of = {ln.id: ln.line_no for ln in lines}
    return _allocation_summary(order_id, reserved_now, [
        (line_no_of[r.order_line_id], r.sku, code_of[r.warehouse_id], r.quantity) for r in new
    ])  # fmt: skip


# --- releasing, consuming, expiring ------------------------------------------------------------
def _stock_give_back(reservation: Reservation, *, consume: bool) -> None:
    q = reservation.quantity
    qs = StockLevel.objects.filter(
        sku=reservation.sku, warehouse_id=reservation.warehouse_id, reserved__gte=q
    )
    if consume:
        done = qs.filter(on_hand__gte=q).update(
            on_hand=F("on_hand") - q, reserved=F("reserved") - q, updated_at=timezone.now()
        )
    else:
        done = qs.update(reserved=F("reserved") - q, updated_at=timezone.now())
    if done != 1:
        raise StockInconsistent(
            f"Stock of {reservation.sku} at warehouse {reservation.warehouse_id} holds fewer "
            f"reserved units than reservation {reservation.pk} ({q})"
        )


def _end(reservation_id: int, transition: str, actor: Actor, *, skip_locked: bool = False,
         now: datetime | None = None) -> bool:  # fmt: skip
    """Apply one ending transition and give the stock back. False: not active (a no-op)."""
    qs = Reservation.objects.select_for_update(skip_locked=skip_locked).filter(
        pk=reservation_id, status=ACTIVE
    )
    if now is not None:
        qs = qs.filter(expires_at__lte=now)
    reservation = qs.first()
    if reservation is None:
        return False  # gone, already ended (a double release), or another worker has it
    past = {"release": "released", "expire": "expired", "consume": "consumed"}[transition]
    transition_run(
        reservation, transition, actor=actor,
        audit=lambda r, _was: Audit(
            order_id=r.order_id, action=f"reservation_{past}",
            data={"reservation_id": r.pk, "sku": r.sku, "warehouse_id": r.warehouse_id,
                  "quantity": r.quantity},
        ),
    )  # fmt: skip
    _stock_give_back(reservation, consume=transition == "consume")
    log.info(f"reservation.{past}", reservation_id=reservation.pk, order_id=reservation.order_id)
    return True


@transaction.atomic
def reservation_release(*, reservation_id: int, actor: Actor | None = None) -> bool:
    """Release an active reservation: its units are available again. Releasing one that is not
    active any more (a second release) changes nothing and returns False."""
    return _end(reservation_id, "release", actor or Actor.system("stock"))


@transaction.atomic
def reservation_consume(*, reservation_id: int, actor: Actor | None = None) -> bool:
    """The units shipped: on hand and reserved both go down. Not active: a no-op (False)."""
    return _end(reservation_id, "consume", actor or Actor.system("stock"))


@transaction.atomic
def reservations_release_for_order(*, order_id: int, actor: Actor | None = None) -> int:
    """Release every active reservation of an order (it was cancelled); returns how many."""
    actor = actor or Actor.system("stock")
    # Stock rows are locked in (sku, warehouse) order, as the allocator locks them.
    ids = list(
        Reservation.objects.filter(order_id=order_id, status=ACTIVE)
        .order_by("sku", "warehouse_id", "pk")
        .values_list("pk", flat=True)
    )
    return sum(1 for rid in ids if _end(rid, "release", actor))


def release_on_cancel(order_id: int) -> None:
    """The ``cancel`` transition hook (runs inside the cancel's transaction)."""
    reservations_release_for_order(order_id=order_id, actor=Actor.system("cancel"))


def reservations_expire(*, now: datetime | None = None) -> int:
    """Expire active reservations past their expiry (except for orders being picked); returns
    how many. Each one in its own short transaction; rows another worker holds are skipped."""
    now = now or timezone.now()
    ids = list(
        Reservation.objects.filter(status=ACTIVE, expires_at__lte=now)
        .exclude(order__status__in=NOT_EXPIRABLE_STATES)
        .order_by("expires_at", "pk")
        .values_list("pk", flat=True)
    )
    actor = Actor.system("expiry")
    expired = 0
    lapsed_orders: set[int] = set()
    for rid in ids:
        with transaction.atomic():
            if _end(rid, "expire", actor, skip_locked=True, now=now):
                expired += 1
                lapsed = Reservation.objects.values_list("order_id", flat=True).get(pk=rid)
                lapsed_orders.add(lapsed)
    for order_id in sorted(lapsed_orders):
        _backorder_lapsed(order_id, actor)
    if expired:
        log.info("reservations.expired", count=expired, orders=len(lapsed_orders))
    return expired


def _backorder_lapsed(order_id: int, actor: Actor) -> None:
    """An allocated order whose stock was given back is not allocated any more: it goes back to
    ``backordered`` and competes for stock again (the backorder retry re-reserves it)."""
    with transaction.atomic():
        order = Order.objects.select_for_update(of=("self",)).filter(pk=order_id).first()
        if order is None or order.status != OrderStatus.ALLOCATED:
            return  # in review, on hold...: its next step reserves again
        try:
            order_transition(
                order_id=order_id, transition="backorder", actor=actor,
                expected_status=OrderStatus.ALLOCATED,
                data={"reason": "its stock reservations expired"},
            )  # fmt: skip
        except DomainError as exc:
            log.info("reservations.backorder_skipped", order_id=order_id, reason=exc.code)


# --- backorders --------------------------------------------------------------------------------
def backordered_order_ids_with_stock(*, limit: int = 500) -> list[int]:
    """Backordered orders (oldest first) for which enough units of every SKU are now available
    somewhere; the allocator decides for real (warehouse eligibility, one warehouse or split)."""
    order_ids = list(
        Order.objects.filter(status=OrderStatus.BACKORDERED)
        .order_by("placed_at", "pk")
        .values_list("pk", flat=True)[: limit * 4]
    )
    if not order_ids:
        return []
    need: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for oid, sku, qty in OrderLine.objects.filter(order_id__in=order_ids).values_list(
        "order_id", "sku", "quantity"
    ):
        need[oid][sku] += qty
    skus = {sku for per in need.values() for sku in per}
    available = dict(
        StockLevel.objects.filter(sku__in=skus, warehouse__is_active=True)
        .values("sku")
        .annotate(free=Sum(F("on_hand") - F("reserved")))
        .values_list("sku", "free")
    )
    ready = [
        oid for oid in order_ids
        if need.get(oid) and all(available.get(s, 0) >= q for s, q in need[oid].items())
    ]  # fmt: skip
    return ready[:limit]
