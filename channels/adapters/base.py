"""The interface every channel adapter implements, and the dataclasses it speaks.

Adapters take and return plain data, never models: the inbox service hands them a
``ChannelConfig`` and the raw delivery, and gets back a ``Delivery`` (verify), the full vendor
payload (fetch, for channels whose webhooks carry only an id) and a canonical order dict
(normalize, see ``orders/schemas/canonical_order.v1.json``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from config.integrations import IntegrationError


@dataclass(frozen=True)
class ChannelConfig:
    id: int
    slug: str
    kind: str
    secret: str = ""
    auth_header_name: str = ""
    auth_header_value: str = ""
    # The secret it replaced, while its grace window lasts (empty otherwise): see
    # ``signatures.verify_rotating``.
    previous_secret: str = ""
    api_base_url: str = ""
    api_version: str = ""
    credentials: Mapping[str, Any] = field(default_factory=dict)
    rounding: str = "ROUND_HALF_UP"
    default_currency: str = "USD"


@dataclass(frozen=True)
class Delivery:
    """What a verified webhook says about itself (from its headers, not its body)."""

    dedup_key: str
    topic: str
    api_version: str = ""
    event_at: datetime | None = None
    is_ping: bool = False  # a vendor's "are you there" call: answer 200, store nothing


@dataclass(frozen=True)
class PrivacyRequest:
    """A channel's privacy-law request (Shopify's mandatory compliance topics), read from a
    verified body. ``kind``: ``data_request``, ``customer_redact`` or ``shop_redact``."""

    kind: str
    shop_domain: str
    request_ref: str
    customer_ref: str = ""
    email: str = ""
    phone: str = ""
    order_ids: tuple[str, ...] = ()


class SignatureInvalid(Exception):  # noqa: N818 (a verdict, not an error of ours)
    """The delivery is not provably from the channel: answer 401, store nothing.

    ``code`` is the reason's class, answered to the sender and logged: ``no_secret``,
    ``malformed_secret``, ``missing_header``, ``bad_timestamp``, ``timestamp_out_of_tolerance``,
    ``mismatch`` or ``not_pushed``. Neither it nor ``reason`` carries a secret or a header value.
    """

    def __init__(self, reason: str, *, code: str = "mismatch") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class NormalizationError(Exception):
    """A well-signed payload we cannot turn into an order: quarantine it with these errors."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        # The errors (messages and values) are for the person looking at the quarantine; the
        # exception's own text names only where, so that it carries no payload value to a log.
        where = ", ".join(e.get("pointer") or "(body)" for e in errors[:10])
        super().__init__(f"{len(errors)} problem(s) normalizing the payload at {where}")
        self.errors = errors


class AdapterError(IntegrationError):
    """A call to the channel's API failed; ``retryable`` says whether trying later may help."""


class ChannelAdapter(Protocol):
    kind: str

    def verify(
        self, channel: ChannelConfig, headers: Mapping[str, str], body: bytes, *, now: datetime
    ) -> Delivery:
        """Check the signature on the raw body (constant time); raise SignatureInvalid."""
        ...

    def payload_schema(self, topic: str, api_version: str) -> str:
        """The file name in ``channels/schemas/`` that validates this topic's payload."""
        ...

    def fetch(self, channel: ChannelConfig, payload: Mapping[str, Any]) -> dict[str, Any] | None:
        """Pull the full order when the delivery carries only a reference; else None."""
        ...

    def cancelled_external_id(self, payload: Mapping[str, Any], topic: str) -> str | None:
        """For a thin cancel/delete delivery, the order id it cancels; else None."""
        ...

    @property
    def destructive_topics(self) -> Mapping[str, str]:
        """The topics that cancel or delete an order, each with the shape its body must have
        (a sentence for the quarantine error). Where the vendor signs only the body, a topic
        header can be swapped on a captured delivery; the body's own shape and a look at the
        channel's API (``confirm_cancel``) must agree before anything is cancelled."""
        ...

    def confirm_cancel(
        self, channel: ChannelConfig, payload: Mapping[str, Any], topic: str
    ) -> bool | None:
        """Ask the channel's API whether the order of a destructive-topic delivery really is
        cancelled or deleted: True yes, False it is open there, None no API configured (demo
        channels). AdapterError when the API cannot be asked (retryable: try later)."""
        ...

    def fetched_schema(self) -> str:
        """The schema of what ``fetch`` returns (only adapters whose fetch returns data)."""
        ...

    def normalize(
        self, payload: Mapping[str, Any], channel: ChannelConfig, topic: str
    ) -> dict[str, Any]:
        """The canonical order (``sku`` left empty; the mapping table resolves it)."""
        ...


# Optional, for channels whose refunds arrive on their own (``channels.refunds_in``):
#     def read_refund(self, channel: ChannelConfig, payload: Mapping[str, Any], topic: str
#                     ) -> tuple[str, dict[str, Any]] | None
# (the order's external id, a canonical refund per ``orders/schemas/canonical_refund.v1.json``)
# for a refund-only topic, None for every other topic. It may call the channel's API (no
# transaction is open) and raise AdapterError.


class PollingAdapter(ChannelAdapter, Protocol):
    """A channel without usable webhooks: orders are pulled."""

    def poll(
        self, channel: ChannelConfig, *, updated_after: datetime
    ) -> Iterator[tuple[dict[str, Any], datetime]]:
        """Yield (payload for the inbox, the order's last update time), oldest first."""
        ...
