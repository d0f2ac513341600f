"""Reconciliation: payouts, ERP revenue and bank deposits matched against storefront sales.

What comes in, each row once (a unique key per source row; re-importing changes nothing):

- ``Payout``: money a processor or marketplace sent to the bank (Shopify Payments payouts,
  Stripe payouts, Amazon settlements / financial event groups), with its trace id or reference.
- ``ProcessorTransaction``: one balance movement of a processor (a charge, refund, dispute, fee,
  reserve, adjustment...), with amount, fee and net, the channel's order id it belongs to and the
  payout that paid it out.
- ``ErpDocument``: an invoice or credit note of the ERP (its CSV export or NetSuite's API), with
  our correlation id or the channel's order id.
- ``BankLine``: one booked line of a bank statement (CSV with a column mapping per account, ISO
  20022 camt.053, MT940).

Every row keeps what the vendor said (``raw``) and the import invariants it breaks
(``defects``: a list of ``{"code", "message"}``, e.g. ``net_mismatch`` when amount - fee != net,
``payout_sum_mismatch`` when a payout's transactions do not sum to its net). A defect is the
vendor's data as it is, flagged for a person: never "fixed" with a balancing line.

``ImportRun`` records each import: its source, file or API, counts, and one error per row that
could not be read (file name, line or JSON pointer, what is wrong).
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

from orders.models import MONEY, CurrencyAmountsMixin


class Source(models.TextChoices):
    SHOPIFY_PAYMENTS = "shopify_payments", "Shopify Payments"
    STRIPE = "stripe", "Stripe"
    AMAZON = "amazon", "Amazon settlements"
    ERP_CSV = "erp_csv", "ERP export (CSV)"
    NETSUITE = "netsuite", "NetSuite"
    BANK_CSV = "bank_csv", "Bank statement (CSV)"
    CAMT053 = "camt053", "Bank statement (ISO 20022 camt.053)"
    MT940 = "mt940", "Bank statement (SWIFT MT940)"


class Defect(models.TextChoices):
    """Import invariants a vendor's row can break (kept on the row, never balanced away)."""

    NET_MISMATCH = "net_mismatch", "amount - fee != net"
    PAYOUT_SUM_MISMATCH = "payout_sum_mismatch", "the payout's transactions do not sum to its net"
    CURRENCY_MIXED = "currency_mixed", "more than one currency in one payout"
    TOTAL_MISMATCH = "total_mismatch", "the settlement's lines do not sum to its total"


class ImportRun(models.Model):
    source = models.CharField(max_length=20, choices=Source.choices, db_index=True)
    channel = models.ForeignKey(
        "channels.SalesChannel", null=True, blank=True, on_delete=models.PROTECT,
        related_name="+",
    )  # fmt: skip
    origin = models.CharField(max_length=500, help_text="The file's name, or the API it read.")
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    rows_read = models.PositiveIntegerField(default=0)
    rows_new = models.PositiveIntegerField(default=0)
    rows_unchanged = models.PositiveIntegerField(default=0)
    rows_rejected = models.PositiveIntegerField(default=0)
    defects = models.PositiveIntegerField(default=0, help_text="Rows kept with a vendor defect.")
    errors = models.JSONField(
        default=list, blank=True,
        help_text='One per rejected row: {"where": "file:line or JSON pointer", "message": ...}.',
    )  # fmt: skip
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_source_display()} {self.origin} ({self.rows_new} new)"


class PayoutStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    IN_TRANSIT = "in_transit", "In transit"
    PAID = "paid", "Paid"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


class Payout(CurrencyAmountsMixin, models.Model):
    """Money a processor or marketplace paid out to the bank (or took back: a negative one)."""

    MONEY_FIELDS = ("amount", "gross", "fees")

    source = models.CharField(max_length=20, choices=Source.choices)
    channel = models.ForeignKey(
        "channels.SalesChannel", null=True, blank=True, on_delete=models.PROTECT,
        related_name="payouts",
    )  # fmt: skip
    external_id = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=PayoutStatus.choices,
                              default=PayoutStatus.PAID)  # fmt: skip
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(**MONEY, help_text="Net paid out: what the bank receives.")
    gross = models.DecimalField(**MONEY, help_text="The vendor's gross, when it gives one.")
    fees = models.DecimalField(**MONEY, help_text="The vendor's fees, when it gives them.")
    paid_on = models.DateField(db_index=True, help_text="The payout's (expected) arrival date.")
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    trace_id = models.CharField(
        max_length=200, blank=True, db_index=True,
        help_text="What the bank statement shows of it: trace id, reference, settlement id.",
    )  # fmt: skip
    summary = models.JSONField(default=dict, blank=True)
    raw = models.JSONField(default=dict, blank=True)
    defects = models.JSONField(default=list, blank=True)
    import_run = models.ForeignKey(ImportRun, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="payouts")  # fmt: skip
    imported_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-paid_on", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="payout_once"),
        ]

    def __str__(self) -> str:
        return f"{self.get_source_display()} payout {self.external_id}"


