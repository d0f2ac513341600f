"""One importer module per source (``reconciliation.models.Source``), each with

    def import_files(paths: Sequence[Path], *, options: ImportOptions) -> list[ImportRun]
    def import_api(*, options: ImportOptions) -> list[ImportRun]      # where the vendor has one

Both read rows through ``reconciliation.imports.import_run`` (each row once, a clear error per
bad row, the vendor's defects kept) and report progress through ``options.progress``. The
``import_finance`` command and the nightly job call them through ``importer_for``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TypeVar

from reconciliation.models import ImportRun, Source

T = TypeVar("T")

MODULES = {
    Source.SHOPIFY_PAYMENTS: "reconciliation.importers.shopify_payments",
    Source.STRIPE: "reconciliation.importers.stripe_balance",
    Source.AMAZON: "reconciliation.importers.amazon_settlements",
    Source.ERP_CSV: "reconciliation.importers.erp",
    Source.NETSUITE: "reconciliation.importers.erp",
    Source.BANK_CSV: "reconciliation.importers.bank",
    Source.CAMT053: "reconciliation.importers.bank",
    Source.MT940: "reconciliation.importers.bank",
}


def _no_progress(items: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterable[T]:
    return items


class Progress(Protocol):
    def __call__(self, items: Iterable[T], *, total: int | None = ..., desc: str = ...
                 ) -> Iterable[T]: ...  # fmt: skip


@dataclass(frozen=True)
class ImportOptions:
    source: str
    channel: Any = None  # channels.models.SalesChannel
    account: Any = None  # reconciliation.models.BankAccount (bank statements)
    by: Any = None  # the user who asked (None: the nightly job)
    since: date | None = None  # API reads: from this day
    until: date | None = None  # API reads: up to this day (inclusive)
    progress: Progress | Callable[..., Iterable[Any]] = _no_progress


def importer_for(source: str) -> ModuleType:
    try:
        name = MODULES[Source(source)]
    except (KeyError, ValueError):
        raise LookupError(
            f"unknown source {source!r} (one of: {', '.join(Source.values)})"
        ) from None
    return importlib.import_module(name)


def import_files(paths: Sequence[Path], *, options: ImportOptions) -> list[ImportRun]:
    runs: list[ImportRun] = importer_for(options.source).import_files(paths, options=options)
    return runs


def import_api(*, options: ImportOptions) -> list[ImportRun]:
    module = importer_for(options.source)
    if not hasattr(module, "import_api"):
        raise LookupError(f"{Source(options.source).label} has no API import: give its files")
    runs: list[ImportRun] = module.import_api(options=options)
    return runs


def configured_imports(*, period: Any, channel: Any = None,
                       progress: Callable[..., Iterable[Any]] | None = None
                       ) -> list[ImportOptions]:  # fmt: skip
    """The API imports this installation is set up for, over ``period`` (a
    ``reconciliation.variance.Period``): Shopify Payments for each Shopify channel with Admin API
    access, Amazon's settlements for each Amazon channel, Stripe when ``STRIPE_API_KEY`` is set,
    NetSuite when ``NETSUITE_API_BASE`` is. ``channel``: only that channel's."""
    from django.conf import settings

    from channels.adapters.shopify import admin_api_ready
    from channels.models import ChannelKind, SalesChannel
    from channels.services import channel_config

    common: dict[str, Any] = {"since": period.start, "until": period.end}
    if progress is not None:
        common["progress"] = progress
    found: list[ImportOptions] = []
    channels = SalesChannel.objects.filter(is_active=True).order_by("slug")
    if channel is not None:
        channels = channels.filter(pk=channel.pk)
    for ch in channels:
        if ch.kind == ChannelKind.SHOPIFY and admin_api_ready(channel_config(ch)):
            found.append(ImportOptions(source=Source.SHOPIFY_PAYMENTS, channel=ch, **common))
        elif ch.kind == ChannelKind.AMAZON:
            found.append(ImportOptions(source=Source.AMAZON, channel=ch, **common))
    if channel is None and str(getattr(settings, "STRIPE_API_KEY", None) or ""):
        found.append(ImportOptions(source=Source.STRIPE, **common))
    if channel is None and str(getattr(settings, "NETSUITE_API_BASE", None) or ""):
        found.append(ImportOptions(source=Source.NETSUITE, **common))
    return found
