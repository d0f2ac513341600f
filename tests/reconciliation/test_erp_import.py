"""ERP revenue: the CSV export (header spellings, type words, a clear error per bad row) and
NetSuite's SuiteQL read (a loopback NetSuite that pages by offset/limit/hasMore)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from werkzeug import Request, Response

from orders.errors import InvalidInput
from reconciliation.importers import ImportOptions, import_api, import_files
from reconciliation.models import ErpDocType, ErpDocument, Source
from tests.factories import SalesChannelFactory, make_order

pytestmark = pytest.mark.django_db


def run_csv(path: Path, source: str = Source.ERP_CSV):
    [result] = import_files([path], options=ImportOptions(source=source))
    return result


def rows() -> list[dict]:
    return list(ErpDocument.objects.order_by("pk").values())


@pytest.fixture
def orders():
    shop, amazon = SalesChannelFactory(slug="shop"), SalesChannelFactory(slug="amazon")
    by_cid = make_order(channel=shop, external_id="1001", pipeline=False)
    by_external = make_order(channel=shop, external_id="1002", pipeline=False)
    # The same channel order id on two channels: ambiguous, left open.
    make_order(channel=shop, external_id="2000", pipeline=False)
    make_order(channel=amazon, external_id="2000", pipeline=False)
    return by_cid, by_external


def export(tmp_path: Path, by_cid) -> Path:
    path = tmp_path / "revenue-2026-03.csv"
    path.write_text(
        "Doc No,Date,Reference,Amount,Currency,Type\n"
        f"INV-1,2026-03-03,{by_cid.correlation_id},26.50,USD,Invoice\n"
        "INV-2,2026-03-04,1002,40.00,usd,invoice\n"
        "INV-3,2026-03-04,2000,10.00,USD,INV\n"
        "CM-1,2026-03-05,1002,-12.50,USD,Credit Memo\n"
        "CM-2,2026-03-05,1002,2.00,USD,credit_note\n"
        "INV-4,2026-03-05,1002,12.3x,USD,Invoice\n"
        "INV-5,05/03/2026,1002,1.00,USD,Invoice\n"
        "INV-6,2026-03-05,1002,1.00,USD,Proforma\n"
        "INV-7,2026-03-05,1002,-1.00,USD,Invoice\n"
        "INV-8,2026-03-05,1002,1.00,XXY,Invoice\n"
        "INV-9,2026-03-05,1002,1.001,USD,Invoice\n",
        encoding="utf-8",
    )
    return path


def test_csv_export_documents_with_their_orders(orders, tmp_path):
    by_cid, by_external = orders
    result = run_csv(export(tmp_path, by_cid))

    name = "revenue-2026-03.csv"
    assert result.errors == [
        {"where": f"{name}:7", "message": "'12.3x' is not an amount (Not an amount: '12.3x')"},
        {"where": f"{name}:8", "message": "date '05/03/2026' is not a date (YYYY-MM-DD)"},
        {"where": f"{name}:9", "message": "type 'Proforma' is neither an invoice nor a credit "
                                          "note"},
        {"where": f"{name}:10", "message": "invoice INV-7 has a negative amount -1.00 (a credit "
                                           "note exported as an invoice?)"},
        {"where": f"{name}:11", "message": "'XXY' is not a currency"},
        {"where": f"{name}:12", "message": "'1.001' has more decimals than USD has"},
    ]  # fmt: skip
    assert (result.rows_read, result.rows_new, result.rows_rejected) == (11, 5, 6)
    got = [(d.document_number, d.doc_type, d.document_date, d.amount, d.currency, d.order_id)
           for d in ErpDocument.objects.order_by("pk")]  # fmt: skip
    assert got == [
        ("INV-1", ErpDocType.INVOICE, date(2026, 3, 3), Decimal("26.50"), "USD", by_cid.pk),
        ("INV-2", ErpDocType.INVOICE, date(2026, 3, 4), Decimal("40.00"), "USD",
         by_external.pk),
        ("INV-3", ErpDocType.INVOICE, date(2026, 3, 4), Decimal("10.00"), "USD", None),
        ("CM-1", ErpDocType.CREDIT_NOTE, date(2026, 3, 5), Decimal("12.50"), "USD",
         by_external.pk),
        ("CM-2", ErpDocType.CREDIT_NOTE, date(2026, 3, 5), Decimal("2.00"), "USD",
         by_external.pk),
    ]  # fmt: skip
    assert ErpDocument.objects.get(document_number="CM-1").signed_amount == Decimal("-12.50")


def test_the_same_export_twice_changes_nothing(orders, tmp_path):
    path = export(tmp_path, orders[0])
    first = run_csv(path)
    before = rows()
    second = run_csv(path)
    assert (first.rows_new, second.rows_new, second.rows_unchanged) == (5, 0, 5)
    assert rows() == before


def test_an_export_read_before_its_order_finds_the_order_later(tmp_path):
    path = tmp_path / "early.csv"
    path.write_text("document_number;document_date;correlation_id;total;ccy;doc_type\n"
                    "INV-10;2026-03-03;5555;26.50;EUR;Invoice\n", encoding="utf-8")  # fmt: skip
    assert run_csv(path).rows_new == 1
    assert ErpDocument.objects.get().order is None
    order = make_order(external_id="5555", currency="EUR", pipeline=False)
    again = run_csv(path)
    assert (again.rows_new, again.rows_unchanged) == (0, 1)
    assert ErpDocument.objects.get().order == order


def test_a_header_without_an_amount_column_is_refused_whole(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("Doc No,Date,Reference,Currency,Type\nINV-1,2026-03-03,x,USD,Invoice\n")
    result = run_csv(path)
    assert result.rows_new == 0
    assert result.errors == [{"where": "odd.csv:1", "message": "no column for amount (one of: "
                                                               "amount, total, gross_amount, "
                                                               "amount_gross)"}]  # fmt: skip


def test_our_own_erp_file_drop_is_refused_with_the_reason(tmp_path):
    from fulfillment.downstream.erp_filedrop import COLUMNS

    path = tmp_path / "order-abc.csv"
    path.write_text(",".join(COLUMNS) + "\n", encoding="utf-8")
    result = run_csv(path)
    assert result.rows_new == 0
    assert result.errors[0]["where"] == "order-abc.csv:1"
    assert "our own ERP file drop" in result.errors[0]["message"]


# --- NetSuite ------------------------------------------------------------------------------------
def item(n: int, kind: str, total: str, external: str, **extra) -> dict:
    return {"links": [], "id": str(n), "tranid": f"{'INV' if kind == 'CustInvc' else 'CM'}{n}",
            "type": kind, "trandate": "2026-03-04", "externalid": external,
            "otherrefnum": None, "foreigntotal": total, "currency": "USD", **extra}  # fmt: skip


class LoopbackNetSuite:
    """SuiteQL over two pages; the body's numbers are JSON numbers, as NetSuite sends them."""

    def __init__(self, httpserver, items: list[dict], page: int = 2) -> None:
        self.items, self.page, self.requests = items, page, []
        httpserver.expect_request("/services/rest/query/v1/suiteql",
                                  method="POST").respond_with_handler(self.answer)  # fmt: skip
        self.url = httpserver.url_for("/").rstrip("/")

    def answer(self, request: Request) -> Response:
        self.requests.append(request)
        offset = int(request.args["offset"])
        chunk = self.items[offset : offset + self.page]
        body = json.dumps({
            "links": [], "count": len(chunk), "hasMore": offset + self.page < len(self.items),
            "offset": offset, "totalResults": len(self.items), "items": chunk,
        })  # fmt: skip
        for one in chunk:  # amounts as JSON numbers, digits as NetSuite writes them
            body = body.replace(f'"foreigntotal": "{one["foreigntotal"]}"',
                                f'"foreigntotal": {one["foreigntotal"]}')  # fmt: skip
        return Response(body, content_type="application/json")