class TxCategory(models.TextChoices):
    """One vocabulary for every processor's balance movements (Stripe's reporting categories,
    Shopify's transaction types, Amazon's event kinds map onto it)."""

    CHARGE = "charge", "Charge"
    REFUND = "refund", "Refund"
    DISPUTE = "dispute", "Dispute / chargeback"
    DISPUTE_REVERSAL = "dispute_reversal", "Dispute won back"
    FEE = "fee", "Fee"
    RESERVE_HOLD = "reserve_hold", "Reserve held"
    RESERVE_RELEASE = "reserve_release", "Reserve released"
    ADJUSTMENT = "adjustment", "Adjustment"
    GIFT_CARD = "gift_card", "Gift card / store credit"
    PAYOUT = "payout", "Payout"
    OTHER = "other", "Other"


class ProcessorTransaction(CurrencyAmountsMixin, models.Model):
    MONEY_FIELDS = ("amount", "fee", "net")

    source = models.CharField(max_length=20, choices=Source.choices)
    channel = models.ForeignKey(
        "channels.SalesChannel", null=True, blank=True, on_delete=models.PROTECT,
        related_name="processor_transactions",
    )  # fmt: skip
    external_id = models.CharField(max_length=120)
    category = models.CharField(max_length=20, choices=TxCategory.choices, db_index=True)
    vendor_type = models.CharField(max_length=60, blank=True, help_text="The vendor's own word.")
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(**MONEY)
    fee = models.DecimalField(**MONEY)
    net = models.DecimalField(**MONEY)
    occurred_at = models.DateTimeField(db_index=True)
    available_on = models.DateField(null=True, blank=True)
    payout = models.ForeignKey(Payout, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="transactions")  # fmt: skip
    payout_external_id = models.CharField(max_length=100, blank=True, db_index=True)
    source_order_id = models.CharField(
        max_length=120, blank=True, db_index=True, help_text="The channel's order id."
    )
    source_reference = models.CharField(
        max_length=120, blank=True, help_text="Its charge, checkout or order transaction id."
    )
    order = models.ForeignKey("orders.Order", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="processor_transactions")  # fmt: skip
    raw = models.JSONField(default=dict, blank=True)
    defects = models.JSONField(default=list, blank=True)
    import_run = models.ForeignKey(ImportRun, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="transactions")  # fmt: skip

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="processor_tx_once"),
        ]

    def __str__(self) -> str:
        return f"{self.get_source_display()} {self.category} {self.external_id}"


class ErpDocType(models.TextChoices):
    INVOICE = "invoice", "Invoice"
    CREDIT_NOTE = "credit_note", "Credit note"


class ErpDocument(CurrencyAmountsMixin, models.Model):
    MONEY_FIELDS = ("amount",)

    source = models.CharField(max_length=20, choices=Source.choices)
    document_number = models.CharField(max_length=100)
    doc_type = models.CharField(max_length=16, choices=ErpDocType.choices)
    document_date = models.DateField(db_index=True)
    reference = models.CharField(
        max_length=120, db_index=True,
        help_text="Our correlation id (NetSuite's externalId) or the channel's order id.",
    )  # fmt: skip
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(**MONEY, help_text="Positive for both kinds, as the ERP shows.")
    order = models.ForeignKey("orders.Order", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="erp_documents")  # fmt: skip
    raw = models.JSONField(default=dict, blank=True)
    defects = models.JSONField(default=list, blank=True)
    import_run = models.ForeignKey(ImportRun, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="erp_documents")  # fmt: skip

    class Meta:
        ordering = ["-document_date", "-id"]
        constraints = [
            # One document per number and kind; the same number exported twice is one row.
            models.UniqueConstraint(fields=["source", "doc_type", "document_number"],
                                    name="erp_document_once"),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.get_doc_type_display()} {self.document_number}"

    @property
    def signed_amount(self) -> Decimal:
        """Revenue: an invoice adds, a credit note takes away."""
        return -self.amount if self.doc_type == ErpDocType.CREDIT_NOTE else self.amount


