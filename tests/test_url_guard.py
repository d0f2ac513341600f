"""The outbound URL guard (config/integrations/urlguard.py) against real HTTP servers on
loopback: https only, no loopback, private, link-local or metadata addresses unless allowed, the
address checked on connect, no redirect to another host, and the same policy when a channel's
URLs are saved (admin, ``add_channel``)."""

from __future__ import annotations

import ast
import socket
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from pytest_httpserver import HTTPServer

import config.settings as project_settings
from channels.models import ChannelKind, SalesChannel
from config import integrations
from config.integrations import IntegrationError, RetryPolicy, URLRefused
from tests.factories import SalesChannelFactory

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "tok-never-leaves-its-host-7"


class VendorError(IntegrationError):
    """A family's error, as every adapter family defines one."""


def vendor_session(**kwargs: object) -> integrations.IntegrationSession:
    return integrations.session(
        timeout=(0.5, 5.0), user_agent="orderdesk-test/1", policy=RetryPolicy(retries=2, backoff=0),
        error=VendorError, log_event="vendor.failed", prefix="Vendor ", **kwargs,
    )  # fmt: skip


def refusal(url: str, **kwargs: object) -> VendorError:
    with vendor_session() as s, pytest.raises(VendorError) as e:
        s.call("GET", url, what="fetch", **kwargs)
    assert isinstance(e.value, URLRefused)  # and still the family's error
    assert e.value.retryable is False and e.value.status is None
    return e.value


@pytest.fixture
def other_server() -> Iterator[HTTPServer]:
    """A second loopback server on another port: "another host" for a redirect."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def no_loopback(settings):
    settings.INTEGRATIONS_ALLOW_LOOPBACK_HTTP = False
    return settings


# --- redirects -------------------------------------------------------------------------------
def test_a_redirect_to_another_port_is_refused_and_the_token_never_reaches_it(
    httpserver: HTTPServer, other_server: HTTPServer
):
    """The issue's reproduction: a fetch from 127.0.0.1 answered 302 to another local port."""
    other_server.expect_request("/steal").respond_with_data("{}")
    httpserver.expect_request("/orders/1").respond_with_data(
        "", status=302, headers={"Location": other_server.url_for("/steal")}
    )

    error = refusal(httpserver.url_for("/orders/1"), headers={"X-Auth-Token": TOKEN})

    assert other_server.log == []  # nothing, let alone the token, reached the second server
    assert len(httpserver.log) == 1  # refused, not retried
    assert str(error) == (
        f"Vendor fetch: {httpserver.host}:{httpserver.port}/orders/1: redirect to another host "
        f"refused: 127.0.0.1:{other_server.port}/steal"
    )
    assert TOKEN not in str(error)


def test_a_redirect_within_the_same_host_is_followed_with_its_headers(httpserver: HTTPServer):
    httpserver.expect_request("/old").respond_with_data(
        "", status=301, headers={"Location": "/new"}
    )
    httpserver.expect_request("/new", headers={"X-Auth-Token": TOKEN}).respond_with_json({"a": 1})

    with vendor_session() as s:
        body = s.get_json(httpserver.url_for("/old"), what="fetch", headers={"X-Auth-Token": TOKEN})

    assert body == {"a": 1}


def test_a_redirect_from_https_to_http_on_the_same_host_is_another_origin(
    httpserver: HTTPServer,
):
    target = httpserver.url_for("/x").replace("http://", "https://")
    httpserver.expect_request("/r").respond_with_data("", status=302, headers={"Location": target})

    error = refusal(httpserver.url_for("/r"))

    assert "redirect to another host refused" in str(error)


def test_without_following_a_redirect_the_answer_is_returned(
    httpserver: HTTPServer, other_server: HTTPServer
):
    httpserver.expect_request("/r").respond_with_data(
        "", status=302, headers={"Location": other_server.url_for("/x")}
    )
    with vendor_session() as s:
        response = s.call("GET", httpserver.url_for("/r"), what="r", accept={302},
                          allow_redirects=False)  # fmt: skip
    assert response.status_code == 302 and other_server.log == []


