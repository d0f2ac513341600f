"""The outbound URL guard: where the integration layer never sends a request.

Base URLs come from configuration (settings) and from data (a channel's ``api_base_url``, the
URLs in its ``credentials``, such as Amazon's ``lwa_token_url``), typed into the admin by
people. Without a guard, whoever may edit a channel can point it at an internal service or the
cloud's metadata endpoint and read the answer back through errors and logs, and our tokens
(``X-Auth-Token``, bearer tokens, client secrets) go wherever the URL says. So every session
made by ``config.integrations.session()`` checks each request:

- **Scheme.** https only. Plain http only to a loopback host (127.0.0.0/8, ::1, ``localhost``)
  and only when ``INTEGRATIONS_ALLOW_LOOPBACK_HTTP`` is on (the tests' and the demo's loopback
  vendor servers); never by default.
- **Address.** Checked when the connection is made, against the very addresses it connects to
  (``GuardedAdapter``: our urllib3 connection resolves the host itself, checks every address and
  connects to the checked one), so a name that resolved to a public address when it was saved
  and to 10.0.0.5 now (DNS rebinding) is refused now. Refused: loopback (unless
  ``INTEGRATIONS_ALLOW_LOOPBACK_HTTP``), private (RFC 1918, fc00::/7, 100.64.0.0/10), link-local
  (169.254.0.0/16 with the metadata address 169.254.169.254, fe80::/10), unspecified, multicast,
  reserved and every other non-global address, and the cloud metadata host names, unless the
  host name or the address (or a network holding it) is in ``INTEGRATIONS_ALLOWED_HOSTS``.
  IPv4 inside IPv6 (``::ffff:10.0.0.5``, NAT64 ``64:ff9b::``) is judged as the IPv4 address.
- **Redirects.** Followed only within one origin (scheme, host and port); a redirect to another
  host is refused, not followed: requests strips only ``Authorization`` on such a hop and would
  carry our other credential headers to the new host. Every hop passes the guard again.

Through a proxy (``HTTPS_PROXY``), the proxy connects for us: then the target's name is resolved
and checked before the request (the proxy itself is the operator's and is not checked).

A refusal is ``URLRefused`` (an ``IntegrationError``, never retryable: a person must fix the
configuration); ``IntegrationSession.call()`` raises it as the family's error type too, so a
channel still catches ``ChannelHTTPError``. Its message names ``where(url)`` and the reason.

``url_problem(url)`` is the same policy for the moment a URL is saved (admin, commands): it
also resolves the name, and lets a name that does not resolve yet pass (the call checks again).
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from config.integrations.errors import URLRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_HOSTS_SETTING = "INTEGRATIONS_ALLOWED_HOSTS"
LOOPBACK_SETTING = "INTEGRATIONS_ALLOW_LOOPBACK_HTTP"
# Names of the clouds' instance metadata services (refused whatever they resolve to).
METADATA_HOSTS = frozenset({
    "metadata", "metadata.google.internal", "metadata.goog", "metadata.azure.com",
    "instance-data", "instance-data.ec2.internal", "metadata.tencentyun.com",
    "metadata.platformequinix.com", "metadata.packet.net",
})  # fmt: skip
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254")
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: often internal workloads


# --- the policy ---------------------------------------------------------------------------------
def loopback_allowed() -> bool:
    return bool(getattr(settings, LOOPBACK_SETTING, False))


@lru_cache(maxsize=8)
def _parse_allowed(entries: tuple[str, ...]) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    names, networks = set(), []
    for entry in (e.strip() for e in entries):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            names.add(entry.lower().rstrip("."))
    return frozenset(names), tuple(networks)


def _allowed() -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    raw = getattr(settings, ALLOWED_HOSTS_SETTING, ()) or ()
    if isinstance(raw, str):
        raw = raw.split(",")
    return _parse_allowed(tuple(str(e) for e in raw))


def _normal_host(host: str) -> str:
    return host.strip("[]").lower().rstrip(".")


def _literal(host: str) -> IPAddress | None:
    try:
        return _embedded_ipv4(ipaddress.ip_address(_normal_host(host).split("%", 1)[0]))
    except ValueError:
        return None


def _embedded_ipv4(ip: IPAddress) -> IPAddress:
    """IPv4 carried in IPv6 (mapped ``::ffff:a.b.c.d``, NAT64) is judged as that address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 or ``localhost`` (by name: what it resolves to is checked on connect)."""
    ip = _literal(host)
    return ip.is_loopback if ip is not None else _normal_host(host) in LOOPBACK_NAMES


def _kind(ip: IPAddress) -> str | None:
    """Why an address is not one we call, or None for a public one."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_reserved:  # before private: Python counts 240.0.0.0/4 as both
        return "reserved"
    if ip.is_private or ip in SHARED:
        return "private"
    if not ip.is_global:
        return "not a public address"
    return None


