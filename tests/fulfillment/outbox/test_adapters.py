"""The downstream adapters one by one: ERP file drop, email, Twilio SMS, local and REST WMS,
and the registry that picks them from settings. Personal data is read at send time and never
lands in payloads, results, audit events or logs."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import pytest
from django.core import mail
from werkzeug import Request, Response

from fulfillment.downstream import get_handler, register, targets_for
from fulfillment.downstream.base import UnknownTarget
from fulfillment.downstream.erp_filedrop import write_atomically
from fulfillment.models import ActionKind, ActionStatus, OutboundAction, PickTask
from orders.models import Customer, Order, OrderEvent
from tests.factories import CustomerFactory, make_order
from tests.fulfillment.helpers import add_warehouse
from tests.fulfillment.outbox.helpers import Loopback, dispatch, fresh, make_due, write

pytestmark = pytest.mark.django_db

PHONE = "+15005550006"


@pytest.fixture
def order():
    add_warehouse("EAST")
    customer = CustomerFactory(name="Jane Roe", phone=PHONE)
    return make_order(paid=True, pipeline=False, customer=customer,
                      lines=[("MUG", 2, "12.50"), ("TEE", 1, "20.00")])  # fmt: skip


# --- registry --------------------------------------------------------------------------------
def test_targets_come_from_settings(settings):
    assert targets_for(ActionKind.ERP_POST) == ["filedrop"]
    assert targets_for(ActionKind.WMS_TASK) == ["local"]
    assert targets_for(ActionKind.NOTIFY_CUSTOMER) == ["email"]
    assert targets_for(ActionKind.CRM_UPDATE) == []
    settings.ERP_TARGET, settings.WMS_TARGET = "netsuite", ""
    settings.NOTIFY_TARGETS = "email, twilio"
    assert targets_for(ActionKind.ERP_POST) == ["netsuite"]
    assert targets_for(ActionKind.WMS_TASK) == []
    assert targets_for(ActionKind.NOTIFY_CUSTOMER) == ["email"]  # Twilio is not configured
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = "AC123", "secret"
    settings.TWILIO_FROM_NUMBER = "+15005550001"
    assert targets_for(ActionKind.NOTIFY_CUSTOMER) == ["email", "twilio"]


def test_an_unknown_target_dies_with_a_message_a_person_can_act_on(order):
    with pytest.raises(UnknownTarget):
        get_handler(ActionKind.WMS_TASK, "nope")
    action = write(order, ActionKind.WMS_TASK, "nope", {"warehouse": "EAST"})
    assert action.status == ActionStatus.DEAD
    assert action.last_error == "no downstream adapter for wms_task -> 'nope'"


@pytest.fixture
def registry():
    from fulfillment import downstream

    before = set(downstream.registered())
    yield downstream
    for key in set(downstream.registered()) - before:
        downstream.ADAPTERS.unregister(key)


def test_another_app_can_register_an_adapter(order, registry):
    class Recorder:
        target = "recorder"
        calls: list[int] = []

        def perform(self, action):
            self.calls.append(action.pk)
            return {"ok": True}

    register(ActionKind.CRM_UPDATE, "recorder", Recorder)
    action = write(order, ActionKind.CRM_UPDATE, "recorder", {"order_id": order.pk})
    assert action.status == ActionStatus.SUCCEEDED and Recorder.calls == [action.pk]


def test_an_adapter_crash_is_retried_like_an_outage_without_its_message(order, registry):
    class Broken:
        target = "broken"

        def perform(self, action):
            raise KeyError(PHONE)

    register(ActionKind.CRM_UPDATE, "broken", Broken)
    action = write(order, ActionKind.CRM_UPDATE, "broken", {"order_id": order.pk})
    assert action.status == ActionStatus.RETRY_SCHEDULED
    assert action.last_error == "unexpected KeyError in the broken adapter"


# --- ERP file drop ---------------------------------------------------------------------------
def test_the_erp_file_is_written_atomically_and_a_retry_rewrites_the_same_file(order, settings):
    folder = Path(settings.ERP_DROP_DIR)
    action = write(order, ActionKind.ERP_POST, "filedrop")

    files = sorted(folder.iterdir())
    assert [f.name for f in files] == [f"order-{order.pk}-erp_post-filedrop-v1.csv"]
    assert action.result["file"] == files[0].name and action.result["rows"] == 2
    rows = list(csv.DictReader(files[0].open(newline="")))
    assert [(r["sku"], r["quantity"], r["unit_price"], r["tax"], r["line_total"])
            for r in rows] == [
        ("MUG", "2", "12.50", "0.83", "25.83"), ("TEE", "1", "20.00", "0.67", "20.67"),
    ]  # fmt: skip
    assert (
        rows[0]["order_total"] == "51.50" and rows[0]["idempotency_key"] == action.idempotency_key
    )
    text = files[0].read_text()
    assert "Jane" not in text and order.customer.email not in text and "Main St" not in text
    inode = files[0].stat().st_ino

    # A retry of the same action (say, the first answer was lost): same name, replaced whole.
    OutboundAction.objects.filter(pk=action.pk).update(attempts=0)
    adapter = get_handler(ActionKind.ERP_POST, "filedrop")
    again = adapter.perform(fresh(action))
    assert again["file"] == files[0].name and again["sha256"] == action.result["sha256"]
    assert sorted(folder.iterdir()) == files
    assert files[0].stat().st_ino != inode  # a new file renamed over the old one
    assert not [f for f in os.listdir(folder) if f.endswith(".tmp")]


@pytest.mark.parametrize("lead", ["=", "+", "-", "@", "\t", "\r"],
                         ids=["eq", "plus", "minus", "at", "tab", "cr"])  # fmt: skip
def test_channel_text_in_the_erp_file_never_runs_as_a_formula(lead, settings):
    # A channel's order number, order id and SKU land in a sheet someone opens in a spreadsheet.
    add_warehouse("EAST")
    formula = f'{lead}HYPERLINK("http://evil","x")'
    order = make_order(paid=True, pipeline=False, external_id=f"{lead}X1",
                       lines=[(f"{lead}SKU", 1, "12.50")])  # fmt: skip
    order.lines.update(title=formula)  # not a column of the file today
    Order.objects.filter(pk=order.pk).update(order_number=formula)

    action = write(order, ActionKind.ERP_POST, "filedrop")

    path = Path(settings.ERP_DROP_DIR) / action.result["file"]
    [row] = list(csv.DictReader(path.open(newline="")))
    assert (row["order_number"], row["external_id"], row["sku"]) == (
        "'" + formula, f"'{lead}X1", f"'{lead}SKU",
    )  # fmt: skip
    assert (row["unit_price"], row["line_total"], row["order_total"]) == ("12.50", "14.00", "19.00")
    assert not [c for c in row.values() if c[:1] in ("=", "+", "-", "@", "\t", "\r")]


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "order.csv"
    write_atomically(target, b"first\n")

    with pytest.raises(TypeError):
        write_atomically(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"first\n"
    assert os.listdir(tmp_path) == ["order.csv"]


def test_an_unwritable_drop_folder_is_retried(order, settings, tmp_path):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    settings.ERP_DROP_DIR = str(blocker / "erp")
    action = write(order, ActionKind.ERP_POST, "filedrop")
    assert action.status == ActionStatus.RETRY_SCHEDULED
    assert "could not write the ERP drop file" in action.last_error


# --- email -----------------------------------------------------------------------------------
def test_the_order_confirmation_email(order, caplog):
    caplog.set_level(logging.DEBUG)
    action = write(order, ActionKind.NOTIFY_CUSTOMER, "email", {"template": "order_confirmation"})

    [message] = mail.outbox
    number = order.order_number or order.external_id
    assert message.to == [order.customer.email]
    assert message.subject == f"Your order {number} is confirmed"
    assert message.from_email == "Shop <orders@shop.example>"
    assert "Hello Jane Roe," in message.body and "2 x MUG (MUG)  25.00 USD" in message.body
    assert "Total: 51.50 USD" in message.body
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html" and "<strong>" + number + "</strong>" in html
    assert message.extra_headers["Message-ID"] == action.result["message_id"]
    assert action.result["message_id"].endswith("@shop.example>")
    assert message.extra_headers["X-Correlation-ID"] == order.correlation_id
    assert message.message()["Message-ID"] == action.result["message_id"]
    # The address is read at send time: not in the action, its events or the log records.
    events = list(OrderEvent.objects.filter(order=order).values_list("data", flat=True))
    assert order.customer.email not in str(action.payload) + str(action.result) + str(events)
    assert not [r for r in caplog.records if order.customer.email in str(r.__dict__)]


def test_a_resent_email_has_the_same_message_id(order):
    action = write(order, ActionKind.NOTIFY_CUSTOMER, "email", {"template": "order_confirmation"})
    adapter = get_handler(ActionKind.NOTIFY_CUSTOMER, "email")
    adapter.perform(fresh(action))
    assert len(mail.outbox) == 2
    assert mail.outbox[0].extra_headers["Message-ID"] == mail.outbox[1].extra_headers["Message-ID"]


def test_the_shipping_confirmation_waits_for_a_tracking_number(order):
    from fulfillment.models import Shipment, Warehouse

    action = write(order, ActionKind.NOTIFY_CUSTOMER, "email",
                   {"template": "shipping_confirmation"})  # fmt: skip
    assert action.status == ActionStatus.RETRY_SCHEDULED and mail.outbox == []
    assert "no tracking number yet" in action.last_error

    Shipment.objects.create(order=order, warehouse=Warehouse.objects.get(code="EAST"),
                            carrier="ups", tracking_number="1Z999AA10123456784",
                            tracking_url="https://track.example/1Z999AA10123456784")  # fmt: skip
    make_due(action)
    assert dispatch(action) == "succeeded"
    [message] = mail.outbox
    assert message.subject.endswith("has shipped") and "1Z999AA10123456784" in message.body
    assert "https://track.example/1Z999AA10123456784" in message.alternatives[0][0]


def test_a_tracking_url_that_is_not_https_never_becomes_a_link_in_the_email(order):
    from fulfillment.models import Shipment, Warehouse

    Shipment.objects.create(order=order, warehouse=Warehouse.objects.get(code="EAST"),
                            carrier="ups", tracking_number="1Z999AA10123456784",
                            tracking_url="javascript:alert(document.cookie)")  # fmt: skip
    action = write(order, ActionKind.NOTIFY_CUSTOMER, "email",
                   {"template": "shipping_confirmation"})  # fmt: skip
    assert action.status == ActionStatus.SUCCEEDED
    [message] = mail.outbox
    html = message.alternatives[0][0]
    assert "1Z999AA10123456784" in message.body and "1Z999AA10123456784" in html
    assert "javascript:" not in html and "javascript:" not in message.body
    assert "Track your parcel" not in html


def test_no_customer_email_is_not_an_error(order):
    Customer.objects.filter(pk=order.customer_id).update(email="")
    action = write(order, ActionKind.NOTIFY_CUSTOMER, "email", {"template": "order_confirmation"})
    assert action.status == ActionStatus.SUCCEEDED and mail.outbox == []
    assert action.result == {"sent": False, "reason": "no_recipient",
                             "template": "order_confirmation"}  # fmt: skip


def test_an_smtp_failure_is_retried_without_quoting_the_address(order, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 1
    action = write(order, ActionKind.NOTIFY_CUSTOMER, "email", {"template": "order_confirmation"})
    assert action.status == ActionStatus.RETRY_SCHEDULED
    assert action.last_error.startswith("could not send the email (")
    assert order.customer.email not in action.last_error


# --- Twilio SMS ------------------------------------------------------------------------------
class FakeTwilio(Loopback):
    def __init__(self, *, answer: Response | None = None) -> None:
        super().__init__()
        self.requests: list[dict] = []
        self.answer = answer
        self.server.expect_request(
            "/2010-04-01/Accounts/AC123/Messages.json", method="POST"
        ).respond_with_handler(self.handle)

    def handle(self, request: Request) -> Response:
        self.requests.append({"form": request.form.to_dict(), "auth": request.authorization})
        if self.answer is not None:
            return self.answer
        return Response(
            '{"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued", '
            f'"to": "{request.form["To"]}", "body": "..."}}',
            status=201, content_type="application/json",
        )  # fmt: skip


def configure_twilio(settings, server: FakeTwilio) -> None:
    settings.TWILIO_API_BASE = server.url
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = "AC123", "twilio-secret"
    settings.TWILIO_FROM_NUMBER = "+15005550001"


def test_an_sms_goes_through_twilio_and_the_phone_is_not_kept(order, settings, caplog):
    caplog.set_level(logging.DEBUG)
    with FakeTwilio() as twilio:
        configure_twilio(settings, twilio)
        action = write(order, ActionKind.NOTIFY_CUSTOMER, "twilio",
                       {"template": "order_confirmation"})  # fmt: skip

    [request] = twilio.requests
    assert request["form"]["To"] == PHONE and request["form"]["From"] == "+15005550001"
    assert "is confirmed" in request["form"]["Body"]
    assert (request["auth"].username, request["auth"].password) == ("AC123", "twilio-secret")
    assert action.status == ActionStatus.SUCCEEDED
    assert action.result == {
        "sent": True,
        "template": "order_confirmation",
        "sid": "SM0123456789abcdef0123456789abcdef",
        "status": "queued",
    }
    stored = (
        str(action.payload)
        + str(action.result)
        + str(list(OrderEvent.objects.filter(order=order).values_list("data", flat=True)))
    )
    assert PHONE not in stored
    assert not [r for r in caplog.records if PHONE in str(r.__dict__)]


def test_twilio_refusing_the_number_is_not_retried(order, settings):
    refused = Response('{"code": 21211, "message": "Invalid To"}', status=400,
                       content_type="application/json")  # fmt: skip
    with FakeTwilio(answer=refused) as twilio:
        configure_twilio(settings, twilio)
        action = write(order, ActionKind.NOTIFY_CUSTOMER, "twilio",
                       {"template": "order_confirmation"})  # fmt: skip
    assert action.status == ActionStatus.DEAD and "HTTP 400" in action.last_error
    assert PHONE not in action.last_error


def test_a_twilio_answer_that_never_came_is_left_to_a_person(order, settings):
    import time

    def slow(_request):
        time.sleep(1.0)
        return Response("{}", status=201, content_type="application/json")

    with FakeTwilio() as twilio:
        configure_twilio(settings, twilio)
        settings.DOWNSTREAM_HTTP_TIMEOUT = (2.0, 0.3)
        twilio.server.clear()
        twilio.server.expect_request(
            "/2010-04-01/Accounts/AC123/Messages.json", method="POST"
        ).respond_with_handler(slow)
        action = write(order, ActionKind.NOTIFY_CUSTOMER, "twilio",
                       {"template": "order_confirmation"})  # fmt: skip
    assert action.status == ActionStatus.DEAD
    assert "may have been sent: check Twilio's message log" in action.last_error


# --- WMS -------------------------------------------------------------------------------------
def test_the_local_wms_takes_the_payload_lines_once(order):
    action = write(order, ActionKind.WMS_TASK, "local",
                   {"warehouse": "EAST", "lines": [{"sku": "MUG", "quantity": 2}]})  # fmt: skip
    again = get_handler(ActionKind.WMS_TASK, "local").perform(fresh(action))
    task = PickTask.objects.get()
    assert task.lines == [{"sku": "MUG", "quantity": 2}] and task.order_id == order.pk
    assert again == {"pick_task_id": task.pk, "created": False, "warehouse": "EAST"}


def test_a_wms_task_without_a_warehouse_dies_clearly(order):
    action = write(order, ActionKind.WMS_TASK, "local", {"order_id": order.pk})
    assert action.status == ActionStatus.DEAD and "no warehouse" in action.last_error


def test_the_rest_wms_treats_409_as_already_done(order, settings):
    class Conflict(Loopback):
        def __init__(self):
            super().__init__()
            self.keys: list[str] = []
            self.server.expect_request("/tasks", method="POST").respond_with_handler(self.handle)

        def handle(self, request):
            self.keys.append(request.headers["Idempotency-Key"])
            return Response('{"error": "duplicate"}', status=409)

    settings.WMS_TARGET = "rest"
    settings.WMS_API_TOKEN = "wms-token"
    with Conflict() as wms:
        settings.WMS_API_BASE = wms.url
        action = write(order, ActionKind.WMS_TASK, "rest", {"warehouse": "EAST"})
    assert action.status == ActionStatus.SUCCEEDED
    assert action.result == {"task_id": "", "already_done": True}
    assert wms.keys == [action.idempotency_key]


def test_wms_lines_and_warehouse_come_from_the_payloads_shipment(order):
    from fulfillment.models import Shipment, ShipmentLine, Warehouse

    shipment = Shipment.objects.create(order=order, warehouse=Warehouse.objects.get(code="EAST"))
    line = order.lines.get(line_no=2)
    ShipmentLine.objects.create(shipment=shipment, order_line=line, sku=line.sku, quantity=1)

    action = write(order, ActionKind.WMS_TASK, "local", {"shipment_id": shipment.pk},
                   version=shipment.pk)  # fmt: skip

    task = PickTask.objects.get()
    assert action.status == ActionStatus.SUCCEEDED
    assert task.lines == [{"sku": "TEE", "quantity": 1}] and task.warehouse.code == "EAST"
