"""The shared HTTP client for channel APIs, against a real HTTP server on loopback."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

import config.settings as project_settings
from channels import http
from channels.adapters.base import AdapterError, ChannelConfig
from config import correlation

CHANNEL = ChannelConfig(id=7, slug="shop", kind="bigcommerce")


@pytest.fixture(autouse=True)
def no_backoff(settings):
    settings.CHANNEL_HTTP_BACKOFF_FACTOR = 0


def test_default_policy_retries_429_and_5xx_four_times_with_half_second_backoff(settings):
    # The production default (config/settings.py), not the tests' 0.
    settings.CHANNEL_HTTP_BACKOFF_FACTOR = project_settings.CHANNEL_HTTP_BACKOFF_FACTOR
    policy = http.retry_policy()
    assert policy.total == 4
    assert policy.backoff_factor == 0.5
    # Issue #9: one classification for every integration (was {429, 500, 502, 503, 504}).
    assert set(policy.status_forcelist) == {408, 425, 429, *range(500, 600)}
    assert policy.respect_retry_after_header is True
    assert {"GET", "POST"} <= set(policy.allowed_methods)
    assert http.session_for(CHANNEL).default_timeout == (3.0, 15.0)


def test_correlation_id_is_sent_when_one_is_bound(httpserver: HTTPServer):
    httpserver.expect_request(
        "/ping", headers={"X-Correlation-ID": "c-0123456789abcdef"}
    ).respond_with_json({"ok": True})
    with correlation.bound("c-0123456789abcdef"), http.session_for(CHANNEL) as session:
        assert session.get_json(httpserver.url_for("/ping"), what="ping") == {"ok": True}
    httpserver.check_assertions()


def test_no_correlation_header_without_a_bound_id(httpserver: HTTPServer):
    httpserver.expect_request("/ping").respond_with_json({"ok": True})
    with http.session_for(CHANNEL) as session:
        session.get_json(httpserver.url_for("/ping"), what="ping")
    request, _ = httpserver.log[0]
    assert "X-Correlation-ID" not in request.headers


def test_429_then_200_is_retried(httpserver: HTTPServer):
    httpserver.expect_ordered_request("/r").respond_with_data("slow down", status=429)
    httpserver.expect_ordered_request("/r").respond_with_json({"n": 1})
    with http.session_for(CHANNEL) as session:
        assert session.get_json(httpserver.url_for("/r"), what="r") == {"n": 1}
    assert len(httpserver.log) == 2


def test_retry_after_is_honoured(httpserver: HTTPServer):
    httpserver.expect_ordered_request("/r").respond_with_data(
        "", status=429, headers={"Retry-After": "1"}
    )
    httpserver.expect_ordered_request("/r").respond_with_json({"n": 1})
    started = time.monotonic()
    with http.session_for(CHANNEL) as session:
        session.get_json(httpserver.url_for("/r"), what="r")
    assert time.monotonic() - started >= 0.9


def test_post_is_retried_on_503(httpserver: HTTPServer):
    httpserver.expect_ordered_request("/token", method="POST").respond_with_data("", status=503)
    httpserver.expect_ordered_request("/token", method="POST").respond_with_json({"t": "x"})
    with http.session_for(CHANNEL) as session:
        response = session.call("POST", httpserver.url_for("/token"), what="token", data={"a": 1})
    assert response.json() == {"t": "x"}
    assert [r.form["a"] for r, _ in httpserver.log] == ["1", "1"]


def test_persistent_500_is_a_retryable_error_after_five_attempts(httpserver: HTTPServer):
    httpserver.expect_request("/down").respond_with_data("boom", status=500)
    with http.session_for(CHANNEL) as session, pytest.raises(AdapterError) as caught:
        session.get_json(httpserver.url_for("/down"), what="Vendor get order")
    assert caught.value.retryable is True
    assert caught.value.status == 500
    assert str(caught.value) == f"Vendor get order: HTTP 500 from {httpserver.host}:" + (
        f"{httpserver.port}/down"
    )
    assert len(httpserver.log) == 5  # the first try and four retries


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried_nor_retryable(httpserver: HTTPServer, status):
    httpserver.expect_request("/x").respond_with_data("no", status=status)
    with http.session_for(CHANNEL) as session, pytest.raises(AdapterError) as caught:
        session.get_json(httpserver.url_for("/x"), what="x")
    assert caught.value.retryable is False
    assert len(httpserver.log) == 1


def test_errors_and_logs_carry_neither_query_strings_nor_bodies(httpserver: HTTPServer, caplog):
    httpserver.expect_request("/orders").respond_with_data(
        '{"email": "jane@example.com"}', status=400
    )
    url = httpserver.url_for("/orders") + "?NextToken=secret-cursor"
    with http.session_for(CHANNEL) as session, pytest.raises(AdapterError) as caught:
        session.get_json(url, what="list orders")
    assert "secret-cursor" not in str(caught.value)
    assert "jane@example.com" not in str(caught.value)
    ours = [r for r in caplog.records if r.name != "werkzeug"]  # not the test server's own log
    assert ours, "the failure is logged"
    for record in ours:
        text = str(record.msg)
        assert "secret-cursor" not in text and "jane@example.com" not in text
    assert any("channel_http.failed" in str(r.msg) for r in ours)


def test_refused_connection_is_retryable():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with http.session_for(CHANNEL) as session, pytest.raises(AdapterError) as caught:
        session.get_json(f"http://127.0.0.1:{port}/x", what="x")
    assert caught.value.retryable is True
    assert "could not reach" in str(caught.value)


def test_2xx_that_is_not_json_is_retryable(httpserver: HTTPServer):
    httpserver.expect_request("/x").respond_with_data("<html>maintenance</html>")
    with http.session_for(CHANNEL) as session, pytest.raises(AdapterError) as caught:
        session.get_json(httpserver.url_for("/x"), what="x")
    assert caught.value.retryable is True


def test_204_is_none(httpserver: HTTPServer):
    httpserver.expect_request("/x").respond_with_data("", status=204)
    with http.session_for(CHANNEL) as session:
        assert session.get_json(httpserver.url_for("/x"), what="x") is None


class TestReadTimeout:
    """A server of its own (threaded), so the handler's sleeps cannot hold up other tests."""

    @pytest.fixture
    def slow_server(self):
        calls: list[float] = []
        lock = threading.Lock()

        def handler(request: Request) -> Response:
            with lock:
                calls.append(time.monotonic())
                first = len(calls) == 1
            if first or request.args.get("always") == "slow":
                time.sleep(0.5)
            return Response('{"ok": true}', content_type="application/json")

        server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        server.expect_request("/slow").respond_with_handler(handler)
        server.start()
        yield server, calls
        server.clear()
        server.stop()

    def test_a_read_timeout_is_retried(self, slow_server):
        server, calls = slow_server
        with http.session_for(CHANNEL, timeout=(3, 0.2)) as session:
            assert session.get_json(server.url_for("/slow"), what="slow") == {"ok": True}
        assert len(calls) == 2

    def test_default_timeout_applies_and_a_persistent_timeout_is_retryable(
        self, slow_server, settings
    ):
        server, calls = slow_server
        settings.CHANNEL_HTTP_TIMEOUT = (3, 0.2)
        started = time.monotonic()
        with http.session_for(CHANNEL) as session, pytest.raises(AdapterError) as caught:
            session.get_json(server.url_for("/slow") + "?always=slow", what="slow")
        assert caught.value.retryable is True
        assert "timed out" in str(caught.value)
        assert len(calls) == 5
        assert time.monotonic() - started < 2.5  # 5 x 0.2 s, not 5 x 0.5 s
