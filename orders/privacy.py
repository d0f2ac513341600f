"""Privacy requests: what we hold on a person (an export), and removing it (a redaction).

A request names a **subject**: one customer of one channel (the channel's customer id and/or
email, plus the channel's order ids) or a whole channel (a shop that left). The subject's
**scope** is the channel's orders that are theirs and the customer records behind them.

Export (``subject_export``) writes one JSON file with everything in scope, for a person to send:
the customer records, the orders with lines, addresses, amounts, audit events and incidents, the
emails we sent them (``EMAIL_FILE_PATH``), and what the higher apps registered (shipments and
outbox actions, review cases, inbox events). The file lands in ``PRIVACY_EXPORT_DIR``, outside
``MEDIA_ROOT``; only a user with ``orders.download_privacy_export`` (ops_admin) can fetch it.

Redaction (``subject_redact``) removes personal data and keeps the business record: orders,
lines, amounts and states stay, so finance still sums; names become a pseudonym ("redacted
customer 7f3a9c01b2d4", an HMAC of the customer key with the server's secret, the same on every
run); emails, phones, streets, postcodes and companies go. It is idempotent: a second run finds
nothing left to change and records nothing. Each changed order gets a ``privacy_redacted``
audit event that says *that* it happened (request kind, pseudonym), never what was removed.

The audit trail is append-only; a redaction rewrites old events' ``data`` through the one
exception migration 0008 allows (a permit row per event, inside this transaction, only
``data`` may change). ``scrub`` is the only thing written there: it replaces values under
personal keys and any known value of the subject with ``[redacted]``.

Higher apps add their own data through ``register`` (from their ``ready()``); this module never
imports them. Logs carry ids and counts only, so there is nothing to redact in them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import structlog
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import salted_hmac

from orders.actors import Actor
from orders.canonical import AMOUNT_FIELDS
from orders.models import Customer, Incident, IncidentCategory, Order, OrderEvent, Severity
from orders.transitions import order_event_record

log = structlog.get_logger(__name__)

REDACTED = "[redacted]"
# Keys whose values are personal wherever they appear (addresses, contacts, audit snapshots).
PII_KEYS = frozenset(
    {
        "name",
        "first_name",
        "last_name",
        "customer_name",
        "email",
        "contact_email",
        "phone",
        "company",
        "company_name",
        "line1",
        "line2",
        "address1",
        "address2",
        "street",
        "city",
        "zip",
        "postal_code",
        "postcode",
        "latitude",
        "longitude",
        "browser_ip",
        "ip",
        "browser_ip_hash",
        "card_fingerprint",
        "note",
    }
)
# What an address keeps after a redaction: where tax and shipping statistics need it.
ADDRESS_KEEPS = ("country_code", "region_code")
EXPORT_FORMAT = "orderdesk.privacy_export.v1"
SAFE_FILE_NAME = re.compile(r"^privacy-export-[a-z0-9-]+\.json$")
# The file email backend ends every message with this line.
EMAIL_SEPARATOR = b"\n" + b"-" * 79 + b"\n"
# The permit table of migration 0008 (no model: rows live only inside a redaction's transaction).
PERMIT_INSERT = "INSERT INTO orders_orderevent_scrub_permit (event_id) VALUES (%s)"
PERMIT_DELETE = "DELETE FROM orders_orderevent_scrub_permit WHERE event_id = %s"


@dataclass(frozen=True)
class Subject:
    """Whose data: one customer of one channel, or (``whole_channel``) everyone of it."""

    channel_id: int
    channel_slug: str
    customer_ref: str = ""  # the channel's own customer id
    email: str = ""
    phone: str = ""
    order_external_ids: tuple[str, ...] = ()
    order_ids: tuple[int, ...] = ()  # orders found elsewhere (e.g. in inbox bodies)
    whole_channel: bool = False

    @property
    def key(self) -> str:
        """What the pseudonym is made from: stable for the same person of the same channel."""
        who = self.customer_ref or self.email.strip().lower() or ",".join(self.order_external_ids)
        return f"{self.channel_slug}:{who}"


@dataclass
class Scope:
    """The rows a request covers, and the subject's known values (for scrubbing free text)."""

    subject: Subject
    order_ids: list[int]
    customer_ids: list[int]
    emails: set[str] = field(default_factory=set)
    known: set[str] = field(default_factory=set)

    @property
    def pseudonym(self) -> str:
        return pseudonym(self.subject.key)


