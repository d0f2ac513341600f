"""The demo's data builders: role users, warehouses and stock, customers, and orders in several
states, each made through the real services (so every transition is checked and audited). Each
builder is safe to re-run: what exists is kept. ``setup_demo`` calls them in order.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from channels.models import ChannelKind, SalesChannel
from config import correlation
from fulfillment.models import ReorderPoint, ReturnPolicy, Shipment, StockLevel, Warehouse
from fulfillment.replenishment import reorder_point_upsert, replenishment_suggestions
from fulfillment.services import stock_restock, warehouse_upsert
from fulfillment.shipments import (
    LineRequest,
    shipment_buy_label,
    shipment_create,
    shipment_ship,
    shipment_void,
    shipments_create_for_order,
)
from fulfillment.status_page import PARCEL_STATES, status_url
from orders import validation
from orders.actors import Actor
from orders.models import AccountType, Customer, Order, OrderLine
from orders.roles import ROLES
from orders.services import LineInput, OrderInput, customer_create, order_create, order_transition
from reviews.models import ReviewCase
from reviews.services import review_case_approve, review_case_start

DEMO_USERS = {
    "admin": None,  # superuser
    "cs": "customer_service",
    "reviewer": "reviewer",
    "finance": "finance",
    "ops": "ops_admin",
    "steward": "data_steward",
}
CREDENTIALS_FILE = "demo-credentials.txt"


@dataclass
class DemoOrder:
    external_id: str
    channel: str
    customer: str
    currency: str
    lines: list[tuple[str, str, int, str]]  # sku, title, quantity, unit price
    steps: list[str]  # after the pipeline: transitions, or "review:approve" by the reviewer
    before: tuple[str, ...] = ()  # payment transitions before the pipeline sees the order
    shipping: str = "5.00"
    tax: str = "0"
    discount: str = "0"
    stated_total: str | None = None  # a channel total that does not add up -> on hold
    country: str = "US"
    address: str = ""  # a key of ADDRESSES other than the country's own
    validate: bool = True
    shows: str = ""  # what the order demonstrates (printed)


PAID, AUTHORIZED, NET_TERMS = ("capture_payment",), ("authorize_payment",), ("grant_net_terms",)
APPROVE = "review:approve"
# Parcels: buy the label of every planned shipment and hand it over; SHIP_PART ships half.
SHIP, SHIP_PART = "shipments:ship", "shipments:ship_part"

DEMO_ORDERS = [
    DemoOrder("1001", "demo-webstore", "ada", "USD",
              [("TSHIRT-BLK-M", "T-shirt black M", 2, "19.99")], [],
              tax="3.20", validate=False, shows="received, its pipeline not run yet"),
    DemoOrder("1002", "demo-webstore", "ada", "USD",
              [("MUG-WHT", "Mug white", 1, "12.50"),
               ("TSHIRT-BLK-L", "T-shirt black L", 1, "19.99")],
              [], before=AUTHORIZED, discount="3.25", tax="2.35",
              shows="clean: checks pass, stock reserved, parcel planned, ERP/WMS/email queued"),
    DemoOrder("1003", "demo-webstore", "grace", "USD",
              [("HOODIE-GRY-M", "Hoodie grey M", 1, "49.00")], [],
              before=PAID, tax="4.41", shows="clean, being picked"),
    DemoOrder("1004", "demo-webstore", "grace", "EUR", [("CAP-NVY", "Cap navy", 3, "15.00")],
              [APPROVE, SHIP],
              before=PAID, tax="8.55", country="DE",
              shows="international: reviewed, approved, shipped; the carrier's scans follow"),
    DemoOrder("1005", "demo-webstore", "linus", "USD", [("MUG-WHT", "Mug white", 4, "12.50")],
              ["cancel"], before=PAID, stated_total="99.99",
              shows="totals do not add up: held, then cancelled"),
    DemoOrder("1006", "demo-webstore", "linus", "USD", [("POSTER-A2", "Poster A2", 1, "25.00")],
              [], before=PAID, stated_total="31.00", shows="totals do not add up: on hold"),
    DemoOrder("1007", "demo-webstore", "acme", "USD",
              [("TSHIRT-BLK-M", "T-shirt black M", 80, "9.50")],
              [SHIP_PART], before=NET_TERMS, shipping="40.00",
              shows="B2B on net terms within its credit limit, partly shipped"),
    DemoOrder("1008", "demo-webstore", "hiro", "JPY", [("TEA-SENCHA", "Sencha 100 g", 3, "1480")],
              [], before=PAID, shipping="800", tax="524", country="JP",
              shows="in review: international"),
    DemoOrder("1009", "demo-webstore", "ada", "USD",
              [("HOODIE-GRY-L", "Hoodie grey L", 1, "49.00")],
              [], before=PAID, tax="4.41", shows="backordered: no stock anywhere"),
    DemoOrder("1010", "demo-webstore", "fatima", "KWD", [("SCARF-SLK", "Silk scarf", 2, "12.750")],
              [APPROVE, SHIP, "refund_partially"],
              before=PAID, shipping="1.500", country="KW",
              shows="international: reviewed, shipped, partly refunded"),
    DemoOrder("1011", "demo-webstore", "acme", "USD",
              [("TSHIRT-BLK-M", "T-shirt black M", 500, "9.50")], [], shipping="60.00",
              shows="B2B over its credit limit: payment ineligible, on hold"),
    DemoOrder("1012", "demo-webstore", "grace", "USD",
              [("MUG-WHT", "Mug white", 2, "12.50")], [], before=PAID, address="US-BAD-ZIP",
              shows="address problem: the ZIP code is not valid, on hold"),
    DemoOrder("1013", "demo-webstore", "acme", "USD", [("MUG-WHT", "Mug white", 6, "12.50")],
              [], shipping="10.00",
              shows="B2B: stock reserved, waits for finance to grant net terms"),
    # Shipped today: the local carrier's scans (the tracking simulator) take them from here.
    DemoOrder("1014", "demo-webstore", "ada", "USD", [("POSTER-A2", "Poster A2", 1, "25.00")],
              [SHIP], before=PAID, tax="2.25", shows="shipped: the carrier tells the rest"),
    DemoOrder("1015", "demo-webstore", "linus", "USD", [("MUG-WHT", "Mug white", 2, "12.50")],
              [SHIP], before=PAID, tax="2.25", shows="shipped: the carrier tells the rest"),
    DemoOrder("1016", "demo-webstore", "grace", "USD",
              [("TSHIRT-BLK-L", "T-shirt black L", 1, "19.99")],
              [SHIP], before=PAID, tax="1.80", shows="shipped: the carrier tells the rest"),
    DemoOrder("1017", "demo-webstore", "ada", "USD",
              [("HOODIE-GRY-M", "Hoodie grey M", 1, "49.00")],
              [SHIP], before=PAID, tax="4.41", shows="shipped: the carrier tells the rest"),
    # Delivered, then returned (demo/returns.py).
    DemoOrder("1018", "demo-webstore", "grace", "USD",
              [("HOODIE-GRY-M", "Hoodie grey M", 1, "49.00"), ("MUG-WHT", "Mug white", 1, "12.50")],
              [SHIP], before=PAID, tax="5.54",
              shows="delivered; returned: hoodie back to stock, mug damaged, refunded"),
    DemoOrder("1019", "demo-webstore", "linus", "USD",
              [("TSHIRT-BLK-M", "T-shirt black M", 6, "19.99")],
              [SHIP], before=PAID, tax="10.79",
              shows="delivered; its return waits for customer service"),
]  # fmt: skip

# Demo stock: a US warehouse of our own and a 3PL in the Netherlands. HOODIE-GRY-L has none
# (its order is backordered until `import_stock` brings some).
DEMO_WAREHOUSES: list[dict[str, Any]] = [
    {"code": "NJ1", "name": "Newark DC", "country": "US", "region": "NJ", "kind": "own",
     "priority": 1, "ships_international": True},
    {"code": "RTM3PL", "name": "Rotterdam 3PL", "country": "NL", "kind": "3pl",
     "priority": 2, "ships_international": True},
]  # fmt: skip
DEMO_STOCK = [
    ("TSHIRT-BLK-M", "NJ1", 200), ("TSHIRT-BLK-L", "NJ1", 40), ("MUG-WHT", "NJ1", 60),
    ("HOODIE-GRY-M", "NJ1", 25), ("CAP-NVY", "RTM3PL", 50), ("CAP-NVY", "NJ1", 10),
    ("POSTER-A2", "NJ1", 30), ("TEA-SENCHA", "RTM3PL", 40), ("SCARF-SLK", "RTM3PL", 12),
]  # fmt: skip

# The shop-wide return policy customers read on their status page (edited in the admin).
DEMO_RETURN_POLICY: dict[str, Any] = {
    "name": "Standard returns",
    "window_days": 30,
    "conditions": "Unworn and unwashed, with the original tags attached. Mugs and posters in "
    "their original packaging. Final-sale items cannot be returned.",
    "how_to_start": 'Use "Start a return" below: choose the items and tell us why. Returns '
    "worth under 100.00 are accepted at once and the prepaid label comes by email; for the "
    "others we answer within one business day.",
    "auto_authorize_limit": Decimal("100.00"),
}
# The demo order whose status page link setup_demo prints: partly shipped (a parcel on its way
# and a line still in the warehouse). Any order with a parcel stands in if it is missing.
DEMO_STATUS_ORDER = "1007"

DEMO_CUSTOMERS: dict[str, dict[str, Any]] = {
    "ada": {"email": "ada@example.com", "name": "Ada Lovelace", "accepts_marketing": True},
    "grace": {"email": "grace@example.com", "name": "Grace Hopper", "accepts_marketing": True},
    "linus": {"email": "linus@example.com", "name": "Linus Example"},
    "hiro": {"email": "hiro@example.jp", "name": "Hiro Tanaka"},
    "fatima": {"email": "fatima@example.com", "name": "Fatima Al-Sabah"},
    "acme": {
        "email": "purchasing@acme.example", "name": "Acme Purchasing",
        "account_type": AccountType.BUSINESS, "company_name": "Acme Corp",
        "net_terms_days": 30, "net_terms_approved": True, "credit_limit": Decimal("5000"),
    },
}  # fmt: skip

ADDRESSES = {
    "US": {"line1": "1600 Amphitheatre Pkwy", "city": "Mountain View", "region": "CA",
           "postal_code": "94043", "country_code": "US"},
    "DE": {"line1": "Unter den Linden 77", "city": "Berlin", "postal_code": "10117",
           "country_code": "DE"},
    "JP": {"line1": "1-1 Chiyoda", "city": "Chiyoda-ku", "region": "Tokyo",
           "postal_code": "100-8111", "country_code": "JP"},
    "KW": {"line1": "Arabian Gulf St", "city": "Kuwait City", "postal_code": "15000",
           "country_code": "KW"},
    # A US ZIP code has five digits (or ZIP+4): this one fails the address rules.
    "US-BAD-ZIP": {"line1": "742 Evergreen Terrace", "city": "Springfield", "region": "OR",
                   "postal_code": "9740", "country_code": "US"},
}  # fmt: skip


def credentials_path() -> Path:
    return Path(settings.VAR_DIR) / CREDENTIALS_FILE


def users_ensure(*, reset: bool) -> dict[str, str]:
    """One staff user per role (and a superuser); returns username -> password. Passwords are
    kept in VAR_DIR (mode 600) and reused on a re-run unless ``reset``."""
    path = credentials_path()
    known: dict[str, str] = {}
    if path.exists() and not reset:
        for line in path.read_text().splitlines():
            name, _, kept = line.partition(" ")
            known[name] = kept
    user_model = get_user_model()
    for username, role in DEMO_USERS.items():
        user = user_model.objects.filter(username=username).first()
        password = known.get(username)
        if user is None or password is None or not user.check_password(password):
            password = secrets.token_urlsafe(12)
            if user is None:
                user = user_model(username=username, email=f"{username}@demo.invalid")
            user.set_password(password)
        user.is_staff = True
        user.is_superuser = role is None
        user.save()
        if role:
            user.groups.set([Group.objects.get(name=role)])
        known[username] = password
    path.write_text("".join(f"{u} {known[u]}\n" for u in DEMO_USERS))
    path.chmod(0o600)
    assert set(ROLES) == {r for r in DEMO_USERS.values() if r}
    return known


def stock_ensure() -> None:
    """Warehouses and opening stock, set once: a re-run never resets counted stock."""
    for spec in DEMO_WAREHOUSES:
        if not Warehouse.objects.filter(code=spec["code"]).exists():
            warehouse_upsert(**spec)
    for sku, code, on_hand in DEMO_STOCK:
        if not StockLevel.objects.filter(sku=sku, warehouse__code=code).exists():
            stock_restock(sku=sku, warehouse_code=code, on_hand=on_hand)


# A reorder point by hand on a SKU whose stock runs low (25 hoodies, one of them reserved by
# order 1003): the replenishment screen shows it from the first run.
DEMO_REORDER_POINTS: list[dict[str, Any]] = [
    {"sku": "HOODIE-GRY-M", "warehouse_code": "NJ1", "reorder_point": 30, "lead_time_days": 14,
     "safety_days": 7, "order_up_to": 60, "min_order_qty": 12,
     "notes": "Demo: the supplier ships in dozens, two weeks after the order."},
]  # fmt: skip


def reorder_points_ensure() -> str:
    """The demo's reorder points, set once (a person's later edit is kept); one line saying
    what the replenishment screen suggests now."""
    for spec in DEMO_REORDER_POINTS:
        known = ReorderPoint.objects.filter(sku=spec["sku"], warehouse__code=spec["warehouse_code"])
        if not known.exists():
            reorder_point_upsert(**spec)
    suggestions = replenishment_suggestions()
    if not suggestions:
        return "Replenishment: nothing to reorder."
    first = suggestions[0]
    return (
        f"Replenishment: {len(suggestions)} suggestion(s), e.g. {first.sku} at {first.warehouse}: "
        f"available {first.available} <= reorder point {first.reorder_point}, order "
        f"{first.suggested_quantity} (/admin/fulfillment/reorderpoint/suggestions/)"
    )


def return_policy_ensure() -> ReturnPolicy:
    """The shop-wide return policy, unless the shop already has one (kept as edited)."""
    existing = ReturnPolicy.objects.filter(channel__isnull=True).order_by("pk").first()
    return existing or ReturnPolicy.objects.create(**DEMO_RETURN_POLICY)


def status_link_example() -> tuple[str, str] | None:
    """(external id, status page link) of a demo order with a parcel on its way, for people
    to open as its customer would."""
    shipped = Order.objects.filter(
        channel__slug="demo-webstore", shipments__status__in=PARCEL_STATES
    ).distinct()
    order = shipped.filter(external_id=DEMO_STATUS_ORDER).first() or shipped.order_by("pk").first()
    return (order.external_id, status_url(order)) if order is not None else None


def webstore_channel_ensure() -> dict[str, SalesChannel]:
    channel, _ = SalesChannel.objects.get_or_create(
        slug="demo-webstore",
        defaults={"kind": ChannelKind.CUSTOM, "name": "Demo web storefront"},
    )
    return {channel.slug: channel}


def customers_ensure() -> dict[str, Customer]:
    result = {}
    for key, spec in DEMO_CUSTOMERS.items():
        existing = Customer.objects.filter(email=spec["email"]).first()
        result[key] = existing or customer_create(**spec)
    return result


def orders_create(
    channels: dict[str, SalesChannel],
    customers: dict[str, Customer],
    *,
    write: Callable[[str], None],
) -> int:
    """Create the DEMO_ORDERS not created yet and walk each through its steps; one line per new
    order to ``write``. Returns how many were created."""
    created = 0
    now = timezone.now()
    actor = Actor.system("setup_demo")
    reviewer = Actor.for_user(get_user_model().objects.get(username="reviewer"))
    for i, spec in enumerate(DEMO_ORDERS):
        channel = channels[spec.channel]
        if Order.objects.filter(channel=channel, external_id=spec.external_id).exists():
            continue
        cid = correlation.sign(f"demo:{spec.channel}:{spec.external_id}")
        address = ADDRESSES[spec.address or spec.country]
        with correlation.bound(cid), transaction.atomic():
            order = order_create(
                data=OrderInput(
                    channel_id=channel.pk,
                    external_id=spec.external_id,
                    currency=spec.currency,
                    customer_id=customers[spec.customer].pk,
                    lines=[
                        LineInput(sku=sku, title=title, quantity=qty, unit_price=Decimal(price))
                        for sku, title, qty, price in spec.lines
                    ],
                    placed_at=now - timedelta(hours=len(DEMO_ORDERS) - i),
                    shipping_total=Decimal(spec.shipping),
                    tax_total=Decimal(spec.tax),
                    discount_total=Decimal(spec.discount),
                    total=Decimal(spec.stated_total) if spec.stated_total else None,
                    shipping_address=address,
                    billing_address=address,
                    payment_method="net_terms" if spec.customer == "acme" else "card",
                    correlation_id=cid,
                ),
                actor=actor,
            )
            for step in spec.before:
                order_transition(order_id=order.pk, transition=step, actor=actor)
        created += 1
        with correlation.bound(cid):
            if spec.validate:
                # What the after-commit task does; run here so the steps below see its result.
                validation.order_validate(order_id=order.pk)
            for step in spec.steps:
                if step == APPROVE:
                    case = ReviewCase.objects.unresolved().get(order_id=order.pk)
                    review_case_start(case_id=case.pk, actor=reviewer)
                    review_case_approve(
                        case_id=case.pk, actor=reviewer, note="Known customer (demo)"
                    )
                    validation.order_allocate(order_id=order.pk)
                    continue
                if step in (SHIP, SHIP_PART):
                    _ship(order.pk, actor, part=step == SHIP_PART)
                    continue
                extra: dict[str, Any] = {}
                if step == "cancel":
                    extra["reason"] = "Customer asked to cancel"
                if step == "refund_partially":
                    extra["amount"] = "12.750"
                order_transition(order_id=order.pk, transition=step, actor=actor, **extra)
        order.refresh_from_db()
        write(
            f"  order {spec.external_id:<5} {order.status:<18} {order.payment_status:<19} "
            f"{spec.shows}"
        )
    return created


def _ship(order_id: int, actor: Actor, *, part: bool) -> None:
    """What the warehouse does: label, then hand over (half of it for a partial one)."""
    if part:
        for draft in Shipment.objects.filter(
            order_id=order_id, status__in=["draft", "label_purchased"]
        ):
            shipment_void(shipment_id=draft.pk, actor=actor)
        line = OrderLine.objects.filter(order_id=order_id).order_by("line_no").first()
        assert line is not None  # every demo order has lines
        shipments = [
            shipment_create(order_id=order_id, actor=actor,
                            lines=[LineRequest(line.pk, max(1, line.quantity // 2))])
        ]  # fmt: skip
    else:
        shipments_create_for_order(order_id=order_id, actor=actor)
        shipments = list(
            Shipment.objects.filter(order_id=order_id, status__in=["draft", "label_purchased"])
        )
    for shipment in shipments:
        shipment_buy_label(shipment_id=shipment.pk, actor=actor)
        shipment_ship(shipment_id=shipment.pk, actor=actor)


def carrier_scans_play(*, write: Callable[[str], None]) -> None:
    """The local carrier's scans of the parcels shipped above (its tracking simulator, one scan
    every ``LOCAL_CARRIER_TRACKING_STEP_SECONDS``: the demo runs it at 2 s): wait until the
    simulator's clock has passed the normal delivery (3 steps) but not a failed attempt's
    outcome (4 steps), then poll each parcel once through the polling fallback, as beat would.
    The parcels come out delivered (their order follows), in transit, or with a delivery
    exception and its incident."""
    from fulfillment.models import ShipmentStatus
    from fulfillment.tracking_poll import shipment_track_poll

    parcels = list(
        Shipment.objects.filter(status=ShipmentStatus.SHIPPED, carrier="local",
                                order__channel__slug="demo-webstore")
        .order_by("pk").values_list("pk", "shipped_at")
    )  # fmt: skip
    if not parcels:
        return
    step = float(settings.LOCAL_CARRIER_TRACKING_STEP_SECONDS)
    last = max(shipped for _pk, shipped in parcels if shipped is not None)
    wait = (last + timedelta(seconds=3.25 * step) - timezone.now()).total_seconds()
    if 0 < wait <= 30:
        write(f"Carrier scans: waiting {wait:.0f} s for the local carrier's simulator...")
        time.sleep(wait)
    for pk, _shipped in parcels:
        shipment_track_poll(shipment_id=pk)
    by_state: dict[str, list[str]] = {}
    for state, number in (
        Shipment.objects.filter(pk__in=[pk for pk, _ in parcels])
        .order_by("order__external_id", "pk")
        .values_list("status", "order__external_id")
    ):
        by_state.setdefault(state, []).append(number)
    delivered = Order.objects.filter(channel__slug="demo-webstore", status="delivered").count()
    write(
        "Carrier scans (local carrier simulator): "
        + "; ".join(
            f"{state}: order(s) {', '.join(nums)}" for state, nums in sorted(by_state.items())
        )
        + f". {delivered} order(s) delivered by the carrier; a parcel with a problem is a "
        "delivery_exception incident (/admin/orders/incident/)."
    )
