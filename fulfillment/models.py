"""Warehouses, stock per (SKU, warehouse) and the reservations that hold it for order lines.

Models hold data and legal moves only. Stock quantities change only through conditional
``UPDATE``s in ``fulfillment.services`` (never read-modify-write), backed by the CHECK
constraints below, so no interleaving of workers can reserve more than is on hand.
"""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django_fsm import FSMField, transition

from fulfillment.carriers.base import TRACKING_STATUSES
from orders.models import FSMRowMixin


def validate_time_zone(value: str) -> None:
    """An IANA zone name zoneinfo knows (``Europe/Berlin``), so the same-day KPI can place a
    warehouse's cut-off on its own local clock."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(
            f"{value!r} is not an IANA time zone name (e.g. America/New_York)"
        ) from exc


def default_time_zone() -> str:
    return settings.TIME_ZONE


class WarehouseKind(models.TextChoices):
    OWN = "own", "Own warehouse"
    THIRD_PARTY = "3pl", "Third-party logistics (3PL)"


class Warehouse(models.Model):
    """A place stock ships from. Allocation prefers the closest one, then the lowest priority."""

    code = models.CharField(max_length=32, unique=True, help_text="Short stable code, e.g. NJ1.")
    name = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2")
    region = models.CharField(
        max_length=32, blank=True,
        help_text="Free text used for proximity: a subdivision (US-CA) or an area (EU).",
    )  # fmt: skip
    kind = models.CharField(max_length=8, choices=WarehouseKind.choices, default=WarehouseKind.OWN)
    priority = models.IntegerField(
        default=100, help_text="Among equally close warehouses, the lower number ships first."
    )
    ships_international = models.BooleanField(
        default=True, help_text="May ship to countries other than its own."
    )
    is_active = models.BooleanField(default=True, help_text="Inactive: never allocated from.")
    cutoff_time = models.TimeField(
        default=time(14, 0),
        help_text="Local time after which an order received ships the next day (same-day KPI).",
    )
    time_zone = models.CharField(
        max_length=64, default=default_time_zone, validators=[validate_time_zone],
        help_text="IANA time zone of the warehouse's clock, e.g. America/New_York.",
    )  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "code"]

    def __str__(self) -> str:
        return self.code

    def can_ship_to(self, country: str) -> bool:
        """Active, and either international or the destination is its own country."""
        return self.is_active and (
            self.ships_international or not country or country == self.country
        )


class StockLevel(models.Model):
    """How many units of a SKU a warehouse holds (``on_hand``) and how many of them are promised
    to orders (``reserved``).

    ``sku`` is our catalogue SKU as a string, not a foreign key to ``orders.Product``: stock
    files often arrive before the catalogue does, order lines carry the same string, and
    fulfillment stays independent of the catalogue's import timing.
    """

    sku = models.CharField(max_length=100, db_index=True)
    warehouse = models.ForeignKey(Warehouse, on_delete=models.PROTECT, related_name="stock_levels")
    on_hand = models.IntegerField(default=0)
    reserved = models.IntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku", "warehouse__code"]
        constraints = [
            models.UniqueConstraint(fields=["sku", "warehouse"], name="stock_level_unique"),
            models.CheckConstraint(
                condition=Q(on_hand__gte=0), name="stock_level_on_hand_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(reserved__gte=0), name="stock_level_reserved_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(reserved__lte=F("on_hand")), name="stock_level_reserved_within_on_hand"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} @ {self.warehouse_id}"

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class ReservationStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    CONSUMED = "consumed", "Consumed (shipped)"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Expired"


R = ReservationStatus


class Reservation(FSMRowMixin, models.Model):
    """Units of one order line held in one warehouse. Only ``active`` ones count as reserved."""

    # FSMRowMixin: ConcurrentTransitionMixin, thread-safe refresh_from_db of a protected field,
    # and makes save() refuse a transition another process applied first.

    order = models.ForeignKey(
        "orders.Order", on_delete=models.PROTECT, related_name="reservations",
        help_text="The line's order (denormalized for queries).",
    )  # fmt: skip
    order_line = models.ForeignKey(
        "orders.OrderLine", on_delete=models.PROTECT, related_name="reservations"
    )
    warehouse = models.ForeignKey(Warehouse, on_delete=models.PROTECT, related_name="reservations")
    sku = models.CharField(max_length=100, db_index=True)
    quantity = models.IntegerField()
    status = FSMField(
        max_length=16, choices=ReservationStatus.choices, default=R.ACTIVE, protected=True,
        db_index=True,
    )  # fmt: skip
    expires_at = models.DateTimeField(db_index=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    released_at = models.DateTimeField(
        null=True, blank=True, help_text="When it stopped holding stock (released or expired)."
    )
    consumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="reservation_quantity_positive"
            ),
            # A re-run tops up the active reservation instead of adding a second one.
            models.UniqueConstraint(
                fields=["order_line", "warehouse"],
                condition=Q(status="active"),
                name="reservation_one_active_per_line_and_warehouse",
            ),
        ]
        indexes = [models.Index(fields=["order", "status"])]

    def __str__(self) -> str:
        return f"Reservation #{self.pk} ({self.sku} x {self.quantity}, {self.status})"

    @transition(field=status, source=R.ACTIVE, target=R.CONSUMED)
    def consume(self) -> None:
        """The units left the warehouse: on hand and reserved both go down."""
        self.consumed_at = timezone.now()

    @transition(field=status, source=R.ACTIVE, target=R.RELEASED)
    def release(self) -> None:
        """The units are free again (order cancelled, or a person released them)."""
        self.released_at = timezone.now()

    @transition(field=status, source=R.ACTIVE, target=R.EXPIRED)
    def expire(self) -> None:
        """Held too long without the order moving on: the units are free again."""
        self.released_at = timezone.now()


# --- routing -----------------------------------------------------------------------------------
class RoutingRule(models.Model):
    """A business rule: when every condition holds, its actions decide how the order ships.

    ``conditions`` and ``actions`` are structured data validated by the JSON Schema
    ``fulfillment/schemas/routing_rule.v1.json``; rules are tried by ascending priority and the
    first match wins (``actions.continue`` lets a rule add flags and let later rules decide the
    rest).
    """

    name = models.CharField(max_length=120, unique=True)
    priority = models.IntegerField(default=100, help_text="Lower runs first.")
    is_active = models.BooleanField(default=True)
    description = models.TextField(blank=True)
    conditions = models.JSONField(default=dict, blank=True)
    actions = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "id"]

    def __str__(self) -> str:
        return f"{self.name} (priority {self.priority})"


class RoutingDecision(models.Model):
    """What routing decided for an order, with the explanation of which rules matched."""

    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT,
                              related_name="routing_decisions")  # fmt: skip
    rule = models.ForeignKey(RoutingRule, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="decisions")  # fmt: skip
    actions = models.JSONField(default=dict, help_text="The merged actions that apply.")
    explanation = models.JSONField(default=list, help_text="Each rule tried and why it matched.")
    decided_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-decided_at", "-id"]
        get_latest_by = "decided_at"
        # An order's latest decision (routing, labels) without walking every order's decisions.
        indexes = [models.Index(fields=["order", "decided_at"])]

    def __str__(self) -> str:
        return f"Routing of order {self.order_id} ({self.rule or 'defaults'})"


# --- shipments ---------------------------------------------------------------------------------
class ShipmentStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    LABEL_PURCHASED = "label_purchased", "Label purchased"
    SHIPPED = "shipped", "Shipped"
    IN_TRANSIT = "in_transit", "In transit"
    DELIVERED = "delivered", "Delivered"
    EXCEPTION = "exception", "Exception"
    RETURNED = "returned", "Returned"
    VOIDED = "voided", "Voided"


SH = ShipmentStatus


class Shipment(FSMRowMixin, models.Model):
    """One parcel (or pallet) from one warehouse: some of an order's lines, one label."""

    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="shipments")
    warehouse = models.ForeignKey(Warehouse, on_delete=models.PROTECT, related_name="shipments")
    status = FSMField(max_length=20, choices=ShipmentStatus.choices, default=SH.DRAFT,
                      protected=True, db_index=True)  # fmt: skip
    carrier = models.CharField(max_length=40, blank=True, help_text="Carrier code, e.g. local.")
    service_level = models.CharField(max_length=40, blank=True)
    carrier_shipment_id = models.CharField(max_length=120, blank=True)
    tracking_number = models.CharField(max_length=64, blank=True, db_index=True)
    tracking_url = models.URLField(max_length=500, blank=True)
    rate_amount = models.DecimalField(max_digits=19, decimal_places=4, null=True, blank=True)
    rate_currency = models.CharField(max_length=3, blank=True)
    label_pdf = models.BinaryField(null=True, blank=True, editable=False)
    label_zpl = models.TextField(blank=True, editable=False)
    flags = models.JSONField(default=dict, blank=True,
                             help_text="signature_required, customs data...")  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    shipped_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # --- tracking (fulfillment.tracking): the carrier's latest word, kept next to our state ---
    tracking_status = models.CharField(
        max_length=24, choices=TRACKING_STATUSES, blank=True,
        help_text="Our tracking status of the carrier's latest event (the timeline has all).",
    )  # fmt: skip
    carrier_status = models.CharField(
        max_length=64, blank=True, help_text="The carrier's own latest status and sub-status."
    )
    carrier_name = models.CharField(
        max_length=64, blank=True, help_text="The company delivering it, when the carrier says."
    )
    estimated_delivery_from = models.DateTimeField(null=True, blank=True)
    estimated_delivery_until = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField(
        null=True, blank=True, help_text="Time of the newest carrier event (the carrier's clock)."
    )
    last_tracked_at = models.DateTimeField(
        null=True, blank=True, db_index=True,
        help_text="When we last heard from the carrier (webhook or poll): polling asks for "
        "shipments that have been quiet for too long.",
    )  # fmt: skip
    channel_ref = models.CharField(
        max_length=120, blank=True,
        help_text="The sales channel's id for this parcel (Shopify fulfillment, BigCommerce "
        "shipment...), set by the first tracking write-back.",
    )  # fmt: skip

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "last_tracked_at"]),
            # An order's shipments in a state (its drafts to label): not every draft's.
            models.Index(fields=["order", "status"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["carrier", "tracking_number"], condition=~Q(tracking_number=""),
                name="shipment_tracking_unique_per_carrier",
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"Shipment #{self.pk} ({self.status})"

    @transition(field=status, source=SH.DRAFT, target=SH.LABEL_PURCHASED)
    def purchase_label(self) -> None:
        """The carrier sold us a label: tracking number and label are set by the service."""

    @transition(field=status, source=SH.LABEL_PURCHASED, target=SH.SHIPPED)
    def ship(self) -> None:
        """Handed to the carrier: the reservations of its lines are consumed."""
        self.shipped_at = timezone.now()

    @transition(field=status, source=[SH.SHIPPED, SH.EXCEPTION], target=SH.IN_TRANSIT)
    def mark_in_transit(self) -> None:
        """The carrier scanned it."""

    @transition(field=status, source=[SH.SHIPPED, SH.IN_TRANSIT, SH.EXCEPTION],
                target=SH.DELIVERED)  # fmt: skip
    def deliver(self) -> None:
        self.delivered_at = timezone.now()

    @transition(field=status, source=[SH.SHIPPED, SH.IN_TRANSIT], target=SH.EXCEPTION)
    def report_exception(self) -> None:
        """Delayed, damaged, address problem: a person looks."""

    @transition(field=status, source=[SH.SHIPPED, SH.IN_TRANSIT, SH.EXCEPTION, SH.DELIVERED],
                target=SH.RETURNED)  # fmt: skip
    def mark_returned(self) -> None:
        """Came back to us."""

    @transition(field=status, source=[SH.DRAFT, SH.LABEL_PURCHASED], target=SH.VOIDED)
    def void(self) -> None:
        """Cancelled before it left: the label (if any) is refunded; nothing was consumed."""


class TrackingSource(models.TextChoices):
    WAREHOUSE = "warehouse", "Warehouse (handed to the carrier)"
    WEBHOOK = "webhook", "Carrier webhook"
    POLL = "poll", "Carrier tracking poll"
    PERSON = "person", "A person"


class TrackingEvent(models.Model):
    """One carrier event of one parcel, kept whether or not it changed anything.

    ``dedup_key`` (carrier, tracking number, carrier status, sub-status, time, message) makes a
    repeated webhook or poll a no-op. ``effect`` says what it did to the shipment in words
    (``advanced shipped -> in_transit``, ``ignored: the parcel is already delivered``).
    """

    shipment = models.ForeignKey(Shipment, on_delete=models.CASCADE,
                                 related_name="tracking_events")  # fmt: skip
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT,
                              related_name="tracking_events")  # fmt: skip
    source = models.CharField(max_length=16, choices=TrackingSource.choices)
    carrier = models.CharField(max_length=40)
    status = models.CharField(max_length=24, choices=TRACKING_STATUSES, db_index=True)
    carrier_status = models.CharField(max_length=64, blank=True)
    carrier_detail = models.CharField(max_length=64, blank=True, help_text="Sub-status.")
    raw_status = models.CharField(max_length=120, blank=True, help_text="The carrier's code.")
    message = models.CharField(max_length=500, blank=True)
    location = models.CharField(max_length=200, blank=True, help_text="A facility's city.")
    occurred_at = models.DateTimeField(db_index=True, help_text="The carrier's time of it.")
    estimated_delivery_from = models.DateTimeField(null=True, blank=True)
    estimated_delivery_until = models.DateTimeField(null=True, blank=True)
    dedup_key = models.CharField(max_length=64, unique=True)
    applied = models.BooleanField(default=False, help_text="It moved the shipment on.")
    effect = models.CharField(max_length=200, blank=True)
    inbound = models.ForeignKey(
        "CarrierInboundEvent", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="tracking_events", help_text="The carrier webhook that brought it.",
    )  # fmt: skip
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["occurred_at", "id"]
        indexes = [models.Index(fields=["shipment", "occurred_at"])]

    def __str__(self) -> str:
        return f"{self.status} at {self.occurred_at:%Y-%m-%d %H:%M} (shipment {self.shipment_id})"


class CarrierInboundStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    DUPLICATE = "duplicate", "Duplicate"
    QUARANTINED = "quarantined", "Quarantined"
    REPLAYED = "replayed", "Replayed"


class CarrierInboundEvent(FSMRowMixin, models.Model):
    """The carriers' inbox: a signed carrier webhook (EasyPost ``tracker.updated``) kept raw
    under a unique dedup key before it is processed, so nothing is lost and a repeat is a
    no-op. One that cannot be processed is quarantined with its errors and can be replayed."""

    carrier = models.CharField(max_length=40)
    dedup_key = models.CharField(max_length=200, unique=True)
    topic = models.CharField(max_length=100, blank=True)
    body = models.BinaryField(editable=False)
    # Read from the body when it is stored (admin search, privacy), before it is processed.
    tracking_number = models.CharField(max_length=100, blank=True, db_index=True)
    shipment = models.ForeignKey(
        Shipment, null=True, blank=True, on_delete=models.SET_NULL, related_name="carrier_events",
        help_text="The parcel it was about, once processing found it.",
    )  # fmt: skip
    duplicate_deliveries = models.PositiveIntegerField(default=0)
    last_delivery_at = models.DateTimeField(null=True, blank=True)
    status = FSMField(max_length=16, choices=CarrierInboundStatus.choices,
                      default=CarrierInboundStatus.RECEIVED, protected=True,
                      db_index=True)  # fmt: skip
    errors = models.JSONField(default=list, blank=True)
    outcome = models.CharField(
        max_length=200, blank=True, help_text="What processing did, in words."
    )
    attempts = models.PositiveIntegerField(default=0)
    correlation_id = models.CharField(max_length=64, blank=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    processed_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was last processed or quarantined."
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        permissions = [
            ("replay_carrierinboundevent", "Can replay a quarantined carrier event"),
            ("view_raw_carrier_payload", "Can view raw carrier webhook bodies"),
        ]

    def __str__(self) -> str:
        return f"{self.carrier} event #{self.pk} ({self.status})"

    @transition(field=status, source=[CarrierInboundStatus.RECEIVED,
                                      CarrierInboundStatus.REPLAYED],
                target=CarrierInboundStatus.PROCESSED)  # fmt: skip
    def mark_processed(self) -> None:
        self.processed_at = timezone.now()
        self.errors = []

    @transition(field=status, source=[CarrierInboundStatus.RECEIVED,
                                      CarrierInboundStatus.REPLAYED],
                target=CarrierInboundStatus.QUARANTINED)  # fmt: skip
    def quarantine(self, *, errors: list[dict[str, str]]) -> None:
        self.errors = errors

    @transition(field=status, source=CarrierInboundStatus.QUARANTINED,
                target=CarrierInboundStatus.REPLAYED)  # fmt: skip
    def replay(self) -> None:
        """A person fixed what was wrong (a missing shipment, a setting): process it again."""


class RefundShipping(models.TextChoices):
    NEVER = "never", "Never"
    MERCHANT_FAULT = "merchant_fault", "When the fault is ours (damaged, defective, wrong item...)"
    ALWAYS = "always", "Always"


class RefundTrigger(models.TextChoices):
    RECEIPT = "receipt", "When the warehouse receives it"
    PICKUP = "pickup", "When the carrier picks it up"


class ReturnPolicy(models.Model):
    """The merchant's return policy, shown on the customer's order status page and used to
    close orders whose return window has passed. The active one with the highest priority
    applies (one policy for the whole shop, unless a channel has its own)."""

    name = models.CharField(max_length=100)
    is_active = models.BooleanField(default=True)
    channel = models.ForeignKey(
        "channels.SalesChannel", null=True, blank=True, on_delete=models.CASCADE,
        related_name="return_policies", help_text="Empty: every channel without its own.",
    )  # fmt: skip
    window_days = models.PositiveIntegerField(
        default=30, help_text="Days after delivery a return may be started."
    )
    conditions = models.TextField(
        blank=True, help_text="What may be returned and in what state (shown to customers)."
    )
    how_to_start = models.TextField(
        blank=True, help_text="How a customer starts a return (shown to customers)."
    )
    excluded_reasons = models.JSONField(
        default=list, blank=True, help_text="Return reasons this policy does not accept."
    )
    auto_authorize_limit = models.DecimalField(
        max_digits=19, decimal_places=4, null=True, blank=True,
        help_text="Returns worth less than this are authorized without a person (empty: never).",
    )  # fmt: skip
    restocking_fee_percent = models.DecimalField(
        max_digits=5, decimal_places=2, default=Decimal("0"),
        help_text="Kept back from the goods' refund for returns the customer caused "
        "(changed mind, size or fit, other); never for damaged, defective or wrong items.",
    )  # fmt: skip
    refund_shipping = models.CharField(
        max_length=16, choices=RefundShipping.choices, default=RefundShipping.MERCHANT_FAULT,
        help_text="When the original shipping is refunded with a return.",
    )  # fmt: skip
    refund_trigger = models.CharField(
        max_length=16, choices=RefundTrigger.choices, default=RefundTrigger.RECEIPT,
        help_text="Refund when the warehouse receives the return, or as soon as the carrier "
        "picks it up.",
    )  # fmt: skip
    label_carrier = models.CharField(
        max_length=40, blank=True,
        help_text="Carrier code for return labels (empty: the carrier that shipped the order).",
    )  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-is_active", "name"]
        verbose_name_plural = "return policies"

    def __str__(self) -> str:
        return f"{self.name} ({self.window_days} days)"


class ShipmentLine(models.Model):
    shipment = models.ForeignKey(Shipment, on_delete=models.CASCADE, related_name="lines")
    order_line = models.ForeignKey("orders.OrderLine", on_delete=models.PROTECT,
                                   related_name="shipment_lines")  # fmt: skip
    reservation = models.ForeignKey(Reservation, null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="shipment_lines")  # fmt: skip
    sku = models.CharField(max_length=100)
    quantity = models.IntegerField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="shipment_line_quantity_positive"
            ),  # fmt: skip
        ]

    def __str__(self) -> str:
        return f"{self.sku} x {self.quantity}"


