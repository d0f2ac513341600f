"""Reviews: the high-risk review queue and the fraud score's settings.

A ReviewCase is a person's look at an order the pipeline found risky. The order waits in
``in_review`` (its stock stays reserved); the case's decision moves it on or cancels it. Models
hold data and legal moves only; ``reviews.services`` locks, transitions, audits and enqueues.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import FSMField, transition

from orders.models import FSMRowMixin

PERM_REVIEW = "orders.review_order"


class ReviewStatus(models.TextChoices):
    OPEN = "open", "Open"
    IN_REVIEW = "in_review", "In review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    ESCALATED = "escalated", "Escalated"


# A case in one of these states still needs a person; an order has at most one of them.
UNRESOLVED = [ReviewStatus.OPEN, ReviewStatus.IN_REVIEW, ReviewStatus.ESCALATED]


def sla_hours() -> int:
    return int(settings.REVIEW_SLA_HOURS)


class ReviewCaseQuerySet(models.QuerySet):
    def unresolved(self) -> ReviewCaseQuerySet:
        return self.filter(status__in=UNRESOLVED)

    def overdue(self, now: Any = None) -> ReviewCaseQuerySet:
        return self.unresolved().filter(sla_due_at__lt=now or timezone.now())


# FSMRowMixin (ConcurrentTransitionMixin with a thread-safe refresh_from_db of the protected
# field) makes save() raise ConcurrentTransition if another process moved the row first.
class ReviewCase(FSMRowMixin, models.Model):
    """One review of one order: why it was flagged, who looks, what they decided and when."""

    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="review_cases")
    status = FSMField(
        max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.OPEN, protected=True,
        db_index=True,
    )  # fmt: skip
    reasons = models.JSONField(default=list, blank=True, help_text="Why the order was flagged.")
    score = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    signals = models.JSONField(
        default=list, blank=True, help_text="The score's breakdown: name, weight, evidence."
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
        related_name="+",
    )  # fmt: skip
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True, help_text="The reviewer's reason or note.")
    sla_due_at = models.DateTimeField(db_index=True, help_text="Decide by then.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ReviewCaseQuerySet.as_manager()

    class Meta:
        ordering = ["sla_due_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["order"],
                condition=Q(status__in=UNRESOLVED),
                name="reviewcase_one_unresolved_per_order",
            ),
        ]

    def __str__(self) -> str:
        return f"Review case #{self.pk} (order #{self.order_id})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.sla_due_at is None:
            self.sla_due_at = (self.created_at or timezone.now()) + timedelta(hours=sla_hours())
        super().save(*args, **kwargs)

    @property
    def is_unresolved(self) -> bool:
        """Still needs a person (open, in review or escalated)."""
        return self.status in UNRESOLVED

    @property
    def is_overdue(self) -> bool:
        return self.status in UNRESOLVED and self.sla_due_at < timezone.now()

    @transition(field=status, source=[ReviewStatus.OPEN, ReviewStatus.ESCALATED],
                target=ReviewStatus.IN_REVIEW, permission=PERM_REVIEW)  # fmt: skip
    def start(self, *, by: Any) -> None:
        """A reviewer takes the case (an escalated one goes back to a person too)."""
        self.assignee = by

    @transition(field=status, source=ReviewStatus.IN_REVIEW, target=ReviewStatus.APPROVED,
                permission=PERM_REVIEW)  # fmt: skip
    def approve(self, *, by: Any, note: str = "") -> None:
        self.decided_by = by
        self.decided_at = timezone.now()
        self.decision_note = note

    @transition(field=status, source=ReviewStatus.IN_REVIEW, target=ReviewStatus.REJECTED,
                permission=PERM_REVIEW)  # fmt: skip
    def reject(self, *, by: Any, reason: str) -> None:
        self.decided_by = by
        self.decided_at = timezone.now()
        self.decision_note = reason

    @transition(field=status, source=ReviewStatus.IN_REVIEW, target=ReviewStatus.ESCALATED,
                permission=PERM_REVIEW)  # fmt: skip
    def escalate(self, *, by: Any, note: str) -> None:
        """Beyond this reviewer: a senior person takes it from here (it stays unresolved)."""
        self.decision_note = note
        self.assignee = None


class FraudSettings(models.Model):
    """The fraud score's weights and thresholds: one row, edited in the admin."""

    review_threshold = models.PositiveSmallIntegerField(
        default=60, help_text="Orders scoring at least this go to the review queue."
    )
    high_value_amount = models.DecimalField(
        max_digits=19, decimal_places=4, default=Decimal("1000"),
        help_text="Orders of at least this total (in the currency below) are high value.",
    )  # fmt: skip
    high_value_currency = models.CharField(
        max_length=3, default="USD",
        help_text="The high-value amount's currency; orders in other currencies are not "
        "compared (no currency conversion).",
    )  # fmt: skip
    always_review_international = models.BooleanField(
        default=True, help_text="Send every international order to review, whatever its score."
    )
    always_review_high_value = models.BooleanField(
        default=True, help_text="Send every high-value order to review, whatever its score."
    )
    always_review_first_time_mismatch = models.BooleanField(
        default=True,
        help_text="Send first-time customers whose billing and shipping differ to review.",
    )
    value_multiplier = models.PositiveSmallIntegerField(
        default=3,
        help_text="An order above this many times the customer's average (or the channel's "
        "median) order value is unusual.",
    )
    channel_median_min_orders = models.PositiveSmallIntegerField(
        default=5, help_text="Compare with the channel's median only once it has this many orders."
    )
    unusual_quantity = models.PositiveSmallIntegerField(
        default=10, help_text="More units than this of one SKU is unusual."
    )
    velocity_limit = models.PositiveSmallIntegerField(
        default=3,
        help_text="More orders than this in 24 h from one email, card or IP is suspicious.",
    )

    weight_country_mismatch = models.PositiveSmallIntegerField(default=25)
    weight_name_mismatch = models.PositiveSmallIntegerField(default=10)
    weight_first_time_customer = models.PositiveSmallIntegerField(default=10)
    weight_customer_history = models.PositiveSmallIntegerField(default=20)
    weight_channel_median = models.PositiveSmallIntegerField(default=15)
    weight_international = models.PositiveSmallIntegerField(default=20)
    weight_high_value = models.PositiveSmallIntegerField(default=20)
    weight_unusual_quantity = models.PositiveSmallIntegerField(default=15)
    weight_disposable_email = models.PositiveSmallIntegerField(default=25)
    weight_velocity_email = models.PositiveSmallIntegerField(default=25)
    weight_velocity_card = models.PositiveSmallIntegerField(default=30)
    weight_velocity_ip = models.PositiveSmallIntegerField(default=20)
    weight_channel_risk_high = models.PositiveSmallIntegerField(default=60)
    weight_channel_risk_medium = models.PositiveSmallIntegerField(default=25)
    weight_avs_mismatch = models.PositiveSmallIntegerField(
        default=20, help_text="AVS: no match; a partial match counts half."
    )
    weight_cvv_mismatch = models.PositiveSmallIntegerField(default=30)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "fraud settings"
        verbose_name_plural = "fraud settings"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="fraudsettings_singleton"),
            models.CheckConstraint(
                condition=Q(high_value_amount__gte=0), name="fraudsettings_high_value_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return "Fraud settings"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.pk = 1  # one row only
        self.high_value_currency = (self.high_value_currency or "").upper()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        from orders.errors import InvalidInput
        from orders.money import validate_currency

        try:
            self.high_value_currency = validate_currency(self.high_value_currency)
        except InvalidInput as exc:
            raise ValidationError({"high_value_currency": str(exc)}) from exc

    @classmethod
    def load(cls) -> FraudSettings:
        """The row, created with the defaults (and the shop currency) on first use."""
        row = cls.objects.filter(pk=1).first()
        if row is None:
            row, _ = cls.objects.get_or_create(
                pk=1, defaults={"high_value_currency": settings.SHOP_CURRENCY}
            )
        return row


class WeeklySummary(models.Model):
    """One ISO week's leadership summary as it was sent: the figures, and the HTML and text of
    the email (``reviews.summary``). Re-running a week recomputes the same figures in place.

    Its Meta also holds the permissions of the human-layer screens that have no model of
    their own: the operations dashboard and the KPI page (``reviews.views``)."""

    week = models.CharField(max_length=8, unique=True, help_text="ISO week, e.g. 2026-W48.")
    starts_on = models.DateField(help_text="The week's Monday (in TIME_ZONE).")
    ends_on = models.DateField(help_text="The week's Sunday (in TIME_ZONE).")
    figures = models.JSONField(default=dict, blank=True)
    subject = models.CharField(max_length=200, blank=True)
    html = models.TextField(blank=True)
    text = models.TextField(blank=True)
    emailed_to = models.JSONField(default=list, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-starts_on"]
        verbose_name_plural = "weekly summaries"
        permissions = [
            ("view_operations_dashboard", "Can see the operations dashboard"),
            ("view_kpis", "Can see the KPIs and the weekly summaries"),
        ]

    def __str__(self) -> str:
        return f"Weekly summary {self.week}"
