"""The integration layer (config.integrations) against real HTTP servers on loopback."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from config import correlation, integrations
from config.integrations import IntegrationError, RetryPolicy


class VendorError(IntegrationError):
    """A family's error, as every adapter family defines one."""


def vendor_session(policy: RetryPolicy, **kwargs: object) -> integrations.IntegrationSession:
    return integrations.session(
        timeout=(2.0, 5.0), user_agent="orderdesk-test/1", policy=policy, error=VendorError,
        log_event="vendor.failed", prefix="Vendor ", **kwargs,
    )  # fmt: skip


def closed_port() -> int:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the one classification --------------------------------------------------------------------
@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 599])
def test_retryable_statuses_are_retried_then_fail_retryable(httpserver: HTTPServer, status):
    httpserver.expect_request("/r").respond_with_data("busy", status=status)
    with vendor_session(RetryPolicy(retries=2, backoff=0)) as s, pytest.raises(VendorError) as e:
        s.call("GET", httpserver.url_for("/r"), what="get r")
    assert len(httpserver.log) == 3  # the first try and two retries
    assert (e.value.retryable, e.value.status, e.value.ambiguous) == (True, status, False)
    assert str(e.value) == f"Vendor get r: HTTP {status} from {httpserver.host}:{httpserver.port}/r"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
def test_other_4xx_are_neither_retried_nor_retryable(httpserver: HTTPServer, status):
    httpserver.expect_request("/x").respond_with_data(
        "no",
        status=status,
        headers={"Retry-After": "1"},  # 413 + Retry-After: still no
    )
    with vendor_session(RetryPolicy(retries=3, backoff=0)) as s, pytest.raises(VendorError) as e:
        s.call("GET", httpserver.url_for("/x"), what="x")
    assert len(httpserver.log) == 1
    assert (e.value.retryable, e.value.status) == (False, status)


def test_a_retry_that_succeeds_returns_the_answer(httpserver: HTTPServer):
    httpserver.expect_ordered_request("/r").respond_with_data("", status=503)
    httpserver.expect_ordered_request("/r").respond_with_json({"n": 1})
    with vendor_session(RetryPolicy(retries=2, backoff=0)) as s:
        assert s.get_json(httpserver.url_for("/r"), what="r") == {"n": 1}
    assert len(httpserver.log) == 2


def test_zero_retries_is_one_attempt_and_reports_retry_after(httpserver: HTTPServer):
    httpserver.expect_request("/r").respond_with_data(
        "", status=429, headers={"Retry-After": "120"}
    )
    with vendor_session(RetryPolicy(retries=0)) as s, pytest.raises(VendorError) as e:
        s.call("POST", httpserver.url_for("/r"), what="create")
    assert len(httpserver.log) == 1
    assert (e.value.retryable, e.value.retry_after) == (True, 120.0)


def test_the_reported_retry_after_is_capped_at_an_hour(httpserver: HTTPServer):
    httpserver.expect_request("/r").respond_with_data(
        "", status=503, headers={"Retry-After": "86400"}
    )
    with vendor_session(RetryPolicy(retries=0)) as s, pytest.raises(VendorError) as e:
        s.call("GET", httpserver.url_for("/r"), what="r")
    assert e.value.retry_after == 3600.0


def test_a_post_is_repeated_only_when_the_policy_allows_it(httpserver: HTTPServer):
    httpserver.expect_request("/p", method="POST").respond_with_data("", status=503)
    with vendor_session(RetryPolicy(retries=2, backoff=0)) as s, pytest.raises(VendorError):
        s.call("POST", httpserver.url_for("/p"), what="create")
    assert len(httpserver.log) == 1
    methods = frozenset({"GET", "POST"})
    with vendor_session(RetryPolicy(retries=2, backoff=0, methods=methods)) as s:
        with pytest.raises(VendorError):
            s.call("POST", httpserver.url_for("/p"), what="create")
    assert len(httpserver.log) == 1 + 3


def test_a_real_time_policy_does_not_wait_out_a_429(httpserver: HTTPServer):
    httpserver.expect_request("/r").respond_with_data("", status=429)
    policy = RetryPolicy(retries=2, backoff=0, retry_rate_limited=False)
    with vendor_session(policy) as s, pytest.raises(VendorError) as e:
        s.call("GET", httpserver.url_for("/r"), what="r")
    assert len(httpserver.log) == 1 and e.value.retryable is True