def test_netsuite_invoices_and_credit_memos_over_pages(orders, httpserver, settings):
    by_cid, _ = orders
    netsuite = LoopbackNetSuite(httpserver, [
        item(1, "CustInvc", "26.50", by_cid.correlation_id),
        item(2, "CustCred", "-12.50", by_cid.correlation_id),
        item(3, "CustInvc", "0.1", "x-1"),
        item(4, "CustInvc", "7", "x-2", currency="Euro"),
        item(5, "CustInvc", "19.99", "", otherrefnum="1002"),
    ])  # fmt: skip
    settings.NETSUITE_API_BASE, settings.NETSUITE_TOKEN = netsuite.url, "ns-read"
    options = ImportOptions(source=Source.NETSUITE, since=date(2026, 3, 1),
                            until=date(2026, 3, 31))  # fmt: skip
    [result] = import_api(options=options)

    assert [r.args["offset"] for r in netsuite.requests] == ["0", "2", "4"]
    first = netsuite.requests[0]
    assert first.headers["Authorization"] == "Bearer ns-read"
    assert first.headers["Prefer"] == "transient"
    assert first.headers.get("X-Correlation-ID")
    query = json.loads(first.get_data())["q"]
    assert "t.type IN ('CustInvc', 'CustCred')" in query
    assert "TO_DATE('2026-03-01', 'YYYY-MM-DD')" in query
    assert "TO_DATE('2026-03-31', 'YYYY-MM-DD')" in query
    assert result.origin == "NetSuite SuiteQL invoices and credit memos 2026-03-01..2026-03-31"
    assert result.errors == [{"where": "suiteql?offset=2#/items/1/currency",
                              "message": "'Euro' is not a currency"}]  # fmt: skip
    got = {d.document_number: (d.doc_type, d.amount, d.order_id)
           for d in ErpDocument.objects.filter(source=Source.NETSUITE)}  # fmt: skip
    assert got == {
        "INV1": (ErpDocType.INVOICE, Decimal("26.50"), by_cid.pk),
        "CM2": (ErpDocType.CREDIT_NOTE, Decimal("12.50"), by_cid.pk),
        "INV3": (ErpDocType.INVOICE, Decimal("0.10"), None),
        "INV5": (ErpDocType.INVOICE, Decimal("19.99"), orders[1].pk),
    }
    assert ErpDocument.objects.get(document_number="INV1").raw["foreigntotal"] == "26.50"

    before = rows()
    [again] = import_api(options=options)
    assert (again.rows_new, again.rows_unchanged) == (0, 4)
    assert rows() == before


