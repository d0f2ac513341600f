"""ERP credit notes: the file drop's exact file, and NetSuite's creditMemo on loopback."""

from __future__ import annotations

import json
import re

import pytest
from werkzeug import Request, Response

from fulfillment.downstream import get_handler
from fulfillment.downstream.erp_credit_note import CREDIT_MEMO_PATH, external_id_for
from fulfillment.models import ActionKind, ActionStatus
from orders.actors import Actor
from orders.refunds import LineRequest, refund_issue
from tests.fulfillment.outbox.helpers import Loopback, dispatch, fresh, make_due, write
from tests.fulfillment.test_close_orders import delivered

pytestmark = pytest.mark.django_db
CS = Actor.system("cs")


@pytest.fixture(autouse=True)
def quiet(settings, tmp_path):
    settings.CRM_TARGETS = []
    settings.NOTIFY_TARGETS = []
    settings.ERP_TARGET = ""  # the actions under test are written by the tests
    settings.ERP_DROP_DIR = str(tmp_path / "erp-drop")
    settings.DOWNSTREAM_HTTP_TIMEOUT = (2.0, 5.0)


def _refund():
    order, _parcel = delivered()
    line = order.lines.get()
    result = refund_issue(order_id=order.pk, actor=CS, key="cs-1",
                          lines=[LineRequest(line.pk, 1)], shipping=True)  # fmt: skip
    return order, result.refund


def test_the_file_drop_writes_one_exact_credit_note_per_refund_and_a_retry_rewrites_it(settings):
    order, refund = _refund()
    action = write(order, ActionKind.ERP_CREDIT_NOTE, "filedrop", {"refund_id": refund.pk},
                   version=refund.pk, correlation_id=refund.correlation_id)  # fmt: skip
    assert action.status == ActionStatus.SUCCEEDED, action.last_error
    folder = settings.ERP_DROP_DIR
    import pathlib

    files = list(pathlib.Path(folder).iterdir())
    assert [f.name for f in files] == [action.result["file"]]
    payments = ";".join(f"{p.method}={p.amount:.2f}" for p in refund.payments.order_by("pk"))
    expected = (
        "idempotency_key,refund_reference,order_id,channel,external_id,order_correlation_id,"
        "currency,line_no,sku,quantity,amount,tax,shipping,shipping_tax,restocking_fee,total,"
        "payments,processed_at\r\n"
        f"{action.idempotency_key},{refund.reference},{order.pk},{order.channel.slug},"
        f"{order.external_id},{order.correlation_id},USD,1,MUG,1,10.00,1.50,5.00,0.00,0.00,"
        f"16.50,{payments},{refund.processed_at.isoformat()}\r\n"
    )
    assert files[0].read_bytes().decode() == expected
    again = get_handler(ActionKind.ERP_CREDIT_NOTE, "filedrop").perform(fresh(action))
    assert again == action.result
    assert len(list(pathlib.Path(folder).iterdir())) == 1


class FakeNetSuiteCredits(Loopback):
    """creditMemo create (204 + Location, external ids unique) and ``eid:`` lookup;
    ``fail_first``: the first create is stored but answered 503 (an ambiguous failure)."""

    def __init__(self, *, fail_first: bool = False) -> None:
        super().__init__()
        self.fail_first = fail_first
        self.records: dict[str, str] = {}
        self.posts: list[dict] = []
        self.gets: list[str] = []
        self.server.expect_request(CREDIT_MEMO_PATH, method="POST").respond_with_handler(
            self.create
        )
        self.server.expect_request(
            re.compile(rf"^{CREDIT_MEMO_PATH}/eid:.+$"), method="GET"
        ).respond_with_handler(self.get)

    def create(self, request: Request) -> Response:
        body = request.get_json()
        self.posts.append(body)
        if body["externalId"] in self.records:
            return Response(json.dumps({"o:errorDetails": [{"o:errorCode": "DUP_RCRD",
                            "detail": "A record with this external ID already exists."}]}),
                            status=400, content_type="application/json")  # fmt: skip
        record_id = str(2000 + len(self.records) + 1)
        self.records[body["externalId"]] = record_id
        if self.fail_first and len(self.posts) == 1:
            return Response("busy", status=503)
        return Response(
            status=204, headers={"Location": f"{self.url}{CREDIT_MEMO_PATH}/{record_id}"}
        )

    def get(self, request: Request) -> Response:
        external_id = request.path.rsplit("eid:", 1)[1]
        self.gets.append(external_id)
        if external_id not in self.records:
            return Response(json.dumps({"status": 404}), status=404)
        return Response(json.dumps({"id": self.records[external_id]}),
                        content_type="application/json")  # fmt: skip


def _configure(settings, netsuite) -> None:
    settings.NETSUITE_API_BASE = netsuite.url
    settings.NETSUITE_TOKEN = "ns-token"
    settings.NETSUITE_CUSTOMER_ID = "77"


def test_netsuite_gets_one_credit_memo_with_the_refund_external_id(settings):
    order, refund = _refund()
    with FakeNetSuiteCredits() as netsuite:
        _configure(settings, netsuite)
        action = write(order, ActionKind.ERP_CREDIT_NOTE, "netsuite", {"refund_id": refund.pk},
                       version=refund.pk, correlation_id=refund.correlation_id)  # fmt: skip
    assert action.status == ActionStatus.SUCCEEDED, action.last_error
    external_id = f"{order.correlation_id}-{refund.reference}"
    assert external_id_for(refund) == external_id
    assert action.result == {"record_id": "2001", "external_id": external_id, "created": True}
    [body] = netsuite.posts
    assert body["externalId"] == external_id and body["otherRefNum"] == refund.reference
    assert body["item"]["items"] == [
        {"item": {"externalId": "MUG"}, "quantity": 1, "amount": 10.0, "tax1Amt": 1.5}
    ]
    assert body["shippingCost"] == 5.0 and body["entity"] == {"id": "77"}


def test_netsuite_retry_after_an_ambiguous_failure_finds_the_memo_without_a_second_post(settings):
    order, refund = _refund()
    with FakeNetSuiteCredits(fail_first=True) as netsuite:
        _configure(settings, netsuite)
        action = write(order, ActionKind.ERP_CREDIT_NOTE, "netsuite", {"refund_id": refund.pk},
                       version=refund.pk, correlation_id=refund.correlation_id)  # fmt: skip
        if action.status != ActionStatus.SUCCEEDED:
            assert action.status == ActionStatus.RETRY_SCHEDULED, action.last_error
            make_due(action)
            dispatch(action)
        action = fresh(action)
    assert action.status == ActionStatus.SUCCEEDED, action.last_error
    assert action.result["record_id"] == "2001" and action.result["created"] is False
    assert len(netsuite.posts) == 1
    assert netsuite.gets and set(netsuite.gets) == {external_id_for(refund)}
