"""The built-in carrier: tariff quotes, S10 tracking numbers, real 4x6 PDF / ZPL labels and its
deterministic tracking simulator."""

from __future__ import annotations

import io
import logging
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pypdf import PdfReader
from reportlab.graphics.barcode.code128 import Code128

from fulfillment.carriers.base import SERVICE_LEVELS, CarrierError, CustomsLine, Rate
from fulfillment.carriers.local import (
    BARCODE_HEIGHT,
    STORY_DELIVERED,
    STORY_FAILED_THEN_DELIVERED,
    STORY_FAILED_THEN_RETURNED,
    LocalCarrier,
    s10_check_digit,
    simulate,
    story_for,
    tracking_number_for,
    tracking_number_valid,
)
from tests.fulfillment.carriers import SHIRTS, domestic, international


def rate_for(level: str, request=None) -> Rate:
    rates = LocalCarrier().rates(request or domestic())
    return next(r for r in rates if r.service_level == level)


def pdf_of(request, level: str = "ground") -> tuple[PdfReader, str]:
    label = LocalCarrier().buy(request, rate_for(level, request))
    assert label.label_pdf is not None
    return PdfReader(io.BytesIO(label.label_pdf)), label.tracking_number


# --- rates -------------------------------------------------------------------------------------
def test_rates_quote_every_level_in_usd_cents():
    rates = LocalCarrier().rates(domestic())
    assert [r.service_level for r in rates] == list(SERVICE_LEVELS)
    for rate in rates:
        assert rate.carrier == "local"
        assert rate.currency == "USD"
        assert isinstance(rate.amount, Decimal)
        assert rate.amount.as_tuple().exponent == -2
        assert rate.delivery_days is not None
    amounts = [r.amount for r in rates]
    days = [r.delivery_days for r in rates]
    assert amounts == sorted(amounts) and days == sorted(days, reverse=True)


def test_rates_are_deterministic_and_follow_the_tariff():
    # 1200 g is three started half kilograms: ground = 5.95 + 2 x 0.65.
    assert rate_for("ground").amount == Decimal("7.25")
    assert LocalCarrier().rates(domestic()) == LocalCarrier().rates(domestic())


def test_international_costs_more_and_takes_longer():
    home, abroad = rate_for("ground"), rate_for("ground", international())
    # 5.95 + 2 x (2 x 0.65) + 9.50 surcharge
    assert abroad.amount == Decimal("18.05")
    assert abroad.amount > home.amount
    assert abroad.delivery_days > home.delivery_days


def test_heavier_parcels_cost_more_per_started_half_kilo():
    light = rate_for("express", domestic(weight_grams=500))
    just_over = rate_for("express", domestic(weight_grams=501))
    assert just_over.amount - light.amount == Decimal("1.20")


def test_the_currency_comes_from_the_settings(settings):
    settings.LOCAL_CARRIER_CURRENCY = "EUR"
    assert {r.currency for r in LocalCarrier().rates(domestic())} == {"EUR"}


def test_a_weightless_parcel_is_refused():
    with pytest.raises(CarrierError) as caught:
        LocalCarrier().rates(domestic(weight_grams=0))
    assert caught.value.retryable is False


# --- tracking numbers --------------------------------------------------------------------------
def test_s10_check_digit_matches_the_upu_worked_example():
    # UPU S10 example serial 47312482: weighted sum 200, 200 mod 11 = 2, 11 - 2 = 9.
    assert s10_check_digit("47312482") == 9
    assert tracking_number_valid("LC473124829US")


@pytest.mark.parametrize(
    ("serial", "check"),
    [("00000000", 5), ("00000001", 4), ("00000008", 0)],  # 11 -> 5; 11 - 7 = 4; 10 -> 0
)
def test_s10_check_digit_special_cases(serial, check):
    assert s10_check_digit(serial) == check


def test_a_wrong_check_digit_or_shape_is_not_valid():
    assert not tracking_number_valid("LC473124828US")  # check digit 8, should be 9
    assert not tracking_number_valid("LC47312482US")  # one digit short
    assert not tracking_number_valid("XX473124829US")  # not our prefix
    assert not tracking_number_valid("LC473124829GB")  # not our country
    assert not tracking_number_valid("lc473124829us")
    assert not tracking_number_valid("")


def test_the_same_reference_always_gives_the_same_tracking_number():
    first = tracking_number_for("shipment-42")
    assert tracking_number_for("shipment-42") == first
    assert re.fullmatch(r"LC\d{9}US", first) and tracking_number_valid(first)
    assert tracking_number_for("shipment-43") != first
    assert tracking_number_for("order-42") != first


def test_numbered_references_never_share_a_tracking_number():
    numbers = {tracking_number_for(f"shipment-{n}") for n in range(1, 20_001)}
    assert len(numbers) == 20_000
    assert all(tracking_number_valid(n) for n in list(numbers)[:500])


def test_other_references_are_hashed_into_valid_numbers():
    for reference in ("a", "shipment-00", "ümlaut-ref", "x" * 300, "shipment-123456789"):
        assert tracking_number_valid(tracking_number_for(reference)), reference


