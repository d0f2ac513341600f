"""The order core: customers, the product catalogue, orders and their lines, the audit trail,
incidents.

Models hold data and legal moves only. A transition says whether a move is allowed (source,
conditions, permission) and sets the row's own fields; services (``orders.services``) lock the
row, call the transition, save, write the OrderEvent and enqueue follow-up work after commit.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Iterable
from decimal import Decimal
from typing import Any, TypedDict, cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.fields.json import KeyTransform
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, FSMFieldMixin, transition


class MoneyFieldKwargs(TypedDict):
    max_digits: int
    decimal_places: int
    default: Decimal


# A TypedDict, not a plain dict: mypy checks each key against DecimalField's parameters.
# Where a remembered row keeps its columns as read (``FSMRowMixin.row_remember``).
_AS_READ = "_row_as_read"
# A locked order's "it has lines", kept until its next save (``has_lines``).
_HAS_LINES = "_has_lines_until_saved"
MONEY: MoneyFieldKwargs = {"max_digits": 19, "decimal_places": 4, "default": Decimal("0")}


class CurrencyAmountsMixin:
    """Amounts are stored with 4 decimals for every currency (KWD needs 3, CLF 4); loaded rows
    show them in their currency's minor units (``26.50`` USD, ``1480`` JPY)."""

    MONEY_FIELDS: tuple[str, ...] = ()
    CURRENCY_FIELD = "currency"

    @classmethod
    def from_db(
        cls, db: str | None, field_names: Collection[str], values: Collection[Any], **kwargs: Any
    ) -> Any:
        # **kwargs: django-stubs declares Model.from_db(..., *, fetch_mode=...) (Django 6.1);
        # Django 5.2 passes none, newer versions pass it on.
        from orders.money import normalize

        instance = super().from_db(db, field_names, values, **kwargs)  # type: ignore[misc]  # the model class has it
        currency = instance.__dict__.get(cls.CURRENCY_FIELD)
        if currency:
            for name in cls.MONEY_FIELDS:
                value = instance.__dict__.get(name)
                if isinstance(value, Decimal):
                    instance.__dict__[name] = normalize(value, currency)
        return instance


def _as_read(value: Any) -> Any:
    """A copy of a loaded value that a later in-place change cannot reach (JSON objects)."""
    return copy.deepcopy(value) if isinstance(value, dict | list) else value


