"""Downstream adapters behind one small interface, and the registry that finds them.

Which system each kind of action goes to is configuration:

- ``ERP_TARGET`` (default ``"filedrop"``; ``"netsuite"``; ``""`` turns ERP posting off),
- ``WMS_TARGET`` (default ``"local"``: the built-in pick lists; ``"rest"``; ``""`` off),
- ``NOTIFY_TARGETS`` (default ``["email"]``; add ``"twilio"`` for SMS, used only once
  ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN`` and a sender are set),
- ``CRM_TARGETS`` (default ``[]``: off; ``"webhook"``, a signed Standard Webhooks POST, and/or
  ``"hubspot"``, HubSpot CRM v3; see ``fulfillment.crm``).

``label_purchase`` actions go to ``label_purchase.LabelPurchaseAdapter``, one per carrier code,
registered from ``FulfillmentConfig.ready()``.

Callers that write outbox actions ask ``targets_for(kind)`` and write one action per target.
Another app (or module) adds a system with ``register(kind, target, factory)`` from its
``ready()``; the factory builds the adapter at call time, so settings are read per call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings

from config.registry import Registry, lazy
from fulfillment.downstream.base import Downstream, DownstreamError, UnknownTarget

__all__ = [
    "Downstream",
    "DownstreamError",
    "UnknownTarget",
    "get_handler",
    "register",
    "registered",
    "targets_for",
]

Factory = Callable[[], Downstream]


def _unknown_target(key: tuple[str, str]) -> Exception:
    return UnknownTarget(*key)


# Keyed by (action kind, target); UnknownTarget (not retryable) for a pair nobody answers to.
ADAPTERS: Registry[tuple[str, str], Downstream] = Registry(
    "downstream adapter", missing=_unknown_target
)

# ActionKind values, spelled out so importing the registry does not import the models.
ERP_POST, WMS_TASK, NOTIFY_CUSTOMER = "erp_post", "wms_task", "notify_customer"
CHANNEL_TRACKING_SYNC, CRM_UPDATE = "channel_tracking_sync", "crm_update"
CHANNEL_REFUND, ERP_CREDIT_NOTE, RETURN_LABEL = "channel_refund", "erp_credit_note", "return_label"
CHANNEL_TARGET_PREFIX = "channel:"


def register(kind: str, target: str, factory: Factory) -> None:
    """Make ``factory()`` the adapter for actions of ``kind`` sent to ``target``."""
    ADAPTERS.register((str(kind), target), factory)


def registered() -> list[tuple[str, str]]:
    return sorted(ADAPTERS.names())


def get_handler(kind: str, target: str) -> Downstream:
    """The adapter for (kind, target); ``UnknownTarget`` (not retryable) if there is none.

    Tracking write-backs go to one target per store (``channel:<slug>``, so each store has its
    own circuit breaker) and are all performed by the one ``channel`` adapter."""
    kind = str(kind)
    if kind in (CHANNEL_TRACKING_SYNC, CHANNEL_REFUND) and target.startswith(CHANNEL_TARGET_PREFIX):
        return ADAPTERS.create((kind, "channel"))
    return ADAPTERS.create((kind, target))


def _names(value: Any) -> list[str]:
    """A setting given as a list, or as one comma-separated string."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    return [str(item).strip() for item in items if str(item).strip()]


def targets_for(kind: str) -> list[str]:
    """The targets an action of ``kind`` is written for, per settings (``[]``: none)."""
    kind = str(kind)
    if kind in (ERP_POST, ERP_CREDIT_NOTE):  # a credit note goes where the invoices went
        names = _names(settings.ERP_TARGET)
    elif kind == WMS_TASK:
        names = _names(settings.WMS_TARGET)
    elif kind == NOTIFY_CUSTOMER:
        names = _names(settings.NOTIFY_TARGETS)
    elif kind == CRM_UPDATE:
        names = _names(settings.CRM_TARGETS)
    else:
        return []
    # A notification channel that is not configured is skipped, not written to die. A name
    # with no adapter (a typo) is kept: its action goes dead with a message a person can act on.
    return [name for name in names if _configured(kind, name)]


def _configured(kind: str, target: str) -> bool:
    if kind == NOTIFY_CUSTOMER and target == "twilio":
        from fulfillment.downstream.notify_twilio import twilio_configured

        return twilio_configured()
    return True


# --- the built-in adapters (imported when first used) ------------------------------------------
_DOWNSTREAM = "fulfillment.downstream"
_BUILT_IN = [
    (ERP_POST, "filedrop", "erp_filedrop", "FileDropERPAdapter"),
    (ERP_POST, "netsuite", "erp_netsuite", "NetSuiteERPAdapter.from_settings"),
    (ERP_CREDIT_NOTE, "filedrop", "erp_credit_note", "FileDropCreditNoteAdapter"),
    (ERP_CREDIT_NOTE, "netsuite", "erp_credit_note", "NetSuiteCreditNoteAdapter.from_settings"),
    (WMS_TASK, "local", "wms_local", "LocalWMSAdapter"),
    (WMS_TASK, "rest", "wms_rest", "RestWMSAdapter.from_settings"),
    (NOTIFY_CUSTOMER, "email", "notify_email", "EmailNotifyAdapter"),
    (NOTIFY_CUSTOMER, "twilio", "notify_twilio", "TwilioSMSNotifyAdapter.from_settings"),
    (CHANNEL_TRACKING_SYNC, "channel", "channel_tracking", "ChannelTrackingAdapter"),
    (CHANNEL_REFUND, "channel", "channel_refund", "ChannelRefundAdapter"),
    (CRM_UPDATE, "webhook", "crm_webhook", "WebhookCRMAdapter.from_settings"),
    (CRM_UPDATE, "hubspot", "crm_hubspot", "HubSpotCRMAdapter.from_settings"),
]
for _kind, _target, _module, _builder in _BUILT_IN:
    register(_kind, _target, lazy(f"{_DOWNSTREAM}.{_module}", _builder, call=True))