Exporter = Callable[[Scope], Any]
Redactor = Callable[[Scope], int]
_PARTS: dict[str, tuple[Exporter, Redactor]] = {}


def register(name: str, *, export: Exporter, redact: Redactor) -> None:
    """A higher app's part of an export (a JSON-able value under ``name``) and of a redaction
    (``redact(scope)`` returns how many rows it changed)."""
    _PARTS[name] = (export, redact)


def pseudonym(key: str) -> str:
    digest = salted_hmac("orders.privacy.pseudonym", key, algorithm="sha256").hexdigest()
    return f"redacted customer {digest[:12]}"


# --- scope ---------------------------------------------------------------------------------------
def subject_scope(subject: Subject) -> Scope:
    """The subject's orders on its channel and their customers; nothing of other channels."""
    orders = Order.objects.filter(channel_id=subject.channel_id)
    if not subject.whole_channel:
        wanted = Q(pk__in=subject.order_ids) | Q(external_id__in=subject.order_external_ids)
        email = subject.email.strip().lower()
        if email:
            wanted |= Q(customer__email__iexact=email)
        orders = orders.filter(wanted)
    rows = list(
        orders.order_by("pk").values("pk", "customer_id", "shipping_address", "billing_address")
    )
    customer_ids = sorted({r["customer_id"] for r in rows if r["customer_id"] is not None})
    scope = Scope(subject=subject, order_ids=[r["pk"] for r in rows], customer_ids=customer_ids)
    for value in (subject.email, subject.phone):
        _know(scope, value)
    if subject.email:
        scope.emails.add(subject.email.strip().lower())
    for customer in Customer.objects.filter(pk__in=customer_ids):
        if customer.email:
            scope.emails.add(customer.email.strip().lower())
        for value in (customer.email, customer.name, customer.phone, customer.company_name):
            _know(scope, value)
    for row in rows:
        for address in (row["shipping_address"], row["billing_address"]):
            for key in ("name", "line1", "line2", "company", "phone"):
                _know(scope, (address or {}).get(key))
    return scope


def _know(scope: Scope, value: Any) -> None:
    # Short values ("Al", "12") would rewrite unrelated text; they are caught by key instead.
    if isinstance(value, str) and len(value.strip()) >= 4 and not value.startswith("redacted "):
        scope.known.add(value.strip())


def scrub(value: Any, known: Iterable[str] = ()) -> Any:
    """``value`` with every personal key's value and every known string replaced."""
    known = sorted(set(known), key=len, reverse=True)
    return _scrub(value, known)


def _scrub(value: Any, known: list[str]) -> Any:
    if isinstance(value, dict):
        return {
            k: (REDACTED if k in PII_KEYS and v not in (None, "", [], {}) else _scrub(v, known))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub(v, known) for v in value]
    if isinstance(value, str):
        lowered = value.lower()
        for item in known:
            if item.lower() in lowered:
                value = re.sub(re.escape(item), REDACTED, value, flags=re.IGNORECASE)
                lowered = value.lower()
        return value
    return value