class FSMRowMixin(ConcurrentTransitionMixin):
    """ConcurrentTransitionMixin whose refresh_from_db is safe with threads, and whose rows,
    once locked (``row_remember``, which ``orders.transitions.row_lock`` calls), save only the
    columns changed since they were read.

    Saving only what changed is what lets a locked row be handed down a chain of steps in one
    transaction (``order_transition(locked=...)``) instead of read again by each: a column
    another step of the same transaction set with a queryset ``update()`` meanwhile is not
    written back over with the value this instance read. ``auto_now`` columns are always
    written; a row that was never remembered saves every column, as Django does.

    django-fsm-2's FSMModelMixin.refresh_from_db lets Django write a protected field by turning
    ``protected`` off on the field object, which every instance in the process shares, and on
    again afterwards. Two refreshes in two threads (a threaded server, eager tasks) interleave:
    one turns it back on while the other is still writing, which then raises "Direct status
    modification is not allowed". Here the field stays protected: the protected values leave
    this instance's ``__dict__`` just before Django writes them (the descriptor only refuses an
    assignment over a value already loaded), so nothing shared is touched.
    """

    def refresh_from_db(
        self, using: str | None = None, fields: Iterable[str] | None = None,
        from_queryset: models.QuerySet[Any] | None = None,
    ) -> None:  # fmt: skip
        protected = {f.attname for f in self._meta.concrete_fields
                     if isinstance(f, FSMFieldMixin) and f.protected}  # fmt: skip
        if fields is None:
            # Name the loaded fields: once a protected value leaves __dict__, Django would take
            # it for a deferred field and not reload it. What Django does for fields=None
            # beyond reloading them (dropping cached relations) is done below.
            self._prefetched_objects_cache: dict[str, Any] = {}
            deferred = self.get_deferred_fields()
            names = {f.attname for f in self._meta.concrete_fields} - deferred
        else:
            names = set(fields)
        held = {name: self.__dict__.pop(name) for name in protected & names
                if name in self.__dict__}  # fmt: skip
        try:
            # Skip FSMModelMixin.refresh_from_db (the shared switch) and go to Django's own.
            models.Model.refresh_from_db(
                self, using=using, fields=names, from_queryset=from_queryset
            )
        except BaseException:
            for name, value in held.items():
                self.__dict__.setdefault(name, value)
            raise
        if fields is None:
            for rel in self._meta.related_objects:
                if rel.is_cached(self):
                    rel.delete_cached_value(self)
            for field in self._meta.private_fields:
                if field.is_relation and field.is_cached(self):
                    field.delete_cached_value(self)
        # What ConcurrentTransitionMixin.refresh_from_db adds: the loaded state is the one a
        # later save() expects to find in the row.
        self._update_initial_state()
        as_read = self.__dict__.get(_AS_READ)
        if as_read is not None:  # what was just read is what a later save compares with
            as_read.update({n: _as_read(self.__dict__[n]) for n in names if n in self.__dict__})

    def row_remember(self) -> None:
        """Note the loaded columns as they are now: a later ``save()`` writes only those that
        differ (and ``auto_now`` ones)."""
        self.__dict__[_AS_READ] = {
            f.attname: _as_read(self.__dict__[f.attname])
            for f in self._meta.concrete_fields
            if not f.primary_key and f.attname in self.__dict__
        }

    def row_remembered(self) -> bool:
        return _AS_READ in self.__dict__

    def save(self, *args: Any, **kwargs: Any) -> None:
        as_read = self.__dict__.get(_AS_READ)
        if (
            as_read is not None
            and not args
            and kwargs.get("update_fields") is None
            and (not self._state.adding and not kwargs.get("force_insert"))
        ):
            kwargs["update_fields"] = [
                f.name for f in self._meta.concrete_fields
                if not f.primary_key and f.attname in self.__dict__ and (
                    getattr(f, "auto_now", False) or f.attname not in as_read
                    or self.__dict__[f.attname] != as_read[f.attname]
                )
            ]  # fmt: skip
        self.__dict__.pop(_HAS_LINES, None)
        super().save(*args, **kwargs)
        if as_read is not None:
            self.row_remember()

    def _update_initial_state(self) -> None:
        # Record only the state fields this instance has loaded. The library reads every one,
        # so a deferred one loads itself: refresh_from_db(fields=["status"]) builds its row with
        # only("status"), whose payment_status is deferred, whose load builds a row with
        # only("payment_status")... RecursionError. A deferred state field is recorded when it
        # is loaded (that load is a refresh_from_db, which lands here).
        loaded = {f.attname: f.value_from_object(self) for f in self.state_fields
                  if f.attname in self.__dict__}  # fmt: skip
        recorded = getattr(self, "_ConcurrentTransitionMixin__initial_states", {})
        self._ConcurrentTransitionMixin__initial_states = {**recorded, **loaded}


class AccountType(models.TextChoices):
    CONSUMER = "consumer", "Consumer"
    BUSINESS = "business", "Business (B2B)"


class Customer(CurrencyAmountsMixin, models.Model):
    """A buyer. Business accounts may buy on net terms up to an approved credit limit."""

    MONEY_FIELDS = ("credit_limit",)
    CURRENCY_FIELD = "credit_currency"

    email = models.EmailField(db_index=True)
    name = models.CharField(max_length=200, blank=True)
    phone = models.CharField(max_length=40, blank=True)
    account_type = models.CharField(
        max_length=16, choices=AccountType.choices, default=AccountType.CONSUMER
    )
    company_name = models.CharField(max_length=200, blank=True)
    net_terms_days = models.PositiveSmallIntegerField(
        default=0, help_text="Days to pay an invoice (0: no net terms)."
    )
    net_terms_approved = models.BooleanField(
        default=False, help_text="Finance approved this account for buying on net terms."
    )
    credit_limit = models.DecimalField(**MONEY, help_text="Most open net-terms exposure allowed.")
    credit_currency = models.CharField(max_length=3, default="USD")
    accepts_marketing = models.BooleanField(
        default=False,
        help_text="The channel says this customer accepts marketing email (survey, review "
        "requests). Never assumed: unknown is no.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(credit_limit__gte=0), name="customer_credit_limit_not_negative"
            ),
        ]
        permissions = [("manage_credit", "Can set net terms and credit limits")]

    def __str__(self) -> str:
        # Shown to staff in the admin only; logs use ids.
        return f"Customer #{self.pk}"

    @property
    def can_buy_on_net_terms(self) -> bool:
        return (
            self.account_type == AccountType.BUSINESS
            and self.net_terms_approved
            and self.net_terms_days > 0
        )


class Product(models.Model):
    """Our catalogue: the SKUs we stock and ship. It lives here, in the lowest app, because
    channels (SKU mappings) and fulfillment (weights, tags, customs data) both read it."""

    sku = models.CharField(max_length=100, unique=True)
    title = models.CharField(max_length=255)
    weight_grams = models.PositiveIntegerField(null=True, blank=True)
    hs_code = models.CharField(max_length=12, blank=True, help_text="Customs tariff code.")
    origin_country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2")
    tags = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["sku"]

    def __str__(self) -> str:
        return self.sku


class OrderStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    VALIDATED = "validated", "Validated"
    IN_REVIEW = "in_review", "In review"
    ON_HOLD = "on_hold", "On hold"
    ALLOCATED = "allocated", "Allocated"
    BACKORDERED = "backordered", "Backordered"
    FULFILLING = "fulfilling", "Fulfilling"
    PARTIALLY_SHIPPED = "partially_shipped", "Partially shipped"
    SHIPPED = "shipped", "Shipped"
    DELIVERED = "delivered", "Delivered"
    CLOSED = "closed", "Closed"
    CANCELLED = "cancelled", "Cancelled"


class PaymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    AUTHORIZED = "authorized", "Authorized"
    PAID = "paid", "Paid"
    NET_TERMS = "net_terms", "Net terms (invoiced)"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
    REFUNDED = "refunded", "Refunded"


S = OrderStatus
P = PaymentStatus

# States in which nothing has left a warehouse: the order can still be cancelled.
PRE_SHIP_STATES = [
    S.RECEIVED, S.VALIDATED, S.IN_REVIEW, S.ON_HOLD, S.ALLOCATED, S.BACKORDERED, S.FULFILLING,
]  # fmt: skip
HOLDABLE_STATES = [S.RECEIVED, S.VALIDATED, S.IN_REVIEW, S.ALLOCATED, S.BACKORDERED]
PAYMENT_SECURED = [P.AUTHORIZED, P.PAID, P.NET_TERMS]
PAYMENT_SETTLED = [P.PAID, P.NET_TERMS, P.PARTIALLY_REFUNDED, P.REFUNDED]

PERM_PROCESS = "orders.process_order"
PERM_HOLD = "orders.hold_order"
PERM_CANCEL = "orders.cancel_order"
PERM_REVIEW = "orders.review_order"
PERM_PAYMENT = "orders.manage_payment"
PERM_INCIDENT = "orders.work_incident"


def _fsm_condition(check: Callable[[Order], bool]) -> Callable[[models.Model], bool]:
    """The check itself, typed as django-fsm-2 declares a condition (any Model in): it only ever
    calls a condition with the instance whose transition runs, here an Order. The same object
    comes back, so ``orders.services.CONDITION_MESSAGES`` still finds it."""
    return cast("Callable[[models.Model], bool]", check)


def has_lines(order: Order) -> bool:
    """The order has lines. Asked twice per move (``transition_check``, then django-fsm as the
    transition runs); on a locked row a yes holds until its next save, so it is asked once."""
    if order.pk is None:
        return False
    if order.__dict__.get(_HAS_LINES):
        return True
    found = order.lines.exists()
    if found and order.row_remembered():
        order.__dict__[_HAS_LINES] = True
    return found


def payment_secured(order: Order) -> bool:
    return order.payment_status in PAYMENT_SECURED


def payment_settled(order: Order) -> bool:
    return order.payment_status in PAYMENT_SETTLED


def customer_may_use_net_terms(order: Order) -> bool:
    return order.customer is not None and order.customer.can_buy_on_net_terms


class Deliverability(models.TextChoices):
    CONFIRMED = "confirmed", "Confirmed"
    LIKELY = "likely", "Likely"
    UNKNOWN = "unknown", "Unknown (format valid)"
    UNDELIVERABLE = "undeliverable", "Undeliverable"