def test_a_label_needs_a_reference():
    with pytest.raises(CarrierError):
        tracking_number_for("")


# --- the PDF label -----------------------------------------------------------------------------
def test_the_pdf_label_is_one_4x6_inch_page_with_the_tracking_number():
    reader, tracking_number = pdf_of(domestic())
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (float(box.width), float(box.height)) == (288.0, 432.0)
    text = reader.pages[0].extract_text()
    assert tracking_number in text
    for expected in ("SHIP TO", "1600 Pennsylvania Ave NW", "FROM", "1 Ferry Building",
                     "GROUND", "Local Ground", "1.200 kg"):  # fmt: skip
        assert expected in text, expected
    assert "CUSTOMS" not in text


def test_the_pdf_label_draws_the_code128_barcode_of_the_tracking_number():
    reader, tracking_number = pdf_of(domestic())
    content = reader.pages[0].get_contents().get_data()
    bars = re.findall(rb"[-\d.]+ [-\d.]+ [-\d.]+ %d re" % int(BARCODE_HEIGHT), content)
    code = Code128(tracking_number, barHeight=BARCODE_HEIGHT, barWidth=1, quiet=False)
    code.validate()
    code.encode()
    code.decompose()
    expected_bars = sum(1 for ch in code.decomposed if ch.isupper())
    assert expected_bars > 20
    assert len(bars) == expected_bars


def test_the_same_request_renders_the_same_bytes():
    first = LocalCarrier().buy(domestic(), rate_for("ground"))
    again = LocalCarrier().buy(domestic(), rate_for("ground"))
    assert first.label_pdf == again.label_pdf
    assert first.label_zpl == again.label_zpl
    assert first.tracking_number == again.tracking_number == first.carrier_shipment_id


def test_an_international_label_carries_the_customs_summary():
    reader, _ = pdf_of(international(), "express")
    text = reader.pages[0].extract_text()
    for expected in ("INTERNATIONAL", "CUSTOMS DECLARATION", "HS code", "Origin",
                     "610910", "PT", "23.25 USD", "691200", "CN", "12.00 USD",
                     "TSHIRT-BLK-M", "Total declared value: 35.25 USD"):  # fmt: skip
        assert expected in text, expected


def test_a_long_customs_declaration_stays_on_one_page():
    lines = [replace(SHIRTS, sku=f"SKU-{n:03d}") for n in range(60)]
    reader, tracking_number = pdf_of(international(customs=lines))
    assert len(reader.pages) == 1
    text = reader.pages[0].extract_text()
    assert tracking_number in text and "SKU-000" in text
    assert "more lines (see invoice)" in text
    assert "Total declared value: 1395.00 USD" in text


def test_a_signature_requirement_is_printed():
    reader, _ = pdf_of(domestic(signature_required=True))
    assert "SIGNATURE REQUIRED" in reader.pages[0].extract_text()


# --- the ZPL label -----------------------------------------------------------------------------
def test_the_zpl_label_has_a_code128_of_the_tracking_number():
    label = LocalCarrier().buy(domestic(), rate_for("ground"))
    zpl = label.label_zpl
    assert zpl.startswith("^XA") and zpl.rstrip().endswith("^XZ")
    assert re.search(r"\^BCN,\d+,N,N,N\^FD" + label.tracking_number + r"\^FS", zpl)
    assert "^PW812" in zpl and "^LL1218" in zpl  # 4x6 inch at 203 dpi


def test_zpl_field_data_cannot_break_out_of_its_field():
    tricky = dict(domestic().ship_to, name="Evil ^XZ~JA Name", line2="back\\slash")
    zpl = LocalCarrier().buy(domestic(ship_to=tricky), rate_for("ground")).label_zpl
    assert zpl.count("^XZ") == 1 and "~JA" not in zpl
    assert "Evil \\5EXZ\\7EJA Name" in zpl and "back\\5Cslash" in zpl


def test_an_international_zpl_label_lists_the_customs_lines():
    request = international()
    zpl = LocalCarrier().buy(request, rate_for("ground", request)).label_zpl
    assert "CUSTOMS DECLARATION" in zpl
    assert "HS 610910 PT x2 23.25 USD" in zpl and "HS 691200 CN x1 12.00 USD" in zpl


# --- buy, void, track, logs --------------------------------------------------------------------
def test_buy_refuses_another_carriers_quote():
    foreign = replace(rate_for("ground"), carrier="easypost")
    with pytest.raises(CarrierError) as caught:
        LocalCarrier().buy(domestic(), foreign)
    assert caught.value.retryable is False


def test_void_accepts_our_labels_only():
    label = LocalCarrier().buy(domestic(), rate_for("ground"))
    assert LocalCarrier().void(label) is True
    assert LocalCarrier().void(replace(label, tracking_number="LC473124828US")) is False