def test_an_accepted_status_is_returned(httpserver: HTTPServer):
    httpserver.expect_request("/r").respond_with_data("", status=404)
    with vendor_session(RetryPolicy(retries=2)) as s:
        assert s.call("GET", httpserver.url_for("/r"), what="r", accept=(404,)).status_code == 404


# --- Retry-After -------------------------------------------------------------------------------
def test_retry_after_is_honoured(httpserver: HTTPServer):
    httpserver.expect_ordered_request("/r").respond_with_data(
        "", status=429, headers={"Retry-After": "1"}
    )
    httpserver.expect_ordered_request("/r").respond_with_json({"ok": True})
    started = time.monotonic()
    with vendor_session(RetryPolicy(retries=1, backoff=0)) as s:
        assert s.get_json(httpserver.url_for("/r"), what="r") == {"ok": True}
    assert time.monotonic() - started >= 0.9


def test_retry_after_is_capped_inside_the_session(httpserver: HTTPServer):
    httpserver.expect_ordered_request("/r").respond_with_data(
        "", status=503, headers={"Retry-After": "30"}
    )
    httpserver.expect_ordered_request("/r").respond_with_json({"ok": True})
    started = time.monotonic()
    with vendor_session(RetryPolicy(retries=1, backoff=0, max_retry_after=1)) as s:
        assert s.get_json(httpserver.url_for("/r"), what="r") == {"ok": True}
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 5  # the 1 s cap, not the vendor's 30 s


def test_a_malformed_retry_after_is_ignored(httpserver: HTTPServer):
    httpserver.expect_ordered_request("/r").respond_with_data(
        "", status=503, headers={"Retry-After": "soon"}
    )
    httpserver.expect_ordered_request("/r").respond_with_json({"ok": True})
    with vendor_session(RetryPolicy(retries=1, backoff=0)) as s:
        assert s.get_json(httpserver.url_for("/r"), what="r") == {"ok": True}


# --- headers -----------------------------------------------------------------------------------
def test_correlation_id_and_user_agent_are_sent(httpserver: HTTPServer):
    httpserver.expect_request("/ping").respond_with_json({})
    with correlation.bound("c-0123456789abcdef"), vendor_session(RetryPolicy()) as s:
        s.get_json(httpserver.url_for("/ping"), what="ping")
    request, _ = httpserver.log[0]
    assert request.headers["X-Correlation-ID"] == "c-0123456789abcdef"
    assert request.headers["User-Agent"] == "orderdesk-test/1"


def test_no_correlation_header_without_a_bound_id_and_an_explicit_one_wins(
    httpserver: HTTPServer,
):
    httpserver.expect_request("/ping").respond_with_json({})
    with vendor_session(RetryPolicy()) as s:
        s.get_json(httpserver.url_for("/ping"), what="ping")
        with correlation.bound("c-bound"):
            s.get_json(
                httpserver.url_for("/ping"), what="ping", headers={"X-Correlation-ID": "c-own"}
            )
    assert "X-Correlation-ID" not in httpserver.log[0][0].headers
    assert httpserver.log[1][0].headers["X-Correlation-ID"] == "c-own"


# --- failures without an answer ----------------------------------------------------------------
def test_a_refused_connection_never_reached_the_vendor():
    port = closed_port()
    with vendor_session(RetryPolicy(retries=2, backoff=0)) as s, pytest.raises(VendorError) as e:
        s.call("POST", f"http://127.0.0.1:{port}/x", what="create")
    assert (e.value.retryable, e.value.ambiguous, e.value.status) == (True, False, None)
    assert str(e.value) == f"Vendor create: could not reach 127.0.0.1:{port}/x"
    assert e.value.__cause__ is None and e.value.__suppress_context__  # urllib3 quotes the URL


@pytest.mark.parametrize("url", ["http://", "ftp://example.invalid/x", "not a url"])
def test_an_invalid_url_is_configuration_not_retryable(url):
    with vendor_session(RetryPolicy(retries=2)) as s, pytest.raises(VendorError) as e:
        s.call("GET", url, what="x")
    assert e.value.retryable is False


