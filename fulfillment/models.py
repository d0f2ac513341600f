"""Warehouses, stock per (SKU, warehouse) and the reservations that hold it for order lines.

Models hold data and legal moves only. Stock quantities change only through conditional
``UPDATE``s in ``fulfillment.services`` (never read-modify-write), backed by the CHECK
constraints below, so no interleaving of workers can reserve more than is on hand.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition


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

    ``sku`` is our catalogue SKU as a string, not a foreign key to ``channels.Product``: stock
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


class Reservation(ConcurrentTransitionMixin, models.Model):
    """Units of one order line held in one warehouse. Only ``active`` ones count as reserved."""

    # ConcurrentTransitionMixin includes FSMModelMixin (refresh_from_db on a protected field)
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