def test_track_before_the_hand_over_says_pre_transit_and_refuses_other_numbers():
    tracking = LocalCarrier().track("LC473124829US")
    assert (tracking.status, tracking.events) == ("pre_transit", [])
    with pytest.raises(CarrierError) as caught:
        LocalCarrier().track("9400100208303109505657")
    assert caught.value.retryable is False


# --- the tracking simulator --------------------------------------------------------------------
SHIPPED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HOUR = 3600.0


def numbers(count: int) -> list[str]:
    return [tracking_number_for(f"shipment-{n}") for n in range(1, count + 1)]


def number_living(story: str, *, rate: float = 0.1) -> str:
    return next(n for n in numbers(5000) if story_for(n, exception_rate=rate) == story)


def story(number: str, *, hours_later: float, step: float = HOUR, rate: float = 0.1):
    return simulate(number, shipped_at=SHIPPED, now=SHIPPED + timedelta(hours=hours_later),
                    step_seconds=step, exception_rate=rate)  # fmt: skip


def test_a_parcel_moves_one_scan_per_step_and_only_scans_up_to_now_are_told():
    number = number_living(STORY_DELIVERED)
    seen = [[e.status for e in story(number, hours_later=h).events] for h in (0, 1.5, 2, 3, 30)]
    assert seen == [
        ["pre_transit"],
        ["pre_transit", "in_transit"],
        ["pre_transit", "in_transit", "out_for_delivery"],
        ["pre_transit", "in_transit", "out_for_delivery", "delivered"],
        ["pre_transit", "in_transit", "out_for_delivery", "delivered"],
    ]
    tracking = story(number, hours_later=2.5)
    assert tracking.status == "out_for_delivery" and tracking.carrier_name == "Local carrier"
    assert [e.at for e in tracking.events] == [SHIPPED + timedelta(hours=k) for k in range(3)]
    assert (tracking.estimated_delivery_from, tracking.estimated_delivery_until) == (
        SHIPPED + timedelta(hours=2), SHIPPED + timedelta(hours=4),
    )  # fmt: skip
    assert story(number, hours_later=-1).events == []  # nothing before the hand-over


def test_with_step_zero_the_whole_story_is_there_at_once():
    number = number_living(STORY_DELIVERED)
    tracking = story(number, hours_later=0, step=0)
    assert [e.status for e in tracking.events] == [
        "pre_transit", "in_transit", "out_for_delivery", "delivered",
    ]  # fmt: skip
    assert tracking.status == "delivered"
    assert all(e.at == SHIPPED for e in tracking.events)


def test_a_failed_attempt_is_followed_by_the_delivery_or_a_return_on_the_next_step():
    again = number_living(STORY_FAILED_THEN_DELIVERED)
    returned = number_living(STORY_FAILED_THEN_RETURNED)
    assert story(again, hours_later=3).status == "failed_attempt"
    assert [e.status for e in story(again, hours_later=4).events][-2:] == [
        "failed_attempt", "delivered",
    ]  # fmt: skip
    assert story(returned, hours_later=3).events[-1].carrier_detail == "address_not_found"
    assert story(returned, hours_later=4).status == "return_to_sender"


def test_the_same_number_always_tells_the_same_story():
    for number in numbers(50):
        first = story(number, hours_later=10)
        assert story(number, hours_later=10) == first
        assert story_for(number, exception_rate=0.1) == story_for(number, exception_rate=0.1)


def test_the_share_of_exceptions_is_near_the_configured_rate():
    sample = numbers(5000)
    for rate in (0.1, 0.3):
        kinds = [story_for(n, exception_rate=rate) for n in sample]
        share = sum(kind != STORY_DELIVERED for kind in kinds) / len(kinds)
        assert abs(share - rate) < 0.02, (rate, share)
        returned = sum(kind == STORY_FAILED_THEN_RETURNED for kind in kinds)
        assert 0.35 < returned / (share * len(kinds)) < 0.65  # about half of them come back
    assert {story_for(n, exception_rate=0) for n in sample} == {STORY_DELIVERED}
    assert STORY_DELIVERED not in {story_for(n, exception_rate=1) for n in sample}


def test_track_reads_the_schedule_from_settings(settings):
    settings.LOCAL_CARRIER_TRACKING_STEP_SECONDS = 0
    settings.LOCAL_CARRIER_EXCEPTION_RATE = 0
    tracking = LocalCarrier().track("LC473124829US", shipped_at=SHIPPED)
    assert tracking.status == "delivered" and len(tracking.events) == 4


def test_logs_name_the_label_but_no_person_or_address(caplog):
    request = international(customs=[CustomsLine("S", "Gift", 1, Decimal("5.00"), "USD")])
    with caplog.at_level(logging.DEBUG):
        label = LocalCarrier().buy(request, rate_for("ground", request))
    ours = [r for r in caplog.records if r.name.startswith("fulfillment")]
    text = "\n".join(str(r.msg) + repr(r.args) for r in ours)
    assert label.tracking_number in text and "shipment-2" in text and "FR" in text
    for private in ("Louvre", "Rivoli", "75001", "Ferry", "94111", "Paris"):
        assert private not in text, private
