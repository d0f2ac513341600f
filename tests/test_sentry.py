"""The Sentry PII scrubber (config/sentry.py), through the real sentry-sdk pipeline.

``init_sentry`` is called as production calls it; only the client's transport is swapped for one
that keeps the envelopes in a list, so the test sees exactly the bytes that would be sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from config import correlation
from config.sentry import REDACTED, init_sentry, scrub_value

# The personal data of the captured error. Module constants, far from the code that raises, so
# they never show up in the source lines (context_line, pre_context) Sentry attaches to frames.
EMAIL = "jane.doe@example.com"
PHONE = "+1 (613) 555-0199"
FIRST_NAME = "Philippa"
STREET = "742 Evergreen Terrace"
TIMESTAMP = "2026-11-26T18:47:07"
ORDER_ID = 4711
PII = [EMAIL, "jane.doe", PHONE, "555-0199", FIRST_NAME, STREET, "Evergreen"]


class CapturingTransport(Transport):
    """Keeps every envelope instead of sending it."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def payloads(self) -> list[str]:
        return [envelope.serialize().decode("utf-8") for envelope in self.envelopes]

    def events(self) -> list[dict[str, Any]]:
        return [e for e in (envelope.get_event() for envelope in self.envelopes) if e is not None]


@pytest.fixture
def sentry_transport() -> Iterator[CapturingTransport]:
    """Sentry initialised by the project's init_sentry, sending into a list; restored after."""
    global_scope = sentry_sdk.get_global_scope()
    previous = global_scope.client
    init_sentry(
        dsn="https://public@sentry.invalid/1",
        environment="test",
        traces_sample_rate=0.0,
        transport=CapturingTransport,
    )
    client = sentry_sdk.get_client()
    assert client.is_active()
    transport = client.transport
    assert isinstance(transport, CapturingTransport)
    try:
        yield transport
    finally:
        client.close()
        global_scope.set_client(previous)
        assert not sentry_sdk.get_client().is_active()


def _ship(order_id: int, cid: str, customer: dict[str, str]) -> None:
    contact = customer["email"]  # a local whose name says nothing: caught by its shape
    callback_number = customer["phone"]
    # Locals under PII names: caught by their key, whatever they hold.
    first_name = customer["first_name"]  # noqa: F841
    address1 = customer["address1"]  # noqa: F841
    placed_at = TIMESTAMP
    raise RuntimeError(
        f"Order {order_id} (correlation {cid}) could not ship at {placed_at}: "
        f"write to {contact} or call {callback_number}"
    )


def _capture_shipping_error(cid: str) -> None:
    customer = {
        "first_name": FIRST_NAME,
        "address1": STREET,
        "email": EMAIL,
        "phone": PHONE,
        "note": f"buyer {EMAIL}, {PHONE}",
    }
    with sentry_sdk.isolation_scope() as scope:
        scope.set_user({"id": "42", "email": EMAIL, "ip_address": "203.0.113.9"})
        scope.set_tag("correlation_id", cid)
        scope.set_extra("buyer", {"first_name": FIRST_NAME, "address1": STREET})
        # Becomes a breadcrumb through sentry's logging integration.
        logging.getLogger("orders.services").warning("Could not reach %s at %s", EMAIL, PHONE)
        try:
            _ship(ORDER_ID, cid, customer)
        except RuntimeError as exc:
            sentry_sdk.capture_exception(exc)


def test_init_sentry_collects_no_user_identity_cookies_or_bodies(sentry_transport):
    options = sentry_sdk.get_client().options
    assert not options["send_default_pii"]
    collection = options["data_collection"]
    assert collection["user_info"] is False
    assert collection["cookies"]["mode"] == "off"
    assert collection["http_bodies"] == []


def test_captured_exception_carries_no_email_phone_name_or_address(sentry_transport):
    cid = correlation.sign(f"order:{ORDER_ID}")

    _capture_shipping_error(cid)

    [event] = sentry_transport.events()
    [payload] = sentry_transport.payloads()
    for value in PII:
        assert value not in payload, f"{value!r} reached Sentry"
    assert "user" not in event

    # Ids and times survive, so the event is still useful.
    message = event["exception"]["values"][0]["value"]
    assert message.startswith(
        f"Order {ORDER_ID} (correlation {cid}) could not ship at {TIMESTAMP}:"
    )
    assert message.endswith(f"write to {REDACTED} or call {REDACTED}")
    assert event["tags"]["correlation_id"] == cid

    # The scrubber ran over the frames' local variables, by key and by shape.
    frame = event["exception"]["values"][0]["stacktrace"]["frames"][-1]
    assert frame["function"] == "_ship"
    frame_vars = frame["vars"]
    assert frame_vars["first_name"] == REDACTED
    assert frame_vars["address1"] == REDACTED
    assert EMAIL not in frame_vars["contact"] and REDACTED in frame_vars["contact"]
    assert PHONE not in frame_vars["callback_number"]
    assert REDACTED in frame_vars["callback_number"]
    assert TIMESTAMP in frame_vars["placed_at"]
    assert frame_vars["customer"]["first_name"] == REDACTED
    assert frame_vars["customer"]["address1"] == REDACTED
    assert event["extra"]["buyer"] == {"first_name": REDACTED, "address1": REDACTED}
    crumbs = [c.get("message") or "" for c in event["breadcrumbs"]["values"]]
    assert f"Could not reach {REDACTED} at {REDACTED}" in crumbs