# --- outbox ------------------------------------------------------------------------------------
class ActionKind(models.TextChoices):
    ERP_POST = "erp_post", "Post to ERP"
    WMS_TASK = "wms_task", "Task the warehouse / 3PL"
    NOTIFY_CUSTOMER = "notify_customer", "Notify the customer"
    LABEL_PURCHASE = "label_purchase", "Buy a shipping label"
    CHANNEL_TRACKING_SYNC = "channel_tracking_sync", "Send tracking to the channel"
    CRM_UPDATE = "crm_update", "Update the CRM"
    CHANNEL_REFUND = "channel_refund", "Send a refund to the channel"
    ERP_CREDIT_NOTE = "erp_credit_note", "Post a credit note to the ERP"
    RETURN_LABEL = "return_label", "Buy a return label"


class ActionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    IN_FLIGHT = "in_flight", "In flight"
    RETRY_SCHEDULED = "retry_scheduled", "Retry scheduled"
    SUCCEEDED = "succeeded", "Succeeded"
    DEAD = "dead", "Dead (a person must look)"


A = ActionStatus


class OutboundAction(FSMRowMixin, models.Model):
    """One side effect on a downstream system, written in the same transaction as the state
    change that causes it and dispatched after commit (the transactional outbox).

    The idempotency key is unique per (order, kind, target, version) and is sent downstream, so
    a retry after an ambiguous failure finds the first result instead of making a second.
    """

    order = models.ForeignKey("orders.Order", null=True, blank=True, on_delete=models.PROTECT,
                              related_name="outbound_actions")  # fmt: skip
    kind = models.CharField(max_length=32, choices=ActionKind.choices, db_index=True)
    target = models.CharField(max_length=60, help_text="Downstream system, e.g. netsuite.")
    version = models.PositiveIntegerField(
        default=1, help_text="Bumped when the same effect is due again."
    )
    idempotency_key = models.CharField(max_length=200, unique=True)
    lane = models.CharField(max_length=40, default="sync", help_text="Celery queue.")
    payload = models.JSONField(default=dict, blank=True)
    status = FSMField(max_length=20, choices=ActionStatus.choices, default=A.PENDING,
                      protected=True, db_index=True)  # fmt: skip
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=8)
    next_attempt_at = models.DateTimeField(default=timezone.now, db_index=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True, help_text="What the target answered.")
    correlation_id = models.CharField(max_length=64, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["order", "kind", "target", "version"],
                name="outbound_action_once_per_version",
            ),  # fmt: skip
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            # A lane's due actions, oldest first (a dispatch batch), not every lane's.
            models.Index(fields=["lane", "status", "next_attempt_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind} -> {self.target} #{self.pk} ({self.status})"

    @transition(field=status, source=[A.PENDING, A.RETRY_SCHEDULED], target=A.IN_FLIGHT)
    def start(self) -> None:
        """Leased by a worker: attempts counts it before anything is sent."""
        self.attempts += 1

    @transition(field=status, source=A.IN_FLIGHT, target=A.SUCCEEDED)
    def succeed(self) -> None:
        self.completed_at = timezone.now()
        self.lease_expires_at = None
        self.last_error = ""

    @transition(field=status, source=A.IN_FLIGHT, target=A.RETRY_SCHEDULED)
    def schedule_retry(self) -> None:
        self.lease_expires_at = None

    @transition(field=status, source=A.IN_FLIGHT, target=A.DEAD)
    def give_up(self) -> None:
        """The last attempt failed (or the error cannot be retried): a person decides."""
        self.lease_expires_at = None

    @transition(field=status, source=A.DEAD, target=A.PENDING)
    def revive(self) -> None:
        """One click: try again from the start of the retry policy."""
        self.attempts = 0
        self.next_attempt_at = timezone.now()


class CircuitState(models.TextChoices):
    CLOSED = "closed", "Closed (calls go through)"
    OPEN = "open", "Open (calls wait)"
    HALF_OPEN = "half_open", "Half-open (one trial call)"


class CircuitBreaker(models.Model):
    """Per downstream system: after repeated failures, calls wait instead of hammering it."""

    target = models.CharField(max_length=60, unique=True)
    state = models.CharField(max_length=12, choices=CircuitState.choices,
                             default=CircuitState.CLOSED)  # fmt: skip
    consecutive_failures = models.PositiveIntegerField(default=0)
    opened_at = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.target}: {self.state}"


class PickTaskStatus(models.TextChoices):
    OPEN = "open", "Open"
    PICKED = "picked", "Picked"
    PACKED = "packed", "Packed"
    CANCELLED = "cancelled", "Cancelled"


class PickTask(models.Model):
    """The built-in local WMS: a pick list for one warehouse, created once per idempotency key."""

    idempotency_key = models.CharField(max_length=200, unique=True)
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="pick_tasks")
    warehouse = models.ForeignKey(Warehouse, on_delete=models.PROTECT, related_name="pick_tasks")
    lines = models.JSONField(default=list, help_text='[{"sku": ..., "quantity": ...}]')
    status = models.CharField(max_length=12, choices=PickTaskStatus.choices,
                              default=PickTaskStatus.OPEN, db_index=True)  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Pick task #{self.pk} ({self.status})"


