"""Stripe import from Stripe's own fixtures as they are, from list objects and the itemized
payout reconciliation report, and from a loopback Stripe through the official SDK on our
integration session: every row once, minor units exact, the payout each transaction went out
in, the vendor's inconsistencies kept as defects, a clear error per bad row."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.forms.models import model_to_dict
from pytest_httpserver import HTTPServer
from werkzeug import Response

from config import correlation
from config.integrations import URLRefused
from reconciliation.importers import ImportOptions, import_api, import_files
from reconciliation.importers.stripe_balance import StripeAPIError
from reconciliation.models import (
    Defect,
    Payout,
    PayoutStatus,
    ProcessorTransaction,
    Source,
    TxCategory,
)

pytestmark = pytest.mark.django_db

SAMPLES = Path("/work/shared/samples/stripe")
OPTIONS = ImportOptions(source=Source.STRIPE)
KEY = "sk_test_loopback"


def sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


def snapshot() -> dict[str, list[dict[str, object]]]:
    return {
        "payouts": [model_to_dict(p) for p in Payout.objects.order_by("pk")],
        "transactions": [model_to_dict(t) for t in ProcessorTransaction.objects.order_by("pk")],
    }


def codes(defects) -> list[str]:
    return [d["code"] for d in defects]


def test_the_fixtures_as_they_are_import_once_and_a_charge_is_refused_in_words():
    files = [SAMPLES / n for n in ("balance_transaction.json", "payout.json", "charge.json")]
    runs = import_files(files, options=OPTIONS)
    assert [(r.rows_new, r.rows_rejected) for r in runs] == [(1, 0), (1, 0), (0, 1)]
    assert runs[2].errors == [
        {
            "where": "charge.json#/object",
            "message": "'charge' is not a balance_transaction or a payout",
        }
    ]

    tx = ProcessorTransaction.objects.get(source=Source.STRIPE)
    assert tx.external_id == "txn_1PgaxNB7WZ01zgkWEV3TLf40"
    assert (tx.currency, tx.amount, tx.fee, tx.net) == ("USD", Decimal("1.00"), Decimal("0.00"),
                                                        Decimal("1.00"))  # fmt: skip
    assert tx.category == TxCategory.CHARGE and tx.defects == []
    assert tx.source_reference == "ch_1PgafuB7WZ01zgkWXYmPNZs8"
    assert tx.occurred_at == datetime(2009, 2, 13, 23, 31, 30, tzinfo=UTC)
    assert tx.available_on == date(2009, 2, 13)

    payout = Payout.objects.get(source=Source.STRIPE)
    assert (payout.external_id, payout.amount, payout.status) == (
        "po_1Pgc79B7WZ01zgkWu1KToYf4",
        Decimal("11.00"),
        PayoutStatus.IN_TRANSIT,
    )
    assert payout.paid_on == date(2009, 2, 13)
    assert payout.trace_id == ""  # trace_id.value null, no statement descriptor

    before = snapshot()
    again = import_files(files, options=OPTIONS)
    assert [(r.rows_new, r.rows_unchanged) for r in again] == [(0, 1), (0, 1), (0, 0)]
    assert snapshot() == before


def test_a_list_object_keeps_defects_and_refuses_bad_rows_by_pointer(tmp_path):
    base = sample("balance_transaction.json")
    payout = {**sample("payout.json"), "id": "po_list", "amount": 250, "status": "paid",
              "trace_id": {"status": "supported", "value": "TRACE123"}}  # fmt: skip
    charge = {**base, "id": "txn_a", "amount": 300, "fee": 39, "net": 261, "payout": "po_list",
              "source": {**sample("charge.json"), "metadata": {"order_id": "1001"}}}  # fmt: skip
    refund = {**base, "id": "txn_b", "amount": -100, "fee": 0, "net": -99, "type": "refund",
              "reporting_category": "refund", "payout": "po_list", "source": "re_1"}  # fmt: skip
    float_amount = {**base, "id": "txn_c", "amount": "FLOAT"}
    dispute = {**base, "id": "txn_d", "amount": -50, "fee": 1500, "net": -1550,
               "reporting_category": "dispute", "payout": "po_list"}  # fmt: skip
    document = {"object": "list", "data": [payout, charge, refund, float_amount, dispute],
                "has_more": False, "url": "/v1/balance_transactions"}  # fmt: skip
    text = json.dumps(document).replace('"FLOAT"', "1.5")  # a JSON number with a fraction
    path = tmp_path / "list.json"
    path.write_text(text)

    [run] = import_files([path], options=OPTIONS)
    assert (run.rows_new, run.rows_rejected, run.defects) == (4, 1, 1)
    assert run.errors == [
        {
            "where": "list.json#/data/3/amount",
            "message": "Decimal('1.5') is not a whole number of minor units",
        }
    ]

    kept = {t.external_id: t for t in ProcessorTransaction.objects.all()}
    assert kept["txn_a"].source_order_id == "1001"  # the expanded charge's metadata
    assert kept["txn_a"].source_reference == "ch_1PgafuB7WZ01zgkWXYmPNZs8"
    assert codes(kept["txn_b"].defects) == [Defect.NET_MISMATCH]  # -1.00 - 0.00 != -0.99
    assert kept["txn_d"].category == TxCategory.DISPUTE and kept["txn_d"].net == Decimal("-15.50")
    the_payout = Payout.objects.get(external_id="po_list")
    assert the_payout.trace_id == "TRACE123"
    assert the_payout.transactions.count() == 3
    # 2.61 - 0.99 - 15.50 = -13.88, not the payout's 2.50: said, not balanced.
    assert codes(the_payout.defects) == [Defect.PAYOUT_SUM_MISMATCH]
    assert "sum to -13.88 USD; the payout is 2.50" in the_payout.defects[0]["message"]


ITEMIZED_HEADER = (
    "automatic_payout_id,automatic_payout_effective_at_utc,automatic_payout_effective_at,"
    "balance_transaction_id,created_utc,created,available_on_utc,available_on,currency,gross,fee,"
    "net,reporting_category,source_id,description,payment_metadata[order_id]"
)


def test_the_itemized_payout_report_ties_its_rows_to_the_payout(tmp_path):
    lines = [
        ITEMIZED_HEADER,
        "po_csv,2026-11-03 00:00:00,2026-11-03 00:00:00,txn_1,2026-11-01 10:31:01,"
        "2026-11-01 10:31:01,2026-11-03 00:00:00,2026-11-03 00:00:00,eur,100.00,3.20,96.80,"
        "charge,ch_1,Order 1001,1001",
        "po_csv,2026-11-03 00:00:00,2026-11-03 00:00:00,txn_2,2026-11-01 11:00:00,"
        "2026-11-01 11:00:00,2026-11-03 00:00:00,2026-11-03 00:00:00,eur,-20.00,0.00,-20.00,"
        "refund,re_1,,1001",
        "po_csv,2026-11-03 00:00:00,2026-11-03 00:00:00,txn_3,2026-11-01 12:00:00,,,,eur,12;00,"
        "0.00,12.00,charge,ch_2,,",
        "po_csv,2026-11-03 00:00:00,2026-11-03 00:00:00,txn_4,2026-11-02 09:00:00,,,,eur,-50.00,"
        "0.00,-50.00,risk_reserved_funds,,,",
        "po_csv,2026-11-03 00:00:00,2026-11-03 00:00:00,txn_5,2026-11-02 09:00:00,,,,eur,50.00,"
        "0.00,50.00,risk_reserved_funds,,,",
    ]
    report = tmp_path / "itemized.csv"
    report.write_text("\n".join(lines) + "\n")
    payout = tmp_path / "payout.json"
    payout.write_text(json.dumps({**sample("payout.json"), "id": "po_csv", "currency": "eur",
                                  "amount": 7680, "status": "paid"}))  # fmt: skip

    runs = import_files([report, payout], options=OPTIONS)
    assert (runs[0].rows_new, runs[0].rows_rejected) == (4, 1)
    assert runs[0].errors == [
        {
            "where": "itemized.csv:4 gross",
            "message": "'12;00' is not an amount (Not an amount: '12;00')",
        }
    ]
    first = ProcessorTransaction.objects.get(external_id="txn_1")
    assert (first.amount, first.fee, first.net, first.currency) == (
        Decimal("100.00"),
        Decimal("3.20"),
        Decimal("96.80"),
        "EUR",
    )
    assert first.occurred_at == datetime(2026, 11, 1, 10, 31, 1, tzinfo=UTC)
    assert (first.source_order_id, first.source_reference) == ("1001", "ch_1")
    categories = dict(ProcessorTransaction.objects.values_list("external_id", "category"))
    assert categories["txn_4"] == TxCategory.RESERVE_HOLD
    assert categories["txn_5"] == TxCategory.RESERVE_RELEASE
    po = Payout.objects.get(external_id="po_csv")
    assert po.transactions.count() == 4  # the report came first, the payout attached them
    assert po.defects == []  # 96.80 - 20.00 - 50.00 + 50.00 = 76.80

    before = snapshot()
    again = import_files([report, payout], options=OPTIONS)
    assert [(r.rows_new, r.rows_unchanged) for r in again] == [(0, 4), (0, 1)]
    assert snapshot() == before


def test_a_file_that_is_no_stripe_export_is_one_error(tmp_path):
    odd = tmp_path / "odd.json"
    odd.write_text('{"payouts": []}')
    csv_file = tmp_path / "other.csv"
    csv_file.write_text("date,amount\n2026-01-01,1.00\n")
    runs = import_files([odd, csv_file], options=OPTIONS)
    assert [r.rows_rejected for r in runs] == [1, 1]
    assert runs[1].errors[0]["where"] == "other.csv:1"
    assert "balance_transaction_id" in runs[1].errors[0]["message"]


# --- the API, through the stripe SDK ------------------------------------------------------------
def serve_stripe(httpserver: HTTPServer) -> list[dict[str, object]]:
    """Payouts in two pages (has_more, then starting_after), and each payout's balance
    transactions built from the fixtures, the charge expanded with its order id."""
    seen: list[dict[str, object]] = []
    first = {**sample("payout.json"), "id": "po_1", "amount": 261, "status": "paid"}
    second = {**sample("payout.json"), "id": "po_2", "amount": 500,
              "trace_id": {"status": "supported", "value": "TR2"}}  # fmt: skip
    charge = {**sample("charge.json"), "metadata": {"order_id": "1001"}}
    base_tx = sample("balance_transaction.json")

    def page(data, has_more, url):
        return Response(json.dumps({"object": "list", "data": data, "has_more": has_more,
                                    "url": url}), content_type="application/json")  # fmt: skip

    def payouts(request):
        seen.append({"path": request.path, "args": request.args.to_dict(flat=False),
                     "headers": dict(request.headers)})  # fmt: skip
        if request.args.get("starting_after") == "po_1":
            return page([second], False, "/v1/payouts")
        return page([first], True, "/v1/payouts")

    def transactions(request):
        seen.append({"path": request.path, "args": request.args.to_dict(flat=False),
                     "headers": dict(request.headers)})  # fmt: skip
        if request.args.get("payout") == "po_1":
            rows = [{**base_tx, "id": "txn_1", "amount": 300, "fee": 39, "net": 261,
                     "source": copy.deepcopy(charge)},
                    {**base_tx, "id": "txn_po1", "amount": -261, "net": -261, "type": "payout",
                     "reporting_category": "payout", "source": "po_1"}]  # fmt: skip
        else:
            rows = [{**base_tx, "id": "txn_2", "amount": 510, "fee": 10, "net": 510,
                     "source": "ch_2", "exchange_rate": 1.0921}]  # fmt: skip
        return page(rows, False, "/v1/balance_transactions")

    httpserver.expect_request("/v1/payouts").respond_with_handler(payouts)
    httpserver.expect_request("/v1/balance_transactions").respond_with_handler(transactions)
    return seen


@pytest.fixture
def stripe_settings(settings, httpserver):
    settings.STRIPE_API_KEY = KEY
    settings.STRIPE_API_BASE = httpserver.url_for("").rstrip("/")
    settings.STRIPE_RETRIES = 0
    return settings


def test_the_api_lists_payouts_and_their_transactions_through_the_sdk(
    httpserver: HTTPServer, stripe_settings
):
    seen = serve_stripe(httpserver)
    options = ImportOptions(source=Source.STRIPE, since=date(2009, 2, 1), until=date(2009, 2, 28))
    with correlation.bound("corr-stripe"):
        [run] = import_api(options=options)

    assert seen[0]["args"]["arrival_date[gte]"] == [
        str(int(datetime(2009, 2, 1, tzinfo=UTC).timestamp()))
    ]
    assert seen[0]["args"]["arrival_date[lt]"] == [
        str(int(datetime(2009, 3, 1, tzinfo=UTC).timestamp()))
    ]
    assert seen[1]["args"]["starting_after"] == ["po_1"]  # the SDK's auto-pagination
    tx_calls = [s for s in seen if s["path"] == "/v1/balance_transactions"]
    assert sorted(s["args"]["payout"][0] for s in tx_calls) == ["po_1", "po_2"]
    assert all(s["args"]["expand[0]"] == ["data.source"] for s in tx_calls)
    for request in seen:
        assert request["headers"]["Authorization"] == f"Bearer {KEY}"
        assert request["headers"]["X-Correlation-Id"] == "corr-stripe"
        assert "PythonBindings" in request["headers"]["User-Agent"]  # the SDK's own

    assert (run.rows_new, run.rows_rejected, run.defects) == (5, 0, 1)
    assert "Stripe API" in run.origin and "2009-02-01..2009-02-28" in run.origin
    txn = ProcessorTransaction.objects.get(external_id="txn_1")
    assert (txn.payout_external_id, txn.source_order_id) == ("po_1", "1001")
    po1, po2 = Payout.objects.get(external_id="po_1"), Payout.objects.get(external_id="po_2")
    assert po1.defects == []  # 2.61, the payout's own transaction left out
    assert po1.transactions.count() == 2 and po2.trace_id == "TR2"
    assert codes(po2.defects) == [Defect.PAYOUT_SUM_MISMATCH]  # 5.10 against 5.00
    assert codes(ProcessorTransaction.objects.get(external_id="txn_2").defects) == [
        Defect.NET_MISMATCH
    ]  # 5.10 - 0.10 != 5.10
    # The SDK parses JSON numbers itself: its float is kept as text, never a float in our rows.
    assert ProcessorTransaction.objects.get(external_id="txn_2").raw["exchange_rate"] == "1.0921"

    before = snapshot()
    [again] = import_api(options=options)
    assert (again.rows_new, again.rows_unchanged) == (0, 5)
    assert snapshot() == before


def test_a_stripe_refusal_and_a_guarded_url_are_errors_in_words(httpserver, stripe_settings):
    httpserver.expect_request("/v1/payouts").respond_with_json(
        {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}},
        status=401)  # fmt: skip
    with pytest.raises(StripeAPIError) as caught:
        import_api(options=OPTIONS)
    assert caught.value.status == 401 and not caught.value.retryable
    assert str(caught.value) == "stripe AuthenticationError: the call failed (HTTP 401)"

    stripe_settings.STRIPE_API_BASE = "http://169.254.169.254"
    with pytest.raises(URLRefused):
        import_api(options=OPTIONS)


def test_the_api_needs_a_key(settings):
    from orders.errors import InvalidInput

    settings.STRIPE_API_KEY = ""
    with pytest.raises(InvalidInput, match="STRIPE_API_KEY"):
        import_api(options=OPTIONS)


def test_the_command_reads_the_api_and_says_a_failed_call_in_words(
    httpserver: HTTPServer, stripe_settings, capsys
):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    serve_stripe(httpserver)
    call_command("import_finance", "--source", "stripe", "--api", "--no-progress")
    assert "5 new, 0 already there, 0 rejected, 1 with a vendor defect" in capsys.readouterr().out

    httpserver.clear()
    httpserver.expect_request("/v1/payouts").respond_with_json(
        {"error": {"type": "api_error", "message": "boom"}}, status=500)  # fmt: skip
    with pytest.raises(CommandError, match=r"stripe APIError.*\(HTTP 500\)"):
        call_command("import_finance", "--source", "stripe", "--api", "--no-progress")


def test_a_503_is_tried_again_by_our_session_not_by_the_sdk(httpserver: HTTPServer,
                                                            stripe_settings):  # fmt: skip
    stripe_settings.STRIPE_RETRIES = 1
    empty = {"object": "list", "data": [], "has_more": False, "url": "/v1/payouts"}
    httpserver.expect_ordered_request("/v1/payouts").respond_with_data("", status=503)
    httpserver.expect_ordered_request("/v1/payouts").respond_with_json(empty)
    [run] = import_api(options=OPTIONS)
    httpserver.check_assertions()
    assert run.rows_read == 0

    httpserver.clear()
    for _ in range(3):
        httpserver.expect_ordered_request("/v1/payouts").respond_with_data("", status=503)
    with pytest.raises(StripeAPIError) as caught:
        import_api(options=OPTIONS)
    assert caught.value.retryable and caught.value.status == 503
    assert len(httpserver.log) == 2  # one try and one retry, none by the SDK on top