class BankAccount(models.Model):
    """A bank account whose statements are imported; a CSV export's columns are mapped once."""

    name = models.CharField(max_length=100, unique=True)
    account_number = models.CharField(max_length=64, blank=True, help_text="IBAN or number.")
    currency = models.CharField(max_length=3)
    csv_mapping = models.JSONField(
        default=dict, blank=True,
        help_text='CSV columns: {"date": "Booking date", "amount": "Amount", "text": "Details", '
                  '"reference": "Reference", "date_format": "%d.%m.%Y", "decimal": ","} '
                  '(or "credit"/"debit" columns instead of "amount").',
    )  # fmt: skip

    def __str__(self) -> str:
        return self.name


class BankLine(CurrencyAmountsMixin, models.Model):
    MONEY_FIELDS = ("amount",)

    account = models.ForeignKey(BankAccount, on_delete=models.PROTECT, related_name="lines")
    source = models.CharField(max_length=20, choices=Source.choices)
    dedup_key = models.CharField(
        max_length=200,
        help_text="The bank's own entry reference, else a hash of the statement row.",
    )
    booked_on = models.DateField(db_index=True)
    value_on = models.DateField(null=True, blank=True)
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(**MONEY, help_text="Positive: money in.")
    text = models.TextField(blank=True, help_text="Remittance information as the bank shows it.")
    reference = models.CharField(max_length=200, blank=True, db_index=True)
    counterparty = models.CharField(max_length=200, blank=True)
    raw = models.JSONField(default=dict, blank=True)
    import_run = models.ForeignKey(ImportRun, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="bank_lines")  # fmt: skip

    class Meta:
        ordering = ["-booked_on", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "dedup_key"], name="bank_line_once"),
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.booked_on} {self.amount} {self.currency}"


# --- the matching graph --------------------------------------------------------------------------
class LinkKind(models.TextChoices):
    ORDER_TRANSACTION = "order_transaction", "Order <-> processor transactions"
    PAYOUT_TRANSACTIONS = "payout_transactions", "Payout <-> its transactions"
    PAYOUT_BANK = "payout_bank", "Payout <-> bank deposit"
    ORDER_ERP = "order_erp", "Order <-> ERP documents"


class LinkState(models.TextChoices):
    MATCHED = "matched", "Matched"
    PARTIAL = "partial", "Partial"
    AMOUNT_MISMATCH = "amount_mismatch", "Amount mismatch"
    MISSING = "missing", "Missing"
    PROPOSED = "proposed", "Proposed (a person confirms)"