def address_problem(ip: IPAddress, *, host: str = "") -> str | None:
    """The reason to refuse connecting to ``ip`` (reached through the name ``host``), or None."""
    ip = _embedded_ipv4(ip)
    names, networks = _allowed()
    of = f" (of {host})" if host and _literal(host) is None else ""
    if ip.is_loopback:
        if loopback_allowed():
            return None
        return f"address {ip}{of} is loopback; set {LOOPBACK_SETTING} to allow it"
    if (host and _normal_host(host) in names) or any(ip in net for net in networks):
        return None
    kind = _kind(ip)
    if kind is None:
        return None
    return f"address {ip}{of} is {kind}; add it to {ALLOWED_HOSTS_SETTING} to allow it"


def host_problem(host: str) -> str | None:
    """What is wrong with the host name itself (before it is resolved), or None."""
    name = _normal_host(host)
    ip = _literal(name)
    if ip is not None:
        return address_problem(ip)
    if name in LOOPBACK_NAMES and not loopback_allowed():
        return f"{name} is loopback; set {LOOPBACK_SETTING} to allow it"
    names, _ = _allowed()
    if name in METADATA_HOSTS and name not in names:
        return f"{name} is a cloud metadata host; add it to {ALLOWED_HOSTS_SETTING} to allow it"
    return None


def url_syntax_problem(url: str) -> str | None:
    """Scheme, host and port of ``url`` against the policy (no DNS), or None when it may go."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        return "the URL is not valid"
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme not in ("https", "http"):
        return "only https URLs are allowed"
    if not host:
        return "the URL has no host"
    if scheme == "http" and not (is_loopback_host(host) and loopback_allowed()):
        return (
            f"plain http is refused: use https (http only to a loopback host, with "
            f"{LOOPBACK_SETTING})"
        )
    return host_problem(host)


def resolve(host: str, port: int) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` for a TCP connection, as urllib3 would ask it."""
    family = urllib3_connection.allowed_gai_family()
    return socket.getaddrinfo(_normal_host(host), port, family, socket.SOCK_STREAM)


def checked_addresses(host: str, port: int) -> list[str]:
    """Resolve ``host`` and return its addresses, in order, once every one has passed the
    policy; raise ``URLRefused`` if any has not (a name that also resolves to a private address
    is not one we call; the message is the reason alone). ``socket.gaierror`` when it does not
    resolve."""
    problem = host_problem(host)
    if problem:
        raise URLRefused(problem)
    found: list[str] = []
    for *_, sockaddr in resolve(host, port):
        address = str(sockaddr[0])
        problem = address_problem(ipaddress.ip_address(address.split("%", 1)[0]), host=host)
        if problem:
            raise URLRefused(problem)
        if address not in found:
            found.append(address)
    return found


def url_problem(url: str) -> str | None:
    """The policy for a URL being saved (admin, commands): syntax, scheme and host, and what the
    name resolves to now. A name that does not resolve passes (checked again at call time)."""
    problem = url_syntax_problem(url)
    if problem:
        return problem
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        checked_addresses(parts.hostname or "", port)
    except URLRefused as exc:
        return str(exc)
    except (OSError, UnicodeError):  # does not resolve now: the call checks again
        return None
    return None


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port: what "the same host" means."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"https": 443, "http": 80}.get(scheme)
    except ValueError:
        port = -1
    return scheme, _normal_host(parts.hostname or ""), port


# --- the connection that connects only to checked addresses ------------------------------------
class _GuardedConnectionMixin:
    """urllib3's ``_new_conn`` resolving the host itself: each address is checked, and the
    socket connects to a checked address, never to a second answer of the resolver."""

    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        try:
            addresses = checked_addresses(self.host, self.port)
        except socket.gaierror as e:
            raise NameResolutionError(self.host, self, e) from e  # type: ignore[arg-type]
        error: OSError | None = None
        for address in addresses:
            try:
                sock = urllib3_connection.create_connection(
                    (address, self.port), self.timeout, source_address=self.source_address,
                    socket_options=self.socket_options,
                )  # fmt: skip
            except TimeoutError as e:
                raise ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                ) from e
            except OSError as e:
                error = e
                continue
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        raise NewConnectionError(
            self,  # type: ignore[arg-type]
            f"Failed to establish a new connection: {error or 'no address'}",
        )


class GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """requests' adapter whose direct connections are ``Guarded*Connection`` (a proxy's are
    urllib3's own: the session checks the target before the request instead)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": GuardedHTTPConnectionPool, "https": GuardedHTTPSConnectionPool,
        }  # fmt: skip