class Order(CurrencyAmountsMixin, FSMRowMixin, models.Model):
    """One order from one channel. ``status`` and ``payment_status`` move only by transitions."""

    MONEY_FIELDS = ("subtotal", "discount_total", "shipping_total", "tax_total", "shipping_tax",
                    "total", "refunded_total")  # fmt: skip

    channel = models.ForeignKey(
        "channels.SalesChannel", on_delete=models.PROTECT, related_name="orders"
    )
    external_id = models.CharField(max_length=100, help_text="The channel's own order id.")
    order_number = models.CharField(
        max_length=64, blank=True, help_text="The number the customer sees (#1001)."
    )
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="orders"
    )
    currency = models.CharField(max_length=3)
    subtotal = models.DecimalField(**MONEY)
    discount_total = models.DecimalField(**MONEY)
    shipping_total = models.DecimalField(**MONEY)
    tax_total = models.DecimalField(**MONEY)
    shipping_tax = models.DecimalField(
        **MONEY, help_text="Tax on shipping: part of the tax total, on no line."
    )
    total = models.DecimalField(**MONEY)
    captured_total = models.DecimalField(
        **MONEY, help_text="Money taken from the customer (set when the payment is captured)."
    )
    refunded_total = models.DecimalField(
        **MONEY, help_text="The sum of the order's refunds (orders.refunds keeps it)."
    )
    taxes_included = models.BooleanField(
        default=False, help_text="Prices already include tax; the tax total is not added on top."
    )
    tax_lines = models.JSONField(default=list, blank=True)
    source = models.JSONField(default=dict, blank=True, help_text="The channel's own facts.")
    shipping_address = models.JSONField(default=dict, blank=True)
    billing_address = models.JSONField(default=dict, blank=True)
    ship_to_country = models.CharField(
        max_length=2, blank=True, db_index=True, help_text="ISO 3166-1 alpha-2"
    )
    payment_method = models.CharField(max_length=40, blank=True)
    placed_at = models.DateTimeField(db_index=True)
    source_updated_at = models.DateTimeField(
        null=True, blank=True, help_text="The channel's last update time of this order."
    )
    correlation_id = models.CharField(max_length=64, db_index=True)
    risk_score = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    risk_signals = models.JSONField(default=dict, blank=True)
    # The address check's outcome (orders.validation.address): can the parcel arrive?
    address_deliverability = models.CharField(
        max_length=16, choices=Deliverability.choices, blank=True,
        help_text="confirmed / likely: a verifier said so; unknown: format only",
    )  # fmt: skip
    address_confidence = models.DecimalField(
        max_digits=3, decimal_places=2, null=True, blank=True, help_text="0.00 to 1.00"
    )
    address_source = models.CharField(
        max_length=16, blank=True, help_text="offline rules, usps or canadapost"
    )
    address_checked_at = models.DateTimeField(null=True, blank=True)
    status_reason = models.CharField(
        max_length=255, blank=True, help_text="Why the order is on hold or was cancelled."
    )
    review_approved_at = models.DateTimeField(null=True, blank=True)

    status = FSMField(
        max_length=24, choices=OrderStatus.choices, default=S.RECEIVED, protected=True,
        db_index=True,
    )  # fmt: skip
    payment_status = FSMField(
        max_length=24, choices=PaymentStatus.choices, default=P.PENDING, protected=True
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-placed_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "external_id"], name="order_external_id_unique_per_channel"
            ),
            models.CheckConstraint(
                condition=Q(subtotal__gte=0)
                & Q(discount_total__gte=0)
                & Q(shipping_total__gte=0)
                & Q(tax_total__gte=0)
                & Q(total__gte=0),
                name="order_amounts_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(refunded_total__gte=0)
                & Q(captured_total__gte=0)
                & Q(refunded_total__lte=models.F("captured_total")),
                name="order_refunds_within_captured",
            ),
        ]
        indexes = [
            models.Index(fields=["channel", "status"]),
            # Read per incoming order, so each reads what it needs, not a table that grows: a
            # customer's orders around a time (duplicate check, first-time customer), a
            # channel's latest orders in a currency (the fraud check's median), and the orders
            # with one card or browser address (the fraud check's velocity).
            # (The id last: the reads order by time, then id, newest first: a backward scan.)
            models.Index(fields=["customer", "placed_at", "id"]),
            models.Index(fields=["channel", "currency", "placed_at", "id"]),
            models.Index(KeyTransform("card_fingerprint", "source"), name="order_source_card_idx"),
            models.Index(KeyTransform("browser_ip_hash", "source"), name="order_source_iphash_idx"),
            models.Index(KeyTransform("browser_ip", "source"), name="order_source_ip_idx"),
        ]
        permissions = [
            ("process_order", "Can move an order through its fulfilment steps"),
            ("hold_order", "Can put an order on hold and release it"),
            ("cancel_order", "Can cancel an order"),
            ("review_order", "Can send an order to review and approve it"),
            ("manage_payment", "Can change an order's payment status"),
            # Personal data beyond need (orders.personal_data): granted per role in orders.roles.
            ("view_contact_details", "Can see street addresses and phone numbers"),
            ("view_raw_payload", "Can see raw payloads and audit snapshots whole"),
        ]

    def __str__(self) -> str:
        return f"Order {self.external_id} (#{self.pk})"

    def clean(self) -> None:
        from orders.errors import InvalidInput
        from orders.money import validate_currency

        try:
            self.currency = validate_currency(self.currency)
        except InvalidInput as exc:
            raise ValidationError({"currency": str(exc)}) from exc

    @property
    def computed_total(self) -> Decimal:
        base = self.subtotal - self.discount_total + self.shipping_total
        return base if self.taxes_included else base + self.tax_total

    # --- order lifecycle -------------------------------------------------------------------
    @transition(field=status, source=S.RECEIVED, target=S.VALIDATED,
                conditions=[_fsm_condition(has_lines)], permission=PERM_PROCESS)  # fmt: skip
    def validate(self) -> None:
        """All checks passed."""

    @transition(field=status, source=HOLDABLE_STATES, target=S.ON_HOLD, permission=PERM_HOLD)
    def hold(self, *, reason: str) -> None:
        """An incident (or a person) blocks the order until it is resolved."""
        self.status_reason = reason[:255]

    @transition(field=status, source=S.ON_HOLD, target=S.RECEIVED, permission=PERM_HOLD)
    def release_hold(self) -> None:
        """Back to the start of the pipeline: every check runs again."""
        self.status_reason = ""

    @transition(field=status, source=S.VALIDATED, target=S.IN_REVIEW, permission=PERM_REVIEW)
    def send_to_review(self) -> None:
        """High risk: a person looks before it ships (stock stays reserved meanwhile)."""

    @transition(field=status, source=S.IN_REVIEW, target=S.VALIDATED, permission=PERM_REVIEW)
    def approve_review(self) -> None:
        """A reviewer cleared it; it goes on as a validated order and is not sent back."""
        self.review_approved_at = timezone.now()

    @transition(field=status, source=[S.VALIDATED, S.BACKORDERED], target=S.ALLOCATED,
                permission=PERM_PROCESS)  # fmt: skip
    def allocate(self) -> None:
        """Stock is reserved for every line."""

    @transition(field=status, source=[S.VALIDATED, S.ALLOCATED], target=S.BACKORDERED,
                permission=PERM_PROCESS)  # fmt: skip
    def backorder(self) -> None:
        """Not enough stock anywhere yet, or the stock held for it lapsed (reservation expiry)."""

    @transition(field=status, source=S.ALLOCATED, target=S.FULFILLING,
                conditions=[_fsm_condition(payment_secured)], permission=PERM_PROCESS)  # fmt: skip
    def start_fulfillment(self) -> None:
        """Handed to the warehouse: needs an authorized, paid or net-terms payment."""

    @transition(field=status, source=[S.FULFILLING, S.PARTIALLY_SHIPPED],
                target=S.PARTIALLY_SHIPPED, permission=PERM_PROCESS)  # fmt: skip
    def ship_partially(self) -> None:
        """Some lines left; others follow."""

    @transition(field=status, source=[S.FULFILLING, S.PARTIALLY_SHIPPED], target=S.SHIPPED,
                permission=PERM_PROCESS)  # fmt: skip
    def ship(self) -> None:
        """Everything has left."""

    @transition(field=status, source=S.SHIPPED, target=S.DELIVERED, permission=PERM_PROCESS)
    def deliver(self) -> None:
        """The carrier confirmed delivery."""

    @transition(field=status, source=S.DELIVERED, target=S.CLOSED,
                conditions=[_fsm_condition(payment_settled)], permission=PERM_PROCESS)  # fmt: skip
    def close(self) -> None:
        """Done: delivered and the payment settled."""

    @transition(field=status, source=PRE_SHIP_STATES, target=S.CANCELLED, permission=PERM_CANCEL)
    def cancel(self, *, reason: str = "") -> None:
        """Stopped before anything shipped."""
        if reason:
            self.status_reason = reason[:255]

    # --- payment ---------------------------------------------------------------------------
    @transition(field=payment_status, source=P.PENDING, target=P.AUTHORIZED,
                permission=PERM_PAYMENT)  # fmt: skip
    def authorize_payment(self) -> None:
        """The card or wallet payment is authorized."""

    @transition(field=payment_status, source=[P.PENDING, P.AUTHORIZED], target=P.PAID,
                permission=PERM_PAYMENT)  # fmt: skip
    def capture_payment(self) -> None:
        """The money is captured."""
        self.captured_total = self.total

    @transition(field=payment_status, source=P.PENDING, target=P.NET_TERMS,
                conditions=[_fsm_condition(customer_may_use_net_terms)],
                permission=PERM_PAYMENT)  # fmt: skip
    def grant_net_terms(self) -> None:
        """A business account approved for net terms is invoiced."""

    @transition(field=payment_status, source=P.NET_TERMS, target=P.PAID, permission=PERM_PAYMENT)
    def settle_invoice(self) -> None:
        """The net-terms invoice is paid."""
        self.captured_total = self.total

    @transition(field=payment_status, source=[P.PAID, P.PARTIALLY_REFUNDED],
                target=P.PARTIALLY_REFUNDED, permission=PERM_PAYMENT)  # fmt: skip
    def refund_partially(self) -> None:
        """Part of the money went back: ``orders.refunds`` recorded a refund and keeps
        ``refunded_total`` as the sum of the order's refunds."""

    @transition(field=payment_status, source=[P.PAID, P.PARTIALLY_REFUNDED], target=P.REFUNDED,
                permission=PERM_PAYMENT)  # fmt: skip
    def refund(self) -> None:
        """All of the captured money went back (the refunds sum to ``captured_total``)."""