def test_captured_message_keeps_order_and_correlation_ids_and_timestamps(sentry_transport):
    cid = correlation.sign(f"order:{ORDER_ID}")

    sentry_sdk.capture_message(
        f"order {ORDER_ID} correlation {cid} at {TIMESTAMP} failed for {EMAIL} / {PHONE}"
    )

    [event] = sentry_transport.events()
    assert event["message"] == (
        f"order {ORDER_ID} correlation {cid} at {TIMESTAMP} failed for {REDACTED} / {REDACTED}"
    )
    [payload] = sentry_transport.payloads()
    assert EMAIL not in payload and PHONE not in payload


def test_scrub_value_redacts_pii_keys_at_any_depth():
    event_part = {
        "order_id": 17,
        "First-Name": FIRST_NAME,
        "E-Mail": EMAIL,
        "items": [{"address1": STREET, "sku": "SKU-1"}, {"city": "Springfield", "qty": 2}],
        "nested": {"deeper": {"billing_address": {"line1": STREET}, "status": "on_hold"}},
        3: "a non-string key is kept",
    }

    scrubbed = scrub_value(event_part)

    assert scrubbed == {
        "order_id": 17,
        "First-Name": REDACTED,
        "E-Mail": REDACTED,
        "items": [{"address1": REDACTED, "sku": "SKU-1"}, {"city": REDACTED, "qty": 2}],
        "nested": {"deeper": {"billing_address": REDACTED, "status": "on_hold"}},
        3: "a non-string key is kept",
    }
    assert event_part["First-Name"] == FIRST_NAME  # the input is left as it was


def test_scrub_value_redacts_emails_and_phones_inside_strings_in_lists_and_tuples():
    scrubbed = scrub_value(
        {
            "lines": [
                f"mail {EMAIL}",
                ("call 613-555-0199", "or +16135550199", "or +44 20 7946 0958"),
                [{"text": f"note: {PHONE}"}],
            ]
        }
    )

    assert scrubbed == {
        "lines": [
            f"mail {REDACTED}",
            [f"call {REDACTED}", f"or {REDACTED}", f"or {REDACTED}"],
            [{"text": f"note: {REDACTED}"}],
        ]
    }


@pytest.mark.parametrize(
    "text",
    [
        TIMESTAMP,
        "2026-11-26T18:47:07.123456+00:00",
        "2026-11-26 18:47:07",
        "order 4711 placed 2026-11-01",
        "c-3f9a0b7e2d4c4e1f8a6b5c0d9e8f7a61",
        "total 125.50 USD, 3 lines, #1001",
        "amount 10000.0000 stored",
    ],
)
def test_scrub_value_keeps_timestamps_ids_and_amounts(text):
    assert scrub_value({"message": text, "list": [text]}) == {"message": text, "list": [text]}


def test_scrub_value_leaves_non_string_scalars_alone():
    assert scrub_value([None, 3, 2.5, True]) == [None, 3, 2.5, True]


def test_serialized_scrubbed_value_is_json_without_pii():
    blob = json.dumps(scrub_value({"customer": {"email": EMAIL}, "msg": f"to {EMAIL}"}))

    assert EMAIL not in blob


def test_long_ids_under_id_keys_survive_while_the_same_digits_elsewhere_are_redacted():
    scrubbed = scrub_value({"order_id": "5123456789012", "ids": ["5123456789012"],
                            "note": "call 5123456789012"})  # fmt: skip
    assert scrubbed["order_id"] == "5123456789012"
    assert scrubbed["ids"] == ["5123456789012"]
    assert "5123456789012" not in scrubbed["note"]
    assert scrub_value({"external_id": "ada@example.com"}) == {"external_id": "[redacted]"}


def test_secrets_on_sentrys_own_denylist_are_redacted_too():
    scrubbed = scrub_value({"password": "hunter2", "api_key": "k-1", "Authorization": "Token x"})
    assert set(scrubbed.values()) == {"[redacted]"}
