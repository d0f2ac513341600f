"""The built-in carrier: quotes from a fixed tariff and real 4x6 inch labels, no network.

It lets a new install (and every test) run the whole label flow offline, and it is what a
warehouse that prints its own labels for a local courier uses.

- ``rates()``: one quote per service level from a tariff: a base price plus a price per started
  half kilogram, more (and slower) when the parcel leaves the ship-from country. Quantized to the
  minor units of ``LOCAL_CARRIER_CURRENCY`` (default USD: two places). Deterministic.
- Tracking numbers follow the UPU S10 layout: ``LC``, an eight-digit serial, a mod-11 check digit
  (weights 8 6 4 2 3 5 9 7), ``US``: ``LC123456785US``.
- The serial is derived from the request's ``reference`` (our idempotency key), never from a
  counter: a counter would need a store shared by every worker process. So the same reference
  always gives the same tracking number, and a retry after a crash re-renders the same label
  instead of making a second one. A reference that ends in a number (ours are ``shipment-<pk>``)
  maps that number through a bijection of the serial space (seeded by the rest of the
  reference), so references sharing a prefix never collide below 10**8. Any other reference is
  hashed: collisions are then possible (by 10,000 such references, about a 40% chance of one
  pair), and the unique (carrier, tracking_number) constraint on shipments catches them.
- ``buy()`` renders the PDF (reportlab, Code128 from ``reportlab.graphics.barcode``) and a ZPL
  version of the same label. Both are byte-for-byte deterministic for the same request. A
  return (``request.is_return``) is marked RETURN with its RMA number (the reference); its
  tracking number is an ordinary one, so the simulator tracks it like any parcel.
- ``track()`` is a deterministic simulator (``simulate``): from the time the parcel was handed
  over, one scan every ``LOCAL_CARRIER_TRACKING_STEP_SECONDS`` (default 3600; 0 tells the whole
  story at once): ``pre_transit -> in_transit -> out_for_delivery -> delivered``. A share
  ``LOCAL_CARRIER_EXCEPTION_RATE`` (default 0.1) of tracking numbers, chosen by a hash of the
  number, has a failed delivery attempt instead of the delivery, then either the delivery on the
  next step or a return to sender. Only scans up to now are told, with an estimated delivery
  window; polling the same parcel twice tells the same scans (the tracking dedup drops them).

Labels carry addresses (that is their job); log lines never do: they name the tracking number,
the reference and country codes only.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from django.conf import settings
from django.utils import timezone
from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib.units import inch
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from fulfillment.carriers.base import (
    SERVICE_LEVELS,
    CarrierError,
    Label,
    Rate,
    ShipmentRequest,
    Tracking,
    TrackingEvent,
)
from orders import money

log = structlog.get_logger(__name__)

CODE = "local"
LABEL_HOSTS: tuple[str, ...] = ()  # it renders its labels itself: never a link

TRACKING_PREFIX = "LC"
TRACKING_COUNTRY = "US"
S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)
SERIAL_SPACE = 10**8
# Odd and not a multiple of 5, so coprime with 10**8: n -> (n * M + offset) mod 10**8 is a
# bijection, and numbered references with one prefix get distinct serials.
_SERIAL_MULTIPLIER = 61_803_399
_NUMBERED_REFERENCE = re.compile(r"^(?P<prefix>.*?)(?P<number>[1-9]\d{0,7}|0)$", re.DOTALL)
_TRACKING_NUMBER = re.compile(rf"^{TRACKING_PREFIX}(\d{{8}})(\d){TRACKING_COUNTRY}$")


@dataclass(frozen=True)
class Tariff:
    service: str
    base: Decimal
    per_half_kg: Decimal
    days: int
    days_international: int


# Prices in units of LOCAL_CARRIER_CURRENCY. The first half kilogram is in the base price.
TARIFFS: dict[str, Tariff] = {
    "economy": Tariff("Local Economy", Decimal("4.25"), Decimal("0.45"), 6, 14),
    "ground": Tariff("Local Ground", Decimal("5.95"), Decimal("0.65"), 4, 10),
    "express": Tariff("Local Express", Decimal("13.50"), Decimal("1.20"), 2, 5),
    "premium": Tariff("Local Premium", Decimal("24.00"), Decimal("1.90"), 1, 3),
}
INTERNATIONAL_SURCHARGE = Decimal("9.50")
INTERNATIONAL_WEIGHT_FACTOR = Decimal(2)
HALF_KG_GRAMS = 500


# --- tracking numbers --------------------------------------------------------------------------
def s10_check_digit(serial: str) -> int:
    """The UPU S10 check digit of an eight-digit serial: 11 - (weighted sum mod 11), where 10
    becomes 0 and 11 becomes 5."""
    if len(serial) != len(S10_WEIGHTS) or not serial.isdigit():
        raise ValueError("an S10 serial is eight digits")
    total = sum(int(d) * w for d, w in zip(serial, S10_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: 0, 11: 5}.get(check, check)


def tracking_number_valid(value: str) -> bool:
    """Whether ``value`` is one of our tracking numbers: ``LC``, 8 digits, check digit, ``US``."""
    match = _TRACKING_NUMBER.match(value) if isinstance(value, str) else None
    return match is not None and s10_check_digit(match[1]) == int(match[2])


def _digest(text: str) -> int:
    raw = hashlib.sha256(f"local-carrier:{text}".encode()).digest()
    return int.from_bytes(raw[:8], "big")


def _serial(reference: str) -> int:
    numbered = _NUMBERED_REFERENCE.match(reference)
    if numbered is None:
        return _digest(reference) % SERIAL_SPACE
    offset = _digest(numbered["prefix"]) % SERIAL_SPACE
    return (int(numbered["number"]) * _SERIAL_MULTIPLIER + offset) % SERIAL_SPACE


def tracking_number_for(reference: str) -> str:
    """The tracking number of the label for ``reference``: always the same for one reference."""
    if not reference:
        raise CarrierError("The local carrier needs a reference to number a label", retryable=False)
    serial = f"{_serial(reference):08d}"
    return f"{TRACKING_PREFIX}{serial}{s10_check_digit(serial)}{TRACKING_COUNTRY}"


# --- tracking simulator ------------------------------------------------------------------------
CARRIER_NAME = "Local carrier"
STORY_DELIVERED = "delivered"
STORY_FAILED_THEN_DELIVERED = "failed_then_delivered"
STORY_FAILED_THEN_RETURNED = "failed_then_returned"


@dataclass(frozen=True)
class _Scan:
    status: str  # ours (base.TRACKING_STATUSES)
    carrier_status: str  # the simulator's own code, kept as the carrier's
    carrier_detail: str
    description: str
    location: str


_ACCEPTED = _Scan("pre_transit", "accepted", "", "Accepted at the origin depot", "Origin depot")
_DEPARTED = _Scan("in_transit", "in_transit", "departed_depot", "Departed the origin depot",
                  "Sorting hub")  # fmt: skip
_OUT = _Scan("out_for_delivery", "out_for_delivery", "", "Out for delivery", "Delivery depot")
_DELIVERED = _Scan("delivered", "delivered", "", "Delivered", "Delivery depot")
STORIES: dict[str, tuple[_Scan, ...]] = {
    STORY_DELIVERED: (_ACCEPTED, _DEPARTED, _OUT, _DELIVERED),
    STORY_FAILED_THEN_DELIVERED: (
        _ACCEPTED, _DEPARTED, _OUT,
        _Scan("failed_attempt", "attempt_failed", "recipient_not_available",
              "Delivery attempted: nobody was available to receive the parcel", "Delivery depot"),
        _Scan("delivered", "delivered", "second_attempt", "Delivered on the second attempt",
              "Delivery depot"),
    ),
    STORY_FAILED_THEN_RETURNED: (
        _ACCEPTED, _DEPARTED, _OUT,
        _Scan("failed_attempt", "attempt_failed", "address_not_found",
              "Delivery attempted: the address could not be found", "Delivery depot"),
        _Scan("return_to_sender", "return_to_sender", "undeliverable",
              "Undeliverable: returning to the sender", "Delivery depot"),
    ),
}  # fmt: skip
# The parcel is expected on the delivery step (the fourth scan), give or take one step.
_EXPECTED_STEP = 3


def story_for(tracking_number: str, *, exception_rate: float) -> str:
    """Which story a parcel lives: decided by its tracking number alone (the same number
    always lives the same story). A share ``exception_rate`` of numbers has a failed delivery
    attempt, then half of those are delivered on the next step, half returned to sender."""
    digest = hashlib.sha256(f"local-carrier-story:{tracking_number}".encode()).digest()
    draw = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    if draw >= min(max(exception_rate, 0.0), 1.0):
        return STORY_DELIVERED
    return STORY_FAILED_THEN_DELIVERED if digest[8] % 2 == 0 else STORY_FAILED_THEN_RETURNED


def simulate(
    tracking_number: str,
    *,
    shipped_at: datetime,
    now: datetime,
    step_seconds: float,
    exception_rate: float,
) -> Tracking:
    """The local carrier's deterministic tracking: scan ``k`` of the parcel's story happens
    ``k * step_seconds`` after it shipped, and only the scans up to ``now`` are told. With a
    step of 0 the whole story is there at once. The estimated delivery window runs from one
    step before the expected delivery to one step after it."""
    step = timedelta(seconds=max(float(step_seconds), 0.0))
    scans = STORIES[story_for(tracking_number, exception_rate=exception_rate)]
    events = [
        TrackingEvent(
            at=shipped_at + k * step,
            status=scan.status,
            description=scan.description,
            location=scan.location,
            carrier_status=scan.carrier_status,
            carrier_detail=scan.carrier_detail,
        )  # fmt: skip
        for k, scan in enumerate(scans)
        if shipped_at + k * step <= now
    ]
    latest = events[-1] if events else None
    return Tracking(
        tracking_number=tracking_number,
        status=latest.status if latest else "pre_transit",
        events=events,
        carrier_status=latest.carrier_status if latest else "",
        carrier_detail=latest.carrier_detail if latest else "",
        estimated_delivery_from=shipped_at + (_EXPECTED_STEP - 1) * step,
        estimated_delivery_until=shipped_at + (_EXPECTED_STEP + 1) * step,
        carrier_name=CARRIER_NAME,
    )


# --- rates -------------------------------------------------------------------------------------
def _country(address: dict[str, Any]) -> str:
    return str(address.get("country_code") or "").strip().upper()


def is_international(request: ShipmentRequest) -> bool:
    """Ship-from and ship-to countries differ (a missing country counts as different: customs
    data on a domestic label is harmless, none on an international one is not)."""
    return _country(request.ship_from) != _country(request.ship_to)


def _currency() -> str:
    return money.validate_currency(settings.LOCAL_CARRIER_CURRENCY)


def quote(level: str, *, weight_grams: int, international: bool, currency: str) -> Rate:
    """The tariff price of one service level."""
    tariff = TARIFFS[level]
    half_kgs = max(1, -(-weight_grams // HALF_KG_GRAMS))  # started half kilograms
    per_step = tariff.per_half_kg * (INTERNATIONAL_WEIGHT_FACTOR if international else 1)
    amount = tariff.base + per_step * (half_kgs - 1)
    if international:
        amount += INTERNATIONAL_SURCHARGE
    return Rate(
        carrier=CODE,
        service=tariff.service,
        service_level=level,
        amount=money.quantize(amount, currency, rounding=money.ROUND_HALF_UP),
        currency=currency,
        delivery_days=tariff.days_international if international else tariff.days,
        rate_id=f"{CODE}:{level}",
    )


# --- label text --------------------------------------------------------------------------------
def _address_lines(address: dict[str, Any]) -> list[str]:
    def field(name: str) -> str:
        return " ".join(str(address.get(name) or "").split())

    city = field("city")
    region = field("region_code")
    locality = ", ".join(p for p in (city, region) if p)
    postal = field("postal_code")
    locality = f"{locality} {postal}".strip()
    lines = [field("name"), field("company"), field("line1"), field("line2"), locality]
    lines.append(_country(address))
    return [line for line in lines if line]


def _weight_text(weight_grams: int) -> str:
    return f"{(Decimal(weight_grams) / 1000).quantize(Decimal('0.001'))} kg"


def _customs_rows(request: ShipmentRequest) -> list[tuple[str, str, str, str, str]]:
    """(item, HS code, origin, quantity, declared value) per customs line."""
    return [
        (
            " ".join(f"{line.sku} {line.description}".split()),
            line.hs_code or "-",
            line.origin_country or "-",
            str(line.quantity),
            f"{line.value} {line.currency}",
        )
        for line in request.customs
    ]


def _customs_totals(request: ShipmentRequest) -> str:
    totals: dict[str, Decimal] = {}
    for line in request.customs:
        totals[line.currency] = totals.get(line.currency, Decimal(0)) + line.value
    return ", ".join(f"{amount} {currency}" for currency, amount in sorted(totals.items()))


# --- PDF ---------------------------------------------------------------------------------------
PAGE_SIZE = (4 * inch, 6 * inch)  # 288 x 432 points
MARGIN = 12.0
BARCODE_HEIGHT = 64.0
MAX_BAR_WIDTH = 1.4
QUIET_MODULES = 10


def _fit(text: str, font: str, size: float, width: float) -> str:
    """``text`` cut (with an ellipsis) to fit ``width`` points."""
    if stringWidth(text, font, size) <= width:
        return text
    while text and stringWidth(text + "\u2026", font, size) > width:
        text = text[:-1]
    return text + "\u2026"


class _PdfLabel:
    """Draws top to bottom on one 4x6 page; ``y`` is the baseline cursor."""

    def __init__(self, canvas: Canvas) -> None:
        self.canvas = canvas
        self.width, self.height = PAGE_SIZE
        self.y = self.height - MARGIN
        self.inner = self.width - 2 * MARGIN

    def text(
        self, value: str, *, font: str = "Helvetica", size: float = 8, lead: float = 0
    ) -> None:
        self.y -= lead or size * 1.2
        self.canvas.setFont(font, size)
        self.canvas.drawString(MARGIN, self.y, _fit(value, font, size, self.inner))

    def rule(self, gap: float = 5) -> None:
        self.y -= gap
        self.canvas.setLineWidth(1)
        self.canvas.line(MARGIN, self.y, self.width - MARGIN, self.y)

    def header(self, left: str, right: str, note: str) -> None:
        c = self.canvas
        self.y -= 16
        c.setFont("Helvetica-Bold", 14)
        c.drawString(MARGIN, self.y, left)
        c.setFont("Helvetica-Bold", 18)
        c.drawRightString(self.width - MARGIN, self.y, right)
        if note:
            self.y -= 11
            c.setFont("Helvetica-Bold", 9)
            c.drawRightString(self.width - MARGIN, self.y, note)

    def barcode(self, value: str) -> None:
        modules = Code128(value, barHeight=BARCODE_HEIGHT, barWidth=1, quiet=False).width
        # Leave scanners their quiet zone: ten modules of white on each side.
        bar_width = min(MAX_BAR_WIDTH, self.inner / (modules + 2 * QUIET_MODULES))
        code = Code128(value, barHeight=BARCODE_HEIGHT, barWidth=bar_width, quiet=False)
        self.y -= BARCODE_HEIGHT + 6
        code.drawOn(self.canvas, (self.width - code.width) / 2, self.y)
        self.y -= 15
        self.canvas.setFont("Helvetica-Bold", 13)
        self.canvas.drawCentredString(self.width / 2, self.y, value)

    def customs(self, rows: list[tuple[str, str, str, str, str]], total: str) -> None:
        c = self.canvas
        self.text(
            "CUSTOMS DECLARATION (CN22) - contents: merchandise", font="Helvetica-Bold", size=7
        )
        columns = (MARGIN, 150.0, 196.0, 226.0)  # item, HS code, origin, qty; value right-aligned
        row_height = 7.6
        reserved = 2 * row_height  # the "more lines" note and the total
        self.y -= row_height
        self._row(("Item", "HS code", "Origin", "Qty", "Value"), columns, "Helvetica-Bold")
        fits = max(0, int((self.y - MARGIN - reserved) // row_height))
        shown = rows if len(rows) <= fits else rows[: max(0, fits - 1)]
        for row in shown:
            self.y -= row_height
            self._row(row, columns, "Helvetica")
        if len(shown) < len(rows):
            self.y -= row_height
            c.setFont("Helvetica-Oblique", 6)
            c.drawString(MARGIN, self.y, f"+ {len(rows) - len(shown)} more lines (see invoice)")
        self.y -= row_height
        c.setFont("Helvetica-Bold", 6.5)
        c.drawRightString(self.width - MARGIN, self.y, f"Total declared value: {total}")

    def _row(self, cells: tuple[str, ...], columns: tuple[float, ...], font: str) -> None:
        c = self.canvas
        size = 6.0
        c.setFont(font, size)
        item, hs_code, origin, quantity, value = cells
        c.drawString(columns[0], self.y, _fit(item, font, size, columns[1] - columns[0] - 4))
        c.drawString(columns[1], self.y, _fit(hs_code, font, size, columns[2] - columns[1] - 4))
        c.drawString(columns[2], self.y, origin)
        c.drawRightString(columns[3] + 12, self.y, quantity)
        c.drawRightString(self.width - MARGIN, self.y, value)


def render_pdf_label(request: ShipmentRequest, rate: Rate, tracking_number: str) -> bytes:
    """One 4x6 inch page: ship-from, ship-to, service, weight, Code128 of the tracking number,
    and for international parcels a customs summary (HS code, origin, declared value per line)."""
    buffer = io.BytesIO()
    # invariant: no creation date or random id in the file, so one request gives one file.
    canvas = Canvas(buffer, pagesize=PAGE_SIZE, invariant=1)
    canvas.setTitle(f"Label {tracking_number}")
    canvas.setAuthor("orderdesk local carrier")
    international = is_international(request)
    page = _PdfLabel(canvas)
    note = "INTERNATIONAL" if international else ""
    if request.is_return:
        note = f"RETURN {note}".strip()
    page.header("LOCAL CARRIER", rate.service_level.upper(), note)
    if request.is_return:
        page.text(f"RETURN  {request.reference}", font="Helvetica-Bold", size=12, lead=16)
    page.rule()
    page.text("FROM", font="Helvetica-Bold", size=6)
    for line in _address_lines(request.ship_from):
        page.text(line, size=8, lead=9)
    page.rule()
    page.text("SHIP TO", font="Helvetica-Bold", size=8)
    for line in _address_lines(request.ship_to)[:7]:
        page.text(line, font="Helvetica-Bold", size=12, lead=14)
    page.rule()
    page.text(f"Service: {rate.service}    Weight: {_weight_text(request.weight_grams)}")
    page.text(f"{'RMA' if request.is_return else 'Ref'}: {request.reference}")
    if request.signature_required:
        page.text("SIGNATURE REQUIRED", font="Helvetica-Bold", size=9)
    page.rule()
    page.barcode(tracking_number)
    page.rule(8)
    if international:
        page.customs(_customs_rows(request), _customs_totals(request) or "none declared")
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


# --- ZPL ---------------------------------------------------------------------------------------
ZPL_DOTS = (812, 1218)  # 4x6 inch at 203 dpi


def _zpl_field(x: int, y: int, text: str, *, size: int) -> str:
    """A text field; ^FH makes backslash the hex escape, so ^ and ~ in data cannot end it."""
    clean = " ".join(text.split())
    escaped = clean.replace("\\", "\\5C").replace("^", "\\5E").replace("~", "\\7E")
    return f"^FO{x},{y}^A0N,{size},{size}^FH\\^FD{escaped}^FS"


def render_zpl_label(request: ShipmentRequest, rate: Rate, tracking_number: str) -> str:
    """The same label in ZPL II for thermal printers (UTF-8 with ^CI28, 203 dpi)."""
    width, length = ZPL_DOTS
    lines = ["^XA", "^CI28", f"^PW{width}", f"^LL{length}", "^LH0,0"]
    lines.append(_zpl_field(30, 30, "LOCAL CARRIER", size=40))
    lines.append(_zpl_field(560, 30, rate.service_level.upper(), size=44))
    y = 80
    if is_international(request):
        lines.append(_zpl_field(560, y, "INTERNATIONAL", size=26))
    if request.is_return:
        lines.append(_zpl_field(30, y, f"RETURN {request.reference}", size=30))
    y += 36
    lines.append(f"^FO30,{y}^GB752,3,3^FS")
    y += 14
    lines.append(_zpl_field(30, y, "FROM", size=20))
    for line in _address_lines(request.ship_from):
        y += 26
        lines.append(_zpl_field(30, y, line, size=24))
    y += 40
    lines.append(f"^FO30,{y}^GB752,3,3^FS")
    y += 14
    lines.append(_zpl_field(30, y, "SHIP TO", size=24))
    for line in _address_lines(request.ship_to)[:7]:
        y += 40
        lines.append(_zpl_field(30, y, line, size=36))
    y += 56
    lines.append(f"^FO30,{y}^GB752,3,3^FS")
    y += 14
    service = f"Service: {rate.service}   Weight: {_weight_text(request.weight_grams)}"
    lines.append(_zpl_field(30, y, service, size=24))
    y += 30
    ref = "RMA" if request.is_return else "Ref"
    lines.append(_zpl_field(30, y, f"{ref}: {request.reference}", size=24))
    if request.signature_required:
        y += 30
        lines.append(_zpl_field(30, y, "SIGNATURE REQUIRED", size=28))
    y += 44
    lines.append(f"^FO60,{y}^BY3^BCN,160,N,N,N^FD{tracking_number}^FS")
    y += 176
    lines.append(_zpl_field(60, y, tracking_number, size=40))
    if is_international(request):
        y += 56
        lines.append(_zpl_field(30, y, "CUSTOMS DECLARATION (CN22)", size=22))
        for item, hs_code, origin, quantity, value in _customs_rows(request):
            y += 24
            if y > length - 90:
                lines.append(_zpl_field(30, y, "more lines: see invoice", size=20))
                break
            row = f"{item[:34]} HS {hs_code} {origin} x{quantity} {value}"
            lines.append(_zpl_field(30, y, row, size=20))
        y += 26
        total = _customs_totals(request) or "none declared"
        lines.append(_zpl_field(30, y, f"Total declared value: {total}", size=22))
    lines.append("^XZ")
    return "\n".join(lines) + "\n"


# --- the carrier -------------------------------------------------------------------------------
class LocalCarrier:
    """The built-in carrier (``code = "local"``): no network, no account."""

    code = CODE
    label_hosts = LABEL_HOSTS

    def rates(self, request: ShipmentRequest) -> list[Rate]:
        if request.weight_grams <= 0:
            raise CarrierError("A parcel must weigh something", retryable=False)
        currency = _currency()
        international = is_international(request)
        return [
            quote(level, weight_grams=request.weight_grams, international=international,
                  currency=currency)
            for level in SERVICE_LEVELS
        ]  # fmt: skip

    def buy(self, request: ShipmentRequest, rate: Rate) -> Label:
        """Render the label for ``request``; the same reference always gives the same label."""
        if rate.carrier != CODE or rate.service_level not in TARIFFS:
            raise CarrierError(
                f"Not a local carrier quote: {rate.carrier}/{rate.service}", retryable=False
            )
        tracking_number = tracking_number_for(request.reference)
        label = Label(
            carrier=CODE,
            service=rate.service,
            tracking_number=tracking_number,
            carrier_shipment_id=tracking_number,
            rate=rate,
            label_pdf=render_pdf_label(request, rate, tracking_number),
            label_zpl=render_zpl_label(request, rate, tracking_number),
        )
        log.info(
            "local_carrier.label_rendered",
            tracking_number=tracking_number,
            reference=request.reference,
            from_country=_country(request.ship_from),
            to_country=_country(request.ship_to),
            service_level=rate.service_level,
            customs_lines=len(request.customs),
            is_return=request.is_return,
        )
        return label

    def void(self, label: Label) -> bool:
        """Nothing was paid and nothing has scanned it: any label of ours can be voided."""
        voided = tracking_number_valid(label.tracking_number)
        log.info("local_carrier.label_voided", tracking_number=label.tracking_number, ok=voided)
        return voided

    def track(self, tracking_number: str, *, shipped_at: datetime | None = None) -> Tracking:
        """The simulator's story of the parcel so far (see ``simulate``), from when it was
        handed over; without ``shipped_at`` nothing has happened yet: ``pre_transit``."""
        if not tracking_number_valid(tracking_number):
            raise CarrierError(
                f"Not a local carrier tracking number: {tracking_number!r}", retryable=False
            )
        if shipped_at is None:
            return Tracking(tracking_number=tracking_number, status="pre_transit",
                            carrier_name=CARRIER_NAME)  # fmt: skip
        return simulate(
            tracking_number, shipped_at=shipped_at, now=timezone.now(),
            step_seconds=settings.LOCAL_CARRIER_TRACKING_STEP_SECONDS,
            exception_rate=settings.LOCAL_CARRIER_EXCEPTION_RATE,
        )  # fmt: skip