class OrderLine(CurrencyAmountsMixin, models.Model):
    MONEY_FIELDS = ("unit_price", "discount_allocation", "tax_allocation")

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    currency = models.CharField(max_length=3, help_text="The order's currency.")
    line_no = models.PositiveIntegerField()
    external_line_id = models.CharField(max_length=100, blank=True)
    sku = models.CharField(
        max_length=100, db_index=True, blank=True, help_text="Our SKU; empty while unmapped."
    )
    channel_sku = models.CharField(max_length=100, blank=True)
    variant_ref = models.CharField(
        max_length=100, blank=True, help_text="Variant id, ASIN or seller SKU from the channel."
    )
    tax_lines = models.JSONField(default=list, blank=True)
    title = models.CharField(max_length=255, blank=True)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(**MONEY)
    discount_allocation = models.DecimalField(**MONEY)
    tax_allocation = models.DecimalField(**MONEY)

    class Meta:
        # By the column, not "order": that would sort by the order's own ordering, a join of
        # orders_order in every read of lines (one order's lines come out the same).
        ordering = ["order_id", "line_no"]
        constraints = [
            models.UniqueConstraint(fields=["order", "line_no"], name="order_line_no_unique"),
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="order_line_quantity_positive"
            ),
            models.CheckConstraint(
                condition=Q(unit_price__gte=0)
                & Q(discount_allocation__gte=0)
                & Q(tax_allocation__gte=0),
                name="order_line_amounts_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} x {self.quantity}"

    @property
    def gross(self) -> Decimal:
        return self.unit_price * self.quantity

    @property
    def net(self) -> Decimal:
        return self.gross - self.discount_allocation + self.tax_allocation


class ActorKind(models.TextChoices):
    SYSTEM = "system", "System"
    USER = "user", "User"
    CHANNEL = "channel", "Sales channel"
    CARRIER = "carrier", "Carrier"
    INTEGRATION = "integration", "Integration"


class AppendOnlyError(Exception):
    pass


class OrderEvent(models.Model):
    """Append-only audit trail: every state change and external call of an order.

    Rows are never updated or deleted: the model refuses, and so does the database (a trigger
    installed by migration 0002). One narrow exception, for privacy law only: a redaction may
    rewrite ``data`` (never another column) of rows it holds a permit for in its own transaction
    (``orders.privacy``, migration 0008).
    """

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="events")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor_id = models.CharField(max_length=100, blank=True)
    action = models.CharField(max_length=64)
    field = models.CharField(max_length=32, blank=True)
    from_state = models.CharField(max_length=32, blank=True)
    to_state = models.CharField(max_length=32, blank=True)
    correlation_id = models.CharField(max_length=64, db_index=True, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["order", "at"])]

    def __str__(self) -> str:
        return f"{self.action} on order #{self.order_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Order events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise AppendOnlyError("Order events are append-only")