class Link(CurrencyAmountsMixin, models.Model):
    """One edge of the graph order <-> processor transaction <-> payout <-> bank line, and order
    <-> ERP document, with its state and the reason in words. ``key`` names the edge (its kind
    and the ids it joins), so matching again updates the edge instead of adding one; an edge a
    person made or confirmed (``manual``) is never changed by matching. A deposit that covers
    several payouts is one edge per payout sharing a ``group``."""

    MONEY_FIELDS = ("expected", "found", "difference")

    key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=24, choices=LinkKind.choices, db_index=True)
    state = models.CharField(max_length=16, choices=LinkState.choices, db_index=True)
    reason = models.CharField(max_length=500, blank=True)
    order = models.ForeignKey("orders.Order", null=True, blank=True, on_delete=models.CASCADE,
                              related_name="recon_links")  # fmt: skip
    payout = models.ForeignKey(Payout, null=True, blank=True, on_delete=models.CASCADE,
                               related_name="links")  # fmt: skip
    bank_line = models.ForeignKey(BankLine, null=True, blank=True, on_delete=models.CASCADE,
                                  related_name="links")  # fmt: skip
    erp_document = models.ForeignKey(ErpDocument, null=True, blank=True,
                                     on_delete=models.CASCADE, related_name="links")  # fmt: skip
    group = models.CharField(max_length=64, blank=True, db_index=True,
                             help_text="Edges of one one-to-many match share it.")  # fmt: skip
    currency = models.CharField(max_length=3)
    expected = models.DecimalField(**MONEY)
    found = models.DecimalField(**MONEY)
    difference = models.DecimalField(**MONEY, help_text="found - expected")
    score = models.PositiveSmallIntegerField(default=0, help_text="Bank matches: how sure.")
    manual = models.BooleanField(default=False)
    made_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                on_delete=models.SET_NULL, related_name="+")  # fmt: skip
    note = models.TextField(blank=True)
    matched_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["kind", "-matched_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.get_state_display()}"


class AuditEntry(models.Model):
    """What a person did in reconciliation (a manual match, a resolution, a period close)."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                             on_delete=models.SET_NULL, related_name="+")  # fmt: skip
    action = models.CharField(max_length=40)
    subject = models.CharField(max_length=120, help_text="What it was done to: kind:id.")
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action} {self.subject}"


# --- variance ------------------------------------------------------------------------------------
class Comparison(models.TextChoices):
    SALES_ERP = "sales_erp", "Storefront sales vs ERP revenue"
    SALES_PROCESSOR = "sales_processor", "Storefront sales vs processor gross"
    PROCESSOR_PAYOUTS = "processor_payouts", "Processor net vs payouts"
    PAYOUTS_BANK = "payouts_bank", "Payouts vs bank deposits"


class Category(models.TextChoices):
    """Why two columns differ. What none of them explains is ``unexplained``."""

    UNEXPLAINED = "unexplained", "Unexplained"
    FEES = "fees", "Fees"
    REFUNDS_AFTER_PAYOUT = "refunds_after_payout", "Refunds after payout"
    CHARGEBACKS = "chargebacks", "Chargebacks and disputes"
    RESERVES = "reserves", "Reserves held / released"
    TIMING = "timing", "Timing (next period, in transit)"
    FX = "fx", "Currency conversion"
    GIFT_CARDS = "gift_cards", "Gift cards and store credit"
    SHIPPING_EXTRAS = "shipping_extras", "Shipping insurance and duties"
    MISSING_IN_ERP = "missing_in_erp", "Missing in ERP"
    DUPLICATED_IN_ERP = "duplicated_in_erp", "Duplicated in ERP"
    AMOUNT_MISMATCH = "amount_mismatch", "Amount mismatch"
    ROUNDING = "rounding", "Rounding"
    VENDOR_DEFECT = "vendor_defect", "Vendor-data defect"


class VarianceItem(CurrencyAmountsMixin, models.Model):
    """One explained (or unexplained) part of the difference between two columns of a period.
    ``key`` names it (period, channel, comparison and subject), so computing again updates it.
    A person resolves an unexplained item with a category and a note (kept, audited)."""

    MONEY_FIELDS = ("amount",)

    key = models.CharField(max_length=200, unique=True)
    period = models.CharField(max_length=24, db_index=True, help_text="YYYY-MM or a range.")
    channel = models.ForeignKey("channels.SalesChannel", null=True, blank=True,
                                on_delete=models.CASCADE, related_name="+")  # fmt: skip
    comparison = models.CharField(max_length=20, choices=Comparison.choices)
    category = models.CharField(max_length=24, choices=Category.choices, db_index=True)
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(**MONEY, help_text="Its share of (first column - second).")
    description = models.CharField(max_length=500)
    order = models.ForeignKey("orders.Order", null=True, blank=True, on_delete=models.CASCADE,
                              related_name="+")  # fmt: skip
    payout = models.ForeignKey(Payout, null=True, blank=True, on_delete=models.CASCADE,
                               related_name="+")  # fmt: skip
    bank_line = models.ForeignKey(BankLine, null=True, blank=True, on_delete=models.CASCADE,
                                  related_name="+")  # fmt: skip
    erp_document = models.ForeignKey(ErpDocument, null=True, blank=True,
                                     on_delete=models.CASCADE, related_name="+")  # fmt: skip
    resolved_category = models.CharField(max_length=24, choices=Category.choices, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.SET_NULL, related_name="+")  # fmt: skip
    resolved_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["period", "comparison", "category", "id"]

    def __str__(self) -> str:
        return f"{self.period} {self.comparison} {self.category} {self.amount} {self.currency}"

    @property
    def explained_as(self) -> str:
        """The category that counts: a person's resolution over the computed one."""
        return self.resolved_category or self.category


class PeriodClose(models.Model):
    """A period finance closed: its figures frozen as they were, and who closed it. Computing a
    closed period again shows the difference against these figures; it never changes them."""

    period = models.CharField(max_length=24)
    channel = models.ForeignKey("channels.SalesChannel", null=True, blank=True,
                                on_delete=models.PROTECT, related_name="+")  # fmt: skip
    figures = models.JSONField(help_text="The rows as they were at the close (amounts as text).")
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                  related_name="+")  # fmt: skip
    closed_at = models.DateTimeField(default=timezone.now)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-closed_at"]
        permissions = [("close_period", "Can close a reconciliation period")]
        constraints = [
            models.UniqueConstraint(fields=["period"], condition=models.Q(channel__isnull=True),
                                    name="period_closed_once"),
            models.UniqueConstraint(fields=["period", "channel"],
                                    condition=models.Q(channel__isnull=False),
                                    name="period_channel_closed_once"),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.period} closed by {self.closed_by}"