# --- export --------------------------------------------------------------------------------------
def subject_export(*, subject: Subject, request_ref: str) -> Path:
    """Write everything we hold on the subject to one JSON file; returns its path."""
    scope = subject_scope(subject)
    now = timezone.now()
    orders = Order.objects.filter(pk__in=scope.order_ids).order_by("placed_at", "pk")
    document: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "generated_at": now,
        "channel": subject.channel_slug,
        "request": {
            "ref": request_ref,
            "customer_ref": subject.customer_ref,
            "email": subject.email,
            "phone": subject.phone,
            "orders_requested": list(subject.order_external_ids),
        },
        "customers": [
            _customer_export(c) for c in Customer.objects.filter(pk__in=scope.customer_ids)
        ],
        "orders": [_order_export(order) for order in orders.prefetch_related("lines", "events")],
        "emails": [_email_summary(message) for _path, message in _emails_to(scope.emails)],
    }
    for name, (export, _redact) in sorted(_PARTS.items()):
        document[name] = export(scope)
    folder = Path(settings.PRIVACY_EXPORT_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    safe_ref = re.sub(r"[^a-z0-9-]+", "-", request_ref.lower()).strip("-")[:60] or "request"
    path = folder / f"privacy-export-{subject.channel_slug}-{safe_ref}-{now:%Y%m%d%H%M%S}.json"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(document, handle, cls=DjangoJSONEncoder, indent=2, sort_keys=True)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    log.info(
        "privacy.exported",
        channel=subject.channel_slug,
        orders=len(scope.order_ids),
        customers=len(scope.customer_ids),
        file=path.name,
    )
    return path


def export_path(name: str) -> Path | None:
    """The export file called ``name``, if it is one (no other path is ever served)."""
    if not SAFE_FILE_NAME.match(name):
        return None
    path = Path(settings.PRIVACY_EXPORT_DIR) / name
    return path if path.is_file() else None


def _customer_export(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.pk,
        "email": customer.email,
        "name": customer.name,
        "phone": customer.phone,
        "account_type": customer.account_type,
        "company_name": customer.company_name,
        "created_at": customer.created_at,
    }


def _order_export(order: Order) -> dict[str, Any]:
    amounts = (*AMOUNT_FIELDS, "refunded_total")
    return {
        "id": order.pk,
        "external_id": order.external_id,
        "order_number": order.order_number,
        "placed_at": order.placed_at,
        "status": order.status,
        "payment_status": order.payment_status,
        "payment_method": order.payment_method,
        "currency": order.currency,
        **{name: getattr(order, name) for name in amounts},
        "shipping_address": order.shipping_address,
        "billing_address": order.billing_address,
        "lines": [
            {
                "line_no": ln.line_no,
                "sku": ln.sku,
                "channel_sku": ln.channel_sku,
                "title": ln.title,
                "quantity": ln.quantity,
                "unit_price": ln.unit_price,
                "discount": ln.discount_allocation,
                "tax": ln.tax_allocation,
            }
            for ln in order.lines.all()
        ],
        "events": [
            {
                "at": e.at,
                "action": e.action,
                "from_state": e.from_state,
                "to_state": e.to_state,
                "actor": f"{e.actor_kind}:{e.actor_id}",
                "data": e.data,
            }
            for e in order.events.all()
        ],
        "incidents": [
            {
                "id": i.pk,
                "category": i.category,
                "summary": i.summary,
                "status": i.status,
                "first_seen_at": i.first_seen_at,
            }
            for i in Incident.objects.filter(order_id=order.pk).order_by("pk")
        ],
    }


# --- emails (the file email backend's folder) ----------------------------------------------------
def _email_files() -> Iterator[Path]:
    folder = Path(str(settings.EMAIL_FILE_PATH or ""))
    if folder.is_dir():
        yield from sorted(p for p in folder.iterdir() if p.is_file())


def _split_messages(data: bytes) -> list[bytes]:
    return [part for part in data.split(EMAIL_SEPARATOR) if part.strip()]


def _recipients(raw: bytes) -> set[str]:
    message = message_from_bytes(raw)
    fields = [v for name in ("to", "cc", "bcc") for v in message.get_all(name, [])]
    return {address.lower() for _name, address in getaddresses(fields) if address}


def _emails_to(emails: set[str]) -> Iterator[tuple[Path, bytes]]:
    if not emails:
        return
    for path in _email_files():
        for raw in _split_messages(path.read_bytes()):
            if _recipients(raw) & emails:
                yield path, raw


def _email_summary(raw: bytes) -> dict[str, Any]:
    message = message_from_bytes(raw)
    body = ""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            body = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
            break
    return {
        "date": message.get("date", ""),
        "to": message.get("to", ""),
        "subject": message.get("subject", ""),
        "message_id": message.get("message-id", ""),
        "text": body,
    }


def _emails_remove(emails: set[str]) -> int:
    """Remove the messages sent to these addresses from the email folder; returns how many."""
    removed = 0
    if not emails:
        return 0
    for path in _email_files():
        messages = _split_messages(path.read_bytes())
        kept = [raw for raw in messages if not (_recipients(raw) & emails)]
        if len(kept) == len(messages):
            continue
        removed += len(messages) - len(kept)
        if kept:
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(b"".join(raw + EMAIL_SEPARATOR for raw in kept))
            os.replace(tmp, path)
        else:
            path.unlink()
    return removed


# --- redaction -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RedactionResult:
    orders: int
    customers: int
    events: int
    emails: int
    parts: dict[str, int]


def _redacted_address(address: dict[str, Any] | None, name: str) -> dict[str, Any]:
    if not address:
        return {}
    kept = {k: address[k] for k in ADDRESS_KEEPS if address.get(k)}
    return {"name": name, **kept}


@transaction.atomic
def subject_redact(*, subject: Subject, request: str, actor: Actor) -> RedactionResult:
    """Remove the subject's personal data; keep orders, lines, amounts and states (pseudonymized).

    Idempotent: what is already redacted is left alone and audited once.
    """
    scope = subject_scope(subject)
    names = _pseudonyms(scope)
    orders = Order.objects.filter(pk__in=scope.order_ids)
    customer_of = dict(orders.values_list("pk", "customer_id"))  # before any move to a copy
    known = scope.known
    changed_orders: list[int] = []
    for order in Order.objects.select_for_update(of=("self",)).filter(pk__in=scope.order_ids):
        name = names.get(order.customer_id) or _order_pseudonym(scope, order)
        values = {
            "shipping_address": _redacted_address(order.shipping_address, name),
            "billing_address": _redacted_address(order.billing_address, name),
            "source": {
                k: v
                for k, v in scrub(order.source, known).items()
                if k not in ("browser_ip_hash", "card_fingerprint")
            },
            "risk_signals": scrub(order.risk_signals, known),
            "status_reason": scrub(order.status_reason, known),
        }
        if any(getattr(order, k) != v for k, v in values.items()):
            Order.objects.filter(pk=order.pk).update(**values)
            changed_orders.append(order.pk)
    customers = _customers_redact(scope, names)
    events = _events_scrub(scope.order_ids, known)
    for incident in Incident.objects.filter(order_id__in=scope.order_ids):
        details, summary = scrub(incident.details, known), scrub(incident.summary, known)
        if details != incident.details or summary != incident.summary:
            Incident.objects.filter(pk=incident.pk).update(details=details, summary=summary)
    emails = _emails_remove(scope.emails)
    parts = {part: redact(scope) for part, (_export, redact) in sorted(_PARTS.items())}
    for order_id in sorted(set(changed_orders) | set(events)):
        order_event_record(
            order_id=order_id,
            action="privacy_redacted",
            actor=actor,
            data={
                "request": request,
                "pseudonym": names.get(customer_of.get(order_id)) or scope.pseudonym,
            },
        )
    result = RedactionResult(len(changed_orders), customers, len(events), emails, parts)
    log.info(
        "privacy.redacted",
        channel=subject.channel_slug,
        request=request,
        orders=result.orders,
        customers=customers,
        events=result.events,
        emails=emails,
        **{f"{k}_rows": v for k, v in parts.items()},
    )
    return result


def _is_redacted(customer: Customer) -> bool:
    return not customer.email and customer.name.startswith("redacted customer ")


def _pseudonyms(scope: Scope) -> dict[int | None, str]:
    """The pseudonym of each customer in scope: the one it already carries once redacted (so
    a second run changes nothing); else the subject's (one customer), or one per customer
    record (a whole channel: finance can still tell customers apart)."""
    names: dict[int | None, str] = {}
    for customer in Customer.objects.filter(pk__in=scope.customer_ids):
        if _is_redacted(customer):
            names[customer.pk] = customer.name
        elif scope.subject.whole_channel:
            names[customer.pk] = pseudonym(f"{scope.subject.channel_slug}:customer:{customer.pk}")
        else:
            names[customer.pk] = scope.pseudonym
    return names


def _order_pseudonym(scope: Scope, order: Order) -> str:
    if scope.subject.whole_channel:  # an order without a customer record
        return pseudonym(f"{scope.subject.channel_slug}:order:{order.external_id}")
    return scope.pseudonym


def _customers_redact(scope: Scope, names: dict[int | None, str]) -> int:
    """Scrub the customer records behind the scope's orders. A record that also has orders
    outside the scope (another channel) is kept for those; the scope's orders move to a
    pseudonymous copy (same account terms, no personal data)."""
    changed = 0
    for customer in Customer.objects.select_for_update().filter(pk__in=scope.customer_ids):
        scrubbed = {"email": "", "name": names[customer.pk], "phone": "", "company_name": "",
                    "accepts_marketing": False}  # fmt: skip
        elsewhere = customer.orders.exclude(pk__in=scope.order_ids).exists()
        if elsewhere:
            copy = Customer.objects.create(
                **scrubbed,
                account_type=customer.account_type,
                net_terms_days=customer.net_terms_days,
                net_terms_approved=customer.net_terms_approved,
                credit_limit=customer.credit_limit,
                credit_currency=customer.credit_currency,
            )
            Order.objects.filter(pk__in=scope.order_ids, customer_id=customer.pk).update(
                customer_id=copy.pk
            )
            changed += 1
        elif any(getattr(customer, k) != v for k, v in scrubbed.items()):
            Customer.objects.filter(pk=customer.pk).update(**scrubbed, updated_at=timezone.now())
            changed += 1
    return changed


def _events_scrub(order_ids: list[int], known: set[str]) -> list[int]:
    """Rewrite the ``data`` of the orders' audit events that carry personal values, under the
    permits the append-only trigger accepts (see migration 0008). Returns the orders touched."""
    changes = []
    for event_id, order_id, data in OrderEvent.objects.filter(order_id__in=order_ids).values_list(
        "pk", "order_id", "data"
    ):
        clean = scrub(data, known)
        if clean != data:
            changes.append((event_id, order_id, clean))
    if not changes:
        return []
    with connection.cursor() as cursor:
        cursor.executemany(PERMIT_INSERT, [(e,) for e, _o, _d in changes])
        for event_id, _order_id, clean in changes:
            OrderEvent.objects.filter(pk=event_id).update(data=clean)
        cursor.executemany(PERMIT_DELETE, [(e,) for e, _o, _d in changes])
    return sorted({order_id for _e, order_id, _d in changes})


# --- data requests -------------------------------------------------------------------------------
def data_request_due(requested_at: datetime) -> datetime:
    """Shopify gives 30 days to answer a data request (the GDPR: one month)."""
    return requested_at + timedelta(days=settings.PRIVACY_DATA_REQUEST_DUE_DAYS)


def subject_data_request(
    *, subject: Subject, request_ref: str, requested_at: datetime, details: dict[str, Any]
) -> Incident:
    """Export the subject's data and open a ``privacy_request`` incident for a person to send
    it by the due date. A repeat of the same request (same ``request_ref``) bumps the incident
    and points it at a fresh export."""
    from orders.services import incident_raise

    path = subject_export(subject=subject, request_ref=request_ref)
    due = data_request_due(requested_at)
    incident = incident_raise(
        category=IncidentCategory.PRIVACY_REQUEST,
        severity=Severity.HIGH,
        summary=f"Customer data request from {subject.channel_slug}: send the export to the "
        f"shop by {due:%Y-%m-%d} (due {due:%Y-%m-%d %H:%M} UTC)",
        details={
            **details,
            "channel": subject.channel_slug,
            "request": request_ref,
            "requested_at": requested_at.isoformat(),
            "due_at": due.isoformat(),
            "export_file": path.name,
            "download_url": reverse("privacy-export", args=[path.name]),
        },
        key=f"data_request:{subject.channel_slug}:{request_ref}",
    )
    if incident.details.get("export_file") != path.name:
        Incident.objects.filter(pk=incident.pk).update(
            details={
                **incident.details,
                "export_file": path.name,
                "download_url": reverse("privacy-export", args=[path.name]),
            }
        )
    return incident