# --- scheme and addresses --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://api.example.com/x", "plain http is refused"),
        ("ftp://api.example.com/x", "only https URLs are allowed"),
        ("https://10.0.0.5/x", "address 10.0.0.5 is private; add it to INTEGRATIONS_ALLOWED_HOSTS"),
        ("https://172.16.4.4/x", "address 172.16.4.4 is private"),
        ("https://192.168.1.1/x", "address 192.168.1.1 is private"),
        ("https://100.64.0.1/x", "address 100.64.0.1 is private"),
        ("https://[fd00::1]/x", "address fd00::1 is private"),
        ("https://169.254.169.254/latest/meta-data", "169.254.169.254 is a cloud metadata address"),
        ("https://169.254.10.10/x", "address 169.254.10.10 is link-local"),
        ("https://[fe80::1]/x", "address fe80::1 is link-local"),
        ("https://[::ffff:10.0.0.5]/x", "address 10.0.0.5 is private"),
        ("https://0.0.0.0/x", "address 0.0.0.0 is unspecified"),
        ("https://224.0.0.1/x", "address 224.0.0.1 is multicast"),
        ("https://240.0.0.1/x", "address 240.0.0.1 is reserved"),
        ("https://metadata.google.internal/computeMetadata/v1/", "is a cloud metadata host"),
    ],
)
def test_urls_we_never_call_are_refused_before_anything_is_sent(url, reason):
    error = refusal(url)
    assert reason in str(error)
    assert str(error).startswith(f"Vendor fetch: {integrations.where(url)}: ")


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "localhost", "127.9.9.9"])
def test_loopback_is_refused_without_the_setting_even_over_https(no_loopback, host):
    error = refusal(f"https://{host}:9/x")
    assert "loopback; set INTEGRATIONS_ALLOW_LOOPBACK_HTTP to allow it" in str(error)


def test_plain_http_to_a_loopback_server_needs_the_setting(no_loopback, httpserver: HTTPServer):
    httpserver.expect_request("/x").respond_with_data("{}")
    error = refusal(httpserver.url_for("/x"))
    assert "plain http is refused" in str(error)
    assert httpserver.log == []


def test_a_name_that_resolves_to_loopback_is_refused_on_connect(no_loopback):
    """``2130706433`` is no address to ``ipaddress`` but the resolver reads it as 127.0.0.1:
    the check of the address connected to catches what the name check cannot."""
    assert socket.getaddrinfo("2130706433", 443)[0][4][0] == "127.0.0.1"
    error = refusal("https://2130706433:9/x")
    assert "address 127.0.0.1 (of 2130706433) is loopback" in str(error)


def test_the_address_is_checked_when_connecting_not_only_when_saved(no_loopback, monkeypatch):
    """DNS rebinding: the name resolved to a public address when the URL was saved, and to a
    private one when the call connects."""
    answers = iter(["93.184.215.14", "10.0.0.5"])
    real = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        if host != "rebind.example":
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    assert integrations.url_problem("https://rebind.example/api") is None  # saved: public
    error = refusal("https://rebind.example/api")  # called: private
    assert "address 10.0.0.5 (of rebind.example) is private" in str(error)


def test_an_allow_listed_network_or_host_goes_through(settings):
    # 192.0.2.0/24 (TEST-NET-1) is never routed: passing the guard means trying to connect.
    settings.INTEGRATIONS_ALLOWED_HOSTS = ["192.0.2.0/24", "metadata.google.internal"]
    with vendor_session() as s, pytest.raises(VendorError) as e:
        s.call("GET", "https://192.0.2.10:9/x", what="fetch", timeout=(0.2, 1.0))
    assert not isinstance(e.value, URLRefused) and e.value.retryable is True
    assert integrations.url_problem("https://metadata.google.internal/x") is None
    assert integrations.url_problem("https://192.0.2.99/x") is None
    assert "10.0.0.5 is private" in (integrations.url_problem("https://10.0.0.5/x") or "")


def test_the_allow_list_comes_from_the_environment_comma_separated(monkeypatch, settings):
    monkeypatch.setenv("INTEGRATIONS_ALLOWED_HOSTS", "wms.internal, 10.20.0.0/16")
    settings.INTEGRATIONS_ALLOWED_HOSTS = project_settings.env.list("INTEGRATIONS_ALLOWED_HOSTS")
    assert integrations.url_problem("https://10.20.3.4/") is None
    assert "10.21.3.4 is private" in (integrations.url_problem("https://10.21.3.4/") or "")


def test_production_defaults_allow_no_loopback_and_no_private_host():
    assert project_settings.INTEGRATIONS_ALLOW_LOOPBACK_HTTP is False
    assert project_settings.INTEGRATIONS_ALLOWED_HOSTS == []


def test_every_session_of_the_layer_is_guarded():
    with vendor_session() as s:
        assert {type(a).__name__ for a in s.adapters.values()} == {"GuardedAdapter"}


