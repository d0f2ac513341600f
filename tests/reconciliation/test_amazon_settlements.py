"""Amazon settlements: the Settlement Report V2 flat file (our own files, written from Amazon's
column list: there is no published sample) and the Finances API event groups and events
(Amazon's sandbox answers as they are, from files and over loopback HTTP through the channel's
SP-API client)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from pytest_httpserver import HTTPServer

from channels.adapters import amazon
from reconciliation.importers import ImportOptions, import_api, import_files
from reconciliation.importers.amazon_settlements import flat_category
from reconciliation.models import Defect, Payout, PayoutStatus, ProcessorTransaction, Source

SAMPLES = Path(settings.BASE_DIR).parent / "shared" / "samples" / "amazon"
GROUPS = SAMPLES / "listFinancialEventGroups_v0_sandbox.json"
EVENTS = SAMPLES / "listFinancialEventsByGroupId_v0_sandbox.json"
GROUPS_TOKEN = "3493805734095308457308475"  # the sandbox answers' NextToken
EVENTS_TOKEN = "Next token value"
ACCESS_TOKEN = "Atza|settlements-test"

# Amazon's documented columns, in order (SOURCES.md, "Settlement report V2 flat file").
COLUMNS = (
    "settlement-id settlement-start-date settlement-end-date deposit-date total-amount currency "
    "transaction-type order-id merchant-order-id adjustment-id shipment-id marketplace-name "
    "amount-type amount-description amount fulfillment-id posted-date posted-date-time "
    "order-item-code merchant-order-item-id merchant-adjustment-item-id sku quantity-purchased"
).split()

SID = "11223344556"
ORDER, REFUNDED, DISPUTED, TWICE = ("111-1111111-1111111", "222-2222222-2222222",
                                    "333-3333333-3333333", "444-4444444-4444444")  # fmt: skip
SOLD, SOLD_TWICE = "2026-10-21T10:00:00+00:00", "2026-10-28T09:00:00+00:00"
# (transaction-type, order-id, amount-type, amount-description, amount, posted-date-time, sku,
#  expected category)
US_ROWS = [
    ("Order", ORDER, "ItemPrice", "Principal", "40.00", SOLD, "A1", "charge"),
    ("Order", ORDER, "ItemPrice", "Shipping", "5.00", SOLD, "A1", "charge"),
    ("Order", ORDER, "ItemFees", "Commission", "-6.75", SOLD, "A1", "fee"),
    ("Order", ORDER, "ItemFees", "FBAPerUnitFulfillmentFee", "-3.22", SOLD,
     "A1", "fee"),
    ("Refund", REFUNDED, "ItemPrice", "Principal", "-10.00", "2026-10-25T08:30:00+00:00", "B2",
     "refund"),
    ("Refund", REFUNDED, "ItemFees", "RefundCommission", "1.50", "2026-10-25T08:30:00+00:00", "B2",
     "fee"),
    ("other-transaction", "", "other-transaction", "Current Reserve Amount", "-20.00",
     "2026-11-03T06:59:59+00:00", "", "reserve_hold"),
    ("other-transaction", "", "other-transaction", "Previous Reserve Amount Balance", "50.00",
     "2026-10-20T07:00:00+00:00", "", "reserve_release"),
    ("Chargeback Refund", DISPUTED, "ItemPrice", "Principal", "-8.00",
     "2026-10-30T12:00:00+00:00", "C3", "dispute"),
    ("ServiceFee", "", "Cost of Advertising", "TransactionTotalAmount", "-39.99",
     "2026-11-01T00:00:00+00:00", "", "fee"),
    ("Order", TWICE, "ItemPrice", "Principal", "10.00", SOLD_TWICE, "D4", "charge"),
    ("Order", TWICE, "ItemPrice", "Principal", "10.00", SOLD_TWICE, "D4", "charge"),
    ("Adjustment", "", "FBA Inventory Reimbursement", "WAREHOUSE_DAMAGE", "0.00",
     "2026-10-29T09:00:00+00:00", "E5", "adjustment"),
]  # fmt: skip
US_TOTAL = Decimal("28.54")  # the rows above, summed by hand


def _tsv(header: list[str], rows: list[dict[str, str]]) -> str:
    lines = ["\t".join(header)]
    lines += ["\t".join(row.get(c, "") for c in header) for row in rows]
    return "\n".join(lines) + "\n"


def _us_file(tmp_path: Path, *, total: Decimal = US_TOTAL, name: str = "settlement_us.txt") -> Path:
    summary = {"settlement-id": SID, "settlement-start-date": "2026-10-20T07:00:00+00:00",
               "settlement-end-date": "2026-11-03T07:00:00+00:00",
               "deposit-date": "2026-11-05T07:00:00+00:00", "total-amount": str(total),
               "currency": "USD"}  # fmt: skip
    rows = [summary]
    for kind, order, atype, desc, value, posted, sku, _cat in US_ROWS:
        rows.append({"settlement-id": SID, "transaction-type": kind, "order-id": order,
                     "marketplace-name": "Amazon.com" if order else "", "amount-type": atype,
                     "amount-description": desc, "amount": value,
                     "posted-date": posted[:10], "posted-date-time": posted, "sku": sku,
                     "order-item-code": "5551" + sku[-1:] if sku else "",
                     "quantity-purchased": "1" if kind == "Order" else ""})  # fmt: skip
    path = tmp_path / name
    path.write_text(_tsv(COLUMNS, rows))
    return path


def _options(**kwargs) -> ImportOptions:
    return ImportOptions(source=Source.AMAZON, **kwargs)


def _snapshot() -> list[tuple]:
    payouts = list(Payout.objects.order_by("pk").values_list())
    txs = list(ProcessorTransaction.objects.order_by("pk").values_list())
    return payouts + txs


# --- the flat file --------------------------------------------------------------------------
def test_a_settlement_is_one_payout_and_each_row_one_transaction(db, tmp_path):
    [run] = import_files([_us_file(tmp_path)], options=_options())
    assert (run.rows_read, run.rows_new, run.rows_rejected, run.errors) == (14, 14, 0, [])
    payout = Payout.objects.get(source=Source.AMAZON, external_id=SID)
    assert (payout.amount, payout.currency, payout.paid_on, payout.trace_id, payout.status) == (
        US_TOTAL, "USD", date(2026, 11, 5), SID, PayoutStatus.PAID)  # fmt: skip
    assert payout.period_start == datetime(2026, 10, 20, 7, tzinfo=UTC)
    assert payout.period_end == datetime(2026, 11, 3, 7, tzinfo=UTC)
    assert payout.defects == []
    assert payout.summary["by_category"]["fee"] == "-48.46"  # -6.75 - 3.22 + 1.50 - 39.99
    txs = list(ProcessorTransaction.objects.filter(payout=payout).order_by("occurred_at", "pk"))
    assert len(txs) == len(US_ROWS)
    by_row = {(t.vendor_type, t.source_order_id, t.amount): t for t in txs}
    for kind, order, atype, desc, value, posted, _sku, category in US_ROWS:
        tx = by_row[(f"{kind}/{atype}/{desc}"[:60], order, Decimal(value))]
        assert tx.category == category, (kind, desc)
        assert (tx.fee, tx.net, tx.currency, tx.payout_external_id) == (
            0, Decimal(value), "USD", SID)  # fmt: skip
        assert tx.occurred_at == datetime.fromisoformat(posted)
        assert tx.defects == []
    assert sum(t.amount for t in txs) == payout.amount
    twice = sorted(t.external_id for t in txs if t.source_order_id == TWICE)
    assert len(twice) == 2 and twice[0][:-1] == twice[1][:-1]  # one key, counted 1 and 2
    assert [i.rsplit(":", 1)[1] for i in twice] == ["1", "2"]


def test_reimporting_the_same_file_changes_nothing(db, tmp_path):
    path = _us_file(tmp_path)
    import_files([path], options=_options())
    before = _snapshot()
    [again] = import_files([path], options=_options())
    assert (again.rows_read, again.rows_new, again.rows_unchanged) == (14, 0, 14)
    assert _snapshot() == before


def test_rows_that_do_not_sum_to_the_total_flag_the_payout_not_balance_it(db, tmp_path):
    import_files([_us_file(tmp_path, total=Decimal("30.00"))], options=_options())
    payout = Payout.objects.get(external_id=SID)
    codes = {d["code"]: d["message"] for d in payout.defects}
    assert "its 13 rows sum to 28.54 USD; total-amount is 30.00" in codes[Defect.TOTAL_MISMATCH]
    assert Defect.PAYOUT_SUM_MISMATCH in codes  # payout_check on what we hold says so too
    assert ProcessorTransaction.objects.filter(payout=payout).count() == len(US_ROWS)  # no plug
    before = _snapshot()
    [again] = import_files([_us_file(tmp_path, total=Decimal("30.00"))], options=_options())
    assert again.rows_new == 0 and _snapshot() == before


DE_HEADER = [*COLUMNS, "promotion-id"]


def test_day_first_dates_and_decimal_commas_and_a_bad_row_each_said_by_line(db, tmp_path):
    sid = "99887766554"
    base = {
        "settlement-id": sid,
        "marketplace-name": "Amazon.de",
        "order-id": "302-1234567-7654321",
    }
    rows = [
        {"settlement-id": sid, "settlement-start-date": "20.10.2026 07:00:00 UTC",
         "settlement-end-date": "03.11.2026 07:00:00 UTC",
         "deposit-date": "05.11.2026 07:00:00 UTC", "total-amount": "38,24", "currency": "EUR"},
        {**base, "transaction-type": "Order", "amount-type": "ItemPrice",
         "amount-description": "Principal", "amount": "39,90",
         "posted-date": "21.10.2026", "posted-date-time": "21.10.2026 10:15:00 UTC"},
        {**base, "transaction-type": "Order", "amount-type": "ItemFees",
         "amount-description": "Commission", "amount": "-6,65",
         "posted-date": "21.10.2026", "posted-date-time": "21.10.2026 10:15:00 UTC"},
        {**base, "transaction-type": "Order", "amount-type": "ItemPrice",  # line 5
         "amount-description": "Shipping", "amount": "4,99",
         "posted-date": "31.02.2026", "posted-date-time": "31.02.2026 10:15:00 UTC"},
        {**base, "transaction-type": "Order", "amount-type": "Promotion",  # line 6
         "amount-description": "Shipping", "amount": "-4,9x",
         "posted-date-time": "21.10.2026 10:15:00 UTC"},
        {**base, "transaction-type": "Order", "amount-type": "ItemPrice",  # line 7
         "amount-description": "Tax", "amount": "0,00",
         "posted-date-time": "21.10.2026 10:15:00 PST"},
    ]  # fmt: skip
    path = tmp_path / "settlement_de.txt"
    path.write_text(_tsv(DE_HEADER, rows))
    [run] = import_files([path], options=_options())
    assert run.errors == [
        {"where": "settlement_de.txt:5",
         "message": "posted-date-time '31.02.2026 10:15:00 UTC' is not a date we can read"},
        {"where": "settlement_de.txt:6", "message": "amount '-4,9x' is not an amount"},
        {"where": "settlement_de.txt:7",
         "message": "posted-date-time '21.10.2026 10:15:00 PST' is not a date we can read"},
    ]  # fmt: skip
    assert (run.rows_new, run.rows_rejected) == (3, 3)
    payout = Payout.objects.get(external_id=sid)
    assert (payout.amount, payout.currency, payout.paid_on) == (Decimal("38.24"), "EUR",
                                                                date(2026, 11, 5))  # fmt: skip
    txs = ProcessorTransaction.objects.filter(payout=payout)
    assert sorted(t.amount for t in txs) == [Decimal("-6.65"), Decimal("39.90")]
    assert {t.occurred_at for t in txs} == {datetime(2026, 10, 21, 10, 15, tzinfo=UTC)}
    # 39.90 - 6.65 + 4.99 (the row whose date is no date) = 38.24: what we kept falls short.
    [total] = [d for d in payout.defects if d["code"] == Defect.TOTAL_MISMATCH]
    assert total["message"] == ("its 2 rows sum to 33.25 EUR; total-amount is 38.24 "
                                "(3 of its rows rejected: see the import run)")  # fmt: skip


def test_a_file_without_the_report_columns_is_refused_at_its_header(db, tmp_path):
    path = tmp_path / "orders.txt"
    path.write_text("order-id\tamount\n111\t1.00\n")
    [run] = import_files([path], options=_options())
    assert run.rows_new == 0
    assert run.errors[0]["where"] == "orders.txt:1"
    assert "settlement-id" in run.errors[0]["message"]


@pytest.mark.parametrize(
    ("kind", "atype", "desc", "expected"),
    [
        ("Order", "ItemPrice", "Principal", "charge"),
        ("Order", "Promotion", "Principal", "charge"),
        ("Order", "ItemFees", "FBAPerUnitFulfillmentFee", "fee"),
        ("Order", "ItemWithheldTax", "MarketplaceFacilitatorTax-Principal", "adjustment"),
        ("Refund", "ItemPrice", "Tax", "refund"),
        ("Refund", "ItemFees", "RefundCommission", "fee"),
        ("other-transaction", "other-transaction", "Previous Reserve Amount Balance",
         "reserve_release"),
        ("other-transaction", "other-transaction", "Current Reserve Amount", "reserve_hold"),
        ("A-to-z Guarantee Claim", "ItemPrice", "Principal", "dispute"),
        ("Chargeback Refund", "ItemPrice", "Principal", "dispute"),
        ("other-transaction", "other-transaction", "Subscription Fee", "adjustment"),
        ("ServiceFee", "Cost of Advertising", "TransactionTotalAmount", "fee"),
        ("Adjustment", "FBA Inventory Reimbursement", "REVERSAL_REIMBURSEMENT", "adjustment"),
    ],
)  # fmt: skip
def test_flat_file_categories(kind, atype, desc, expected):
    assert flat_category(kind, atype, desc) == expected


# --- the Finances API: saved answers ------------------------------------------------------
SANDBOX_ROWS = 34  # money components of the sandbox's events, counted by hand (module docstring)


def test_the_sandbox_group_is_a_payout_and_its_events_do_not_add_up_to_it(db):
    group_run, events_run = import_files([GROUPS, EVENTS], options=_options())
    assert (group_run.rows_new, group_run.errors) == (1, [])
    payout = Payout.objects.get(source=Source.AMAZON, external_id="1")
    assert (payout.amount, payout.currency, payout.paid_on, payout.status, payout.trace_id) == (
        Decimal("10.34"), "USD", date(2020, 2, 7), PayoutStatus.PAID, "34550454504545")  # fmt: skip
    assert payout.summary == {
        "ProcessingStatus": "PROCESSED", "FundTransferStatus": "TRANSFERED",
        "AccountTail": "4854564857",
        "BeginningBalance": {"currency": "USD", "amount": "55.33"},
        "ConvertedTotal": {"currency": "USD", "amount": "39.43"},
    }  # fmt: skip
    assert payout.raw["OriginalTotal"]["CurrencyAmount"] == "10.34"  # kept exact, not a float

    assert (events_run.rows_new, events_run.errors) == (SANDBOX_ROWS, [])
    txs = ProcessorTransaction.objects.filter(source=Source.AMAZON, payout=payout)
    assert txs.count() == SANDBOX_ROWS
    assert set(txs.values_list("amount", flat=True)) == {Decimal("25.37")}  # placeholders kept
    counts = {c: txs.filter(category=c).count() for c in ("dispute", "fee", "adjustment")}
    assert counts == {"dispute": 25, "fee": 2, "adjustment": 7}
    [sum_defect] = [d for d in payout.defects if d["code"] == Defect.PAYOUT_SUM_MISMATCH]
    assert sum_defect["message"] == (
        f"its {SANDBOX_ROWS} transactions sum to 862.58 USD; the payout is 10.34"
    )
    # AffordabilityExpenseReversal states TotalExpense 25.37 for parts summing to 101.48.
    reversal = txs.filter(vendor_type__startswith="AffordabilityExpenseReversal/")
    assert reversal.count() == 4
    assert all(t.defects[0]["code"] == Defect.TOTAL_MISMATCH for t in reversal)
    assert "101.48" in reversal[0].defects[0]["message"]
    withholding = [t.raw["pointer"] for t in txs if t.raw["list"] == "TaxWithholdingEventList"]
    assert withholding == ["/WithheldAmount"]  # BaseAmount is the base, not money moved
    assert (
        txs.filter(vendor_type="Chargeback/ShipmentFeeAdjustmentList/FixedClosingFee").count() == 1
    )
    assert txs.filter(vendor_type="Chargeback/ShipmentItemList/CostOfPointsGranted").count() == 1
    assert txs.filter(source_order_id="444-555-3343433", category="dispute").count() == 25

    before = _snapshot()
    again = import_files([GROUPS, EVENTS], options=_options())
    assert [(r.rows_new, r.rows_unchanged) for r in again] == [(0, 1), (0, SANDBOX_ROWS)]
    assert _snapshot() == before


def test_a_group_that_cannot_be_read_is_rejected_by_its_json_pointer(db, tmp_path):
    body = json.loads(GROUPS.read_text())
    body["payload"]["FinancialEventGroupList"][0]["OriginalTotal"]["CurrencyAmount"] = "12,3x"
    second = dict(body["payload"]["FinancialEventGroupList"][0], FinancialEventGroupId="2")
    second["OriginalTotal"] = {"CurrencyCode": "USD", "CurrencyAmount": 1}
    body["payload"]["FinancialEventGroupList"].append(second)
    path = tmp_path / "groups.json"
    path.write_text(json.dumps(body))
    [run] = import_files([path], options=_options())
    assert run.rows_new == 1
    [error] = run.errors
    assert (
        error["where"]
        == "groups.json#/payload/FinancialEventGroupList/0/OriginalTotal/CurrencyAmount"
    )
    assert "'12,3x' is not an amount" in error["message"]
    assert Payout.objects.get(external_id="2").amount == Decimal("1.00")


def test_an_events_file_before_its_group_attaches_when_the_group_comes(db):
    import_files([EVENTS], options=_options())
    assert ProcessorTransaction.objects.filter(payout_external_id="1", payout=None).count() == (
        SANDBOX_ROWS)  # fmt: skip
    import_files([GROUPS], options=_options())
    assert ProcessorTransaction.objects.filter(payout__external_id="1").count() == SANDBOX_ROWS


# --- the Finances API over HTTP -------------------------------------------------------------
@pytest.fixture
def amazon_channel(db, httpserver: HTTPServer, settings):
    from channels.models import ChannelKind
    from tests.factories import SalesChannelFactory

    settings.CHANNEL_HTTP_BACKOFF_FACTOR = 0
    channel = SalesChannelFactory(
        kind=ChannelKind.AMAZON, slug="amzn-us", api_base_url=httpserver.url_for("/").rstrip("/"),
        credentials={"client_id": "c", "client_secret": "s", "refresh_token": "r",
                     "lwa_token_url": httpserver.url_for("/auth/o2/token"),
                     "marketplace_ids": "ATVPDKIKX0DER"},
    )  # fmt: skip
    amazon.forget_token(channel.pk)
    yield channel
    amazon.forget_token(channel.pk)


def _serve_finances(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/auth/o2/token", method="POST").respond_with_json(
        {"access_token": ACCESS_TOKEN, "token_type": "bearer", "expires_in": 3600}
    )
    auth = {"x-amz-access-token": ACCESS_TOKEN}
    # The last pages (our own: the sandbox answers always name a next one).
    httpserver.expect_request("/finances/v0/financialEventGroups", headers=auth,
                              query_string={"NextToken": GROUPS_TOKEN}).respond_with_json(
        {"payload": {"FinancialEventGroupList": []}})  # fmt: skip
    httpserver.expect_request("/finances/v0/financialEventGroups", headers=auth).respond_with_data(
        GROUPS.read_bytes(), content_type="application/json")  # fmt: skip
    events_path = "/finances/v0/financialEventGroups/1/financialEvents"
    httpserver.expect_request(events_path, headers=auth,
                              query_string={"NextToken": EVENTS_TOKEN}).respond_with_json(
        {"payload": {"FinancialEvents": {}}})  # fmt: skip
    httpserver.expect_request(events_path, headers=auth).respond_with_data(
        EVENTS.read_bytes(), content_type="application/json")  # fmt: skip


def test_the_api_reads_groups_and_their_events_page_by_page(httpserver, amazon_channel):
    _serve_finances(httpserver)
    options = _options(channel=amazon_channel, since=date(2020, 2, 1), until=date(2020, 2, 29))
    groups_run, events_run = import_api(options=options)
    assert groups_run.origin == "SP-API listFinancialEventGroups 2020-02-01..2020-02-29"
    assert (groups_run.rows_new, events_run.rows_new) == (1, SANDBOX_ROWS)
    assert events_run.origin == "SP-API listFinancialEventsByGroupId 1"
    calls = [(r.path, dict(r.args)) for r, _ in httpserver.log if r.path.startswith("/finances")]
    assert calls[0] == (
        "/finances/v0/financialEventGroups",
        {
            "FinancialEventGroupStartedAfter": "2020-02-01T00:00:00Z",
            "FinancialEventGroupStartedBefore": "2020-03-01T00:00:00Z",
            "MaxResultsPerPage": "100",
        },
    )
    assert calls[1] == ("/finances/v0/financialEventGroups", {"NextToken": GROUPS_TOKEN})
    assert [c[0] for c in calls[2:]] == [
        "/finances/v0/financialEventGroups/1/financialEvents"] * 2  # fmt: skip
    payout = Payout.objects.get(source=Source.AMAZON, external_id="1")
    assert payout.channel == amazon_channel
    assert payout.transactions.count() == SANDBOX_ROWS
    assert {d["code"] for d in payout.defects} == {Defect.PAYOUT_SUM_MISMATCH}

    before = _snapshot()
    again = import_api(options=options)
    assert [(r.rows_new, r.rows_unchanged) for r in again] == [(0, 1), (0, SANDBOX_ROWS)]
    assert _snapshot() == before


def test_the_api_import_needs_an_amazon_channel(db):
    from orders.errors import InvalidInput

    with pytest.raises(InvalidInput):
        import_api(options=_options())


# --- the command ------------------------------------------------------------------------------
def test_import_finance_lists_each_rejected_row_and_exits_1(db, tmp_path, capsys):
    path = _us_file(tmp_path)
    text = path.read_text().replace("2026-10-25T08:30:00+00:00", "25/13/2026 08:30:00 UTC", 1)
    path.write_text(text)
    with pytest.raises(CommandError) as raised:
        call_command("import_finance", "--source", "amazon", "--no-progress", str(path))
    assert raised.value.returncode == 1
    out, err = capsys.readouterr()
    assert "settlement_us.txt: 14 read, 13 new" in out
    assert "settlement_us.txt:7: posted-date-time '25/13/2026 08:30:00 UTC' is not a date" in err


def test_an_unreadable_summary_row_keeps_its_rows_waiting_for_the_payout(db, tmp_path):
    path = _us_file(tmp_path)
    path.write_text(path.read_text().replace("2026-11-05T07:00:00+00:00", "5th November", 1))
    [run] = import_files([path], options=_options())
    message = "deposit-date '5th November' is not a date we can read"
    assert run.errors == [{"where": "settlement_us.txt:2", "message": message}]
    assert not Payout.objects.filter(external_id=SID).exists()
    waiting = ProcessorTransaction.objects.filter(payout_external_id=SID, payout=None)
    assert waiting.count() == len(US_ROWS)
    assert set(waiting.values_list("currency", flat=True)) == {"USD"}
    import_files([_us_file(tmp_path, name="settlement_us_fixed.txt")], options=_options())
    assert Payout.objects.get(external_id=SID).transactions.count() == len(US_ROWS)


def test_a_next_token_that_comes_back_stops_the_read_instead_of_looping(httpserver, amazon_channel):
    from channels.adapters.base import AdapterError

    httpserver.expect_request("/auth/o2/token", method="POST").respond_with_json(
        {"access_token": ACCESS_TOKEN, "token_type": "bearer", "expires_in": 3600}
    )
    # The sandbox answer as it is, for every page: it always names the same next page.
    httpserver.expect_request("/finances/v0/financialEventGroups").respond_with_data(
        GROUPS.read_bytes(), content_type="application/json"
    )
    with pytest.raises(AdapterError, match="came twice"):
        import_api(options=_options(channel=amazon_channel, since=date(2020, 2, 1)))
    assert len([r for r, _ in httpserver.log if r.path.startswith("/finances")]) == 2
    assert not Payout.objects.exists()


def test_an_api_range_that_ends_before_it_starts_is_refused(amazon_channel):
    from orders.errors import InvalidInput

    options = _options(channel=amazon_channel, since=date(2026, 11, 2), until=date(2026, 11, 1))
    with pytest.raises(InvalidInput, match="before --since"):
        import_api(options=options)


def test_import_finance_says_the_vendor_refused_in_one_line(httpserver, amazon_channel):
    httpserver.expect_request("/auth/o2/token", method="POST").respond_with_json(
        {"error": "invalid_grant"}, status=400
    )
    with pytest.raises(CommandError, match="Amazon LWA token exchange"):
        call_command("import_finance", "--source", "amazon", "--api", "--channel", "amzn-us",
                     "--no-progress")  # fmt: skip