def test_netsuite_not_configured_or_failing_says_so(httpserver, settings):
    settings.NETSUITE_API_BASE, settings.NETSUITE_TOKEN = "", ""
    with pytest.raises(InvalidInput, match="NetSuite is not configured"):
        import_api(options=ImportOptions(source=Source.NETSUITE))
    httpserver.expect_request("/services/rest/query/v1/suiteql").respond_with_data("{}", status=401)
    settings.NETSUITE_API_BASE = httpserver.url_for("/").rstrip("/")
    settings.NETSUITE_TOKEN = "expired"
    with pytest.raises(InvalidInput, match="HTTP 401"):
        import_api(options=ImportOptions(source=Source.NETSUITE))


def test_the_erp_csv_has_no_api():
    with pytest.raises(LookupError):
        import_api(options=ImportOptions(source=Source.ERP_CSV))


def test_a_503_from_netsuite_is_retried_inside_the_read(httpserver, settings):
    """SuiteQL's POST is a read: the session repeats it after a retryable answer."""
    httpserver.expect_ordered_request("/services/rest/query/v1/suiteql").respond_with_data(
        "busy", status=503
    )
    httpserver.expect_ordered_request("/services/rest/query/v1/suiteql").respond_with_json(
        {"hasMore": False, "items": [item(1, "CustInvc", "5.00", "x-9")]}
    )
    settings.NETSUITE_API_BASE = httpserver.url_for("/").rstrip("/")
    settings.NETSUITE_TOKEN = "ns-read"
    [result] = import_api(options=ImportOptions(source=Source.NETSUITE))
    assert result.rows_new == 1 and len(httpserver.log) == 2


def test_the_command_reads_an_erp_export(orders, tmp_path, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    path = export(tmp_path, orders[0])
    with pytest.raises(CommandError) as exc:
        call_command("import_finance", "--source", "erp_csv", "--no-progress", str(path))
    assert exc.value.returncode == 1
    out, err = capsys.readouterr()
    assert "revenue-2026-03.csv: 11 read, 5 new, 0 already there, 6 rejected" in out
    assert "revenue-2026-03.csv:7: '12.3x' is not an amount" in err


def test_a_document_number_again_with_another_amount_is_rejected_with_both(tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text("Document Number,Date,Reference,Amount,Currency,Type\n"
                    "INV-1,2026-03-03,r-1,26.50,EUR,Invoice\n"
                    "INV-1,2026-03-03,r-1,26.50,EUR,Invoice\n"
                    "INV-1,2026-03-03,r-1,30.00,EUR,Invoice\n"
                    "INV-1,2026-03-03,r-1,30.00,EUR,Credit Note\n", encoding="utf-8")  # fmt: skip
    result = run_csv(path)
    assert (result.rows_new, result.rows_unchanged, result.rows_rejected) == (2, 1, 1)
    assert result.errors == [{
        "where": "twice.csv:4",
        "message": "Invoice INV-1 is already imported as 26.50 EUR of 2026-03-03 (reference "
                   "r-1); this row says 30.00 EUR of 2026-03-03 (reference r-1)",
    }]  # fmt: skip
    assert ErpDocument.objects.get(doc_type=ErpDocType.INVOICE).amount == Decimal("26.50")