def test_a_2xx_that_is_not_json_is_retryable(httpserver: HTTPServer):
    httpserver.expect_request("/x").respond_with_data("<html>maintenance</html>")
    with vendor_session(RetryPolicy()) as s, pytest.raises(VendorError) as e:
        s.get_json(httpserver.url_for("/x"), what="x")
    assert (e.value.retryable, e.value.status) == (True, 200)


class TestReadTimeout:
    """A threaded server of its own, so a handler's sleep holds up no other test."""

    @pytest.fixture
    def slow(self) -> Iterator[tuple[HTTPServer, list[float]]]:
        calls: list[float] = []
        lock = threading.Lock()

        def handler(request: Request) -> Response:
            with lock:
                calls.append(time.monotonic())
            time.sleep(0.5)
            return Response("{}", content_type="application/json")

        server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        server.expect_request("/slow").respond_with_handler(handler)
        server.start()
        yield server, calls
        server.clear()
        server.stop()

    def test_a_read_timeout_is_retryable_and_ambiguous_and_not_repeated_by_default_for_post(
        self, slow
    ):
        server, calls = slow
        policy = RetryPolicy(retries=2, backoff=0)
        with vendor_session(policy) as s, pytest.raises(VendorError) as e:
            s.call("POST", server.url_for("/slow"), what="create", timeout=(1, 0.2))
        assert (e.value.retryable, e.value.ambiguous) == (True, True)
        assert "timed out" in str(e.value) and "may have been processed" in str(e.value)
        assert len(calls) == 1

    def test_read_retries_follow_the_policy(self, slow):
        server, calls = slow
        with vendor_session(RetryPolicy(retries=2, backoff=0, retry_reads=False)) as s:
            with pytest.raises(VendorError):
                s.call("GET", server.url_for("/slow"), what="get", timeout=(1, 0.2))
        assert len(calls) == 1
        with vendor_session(RetryPolicy(retries=2, backoff=0)) as s:
            with pytest.raises(VendorError) as e:
                s.call("GET", server.url_for("/slow"), what="get", timeout=(1, 0.2))
        assert len(calls) == 1 + 3
        assert e.value.ambiguous is True


# --- no secrets or personal data ---------------------------------------------------------------
def test_where_names_host_and_path_only():
    assert integrations.where("https://user:pw@api.example.com:8443/v1/x?key=secret#f") == (
        "api.example.com:8443/v1/x"
    )


def test_no_query_string_in_messages_or_any_log_line(httpserver: HTTPServer, caplog):
    httpserver.expect_request("/find").respond_with_data(
        '{"email": "jane@example.com"}', status=503
    )
    query = "?Key=s3cret-key&SearchTerm=1600+Pennsylvania"
    port = closed_port()
    with caplog.at_level(logging.DEBUG), vendor_session(RetryPolicy(retries=2, backoff=0)) as s:
        with pytest.raises(VendorError) as answered:
            s.call("GET", httpserver.url_for("/find") + query, what="find")
        with pytest.raises(VendorError) as refused:
            s.call("GET", f"http://127.0.0.1:{port}/find{query}", what="find")
    records = [r for r in caplog.records if r.name != "werkzeug"]  # not the test server's log
    assert any(r.name.startswith("urllib3") for r in records), "urllib3 logged its retries"
    assert any("vendor.failed" in str(r.msg) for r in records)
    text = "\n".join([r.getMessage() for r in records] + [str(answered.value), str(refused.value)])
    for secret in ("s3cret-key", "Pennsylvania", "jane@example.com"):
        assert secret not in text, secret


def test_the_vendor_message_goes_into_the_error_but_not_the_log(httpserver: HTTPServer, caplog):
    httpserver.expect_request("/x").respond_with_data("", status=422)
    with caplog.at_level(logging.DEBUG), vendor_session(RetryPolicy()) as s:
        response = s.call("GET", httpserver.url_for("/x"), what="x", accept=integrations.ANY_STATUS)
        error = s.refusal(response, what="x", message="Address 1600 Pennsylvania not found")
    assert str(error) == "Vendor x: Address 1600 Pennsylvania not found"
    assert (error.retryable, error.status) == (False, 422)
    assert not [r for r in caplog.records if "Pennsylvania" in r.getMessage()]
