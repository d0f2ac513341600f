"""Exception texts carry no names, streets, emails or phones to Sentry or to the logs (issue 10,
item 9). A payload's value gets into ``str(exc)`` in two ways: a message built around it
(``f"cannot ship to {street}"``) and a quoted repr (``Not an amount: '742 Evergreen Terrace'``,
``{'name': 'Jane Doe'}``). Both are scrubbed in Sentry's ``before_send`` (through the real
sentry-sdk pipeline) and in the JSON log chain; our own NormalizationError names only where.
"""

from __future__ import annotations

import json

import pytest
import sentry_sdk
import structlog

from channels.adapters import normalize
from channels.adapters.base import NormalizationError
from config.sentry import REDACTED, scrub_exception_text
from orders import money
from orders.errors import InvalidInput
from tests.test_logging import log_lines  # noqa: F401 (a fixture)
from tests.test_sentry import sentry_transport  # noqa: F401 (a fixture)

EMAIL = "jane.doe@example.com"
STREET = "742 Evergreen Terrace"
NAME = "Philippa Oakenshield"
PHONE = "+1 (613) 555-0199"
PII = [EMAIL, "jane.doe", STREET, "Evergreen", NAME, "Oakenshield", PHONE, "555-0199"]


ADDRESS = {"line1": STREET, "email": EMAIL, "phone": PHONE, "name": NAME}
RAISERS = [  # the functions are at the end, far from the values (Sentry sends source lines)
    pytest.param("_ship", "Order 4711 could not ship to", id="message-around-values"),
    pytest.param("_amount_of", "Not an amount: ", id="quoted-value"),
    pytest.param("_lookup", "'country_code': 'US'", id="quoted-dict"),
]


@pytest.mark.parametrize(("raiser", "kept"), RAISERS)
def test_an_exception_text_with_an_email_and_a_street_reaches_sentry_scrubbed(
    sentry_transport,  # noqa: F811
    raiser,
    kept,
):
    exc = raised(raiser)
    assert STREET in str(exc) or NAME in str(exc)  # what would have been sent

    sentry_sdk.capture_exception(exc)

    [payload] = sentry_transport.payloads()
    for value in PII:
        assert value not in payload, f"{value!r} reached Sentry"
    [event] = sentry_transport.events()
    message = event["exception"]["values"][0]["value"]
    assert kept in message and REDACTED in message


@pytest.mark.parametrize(("raiser", "kept"), RAISERS)
def test_an_exception_text_with_an_email_and_a_street_is_scrubbed_in_the_json_log(
    log_lines,  # noqa: F811
    raiser,
    kept,
):
    log = structlog.get_logger("orders.validation")
    exc = raised(raiser)
    try:
        raise exc
    except (RuntimeError, InvalidInput, KeyError):
        log.exception("check.crashed", order_id=4711)
    log.warning("shipment.failed", order_id=4711, error=str(exc))

    crashed, failed = log_lines()
    text = json.dumps([crashed, failed])
    for value in PII:
        assert value not in text, f"{value!r} reached the log"
    assert kept in crashed["exception"] and kept in failed["error"]
    assert 'File "' in crashed["exception"]  # the traceback itself is kept
    assert crashed["order_id"] == 4711


def test_celerys_task_failure_line_carries_no_exception_text_with_pii(log_lines):  # noqa: F811
    # celery.app.trace logs a failed task with the exception again in ``extra={"data": ...}``:
    # its repr and its whole traceback (seen in the soak's worker log).
    import logging
    import traceback

    exc = raised("_ship")
    try:
        raise exc
    except RuntimeError:
        context = {"hostname": "w1@host", "id": "t-1", "name": "orders.order_validate",
                   "exc": repr(exc), "traceback": traceback.format_exc(),
                   "args": "()", "kwargs": "{}", "description": "raised unexpected"}  # fmt: skip
        logging.getLogger("celery.app.trace").error(
            "Task %(name)s[%(id)s] %(description)s: %(exc)s", context, exc_info=True,
            extra={"data": context},
        )  # fmt: skip

    [line] = log_lines()
    text = json.dumps(line)
    for value in PII:
        assert value not in text, f"{value!r} reached the log"
    assert "Order 4711 could not ship to" in line["data"]["exc"]
    assert 'File "' in line["data"]["traceback"]  # the traceback itself is kept


@pytest.mark.parametrize(
    "text",
    [
        "KeyError: 'country_code'",
        "Unknown currency code 'EURO'",
        "No SKU mapping for 'IPOD2008GREEN' (variant 'v-101')",
        "Not an amount: '12.50'",
        "order 4711 placed 2026-11-01T10:00:00+00:00 total 125.50",
        "HTTP 500 from 127.0.0.1:8080: /v2/orders/100",
    ],
)
def test_exception_scrubbing_keeps_keys_codes_ids_amounts_and_times(text):
    assert scrub_exception_text(text) == text


def test_a_normalization_error_names_where_never_the_values():
    exc = NormalizationError([
        normalize.error_entry(("shipping_address", "line1"), "too long", STREET),
        {"pointer": "/customer/email", "message": f"not an email: {EMAIL}", "value": EMAIL},
    ])  # fmt: skip

    assert str(exc) == (
        "2 problem(s) normalizing the payload at /shipping_address/line1, /customer/email"
    )
    assert exc.errors[1]["value"] == EMAIL  # kept for the person fixing the quarantine


# --- raising (kept far from the personal data above) ---------------------------------------
def _ship(address: dict[str, str]) -> None:
    raise RuntimeError(
        f"Order 4711 could not ship to {address['line1']} for {address['email']}, "
        f"call {address['phone']}"
    )


def _amount_of(address: dict[str, str]) -> None:
    money.to_decimal(address["line1"])


def _lookup(address: dict[str, str]) -> None:
    raise KeyError({"name": address["name"], "country_code": "US"})


def raised(raiser: str) -> BaseException:
    try:
        globals()[raiser](ADDRESS)
    except (RuntimeError, InvalidInput, KeyError) as exc:
        return exc
    raise AssertionError("did not raise")