class IncidentCategory(models.TextChoices):
    SCHEMA_INVALID = "schema_invalid", "Schema invalid"
    SKU_UNMAPPED = "sku_unmapped", "SKU unmapped"
    INVENTORY_UNAVAILABLE = "inventory_unavailable", "Inventory unavailable"
    ADDRESS_FORMAT_INVALID = "address_format_invalid", "Address format invalid"
    ADDRESS_UNDELIVERABLE = "address_undeliverable", "Address undeliverable"
    PAYMENT_INELIGIBLE = "payment_ineligible", "Payment ineligible"
    FRAUD_REVIEW = "fraud_review", "Fraud review"
    DOWNSTREAM_FAILED = "downstream_failed", "Downstream failed"
    DUPLICATE_SUSPECTED = "duplicate_suspected", "Duplicate suspected"
    PRIVACY_REQUEST = "privacy_request", "Privacy request"
    DELIVERY_EXCEPTION = "delivery_exception", "Delivery exception"
    CHANNEL_SYNC_FAILED = "channel_sync_failed", "Channel sync failed"
    REFUND_MISMATCH = "refund_mismatch", "Refund mismatch"
    RECONCILIATION_VARIANCE = "reconciliation_variance", "Reconciliation variance"
    OTHER = "other", "Other"


