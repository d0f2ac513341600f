"""Channel adapters by kind. Each module exposes ``adapter``, an object with the
``ChannelAdapter`` interface (see ``base.py``); ``ADAPTERS`` finds it (imported on first use)."""

from __future__ import annotations

from channels.adapters.base import ChannelAdapter
from config.registry import Registry, lazy


def _unknown_kind(kind: str) -> Exception:
    return ValueError(f"No adapter for channel kind {kind!r}")


ADAPTERS: Registry[str, ChannelAdapter] = Registry("channel adapter", missing=_unknown_kind)
for _kind in ("shopify", "woocommerce", "bigcommerce", "amazon", "custom"):
    ADAPTERS.register(_kind, lazy(f"channels.adapters.{_kind}", "adapter"))


def get_adapter(kind: str) -> ChannelAdapter:
    return ADAPTERS.create(kind)