def test_no_runtime_code_makes_http_calls_outside_the_integration_layer():
    """Every vendor call goes through ``config.integrations`` (and so through the guard): no
    other runtime module builds a session or calls ``requests``, ``urllib3``, ``urllib.request``
    or ``http.client`` itself. ``bench`` (load against our own server) is not runtime code."""
    calls = {"get", "post", "put", "patch", "delete", "head", "request", "Session", "session",
             "urlopen", "PoolManager", "HTTPConnection", "HTTPSConnection", "Request"}  # fmt: skip
    modules = {"requests", "urllib3", "urllib.request", "http.client", "httpx"}
    found = []
    for top in ("config", "orders", "channels", "fulfillment", "reviews", "reconciliation", "demo"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if "integrations" in path.relative_to(ROOT).parts or "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            aliases = {}
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    for a in node.names:
                        if a.name in modules:
                            aliases[a.asname or a.name] = a.name
                elif isinstance(node, ast.ImportFrom) and node.module in modules:
                    found += [f"{path.relative_to(ROOT)}: from {node.module} import {a.name}"
                              for a in node.names if a.name in calls]  # fmt: skip
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and isinstance(node.func.value, ast.Name)
                        and node.func.value.id in aliases and node.func.attr in calls):  # fmt: skip
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.func.attr}")
    assert found == []


# --- saving a channel ------------------------------------------------------------------------
def test_saving_a_url_checks_scheme_and_address_and_lets_an_unresolved_name_pass():
    assert integrations.url_problem("https://api.bigcommerce.com/stores/abc") is None
    assert integrations.url_problem("https://no-such-host.invalid/x") is None  # checked at call
    assert "plain http" in (integrations.url_problem("http://api.example.com") or "")
    assert "10.0.0.5 is private" in (integrations.url_problem("https://10.0.0.5/") or "")


def change_form(channel: SalesChannel, **changes: str) -> dict[str, str]:
    data = {
        "name": channel.name, "slug": channel.slug, "kind": channel.kind, "is_active": "on",
        "default_currency": channel.default_currency, "rounding": channel.rounding,
        "webhook_secret": "", "auth_header_name": "", "auth_header_value": "",
        "api_base_url": channel.api_base_url, "api_version": channel.api_version,
        "credentials_json": "", "_save": "Save",
    }  # fmt: skip
    data.update(changes)
    return data


@pytest.fixture
def amazon(db) -> SalesChannel:
    return SalesChannelFactory(
        kind=ChannelKind.AMAZON, slug="amz", name="Amazon NA",
        api_base_url="https://sellingpartnerapi-na.amazon.com",
        credentials={"client_id": "c", "client_secret": "s", "refresh_token": "r"},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://169.254.169.254/latest", "169.254.169.254 is a cloud metadata address"),
        ("http://api.example.com/", "plain http is refused"),
        ("https://10.0.0.5/", "address 10.0.0.5 is private; add it to INTEGRATIONS_ALLOWED_HOSTS"),
    ],
)
def test_the_admin_refuses_an_api_base_url_we_never_call(amazon, client, ops_user, url, shown):
    client.force_login(ops_user)
    response = client.post(
        reverse("admin:channels_saleschannel_change", args=[amazon.pk]),
        change_form(amazon, api_base_url=url),
    )
    assert response.status_code == 200  # the form again, with the error
    assert shown in response.content.decode()
    assert SalesChannel.objects.get(pk=amazon.pk).api_base_url == amazon.api_base_url


def test_the_admin_refuses_an_lwa_token_url_we_never_call(amazon, client, ops_user, settings):
    settings.INTEGRATIONS_ALLOW_LOOPBACK_HTTP = False
    client.force_login(ops_user)
    credentials = '{"client_id": "c", "lwa_token_url": "http://127.0.0.1:8080/auth/o2/token"}'
    response = client.post(
        reverse("admin:channels_saleschannel_change", args=[amazon.pk]),
        change_form(amazon, credentials_json=credentials),
    )
    assert response.status_code == 200
    assert "lwa_token_url refused: plain http is refused" in response.content.decode()
    assert "lwa_token_url" not in SalesChannel.objects.get(pk=amazon.pk).credentials


def test_model_validation_applies_the_same_policy(amazon):
    amazon.api_base_url = "https://10.1.2.3/"
    amazon.credentials = {**amazon.credentials, "lwa_token_url": "https://169.254.169.254/t"}
    with pytest.raises(Exception) as e:
        amazon.full_clean()
    errors = e.value.message_dict  # type: ignore[attr-defined]
    assert errors["api_base_url"] == [
        "Refused: address 10.1.2.3 is private; add it to INTEGRATIONS_ALLOWED_HOSTS to allow it"
    ]
    assert errors["credentials"] == [
        "lwa_token_url refused: address 169.254.169.254 is a cloud metadata address; add it to "
        "INTEGRATIONS_ALLOWED_HOSTS to allow it"
    ]