# --- replenishment (fulfillment.replenishment) -------------------------------------------------
class ReorderPoint(models.Model):
    """When to reorder a SKU in a warehouse: a reorder point set by hand, or (left empty)
    computed from the trailing sales velocity times lead time plus safety days. The suggestion
    list (``fulfillment.replenishment``) reads these with the stock as it is now."""

    sku = models.CharField(max_length=100, db_index=True)
    warehouse = models.ForeignKey(Warehouse, on_delete=models.CASCADE,
                                  related_name="reorder_points")  # fmt: skip
    reorder_point = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Reorder when available (on hand - reserved) is at or below this. Empty: "
        "computed as ceil(velocity x (lead time + safety days)).",
    )  # fmt: skip
    lead_time_days = models.PositiveIntegerField(
        default=7, help_text="Days from placing a purchase order to the units being on hand."
    )
    safety_days = models.PositiveIntegerField(
        default=3, help_text="Extra days of demand kept as a buffer against late or big orders."
    )
    order_up_to = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Suggest enough to bring available up to this (empty: the reorder point plus "
        "one lead time of demand).",
    )  # fmt: skip
    min_order_qty = models.PositiveIntegerField(
        default=1, help_text="The supplier's minimum order quantity (a suggestion is never less)."
    )
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku", "warehouse__code"]
        constraints = [
            models.UniqueConstraint(fields=["sku", "warehouse"], name="reorder_point_unique"),
            models.CheckConstraint(
                condition=Q(min_order_qty__gte=1), name="reorder_point_min_order_qty_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"Reorder {self.sku} @ {self.warehouse_id}"

    def clean(self) -> None:
        point, up_to = self.reorder_point, self.order_up_to
        if point is not None and up_to is not None and up_to <= point:
            raise ValidationError(
                {"order_up_to": f"Must be above the reorder point ({point}), or empty."}
            )


# --- returns (fulfillment.returns) -------------------------------------------------------------
class ReturnReason(models.TextChoices):
    """One taxonomy for every return, whoever starts it."""

    DAMAGED = "damaged", "Arrived damaged"
    DEFECTIVE = "defective", "Defective"
    WRONG_ITEM = "wrong_item", "Wrong item sent"
    NOT_AS_DESCRIBED = "not_as_described", "Not as described"
    SIZE_OR_FIT = "size_or_fit", "Size or fit"
    CHANGED_MIND = "changed_mind", "Changed my mind"
    LATE_DELIVERY = "late_delivery", "Arrived too late"
    OTHER = "other", "Other"


# Reasons where the fault is ours: no restocking fee, the shipping goes back by default.
MERCHANT_FAULT_REASONS = frozenset({
    ReturnReason.DAMAGED, ReturnReason.DEFECTIVE, ReturnReason.WRONG_ITEM,
    ReturnReason.NOT_AS_DESCRIBED, ReturnReason.LATE_DELIVERY,
})  # fmt: skip


class ReturnStatus(models.TextChoices):
    REQUESTED = "requested", "Requested (waiting for customer service)"
    AUTHORIZED = "authorized", "Authorized"
    RECEIVED = "received", "Received"
    REFUNDED = "refunded", "Refunded"
    CLOSED = "closed", "Closed"
    REJECTED = "rejected", "Rejected"


class ReturnResolution(models.TextChoices):
    REFUND = "refund", "Refund"
    EXCHANGE = "exchange", "Exchange for the same item"


class ReturnChannel(models.TextChoices):
    STATUS_PAGE = "status_page", "Customer, on the order status page"
    ADMIN = "admin", "Customer service, in the admin"
    API = "api", "API"


class ItemCondition(models.TextChoices):
    RESTOCK = "restock", "As new: back to stock"
    DAMAGED = "damaged", "Damaged: not restocked"
    DISPOSE = "dispose", "Dispose"


RS = ReturnStatus
PERM_RETURN = "fulfillment.work_return"


class Return(FSMRowMixin, models.Model):
    """A return merchandise authorization (RMA): some units of one order's lines coming back.

    ``requested -> authorized -> received -> refunded -> closed``; ``rejected`` from requested
    or authorized. An exchange goes ``received -> closed`` with a replacement order instead of a
    refund. The return label (bought through the outbox) is kept on the row."""

    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="returns")
    rma_number = models.CharField(max_length=32, unique=True)
    status = FSMField(max_length=16, choices=ReturnStatus.choices, default=RS.REQUESTED,
                      protected=True, db_index=True)  # fmt: skip
    resolution = models.CharField(
        max_length=16, choices=ReturnResolution.choices, default=ReturnResolution.REFUND
    )
    requested_via = models.CharField(max_length=16, choices=ReturnChannel.choices)
    request_key = models.CharField(
        max_length=100, blank=True,
        help_text="The requester's idempotency key: the same request twice makes one return.",
    )  # fmt: skip
    customer_note = models.TextField(blank=True)
    policy = models.ForeignKey(
        ReturnPolicy, null=True, blank=True, on_delete=models.SET_NULL, related_name="returns"
    )
    policy_verdict = models.JSONField(
        default=dict, blank=True, help_text="Why the policy authorized it, or why not."
    )
    auto_authorized = models.BooleanField(default=False)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    decision_note = models.TextField(blank=True)
    warehouse = models.ForeignKey(
        Warehouse, null=True, blank=True, on_delete=models.PROTECT, related_name="returns",
        help_text="Where it comes back to: the warehouse that shipped it.",
    )  # fmt: skip
    refund = models.OneToOneField(
        "orders.Refund", null=True, blank=True, on_delete=models.PROTECT, related_name="rma"
    )
    exchange_order = models.OneToOneField(
        "orders.Order", null=True, blank=True, on_delete=models.PROTECT,
        related_name="exchange_for",
    )  # fmt: skip
    # --- the return label ---
    label_carrier = models.CharField(max_length=40, blank=True)
    label_service = models.CharField(max_length=40, blank=True)
    carrier_shipment_id = models.CharField(max_length=120, blank=True)
    tracking_number = models.CharField(max_length=64, blank=True, db_index=True)
    tracking_url = models.URLField(max_length=500, blank=True)
    tracking_status = models.CharField(max_length=24, choices=TRACKING_STATUSES, blank=True)
    label_pdf = models.BinaryField(null=True, blank=True, editable=False)
    label_url = models.URLField(max_length=500, blank=True)
    picked_up_at = models.DateTimeField(null=True, blank=True)
    correlation_id = models.CharField(max_length=64, db_index=True)
    requested_at = models.DateTimeField(default=timezone.now, db_index=True)
    authorized_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(null=True, blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["order", "request_key"], condition=~Q(request_key=""),
                name="return_once_per_request_key",
            ),
        ]  # fmt: skip
        permissions = [("work_return", "Can authorize, reject and receive returns")]

    def __str__(self) -> str:
        return f"{self.rma_number} ({self.status})"

    @transition(field=status, source=RS.REQUESTED, target=RS.AUTHORIZED, permission=PERM_RETURN)
    def authorize(self, *, by: object = None, auto: bool = False, note: str = "") -> None:
        """Accepted: a return label is bought and sent to the customer."""
        self.authorized_at = timezone.now()
        self.auto_authorized = auto
        self.decided_by = by  # type: ignore[assignment]
        if note:
            self.decision_note = note

    @transition(field=status, source=[RS.REQUESTED, RS.AUTHORIZED], target=RS.REJECTED,
                permission=PERM_RETURN)  # fmt: skip
    def reject(self, *, by: object = None, note: str) -> None:
        self.decided_by = by  # type: ignore[assignment]
        self.decision_note = note

    @transition(field=status, source=RS.AUTHORIZED, target=RS.RECEIVED, permission=PERM_RETURN)
    def receive(self) -> None:
        """The warehouse has it: each line's condition decides whether stock comes back."""
        self.received_at = timezone.now()

    @transition(field=status, source=[RS.AUTHORIZED, RS.RECEIVED], target=RS.REFUNDED,
                permission=PERM_RETURN)  # fmt: skip
    def mark_refunded(self) -> None:
        """Its refund is recorded (on receipt, or on carrier pickup by policy)."""
        self.refunded_at = timezone.now()

    @transition(field=status, source=[RS.REFUNDED, RS.RECEIVED], target=RS.CLOSED,
                permission=PERM_RETURN)  # fmt: skip
    def close(self) -> None:
        """Done: received and refunded (or exchanged)."""
        self.closed_at = timezone.now()


class ReturnLine(models.Model):
    ret = models.ForeignKey(Return, on_delete=models.CASCADE, related_name="lines")
    order_line = models.ForeignKey(
        "orders.OrderLine", on_delete=models.PROTECT, related_name="return_lines"
    )
    sku = models.CharField(max_length=100, blank=True)
    quantity = models.PositiveIntegerField()
    reason = models.CharField(max_length=24, choices=ReturnReason.choices)
    condition = models.CharField(
        max_length=16, choices=ItemCondition.choices, blank=True, help_text="Set at receipt."
    )
    restocked_quantity = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["ret", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="return_line_quantity_positive"
            ),
            models.CheckConstraint(
                condition=Q(restocked_quantity__lte=F("quantity")),
                name="return_line_restock_within_quantity",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} x {self.quantity} ({self.reason})"