class Severity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class IncidentStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class Incident(FSMRowMixin, models.Model):
    """A categorized problem for a person. A repeat of an unresolved one bumps its count."""

    category = models.CharField(max_length=32, choices=IncidentCategory.choices, db_index=True)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.MEDIUM)
    order = models.ForeignKey(
        Order, null=True, blank=True, on_delete=models.PROTECT, related_name="incidents"
    )
    fingerprint = models.CharField(
        max_length=255, help_text="What makes two occurrences the same incident."
    )
    summary = models.CharField(max_length=255, help_text="What happened; never personal data.")
    details = models.JSONField(default=dict, blank=True)
    correlation_id = models.CharField(max_length=64, blank=True)
    first_seen_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_seen_at = models.DateTimeField(default=timezone.now)
    occurrence_count = models.PositiveIntegerField(default=1)
    status = FSMField(
        max_length=16, choices=IncidentStatus.choices, default=IncidentStatus.OPEN,
        protected=True, db_index=True,
    )  # fmt: skip
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-last_seen_at", "-id"]
        constraints = [
            # At most one unresolved incident per fingerprint: a repeat bumps it instead.
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=~Q(status=IncidentStatus.RESOLVED),
                name="incident_one_unresolved_per_fingerprint",
            ),
        ]
        permissions = [
            ("work_incident", "Can acknowledge and resolve incidents"),
            # The incidents screen (trends and the one-click fixes) is for the people who fix
            # them, customer service and operations; reviewers and finance keep reading
            # incidents through the API and the admin with view_incident.
            ("view_incident_screen", "Can use the incidents screen (trends and fixes)"),
            ("download_privacy_export", "Can download a customer's data export"),
        ]

    def __str__(self) -> str:
        return f"{self.get_category_display()} #{self.pk}"

    @transition(field=status, source=IncidentStatus.OPEN, target=IncidentStatus.ACKNOWLEDGED,
                permission=PERM_INCIDENT)  # fmt: skip
    def acknowledge(self, *, by: Any) -> None:
        self.acknowledged_by = by

    @transition(field=status, source=[IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED],
                target=IncidentStatus.RESOLVED, permission=PERM_INCIDENT)  # fmt: skip
    def resolve(self, *, by: Any, note: str = "") -> None:
        self.resolved_by = by
        self.resolved_at = timezone.now()
        self.resolution_note = note


# --- refunds (orders.refunds) -------------------------------------------------------------------
class RefundSource(models.TextChoices):
    CHANNEL = "channel", "Sales channel"
    RMA = "rma", "Return (RMA)"
    PERSON = "person", "A person"


class RefundStatus(models.TextChoices):
    PENDING = "pending", "Pending (being sent to the channel)"
    SUCCEEDED = "succeeded", "Succeeded"
    MANUAL = "manual", "To be refunded in the channel by hand"
    FAILED = "failed", "Failed"


class RestockType(models.TextChoices):
    RETURN = "return", "Returned to stock"
    CANCEL = "cancel", "Cancelled before it shipped"
    NO_RESTOCK = "no_restock", "Not restocked"


