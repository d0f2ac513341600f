"""Shopify Payments import from Shopify's own samples, as they are: every row once, the vendor's
defects kept on the rows (row 758509248's amount - fee != net, payout 623721858 whose 50
transactions do not sum to its 41.90), a clear error per bad row, and the same from a loopback
Admin API (pagination by Link header, one payout's transactions per call)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.forms.models import model_to_dict
from pytest_httpserver import HTTPServer
from werkzeug import Response

from config import correlation
from reconciliation.importers import ImportOptions, import_api, import_files
from reconciliation.models import (
    Defect,
    ImportRun,
    Payout,
    PayoutStatus,
    ProcessorTransaction,
    Source,
    TxCategory,
)
from tests.factories import SalesChannelFactory

pytestmark = pytest.mark.django_db

SAMPLES = Path("/work/shared/samples/shopify")
FILES = [SAMPLES / "payouts_list.json", SAMPLES / "payout_623721858_get.json",
         SAMPLES / "balance_transactions_payout_623721858.json"]  # fmt: skip
OPTIONS = ImportOptions(source=Source.SHOPIFY_PAYMENTS)
API_VERSION = "2026-07"
TOKEN = "shpat_test_token"


def snapshot() -> dict[str, list[dict[str, object]]]:
    return {
        "payouts": [model_to_dict(p) for p in Payout.objects.order_by("pk")],
        "transactions": [model_to_dict(t) for t in ProcessorTransaction.objects.order_by("pk")],
    }


def codes(defects: list[dict[str, str]]) -> list[str]:
    return [d["code"] for d in defects]


def test_the_samples_import_with_their_defects_flagged_and_a_reimport_changes_nothing():
    runs = import_files(FILES, options=OPTIONS)
    assert [(r.origin, r.rows_read, r.rows_new, r.rows_unchanged, r.rows_rejected)
            for r in runs] == [
        ("payouts_list.json", 8, 8, 0, 0),
        ("payout_623721858_get.json", 1, 0, 1, 0),
        ("balance_transactions_payout_623721858.json", 50, 50, 0, 0),
    ]  # fmt: skip
    assert runs[2].defects == 1

    row = ProcessorTransaction.objects.get(source=Source.SHOPIFY_PAYMENTS, external_id="758509248")
    assert (row.amount, row.fee, row.net) == (Decimal("-1.50"), Decimal("-0.25"), Decimal("-1.75"))
    assert codes(row.defects) == [Defect.NET_MISMATCH]
    assert (
        "-1.50 - fee -0.25 = -1.25 USD, but the vendor says net -1.75" in row.defects[0]["message"]
    )
    assert ProcessorTransaction.objects.exclude(defects=[]).count() == 1  # the others balance

    payout = Payout.objects.get(source=Source.SHOPIFY_PAYMENTS, external_id="623721858")
    assert payout.transactions.count() == 50  # attached by payout_id
    assert codes(payout.defects) == [Defect.PAYOUT_SUM_MISMATCH]
    expected = sum((t.net for t in payout.transactions.all()), Decimal(0))
    assert expected != payout.amount == Decimal("41.90")
    message = payout.defects[0]["message"]
    assert f"sum to {expected} USD" in message and "the payout is 41.90" in message
    # No balancing row was added to make it sum.
    assert ProcessorTransaction.objects.count() == 50

    # The payout as Shopify gave it: gross and fees from its summary (43.11 - 1.21 = 41.90).
    assert (payout.status, payout.currency, str(payout.paid_on)) == ("paid", "USD", "2012-11-12")
    assert (payout.gross, payout.fees) == (Decimal("43.11"), Decimal("1.21"))
    assert payout.summary["charges_gross_amount"] == "44.52"
    assert Payout.objects.get(external_id="631321250").status == PayoutStatus.SCHEDULED
    assert Payout.objects.get(external_id="39438702").status == PayoutStatus.IN_TRANSIT

    charge = (
        ProcessorTransaction.objects.filter(vendor_type="charge")
        .exclude(source_order_id="")
        .first()
    )
    assert charge is not None and charge.category == TxCategory.CHARGE
    assert charge.payout_external_id == "623721858"
    assert charge.occurred_at.utcoffset().total_seconds() == 0
    categories = set(ProcessorTransaction.objects.values_list("vendor_type", "category"))
    assert ("refund", TxCategory.REFUND) in categories
    assert ("adjustment", TxCategory.ADJUSTMENT) in categories
    assert {c for t, c in categories if t == "reserve"} <= {
        TxCategory.RESERVE_HOLD,
        TxCategory.RESERVE_RELEASE,
    }

    before = snapshot()
    again = import_files(FILES, options=OPTIONS)
    assert [(r.rows_new, r.rows_unchanged) for r in again] == [(0, 8), (0, 1), (0, 50)]
    assert snapshot() == before  # byte for byte, defects included
    assert ImportRun.objects.count() == 6


def test_a_bad_row_is_rejected_by_json_pointer_and_the_rest_of_the_file_imports(tmp_path):
    document = json.loads((SAMPLES / "balance_transactions_payout_623721858.json").read_text())
    document["transactions"][3]["amount"] = "12,3x"
    document["transactions"][7]["currency"] = "XYZ"
    document["transactions"][9]["processed_at"] = "2024-01-10T07:34:56"
    del document["transactions"][11]["id"]
    broken = tmp_path / "transactions.json"
    broken.write_text(json.dumps(document))
    other = tmp_path / "orders.json"
    other.write_text('{"orders": []}')
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")

    runs = import_files([broken, other, garbage], options=OPTIONS)
    assert runs[0].rows_new == 46 and runs[0].rows_rejected == 4
    assert runs[0].errors == [
        {"where": "transactions.json#/transactions/3/amount",
         "message": "'12,3x' is not an amount (Not an amount: '12,3x')"},
        {"where": "transactions.json#/transactions/7/currency",
         "message": "'XYZ' is not a currency"},
        {"where": "transactions.json#/transactions/9/processed_at",
         "message": "'2024-01-10T07:34:56' has no time zone"},
        {"where": "transactions.json#/transactions/11/id", "message": "the row has no id"},
    ]  # fmt: skip
    assert (
        runs[1].rows_rejected == 1
        and "not a Shopify Payments answer" in runs[1].errors[0]["message"]
    )
    assert runs[2].rows_rejected == 1 and runs[2].errors[0]["where"] == "garbage.json#"


def test_the_command_imports_the_samples_and_exits_1_on_a_rejected_row(tmp_path, capsys):
    call_command("import_finance", "--source", "shopify_payments", "--no-progress",
                 *map(str, FILES))  # fmt: skip
    out = capsys.readouterr().out
    assert "balance_transactions_payout_623721858.json: 50 read, 50 new" in out
    bad = tmp_path / "payouts.json"
    bad.write_text(
        '{"payouts": [{"id": 1, "status": "paid", "currency": "USD", "amount": "1.505",'
        ' "date": "2026-01-02"}]}'
    )
    with pytest.raises(CommandError) as caught:
        call_command("import_finance", "--source", "shopify_payments", "--no-progress", str(bad))
    assert caught.value.returncode == 1
    assert "payouts.json#/payouts/0/amount" in capsys.readouterr().err  # more decimals than USD has


# --- the Admin API ------------------------------------------------------------------------------
def shopify_channel(httpserver: HTTPServer):
    return SalesChannelFactory(
        kind="shopify", api_base_url=httpserver.url_for("/shop"), api_version=API_VERSION,
        credentials={"access_token": TOKEN},
    )  # fmt: skip


def serve_samples(httpserver: HTTPServer) -> list[dict[str, object]]:
    """payouts.json in two pages (the list sample, then the single payout's page after the Link
    header), and each payout's balance transactions (the sample for 623721858, none for the
    others). Returns what each request carried."""
    seen: list[dict[str, object]] = []
    base = f"/shop/admin/api/{API_VERSION}/shopify_payments"
    listing = json.loads((SAMPLES / "payouts_list.json").read_text())
    single = json.loads((SAMPLES / "payout_623721858_get.json").read_text())
    txs = (SAMPLES / "balance_transactions_payout_623721858.json").read_text()

    def payouts(request):
        seen.append({"path": request.path, "args": dict(request.args), "headers": request.headers})
        if request.args.get("page_info") == "p2":
            return Response(json.dumps({"payouts": [single["payout"]]}),
                            content_type="application/json")  # fmt: skip
        nxt = httpserver.url_for(f"{base}/payouts.json") + "?limit=250&page_info=p2"
        return Response(json.dumps(listing), content_type="application/json",
                        headers={"Link": f'<{nxt}>; rel="next"'})  # fmt: skip

    def transactions(request):
        seen.append({"path": request.path, "args": dict(request.args), "headers": request.headers})
        if request.args.get("payout_id") == "623721858":
            return Response(txs, content_type="application/json")
        return Response('{"transactions": []}', content_type="application/json")

    httpserver.expect_request(f"{base}/payouts.json").respond_with_handler(payouts)
    httpserver.expect_request(f"{base}/balance/transactions.json").respond_with_handler(
        transactions
    )
    return seen


def test_the_api_reads_every_page_and_each_payouts_transactions_once(httpserver: HTTPServer):
    from datetime import date

    channel = shopify_channel(httpserver)
    seen = serve_samples(httpserver)
    options = ImportOptions(source=Source.SHOPIFY_PAYMENTS, channel=channel,
                            since=date(2012, 11, 1), until=date(2013, 12, 31))  # fmt: skip
    with correlation.bound("corr-shopify-payouts"):
        [run] = import_api(options=options)

    first = seen[0]
    assert first["args"] == {"limit": "250", "date_min": "2012-11-01", "date_max": "2013-12-31"}
    assert seen[1]["args"] == {"limit": "250", "page_info": "p2"}  # the Link header's URL as is
    for request in seen:
        assert request["headers"]["X-Shopify-Access-Token"] == TOKEN
        assert request["headers"][correlation.HEADER] == "corr-shopify-payouts"
    asked = sorted(r["args"]["payout_id"] for r in seen if "payout_id" in r["args"])
    assert asked == sorted(Payout.objects.values_list("external_id", flat=True))  # each once
    assert len(asked) == 8

    assert (run.rows_new, run.rows_unchanged, run.rows_rejected) == (58, 1, 0)
    assert "Shopify Payments API" in run.origin and "2012-11-01..2013-12-31" in run.origin
    payout = Payout.objects.get(external_id="623721858")
    assert payout.channel == channel and codes(payout.defects) == [Defect.PAYOUT_SUM_MISMATCH]
    assert codes(ProcessorTransaction.objects.get(external_id="758509248").defects) == [
        Defect.NET_MISMATCH
    ]

    before = snapshot()
    [again] = import_api(options=options)
    assert (again.rows_new, again.rows_unchanged) == (0, 59)
    assert snapshot() == before


def test_the_api_needs_a_configured_channel_and_says_which_part_is_missing():
    from orders.errors import InvalidInput

    with pytest.raises(InvalidInput, match="--channel"):
        import_api(options=OPTIONS)
    channel = SalesChannelFactory(kind="shopify", api_base_url="https://shop.example.com")
    with pytest.raises(InvalidInput, match="access_token"):
        import_api(options=ImportOptions(source=Source.SHOPIFY_PAYMENTS, channel=channel))


def test_a_503_is_tried_again_and_a_refusal_stops_the_read_in_words(httpserver: HTTPServer):
    from channels.http import ChannelHTTPError

    channel = shopify_channel(httpserver)
    base = f"/shop/admin/api/{API_VERSION}/shopify_payments"
    single = (SAMPLES / "payout_623721858_get.json").read_text()
    listing = json.dumps({"payouts": [json.loads(single)["payout"]]})
    txs = (SAMPLES / "balance_transactions_payout_623721858.json").read_text()
    httpserver.expect_ordered_request(f"{base}/payouts.json").respond_with_data("", status=503)
    httpserver.expect_ordered_request(f"{base}/payouts.json").respond_with_data(
        listing, content_type="application/json"
    )
    httpserver.expect_ordered_request(f"{base}/balance/transactions.json").respond_with_data(
        txs, content_type="application/json"
    )
    options = ImportOptions(source=Source.SHOPIFY_PAYMENTS, channel=channel)
    [run] = import_api(options=options)
    httpserver.check_assertions()
    assert run.rows_new == 51

    httpserver.clear()
    httpserver.expect_request(f"{base}/payouts.json").respond_with_data("", status=401)
    with pytest.raises(ChannelHTTPError, match="HTTP 401") as caught:
        import_api(options=options)
    assert not caught.value.retryable