@pytest.mark.parametrize(
    ("options", "shown"),
    [
        (["--api-url", "https://10.0.0.5/api"],
         "--api-url 10.0.0.5/api refused: address 10.0.0.5 is private"),
        (["--api-url", "http://api.example.com"], "refused: plain http is refused"),
        (["--api-url", "https://x.example", "--credentials",
          '{"lwa_token_url": "https://169.254.169.254/t"}'],
         "--credentials: lwa_token_url refused: address 169.254.169.254 is a cloud metadata"),
    ],
)  # fmt: skip
def test_add_channel_refuses_a_url_we_never_call(db, options, shown):
    with pytest.raises(CommandError) as e:
        call_command("add_channel", "--kind", "amazon", "--slug", "amz-new", *options,
                     stdout=StringIO())  # fmt: skip
    assert shown in str(e.value)
    assert not SalesChannel.objects.filter(slug="amz-new").exists()


def test_add_channel_exits_non_zero_with_the_reason_on_stderr(db, tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "manage.py", "add_channel", "--kind", "bigcommerce", "--slug", "bc-x",
         "--api-url", "https://169.254.169.254/latest"],
        cwd=ROOT, capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings",
             "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "VAR_DIR": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 1
    assert "169.254.169.254 is a cloud metadata address" in result.stderr


# --- the families ----------------------------------------------------------------------------
def test_an_amazon_token_url_pointing_at_the_metadata_service_is_refused_as_a_channel_error():
    from channels.adapters import amazon
    from channels.adapters.base import ChannelConfig
    from channels.http import ChannelHTTPError

    channel = ChannelConfig(
        id=77, slug="amz", kind="amazon", api_base_url="https://sellingpartnerapi-na.amazon.com",
        credentials={"client_id": "c", "client_secret": "lwa-secret-9", "refresh_token": "Atzr|9",
                     "lwa_token_url": "https://169.254.169.254/latest/meta-data/iam"},
    )  # fmt: skip
    with pytest.raises(ChannelHTTPError) as e:
        amazon.SpApiClient(channel).access_token()
    assert isinstance(e.value, URLRefused) and e.value.retryable is False
    assert str(e.value) == (
        "Amazon LWA token exchange: 169.254.169.254/latest/meta-data/iam: address 169.254.169.254 "
        "is a cloud metadata address; add it to INTEGRATIONS_ALLOWED_HOSTS to allow it"
    )
    assert "lwa-secret-9" not in str(e.value) and "Atzr|9" not in str(e.value)


def test_through_a_proxy_the_target_is_checked_before_the_request(
    no_loopback, other_server: HTTPServer
):
    """A proxy resolves the name itself; the session checks what it resolves to first."""
    other_server.expect_request("/x").respond_with_data("{}")
    proxy = f"http://127.0.0.1:{other_server.port}"  # the proxy is the operator's: not checked
    error = refusal("https://2130706433:9/x", proxies={"https": proxy})
    assert "address 127.0.0.1 (of 2130706433) is loopback" in str(error)
    assert other_server.log == []


@pytest.fixture
def tls_server(tmp_path) -> Iterator[tuple[HTTPServer, Path]]:
    """A loopback https server with a certificate for the name ``localhost`` only (no IP)."""
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = HTTPServer(host="localhost", port=0, ssl_context=context)
    server.start()
    yield server, cert
    server.clear()
    if server.is_running():
        server.stop()


def test_over_https_the_certificate_is_verified_for_the_name_while_the_checked_address_is_used(
    tls_server,
):
    """The guarded connection connects to the checked address; TLS still verifies the
    certificate against the URL's host name (SNI and hostname check unchanged)."""
    server, cert = tls_server
    server.expect_request("/x", headers={"X-Auth-Token": TOKEN}).respond_with_json({"ok": True})
    with vendor_session() as s:
        body = s.get_json(f"https://localhost:{server.port}/x", what="fetch",
                          headers={"X-Auth-Token": TOKEN}, verify=str(cert))  # fmt: skip
    assert body == {"ok": True}
    with vendor_session() as s, pytest.raises(VendorError) as e:  # not its name: refused by TLS
        s.call("GET", f"https://127.0.0.1:{server.port}/x", what="fetch", verify=str(cert))
    assert not isinstance(e.value, URLRefused)