class Refund(CurrencyAmountsMixin, FSMRowMixin, models.Model):
    """Money that went (or goes) back to the customer: one row per refund, never a number
    overwritten. ``amount`` is the money moved (the sum of ``payments``); the order's
    ``refunded_total`` is the sum of its refunds' amounts.

    One refund per (order, source, external id): a duplicated webhook, a replay or a double
    click finds the first row. ``channel_figures`` keeps the channel's own numbers as it sent
    them; ``computed`` ours, for the same lines (a difference opens a ``refund_mismatch``
    incident, it is never "fixed")."""

    MONEY_FIELDS = ("lines_amount", "lines_tax", "shipping", "shipping_tax", "fees",
                    "restocking_fee", "adjustment", "amount")  # fmt: skip

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="refunds")
    source = models.CharField(max_length=16, choices=RefundSource.choices)
    external_id = models.CharField(
        max_length=100,
        help_text="The channel's refund id; the RMA number; a person's request key.",
    )
    channel_refund_id = models.CharField(
        max_length=100, blank=True, db_index=True,
        help_text="The channel's id of a refund we sent it (its webhook then finds this row).",
    )  # fmt: skip
    reference = models.CharField(
        max_length=32, unique=True, help_text="Our refund number, shown to people: RF-000123."
    )
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=64, blank=True)
    note = models.CharField(max_length=500, blank=True)
    lines_amount = models.DecimalField(**MONEY, help_text="Goods, net of their discounts.")
    lines_tax = models.DecimalField(**MONEY)
    shipping = models.DecimalField(**MONEY)
    shipping_tax = models.DecimalField(**MONEY)
    fees = models.DecimalField(**MONEY, help_text="Duties and additional fees given back.")
    restocking_fee = models.DecimalField(**MONEY, help_text="Kept back by the return policy.")
    adjustment = models.DecimalField(
        max_digits=19, decimal_places=4, default=Decimal("0"),
        help_text="The channel's own adjustment (Shopify's refund discrepancy), signed.",
    )  # fmt: skip
    amount = models.DecimalField(**MONEY, help_text="Money back to the customer, in total.")
    computed = models.JSONField(default=dict, blank=True, help_text="Our figures for its lines.")
    channel_figures = models.JSONField(default=dict, blank=True)
    status = FSMField(
        max_length=16, choices=RefundStatus.choices, default=RefundStatus.SUCCEEDED,
        protected=True, db_index=True,
    )  # fmt: skip
    failure_reason = models.CharField(max_length=255, blank=True)
    correlation_id = models.CharField(max_length=64, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    processed_at = models.DateTimeField(
        default=timezone.now, help_text="When the money moved (the channel's time for theirs)."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["order", "source", "external_id"], name="refund_once_per_source_id"
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="refund_amount_not_negative"),
        ]
        permissions = [
            ("issue_refund", "Can issue a refund (up to the role's limit)"),
            ("issue_any_refund", "Can issue a refund of any amount"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} ({self.amount} {self.currency})"

    @transition(field=status, source=RefundStatus.PENDING, target=RefundStatus.SUCCEEDED)
    def succeed(self, *, channel_refund_id: str = "") -> None:
        """The channel moved the money."""
        if channel_refund_id:
            self.channel_refund_id = channel_refund_id[:100]

    @transition(field=status, source=RefundStatus.PENDING, target=RefundStatus.MANUAL)
    def hand_over(self) -> None:
        """The channel cannot be asked to refund: a person refunds it there."""

    @transition(field=status, source=[RefundStatus.MANUAL, RefundStatus.FAILED],
                target=RefundStatus.SUCCEEDED)  # fmt: skip
    def confirm_manual(self) -> None:
        """A person refunded it in the channel's own admin and says so."""

    @transition(field=status, source=RefundStatus.PENDING, target=RefundStatus.FAILED)
    def fail(self, *, reason: str) -> None:
        self.failure_reason = reason[:255]


class RefundLine(CurrencyAmountsMixin, models.Model):
    MONEY_FIELDS = ("amount", "tax")

    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="lines")
    order_line = models.ForeignKey(OrderLine, on_delete=models.PROTECT, related_name="refund_lines")
    currency = models.CharField(max_length=3)
    quantity = models.PositiveIntegerField()
    amount = models.DecimalField(**MONEY, help_text="Goods, net of the line's discount share.")
    tax = models.DecimalField(**MONEY)
    restock_type = models.CharField(
        max_length=16, choices=RestockType.choices, default=RestockType.NO_RESTOCK
    )
    channel_restock_type = models.CharField(max_length=32, blank=True)
    restocked_quantity = models.PositiveIntegerField(default=0)
    restock_warehouse = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["refund", "order_line__line_no"]
        constraints = [
            models.CheckConstraint(
                condition=Q(restocked_quantity__lte=models.F("quantity")),
                name="refund_line_restock_within_quantity",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order_line_id} x {self.quantity}"


class RefundPayment(CurrencyAmountsMixin, models.Model):
    """One refund's money on one payment method or gateway (10.00 to a card, 100.00 to a gift
    card)."""

    MONEY_FIELDS = ("amount",)

    refund = models.ForeignKey(Refund, on_delete=models.CASCADE, related_name="payments")
    method = models.CharField(max_length=64, help_text="Gateway or payment method.")
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(**MONEY)
    external_id = models.CharField(max_length=100, blank=True, help_text="The transaction id.")

    class Meta:
        ordering = ["refund", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gte=0), name="refund_payment_amount_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method}: {self.amount}"


class OrderPayment(CurrencyAmountsMixin, models.Model):
    """What one payment method of an order took and gave back. ``captured`` is known when the
    channel says how the payment was split (empty otherwise: then only the order's own
    captured total bounds the refunds)."""

    MONEY_FIELDS = ("captured", "refunded")

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="payments")
    method = models.CharField(max_length=64)
    currency = models.CharField(max_length=3)
    captured = models.DecimalField(max_digits=19, decimal_places=4, null=True, blank=True)
    refunded = models.DecimalField(**MONEY)

    class Meta:
        ordering = ["order_id", "id"]  # the column: no join of orders_order (see OrderLine)
        constraints = [
            models.UniqueConstraint(fields=["order", "method"], name="order_payment_per_method"),
            models.CheckConstraint(
                condition=Q(refunded__gte=0)
                & (Q(captured__isnull=True) | Q(refunded__lte=models.F("captured"))),
                name="order_payment_refunds_within_captured",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method} on order #{self.order_id}"


class RefundLimit(models.Model):
    """The largest refund a role may issue without finance (set in the admin, per currency).
    A role with ``orders.issue_any_refund`` (finance) has no limit."""

    group = models.ForeignKey("auth.Group", on_delete=models.CASCADE, related_name="+")
    currency = models.CharField(max_length=3, default="USD")
    max_amount = models.DecimalField(max_digits=19, decimal_places=4)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group", "currency"], name="refund_limit_per_group"),
        ]

    def __str__(self) -> str:
        return f"{self.group} up to {self.max_amount} {self.currency}"
